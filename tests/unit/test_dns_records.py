"""Answers for PTR, NAPTR, DS, SSHFP, TLSA, SVCB and HTTPS, DS at a delegated apex, and
the additional section of MX, SRV, NS and SVCB answers, over a real LevelDB ledger.

Queries are made and replies read with dnspython, as a client would.
"""

from __future__ import annotations

from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import trio

from chain.records import Record, canonical_record_set
from ledgerdns.dns import AnswerBuilder, AnswerCache, ZoneConfig
from tests.support.instant_node import InstantNode
from tools.devchain import dev_key, register_tx, soon

OWNER = dev_key("dns-records-owner", 0)
CONFIG = ZoneConfig(server_name="ns1.example.net")
SHA256 = "0123456789abcdef" * 4

ALICE = [
    "@ 300 A 192.0.2.1",
    "@ 300 MX 10 mail",
    "@ 300 MX 20 mx.example.net.",
    "@ 300 MX 30 mail.sub",  # below a cut: glue, never additional data
    "@ 300 HTTPS 1 . alpn=h2,h3",
    "mail 300 A 192.0.2.2",
    "mail 300 AAAA 2001:db8::2",
    "_sip._tcp 300 SRV 10 5 5060 sip",
    "_sip._tcp 300 SRV 20 5 5060 x.wild",  # a target synthesized from a wildcard
    "sip 300 A 192.0.2.3",
    "*.wild 300 A 192.0.2.4",
    "www 300 HTTPS 1 cdn port=8443",
    "cdn 300 AAAA 2001:db8::80",
    "_svc 300 SVCB 0 svc.example.net.",
    "4.2.0.192 300 PTR mail",
    '@ 300 NAPTR 100 10 "S" "SIP+D2U" "" _sip._tcp',
    f"_443._tcp.www 300 TLSA 3 1 1 {SHA256}",
    f"host 300 SSHFP 4 2 {SHA256}",
    "sub 300 NS ns1.sub",
    f"sub 300 DS 12345 13 2 {SHA256}",
    "ns1.sub 300 A 192.0.2.53",
    "mail.sub 300 A 192.0.2.54",
    "nods 300 NS ns.example.net.",
]
SIGNED = ["@ 300 NS ns1", "@ 300 NS ns.example.net.", f"@ 3600 DS 12345 13 2 {SHA256}"]
SIGNED += ["ns1 300 A 192.0.2.99"]
UNSIGNED = ["@ 300 NS ns.example.net."]
# An MX answer that fits in 512 bytes only without its additional addresses.
MANY_MX = [f"@ 300 MX {i} mx{i}" for i in range(10)]
MANY_MX += [f"mx{i} 300 A 192.0.2.{i + 1}" for i in range(10)]
MANY_MX += [f"mx{i} 300 AAAA 2001:db8::{i + 1:x}" for i in range(10)]


def _register(node: InstantNode, domain: str, lines: list[str]) -> None:
    records = canonical_record_set(Record.from_text(line, origin=domain) for line in lines)
    tx = register_tx(node.genesis, OWNER, domain, records, valid_until=soon(node.ledger))
    trio.run(node.submit, tx)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnswerCache]:
    node = InstantNode(tmp_path_factory.mktemp("dns-records"))
    _register(node, "alice.p2p", ALICE)
    _register(node, "signed.p2p", SIGNED)
    _register(node, "unsigned.p2p", UNSIGNED)
    _register(node, "many.p2p", MANY_MX)
    yield AnswerCache(AnswerBuilder(node.ledger, CONFIG))
    node.close()


def ask(cache: AnswerCache, name: str, rdtype: str, *, edns: bool = True) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    wire = cache.answer(query.to_wire(), tcp=False)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert query.is_response(reply)
    return reply


def texts(section: list[dns.rrset.RRset]) -> list[str]:
    return sorted(line for rrset in section for line in rrset.to_text().splitlines())


@pytest.mark.parametrize(
    ("name", "rdtype", "expected"),
    [
        ("4.2.0.192.alice.p2p", "PTR", "PTR mail.alice.p2p."),
        ("alice.p2p", "NAPTR", 'NAPTR 100 10 "S" "SIP+D2U" "" _sip._tcp.alice.p2p.'),
        ("_443._tcp.www.alice.p2p", "TLSA", f"TLSA 3 1 1 {SHA256}"),
        ("host.alice.p2p", "SSHFP", f"SSHFP 4 2 {SHA256}"),
        ("alice.p2p", "HTTPS", 'HTTPS 1 . alpn="h2,h3"'),
        ("www.alice.p2p", "HTTPS", 'HTTPS 1 cdn.alice.p2p. port="8443"'),
        ("_svc.alice.p2p", "SVCB", "SVCB 0 svc.example.net."),
        ("sub.alice.p2p", "DS", f"DS 12345 13 2 {SHA256}"),
    ],
)
def test_each_type_is_answered_authoritatively(
    cache: AnswerCache, name: str, rdtype: str, expected: str
) -> None:
    reply = ask(cache, name, rdtype)
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert texts(reply.answer) == [f"{name}. 300 IN {expected}"]


def test_mx_answer_carries_in_zone_addresses_only(cache: AnswerCache) -> None:
    reply = ask(cache, "alice.p2p", "MX")
    assert len(reply.answer[0]) == 3
    # mx.example.net is not ours; mail.sub lies below a cut (its A is glue, not data)
    assert texts(reply.additional) == [
        "mail.alice.p2p. 300 IN A 192.0.2.2",
        "mail.alice.p2p. 300 IN AAAA 2001:db8::2",
    ]


def test_srv_answer_carries_target_addresses_wildcards_included(cache: AnswerCache) -> None:
    reply = ask(cache, "_sip._tcp.alice.p2p", "SRV")
    assert texts(reply.additional) == [
        "sip.alice.p2p. 300 IN A 192.0.2.3",
        "x.wild.alice.p2p. 300 IN A 192.0.2.4",
    ]


def test_https_answer_carries_the_target_or_the_owner(cache: AnswerCache) -> None:
    assert texts(ask(cache, "www.alice.p2p", "HTTPS").additional) == [
        "cdn.alice.p2p. 300 IN AAAA 2001:db8::80"
    ]
    # target "." is the owner itself (RFC 9460 2.5.2)
    assert texts(ask(cache, "alice.p2p", "HTTPS").additional) == ["alice.p2p. 300 IN A 192.0.2.1"]


def test_no_additional_for_other_types_or_any(cache: AnswerCache) -> None:
    assert not ask(cache, "alice.p2p", "A").additional
    assert not ask(cache, "alice.p2p", "ANY").additional


def test_additional_is_dropped_before_the_answer_is_truncated(cache: AnswerCache) -> None:
    whole = ask(cache, "many.p2p", "MX")  # EDNS: everything fits
    assert len(whole.answer[0]) == 10 and len(texts(whole.additional)) == 20
    assert len(whole.to_wire()) > 512
    plain = ask(cache, "many.p2p", "MX", edns=False)  # 512 bytes: no TC, no additional
    assert not plain.flags & dns.flags.TC
    assert len(plain.answer[0]) == 10 and not plain.additional


def test_ds_of_a_domain_delegated_to_signed_servers_is_answered_from_the_tld(
    cache: AnswerCache,
) -> None:
    reply = ask(cache, "signed.p2p", "DS")
    assert reply.flags & dns.flags.AA and reply.rcode() == dns.rcode.NOERROR
    assert texts(reply.answer) == [f"signed.p2p. 3600 IN DS 12345 13 2 {SHA256}"]
    referral = ask(cache, "www.signed.p2p", "A")  # everything else is the owner's servers'
    assert not referral.flags & dns.flags.AA and not referral.answer
    assert texts(referral.additional) == ["ns1.signed.p2p. 300 IN A 192.0.2.99"]


@pytest.mark.parametrize("name", ["unsigned.p2p", "alice.p2p"])
def test_apex_ds_without_records_is_nodata_from_the_tld(cache: AnswerCache, name: str) -> None:
    reply = ask(cache, name, "DS")
    assert reply.flags & dns.flags.AA and not reply.answer
    (soa,) = reply.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "p2p."


def test_ds_at_a_cut_without_records_is_nodata_from_the_zone(cache: AnswerCache) -> None:
    reply = ask(cache, "nods.alice.p2p", "DS")
    assert reply.flags & dns.flags.AA and not reply.answer
    assert reply.authority[0].name.to_text() == "alice.p2p."
