"""The DNS answer builder and its cache, over a real LevelDB ledger (no sockets).

Queries are made and replies read with dnspython, as a client would.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dnslib
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.block import BlockHeader
from chain.errors import ConfigError
from chain.genesis import make_single_validator_genesis
from chain.records import Record, canonical_record_set
from chain.state import DomainState
from chain.tx import Op, Transaction
from ledgerdns.dns import AnswerBuilder, AnswerCache, ZoneConfig
from ledgerdns.dns.cache import DEFAULT_MAX_ENTRIES, WORKER_FRONTED_ENTRIES
from ledgerdns.dns.server import DnsServer
from ledgerdns.dns.settings import DnsSettings
from tests.support.instant_node import VALIDATOR_KEY, InstantNode, now_ms
from tools.devchain import dev_key, next_tx, register_tx, soon

OWNER = dev_key("dns-owner", 0)
SERVER = "ns1.example.net"
CONFIG = ZoneConfig(server_name=SERVER, soa_ttl=300, negative_ttl=60)

ALICE = [
    "@ 300 A 192.0.2.1",
    "@ 300 AAAA 2001:db8::1",
    "@ 300 MX 10 mail",
    '@ 300 TXT "v=spf1 -all"',
    '@ 300 CAA 0 issue "letsencrypt.org"',
    "mail 300 A 192.0.2.2",
    "www 120 CNAME web",
    "web 120 CNAME alice.p2p.",
    "ext 120 CNAME example.com.",
    "dangling 120 CNAME nowhere",
    "loop1 120 CNAME loop2",
    "loop2 120 CNAME loop1",
    "_sip._tcp 300 SRV 10 5 5060 sip",
    "sip 300 A 192.0.2.3",
    "a.b.c 300 A 192.0.2.4",
    '*.wild 300 TXT "wild"',
    "sub 300 NS ns1.sub",
    "sub 300 NS ns.example.net.",
    "ns1.sub 300 A 192.0.2.53",
]
DELEGATED = ["@ 300 NS ns1", "@ 300 NS ns.example.net.", "ns1 300 AAAA 2001:db8::53"]
BIG_TXT = [f'@ 300 TXT "{chr(ord("a") + i) * 200}"' for i in range(8)]  # ~1.7 kB reply


# The in-zone addresses of MX and SRV targets (as BIND adds them)
ADDITIONAL = {
    ("alice.p2p", "MX"): ["mail.alice.p2p. 300 IN A 192.0.2.2"],
    ("_sip._tcp.alice.p2p", "SRV"): ["sip.alice.p2p. 300 IN A 192.0.2.3"],
}


def records(domain: str, lines: list[str]) -> tuple[Record, ...]:
    return canonical_record_set(Record.from_text(line, origin=domain) for line in lines)


def submit(node: InstantNode, tx: Transaction) -> None:
    trio.run(node.submit, tx)


def register(node: InstantNode, domain: str, lines: list[str]) -> None:
    tx = register_tx(
        node.genesis, OWNER, domain, records(domain, lines), valid_until=soon(node.ledger)
    )
    submit(node, tx)


def update(node: InstantNode, domain: str, lines: list[str], op: Op = Op.UPDATE) -> None:
    recs = records(domain, lines) if op is not Op.RELEASE else ()
    tx = next_tx(node.genesis, node.ledger, OWNER, domain, recs, op=op, valid_until=soon(node.ledger))
    submit(node, tx)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstantNode]:
    instant = InstantNode(tmp_path_factory.mktemp("dns-answer"))
    register(instant, "alice.p2p", ALICE)
    register(instant, "deleg.p2p", DELEGATED)
    register(instant, "big.p2p", BIG_TXT)
    yield instant
    instant.close()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[InstantNode]:
    """A node of its own, for tests that add blocks."""
    instant = InstantNode(tmp_path)
    register(instant, "alice.p2p", ["@ 300 A 192.0.2.1", "www 300 A 192.0.2.80"])
    yield instant
    instant.close()


@pytest.fixture(scope="module")
def cache(node: InstantNode) -> AnswerCache:
    return AnswerCache(AnswerBuilder(node.ledger, CONFIG))


def ask(
    cache: AnswerCache,
    name: str,
    rdtype: str = "A",
    *,
    edns: bool = True,
    payload: int = 1232,
    tcp: bool = False,
    rd: bool = True,
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False, payload=payload)
    if not rd:
        query.flags &= ~dns.flags.RD
    wire = cache.answer(query.to_wire(), tcp=tcp)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert query.is_response(reply)
    return reply


def texts(section: list[dns.rrset.RRset]) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


def soa_of(reply: dns.message.Message) -> tuple[str, int, dns.rdtypes.ANY.SOA.SOA]:
    (rrset,) = reply.authority
    assert rrset.rdtype == dns.rdatatype.SOA
    return rrset.name.to_text(), rrset.ttl, rrset[0]


# -- positive answers --


@pytest.mark.parametrize(
    ("name", "rdtype", "expected"),
    [
        ("alice.p2p", "A", ["alice.p2p. 300 IN A 192.0.2.1"]),
        ("alice.p2p", "AAAA", ["alice.p2p. 300 IN AAAA 2001:db8::1"]),
        ("alice.p2p", "MX", ["alice.p2p. 300 IN MX 10 mail.alice.p2p."]),
        ("alice.p2p", "TXT", ['alice.p2p. 300 IN TXT "v=spf1 -all"']),
        ("alice.p2p", "CAA", ['alice.p2p. 300 IN CAA 0 issue "letsencrypt.org"']),
        ("_sip._tcp.alice.p2p", "SRV", ["_sip._tcp.alice.p2p. 300 IN SRV 10 5 5060 sip.alice.p2p."]),
        ("a.b.c.alice.p2p", "A", ["a.b.c.alice.p2p. 300 IN A 192.0.2.4"]),
        ("mail.alice.p2p", "A", ["mail.alice.p2p. 300 IN A 192.0.2.2"]),
    ],
)
def test_records_are_served_authoritatively(
    cache: AnswerCache, name: str, rdtype: str, expected: list[str]
) -> None:
    reply = ask(cache, name, rdtype)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert not reply.flags & dns.flags.RA
    assert texts(reply.answer) == expected
    assert not reply.authority
    assert texts(reply.additional) == ADDITIONAL.get((name, rdtype), [])


def test_rd_is_copied_and_ra_never_set(cache: AnswerCache) -> None:
    assert ask(cache, "alice.p2p", rd=True).flags & dns.flags.RD
    reply = ask(cache, "alice.p2p", rd=False)
    assert not reply.flags & (dns.flags.RD | dns.flags.RA)


def test_apex_soa_and_ns_are_synthesized(cache: AnswerCache, node: InstantNode) -> None:
    soa = ask(cache, "alice.p2p", "SOA").answer[0]
    assert soa.ttl == 300
    assert soa[0].mname.to_text() == f"{SERVER}."
    assert soa[0].rname.to_text() == "hostmaster.alice.p2p."
    # The serial is the height of the block holding the domain's latest transaction.
    (_, head_txid) = node.ledger.history("alice.p2p")[-1]
    assert soa[0].serial == node.ledger.get_tx(head_txid)[1] == 1 < node.ledger.height
    assert soa[0].minimum == 60
    assert texts(ask(cache, "alice.p2p", "NS").answer) == [f"alice.p2p. 3600 IN NS {SERVER}."]


def test_any_returns_one_rrset_rfc8482(cache: AnswerCache) -> None:
    assert texts(ask(cache, "alice.p2p", "ANY").answer) == ["alice.p2p. 300 IN A 192.0.2.1"]


# -- CNAME --


def test_cname_chain_is_followed_inside_the_zone(cache: AnswerCache) -> None:
    reply = ask(cache, "www.alice.p2p", "A")
    assert texts(reply.answer) == [
        "www.alice.p2p. 120 IN CNAME web.alice.p2p.",
        "web.alice.p2p. 120 IN CNAME alice.p2p.",
        "alice.p2p. 300 IN A 192.0.2.1",
    ]
    assert reply.rcode() == dns.rcode.NOERROR


def test_cname_question_gets_only_the_cname(cache: AnswerCache) -> None:
    assert texts(ask(cache, "www.alice.p2p", "CNAME").answer) == [
        "www.alice.p2p. 120 IN CNAME web.alice.p2p."
    ]


def test_cname_out_of_the_zone_is_left_to_the_resolver(cache: AnswerCache) -> None:
    reply = ask(cache, "ext.alice.p2p", "A")
    assert texts(reply.answer) == ["ext.alice.p2p. 120 IN CNAME example.com."]
    assert reply.rcode() == dns.rcode.NOERROR and not reply.authority


def test_cname_to_a_missing_name_is_nxdomain_with_the_chain(cache: AnswerCache) -> None:
    reply = ask(cache, "dangling.alice.p2p", "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN  # RFC 6604: the rcode of the last name
    assert texts(reply.answer) == ["dangling.alice.p2p. 120 IN CNAME nowhere.alice.p2p."]
    assert soa_of(reply)[0] == "alice.p2p."


def test_cname_loop_ends(cache: AnswerCache) -> None:
    reply = ask(cache, "loop1.alice.p2p", "A")
    assert reply.rcode() == dns.rcode.NOERROR
    assert len(reply.answer) == 2  # loop1 -> loop2 -> (loop1 again: stop)


# -- negative answers --


def test_nxdomain_carries_the_zone_soa_with_the_negative_ttl(cache: AnswerCache) -> None:
    reply = ask(cache, "nope.alice.p2p", "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.flags & dns.flags.AA and not reply.answer
    owner, ttl, soa = soa_of(reply)
    assert owner == "alice.p2p." and ttl == 60 and soa.minimum == 60


def test_negative_ttl_is_the_smaller_of_soa_ttl_and_minimum(node: InstantNode) -> None:
    config = ZoneConfig(server_name=SERVER, soa_ttl=30, negative_ttl=60)
    reply = ask(AnswerCache(AnswerBuilder(node.ledger, config)), "nope.alice.p2p")
    assert soa_of(reply)[1] == 30


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("alice.p2p", "SRV"),  # the name exists, the type does not
        ("mail.alice.p2p", "AAAA"),
        ("b.c.alice.p2p", "A"),  # empty non-terminals
        ("c.alice.p2p", "TXT"),
        ("wild.alice.p2p", "TXT"),
        ("alice.p2p", "HTTPS"),  # a type the ledger does not hold
        ("alice.p2p", "DNSKEY"),  # unsigned
    ],
)
def test_nodata(cache: AnswerCache, name: str, rdtype: str) -> None:
    reply = ask(cache, name, rdtype)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA and not reply.answer
    assert soa_of(reply)[:2] == ("alice.p2p.", 60)


@pytest.mark.parametrize("name", ["bob.p2p", "www.bob.p2p", "a--b.p2p", "x.y.z.p2p"])
def test_unregistered_domain_is_nxdomain_with_the_tld_soa(cache: AnswerCache, name: str) -> None:
    reply = ask(cache, name)
    assert reply.rcode() == dns.rcode.NXDOMAIN and reply.flags & dns.flags.AA
    owner, ttl, soa = soa_of(reply)
    assert owner == "p2p." and ttl == 60
    assert soa.rname.to_text() == "hostmaster.p2p."


def test_released_and_expired_domains_are_nxdomain(tmp_path: Path) -> None:
    base = make_single_validator_genesis(
        VALIDATOR_KEY.public_key, genesis_time_ms=now_ms() - 1000, chain_id="instant-test"
    )
    genesis = dataclasses.replace(base, params=dataclasses.replace(base.params, name_lifetime_s=3600))
    node = InstantNode(tmp_path, genesis)
    try:
        register(node, "gone.p2p", ["@ 300 A 192.0.2.9"])
        register(node, "lapse.p2p", ["@ 300 A 192.0.2.10"])
        later = LaterHead(node)
        cache = AnswerCache(AnswerBuilder(later, CONFIG))
        assert ask(cache, "lapse.p2p").answer
        update(node, "gone.p2p", [], op=Op.RELEASE)
        cache.invalidate({"gone.p2p"})
        assert ask(cache, "gone.p2p").rcode() == dns.rcode.NXDOMAIN
        later.offset_s = 3601  # block time past the expiry: the cached answer must go
        cache.invalidate(frozenset())
        reply = ask(cache, "lapse.p2p")
        assert reply.rcode() == dns.rcode.NXDOMAIN and soa_of(reply)[0] == "p2p."
    finally:
        node.close()


class LaterHead:
    """The ledger seen from a later block time (expiry is judged at head time)."""

    def __init__(self, node: InstantNode) -> None:
        self._ledger = node.ledger
        self.params = node.ledger.params
        self.offset_s = 0

    @property
    def head(self) -> BlockHeader:
        head = self._ledger.head
        return dataclasses.replace(head, time_ms=head.time_ms + self.offset_s * 1000)

    def get_domain(self, domain: str) -> DomainState | None:
        return self._ledger.get_domain(domain)

    def get_tx_location(self, txid: bytes) -> tuple[int, int]:
        return self._ledger.get_tx_location(txid)


# -- wildcards (RFC 4592) --


@pytest.mark.parametrize("name", ["x.wild.alice.p2p", "deep.x.wild.alice.p2p"])
def test_wildcard_synthesizes_the_question_name(cache: AnswerCache, name: str) -> None:
    assert texts(ask(cache, name, "TXT").answer) == [f'{name}. 300 IN TXT "wild"']


def test_wildcard_nodata_and_no_match_above_it(cache: AnswerCache) -> None:
    reply = ask(cache, "x.wild.alice.p2p", "A")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    # The closest encloser of z.b.c is the empty non-terminal b.c, which has no '*'.
    assert ask(cache, "z.b.c.alice.p2p").rcode() == dns.rcode.NXDOMAIN


# -- delegations --


@pytest.mark.parametrize("name", ["sub.alice.p2p", "ns1.sub.alice.p2p", "deep.sub.alice.p2p"])
@pytest.mark.parametrize("rdtype", ["A", "NS", "TXT"])
def test_ns_below_the_apex_is_a_referral_with_glue(
    cache: AnswerCache, name: str, rdtype: str
) -> None:
    reply = ask(cache, name, rdtype)
    assert reply.rcode() == dns.rcode.NOERROR
    assert not reply.flags & dns.flags.AA and not reply.answer
    assert sorted(texts(reply.authority)) == [
        "sub.alice.p2p. 300 IN NS ns.example.net.",
        "sub.alice.p2p. 300 IN NS ns1.sub.alice.p2p.",
    ]
    assert texts(reply.additional) == ["ns1.sub.alice.p2p. 300 IN A 192.0.2.53"]


def test_ds_at_a_cut_is_answered_by_the_parent(cache: AnswerCache) -> None:
    reply = ask(cache, "sub.alice.p2p", "DS")
    assert reply.flags & dns.flags.AA and not reply.answer
    assert soa_of(reply)[0] == "alice.p2p."
    apex = ask(cache, "alice.p2p", "DS")  # the TLD is the apex's parent (RFC 4035 3.1.4.1)
    assert apex.rcode() == dns.rcode.NOERROR and apex.flags & dns.flags.AA and not apex.answer
    assert soa_of(apex)[:2] == ("p2p.", 60)


@pytest.mark.parametrize("rdtype", ["A", "SOA", "NS"])
def test_owner_set_apex_ns_delegates_the_whole_domain(cache: AnswerCache, rdtype: str) -> None:
    reply = ask(cache, "deleg.p2p", rdtype)
    assert not reply.flags & dns.flags.AA and not reply.answer
    assert sorted(texts(reply.authority)) == [
        "deleg.p2p. 300 IN NS ns.example.net.",
        "deleg.p2p. 300 IN NS ns1.deleg.p2p.",
    ]
    assert texts(reply.additional) == ["ns1.deleg.p2p. 300 IN AAAA 2001:db8::53"]
    ds = ask(cache, "deleg.p2p", "DS")  # lives in the TLD zone: NODATA from there
    assert ds.flags & dns.flags.AA and soa_of(ds)[0] == "p2p."


# -- the TLD and the outside --


def test_tld_is_answered_as_a_zone_of_its_own(cache: AnswerCache, node: InstantNode) -> None:
    soa = ask(cache, "p2p", "SOA")
    assert soa.flags & dns.flags.AA
    assert soa.answer[0][0].serial == node.ledger.height
    assert texts(ask(cache, "p2p", "NS").answer) == [f"p2p. 3600 IN NS {SERVER}."]
    nodata = ask(cache, "p2p", "A")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert soa_of(nodata)[0] == "p2p."


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [("example.com", "A"), (".", "NS"), ("p2p.example", "A"), ("alice.p2p", "AXFR")],
)
def test_outside_the_ledger_is_refused(cache: AnswerCache, name: str, rdtype: str) -> None:
    reply = ask(cache, name, rdtype)
    assert reply.rcode() == dns.rcode.REFUSED
    assert not reply.flags & dns.flags.AA and not reply.answer and not reply.authority


def test_other_classes_are_refused(cache: AnswerCache) -> None:
    query = dns.message.make_query("alice.p2p", "TXT", rdclass=dns.rdataclass.CH)
    reply = dns.message.from_wire(cache.answer(query.to_wire(), tcp=False) or b"")
    assert reply.rcode() == dns.rcode.REFUSED


# -- EDNS and size --


def test_edns_is_echoed_with_our_payload(cache: AnswerCache) -> None:
    reply = ask(cache, "alice.p2p", payload=4096)
    assert reply.edns == 0 and reply.payload == 1232
    assert ask(cache, "alice.p2p", edns=False).edns == -1


def test_big_answer_is_truncated_over_udp_and_whole_over_tcp(cache: AnswerCache) -> None:
    for edns, payload in [(False, 0), (True, 512), (True, 1232), (True, 4096)]:
        reply = ask(cache, "big.p2p", "TXT", edns=edns, payload=payload)
        assert reply.flags & dns.flags.TC
        assert len(reply.question) == 1 and not reply.answer and not reply.authority
        assert reply.edns == (0 if edns else -1)
    whole = ask(cache, "big.p2p", "TXT", tcp=True)
    assert not whole.flags & dns.flags.TC
    assert len(whole.answer[0]) == 8


def test_udp_size_honours_the_client_payload_with_512_floor(cache: AnswerCache) -> None:
    # The TXT reply is ~120 bytes without EDNS; a zone SOA answer is ~100: all fit in 512.
    reply = ask(cache, "alice.p2p", "ANY", payload=100)
    assert not reply.flags & dns.flags.TC and reply.answer


def test_unknown_edns_version_is_badvers(cache: AnswerCache) -> None:
    query = dns.message.make_query("alice.p2p", "A", use_edns=1)
    reply = dns.message.from_wire(cache.answer(query.to_wire(), tcp=False) or b"")
    assert reply.rcode() == dns.rcode.BADVERS and not reply.answer


# -- 0x20 and the cache --


def test_question_case_is_preserved_from_the_cache(cache: AnswerCache) -> None:
    ask(cache, "www.alice.p2p")
    hits = cache.hits
    for spelling in ["WwW.aLiCe.P2p", "WWW.ALICE.P2P"]:
        reply = ask(cache, spelling)
        assert reply.question[0].name.to_text() == f"{spelling}."
        assert reply.answer[0].name.to_text() == f"{spelling}."
        assert reply.answer[-1].to_text() == "alice.p2p. 300 IN A 192.0.2.1"
    assert cache.hits == hits + 2


def test_ids_differ_per_query_on_cache_hits(cache: AnswerCache) -> None:
    for _ in range(3):
        ask(cache, "mail.alice.p2p")  # ask() checks is_response, which compares the ID


def test_an_update_is_served_after_invalidate(fresh: InstantNode) -> None:
    cache = AnswerCache(AnswerBuilder(fresh.ledger, CONFIG))
    register(fresh, "other.p2p", ["@ 300 A 192.0.2.200"])
    cache.invalidate({"other.p2p"})
    assert texts(ask(cache, "www.alice.p2p").answer) == ["www.alice.p2p. 300 IN A 192.0.2.80"]
    before = ask(cache, "alice.p2p", "SOA").answer[0][0].serial
    assert before == 1  # other.p2p's block left alice's serial alone
    update(fresh, "alice.p2p", ["@ 300 A 192.0.2.1", "www 300 A 192.0.2.81"])
    cache.invalidate({"alice.p2p"})
    assert texts(ask(cache, "www.alice.p2p").answer) == ["www.alice.p2p. 300 IN A 192.0.2.81"]
    assert ask(cache, "alice.p2p", "SOA").answer[0][0].serial == fresh.ledger.height == 3


def test_a_block_keeps_unchanged_zones_but_not_the_tld_soa(fresh: InstantNode) -> None:
    cache = AnswerCache(AnswerBuilder(fresh.ledger, CONFIG))
    ask(cache, "www.alice.p2p")
    ask(cache, "nope.alice.p2p")
    ask(cache, "alice.p2p", "SOA")
    ask(cache, "bob.p2p")
    register(fresh, "other.p2p", ["@ 300 A 192.0.2.200"])
    cache.invalidate({"other.p2p"})
    hits = cache.hits
    ask(cache, "www.alice.p2p")
    # An untouched zone keeps its serial, so its SOA-holding replies stay cached too.
    assert soa_of(ask(cache, "nope.alice.p2p"))[2].serial == 1
    assert ask(cache, "alice.p2p", "SOA").answer[0][0].serial == 1
    assert cache.hits == hits + 3
    # The TLD's serial is the head height: its negative answer is rebuilt.
    assert soa_of(ask(cache, "bob.p2p"))[2].serial == fresh.ledger.height == 2
    assert cache.hits == hits + 3
    update(fresh, "alice.p2p", ["@ 300 A 192.0.2.1"])
    cache.invalidate({"alice.p2p"})
    assert soa_of(ask(cache, "nope.alice.p2p"))[2].serial == 3
    assert cache.hits == hits + 3  # the zone changed: rebuilt with its new serial


def test_the_cache_clears_itself_if_nobody_invalidates(fresh: InstantNode) -> None:
    cache = AnswerCache(AnswerBuilder(fresh.ledger, CONFIG))
    assert ask(cache, "new.p2p").rcode() == dns.rcode.NXDOMAIN
    register(fresh, "new.p2p", ["@ 300 A 192.0.2.201"])
    assert texts(ask(cache, "new.p2p").answer) == ["new.p2p. 300 IN A 192.0.2.201"]
    cache.clear()
    assert len(cache) == 0


def test_the_cache_is_bounded(node: InstantNode) -> None:
    small = AnswerCache(AnswerBuilder(node.ledger, CONFIG), max_entries=3)
    for i in range(10):
        ask(small, f"n{i}.alice.p2p")
    assert len(small) == 3


@pytest.mark.parametrize(("workers", "bound"), [(1, WORKER_FRONTED_ENTRIES), (0, DEFAULT_MAX_ENTRIES)])
def test_the_node_caches_fewer_replies_when_udp_workers_keep_them(
    node: InstantNode, workers: int, bound: int
) -> None:
    # Each worker keeps every reply it sent; the node's copy would be per name asked (issue 21).
    server = DnsServer(node.ledger, "127.0.0.1", 0, blocks=node, settings=DnsSettings(workers=workers))
    assert server.cache._max == bound
    assert WORKER_FRONTED_ENTRIES == 1_024 and DEFAULT_MAX_ENTRIES == 50_000


# -- malformed and unusual messages --


def header(flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!6H", 0x1234, flags, qd, an, ns, ar)


QUESTION = b"\x05alice\x03p2p\x00\x00\x01\x00\x01"


@pytest.mark.parametrize(
    ("data", "rcode"),
    [
        (header() + b"\x05ali", dns.rcode.FORMERR),  # cut in the name
        (header() + QUESTION + b"junk", dns.rcode.FORMERR),  # trailing bytes
        (header(qd=0), dns.rcode.FORMERR),
        (header(qd=2) + QUESTION + QUESTION, dns.rcode.FORMERR),
        (header() + b"\xc0\x0c\x00\x01\x00\x01", dns.rcode.FORMERR),  # pointer in the question
        (header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01", dns.rcode.FORMERR),
        (header() + b"\x3f" + b"a" * 63 * 5 + b"\x00\x00\x01\x00\x01", dns.rcode.FORMERR),
        (header(ar=2) + QUESTION + (b"\x00\x00\x29\x04\xd0" + bytes(6)) * 2, dns.rcode.FORMERR),
        (header(ar=1) + QUESTION + b"\x01x\x00\x00\x29\x04\xd0" + bytes(6), dns.rcode.FORMERR),
        (header(0x2900) + QUESTION, dns.rcode.NOTIMP),  # opcode UPDATE
        (header(0x2900) + b"\x03p2p\x00\x00\x06\x00\xff", dns.rcode.NOTIMP),  # zone class ANY
        (header(0x2900) + b"\x03p2p\x00\x00\x06\x00\xfe", dns.rcode.NOTIMP),  # zone class NONE
        (header(0x1100) + QUESTION, dns.rcode.NOTIMP),  # opcode STATUS
    ],
)
def test_bad_messages_get_a_bare_error(cache: AnswerCache, data: bytes, rcode: int) -> None:
    wire = cache.answer(data, tcp=False)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.id == 0x1234 and reply.rcode() == rcode
    opcode = (struct.unpack("!H", data[2:4])[0] >> 11) & 0xF
    assert reply.flags & dns.flags.QR and (reply.flags >> 11) & 0xF == opcode
    # RD is copied for a standard query only: other opcodes do not define it.
    assert bool(reply.flags & dns.flags.RD) == (opcode == 0)


@pytest.mark.parametrize("data", [b"", b"\x12", bytes(11), header(0x8100) + QUESTION])
def test_fragments_and_responses_are_dropped(cache: AnswerCache, data: bytes) -> None:
    assert cache.answer(data, tcp=False) is None


def test_queries_with_other_sections_are_answered(cache: AnswerCache) -> None:
    extra = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01"  # an A record
    reply = dns.message.from_wire(cache.answer(header(an=1) + QUESTION + extra, tcp=False) or b"")
    assert texts(reply.answer) == ["alice.p2p. 300 IN A 192.0.2.1"]


def test_build_takes_and_returns_dnslib_messages(node: InstantNode) -> None:
    builder = AnswerBuilder(node.ledger, CONFIG)
    reply = builder.build(dnslib.DNSRecord.question("Mail.Alice.p2p", "A"))
    assert reply is not None
    assert reply.header.aa == 1 and reply.header.rcode == 0
    assert str(reply.rr[0].rname) == "Mail.Alice.p2p."
    assert str(reply.rr[0].rdata) == "192.0.2.2"
    bad = dnslib.DNSRecord(dnslib.DNSHeader(id=7))  # no question
    formerr = builder.build(bad)
    assert formerr is not None and formerr.header.rcode == dnslib.RCODE.FORMERR
    response = dnslib.DNSRecord.question("alice.p2p").reply()
    assert builder.build(response) is None


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda base, pos, byte: base[:pos] + bytes([byte]) + base[pos + 1 :],
            st.just(header(ar=1) + QUESTION + b"\x00\x00\x29\x04\xd0" + bytes(6)),
            st.integers(0, 39),
            st.integers(0, 255),
        ),
    ),
    tcp=st.booleans(),
)
def test_any_bytes_get_a_parseable_reply_or_none(
    cache: AnswerCache, data: bytes, tcp: bool
) -> None:
    wire = cache.answer(data, tcp=tcp)
    if wire is None:
        return
    reply = dns.message.from_wire(wire)
    assert reply.id == struct.unpack("!H", data[:2])[0]
    assert reply.flags & dns.flags.QR
    assert len(wire) <= (65535 if tcp else 1232)


# -- configuration --


def test_server_name_is_normalized() -> None:
    assert ZoneConfig(server_name="NS1.Example.NET.").server_name == "ns1.example.net"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"server_name": ""}, "server_name"),
        ({"server_name": "a..b"}, "server_name"),
        ({"server_name": "bad_name.example"}, "server_name"),
        ({"soa_ttl": -1}, "soa_ttl"),
        ({"negative_ttl": 2**31}, "negative_ttl"),
    ],
)
def test_bad_zone_config_names_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ZoneConfig(**options)
    assert caught.value.key == key


def test_edns_payload_is_checked(node: InstantNode) -> None:
    with pytest.raises(ConfigError, match="edns_payload"):
        AnswerBuilder(node.ledger, edns_payload=100)


_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-", min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.lists(_LABEL, min_size=1, max_size=3), min_size=2, max_size=6),
    rdtype=st.sampled_from(["A", "AAAA", "MX", "TXT", "SOA", "NS", "CAA"]),
    edns=st.sampled_from([None, 0]),
    do=st.booleans(),
)
def test_unregistered_names_share_one_encoded_nxdomain_without_changing_a_byte(
    node: InstantNode, names: list[list[str]], rdtype: str, edns: int | None, do: bool
) -> None:
    """Made-up names under a TLD get the reply a fresh builder would write, byte for byte."""
    shared = AnswerCache(AnswerBuilder(node.ledger, CONFIG))
    for labels in [*names, ["abcd"], ["WxYz"]]:  # two of one length: the shared copy is reused
        name = ".".join([*labels, "zz-nobody", "p2p"])
        query = dns.message.make_query(
            name, rdtype, use_edns=edns, want_dnssec=do and edns is not None
        ).to_wire()
        fresh_reply = AnswerCache(AnswerBuilder(node.ledger, CONFIG)).answer(query, tcp=False)
        assert shared.answer(query, tcp=False) == fresh_reply
        assert dns.message.from_wire(fresh_reply or b"").rcode() == dns.rcode.NXDOMAIN
    assert len(shared) == 0  # nothing kept per made-up name


def test_made_up_types_and_lengths_cannot_grow_the_shared_nxdomains_without_bound(
    node: InstantNode,
) -> None:
    """One shared NXDOMAIN per (TLD, type, EDNS, length): a flood of combinations stays bounded."""
    cache = AnswerCache(AnswerBuilder(node.ledger, CONFIG), max_entries=50)
    for i in range(400):
        name = "x" * (1 + i % 40) + ".zz-nobody.p2p"
        query = dns.message.make_query(name, 1000 + i, use_edns=i % 2 == 0).to_wire()
        reply = dns.message.from_wire(cache.answer(query, tcp=False) or b"")
        assert reply.rcode() == dns.rcode.NXDOMAIN
        assert len(cache._negatives) <= 50
