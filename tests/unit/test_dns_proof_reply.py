"""The node's replies to proof queries (no sockets): the option added, TC over UDP, FORMERR with EDE.

A real `Ledger` on a `MemoryStore`, the server's own `dispatch`; replies are
read by the client helper (`proof_query.parse_reply`) and checked with
`verify_answer` against the genesis, as the resolver does.
"""

from __future__ import annotations

import dnslib
import pytest

from chain import dns_proof
from chain.dns_proof import PROOF_OPTION_CODE, ProofRequest, verify_answer
from chain.ledger import Ledger
from chain.store import MemoryStore
from ledgerdns.dns import wire
from ledgerdns.dns.proof_query import make_query, parse_reply
from ledgerdns.dns.proof_reply import with_option
from ledgerdns.dns.server import DnsServer
from ledgerdns.dns.wire import Query, parse_query
from tests.unit.test_dns_proof import NOW, make_genesis, make_ledger

PEER = ("127.0.0.1", 5353)


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return make_ledger()


def server_of(ledger: Ledger) -> DnsServer:
    return DnsServer(ledger, proofs=ledger)


def ask(server: DnsServer, data: bytes, *, tcp: bool = True) -> bytes:
    result = server.dispatch(data, PEER, tcp=tcp)
    assert isinstance(result, tuple)
    reply, keep = result
    assert reply is not None and keep is None  # a proof reply is never kept by a UDP worker
    return reply


def ede_of(record: dnslib.DNSRecord) -> tuple[int, str]:
    (opt,) = [rr for rr in record.ar if rr.rtype == dnslib.QTYPE.OPT]
    (option,) = [o for o in opt.rdata if o.code == 15]
    data = bytes(option.data)
    return int.from_bytes(data[:2], "big"), data[2:].decode()


def test_the_option_codes_agree() -> None:
    assert wire.PROOF_OPTION_CODE == dns_proof.PROOF_OPTION_CODE


def test_a_proof_query_gets_the_answer_and_its_proof_over_tcp(ledger: Ledger) -> None:
    query = make_query("www.alice.p2p", "A", ProofRequest(), msg_id=7)
    reply = parse_reply(ask(server_of(ledger), query))
    assert reply.record.header.id == 7 and reply.record.header.rcode == 0
    assert [str(rr.rdata) for rr in reply.record.rr] == ["10.0.0.1"]
    assert reply.proof is not None
    result = verify_answer(
        reply.proof, params=ledger.params, known=None, qname="www.alice.p2p", now_ms=NOW,
        max_age_ms=60_000,
    )  # fmt: skip
    assert result.state == ledger.get_domain("alice.p2p")


def test_nxdomain_carries_the_proof_of_absence(ledger: Ledger) -> None:
    reply = parse_reply(ask(server_of(ledger), make_query("nobody.p2p", "A", ProofRequest())))
    assert reply.record.header.rcode == 3 and reply.proof is not None
    result = verify_answer(
        reply.proof, params=ledger.params, known=None, qname="nobody.p2p", now_ms=NOW,
        max_age_ms=None,
    )  # fmt: skip
    assert result.domain == "nobody.p2p" and result.state is None


def test_over_udp_a_proof_too_large_for_the_client_is_truncated(ledger: Ledger) -> None:
    server = server_of(ledger)
    whole = ask(server, make_query("alice.p2p", "A", ProofRequest(), payload=4096), tcp=False)
    assert 512 < len(whole) <= 4096 and parse_reply(whole).proof is not None  # fits: sent whole
    data = ask(server, make_query("alice.p2p", "A", ProofRequest(), payload=512), tcp=False)
    record = dnslib.DNSRecord.parse(data)
    assert record.header.tc and not record.rr and not record.auth
    assert parse_reply(data).proof is None and len(data) <= 512


def test_plain_queries_are_unchanged_and_cached(ledger: Ledger) -> None:
    server = server_of(ledger)
    plain = dnslib.DNSRecord.question("www.alice.p2p", "A")
    plain.add_ar(dnslib.EDNS0(udp_len=1232))
    result = server.dispatch(bytes(plain.pack()), PEER, tcp=False)
    assert isinstance(result, tuple) and result[1] is not None  # a worker may keep it
    assert result[0] is not None and parse_reply(result[0]).proof is None
    parsed = parse_query(make_query("www.alice.p2p", "A", ProofRequest()))
    assert isinstance(parsed, Query) and not parsed.plain  # never a cache entry


@pytest.mark.parametrize(
    "option",
    [b"\x01", b"\x83\x18\x2a\x01\x00", dns_proof.ProofAnswer.__name__.encode()],
)
def test_a_malformed_option_gets_formerr_with_an_extended_error(
    ledger: Ledger, option: bytes
) -> None:
    query = dnslib.DNSRecord.question("alice.p2p", "A")
    query.add_ar(dnslib.EDNS0(udp_len=1232, opts=[dnslib.EDNSOption(PROOF_OPTION_CODE, option)]))
    record = dnslib.DNSRecord.parse(ask(server_of(ledger), bytes(query.pack())))
    assert record.header.rcode == 1 and not record.rr
    code, text = ede_of(record)
    assert code == 0 and "65353" in text and "malformed" in text


def test_two_proof_options_get_formerr(ledger: Ledger) -> None:
    query = dnslib.DNSRecord.question("alice.p2p", "A")
    twice = [dnslib.EDNSOption(PROOF_OPTION_CODE, b"")] * 2
    query.add_ar(dnslib.EDNS0(udp_len=1232, opts=twice))
    record = dnslib.DNSRecord.parse(ask(server_of(ledger), bytes(query.pack())))
    assert record.header.rcode == 1 and "two proof options" in ede_of(record)[1]


def test_before_the_first_block_there_is_nothing_to_prove() -> None:
    empty = Ledger(MemoryStore(), make_genesis())
    empty.initialize()
    record = dnslib.DNSRecord.parse(
        ask(server_of(empty), make_query("alice.p2p", "A", ProofRequest()))
    )
    assert record.header.rcode == 2 and ede_of(record)[0] == 14


def test_names_outside_the_ledger_get_no_proof(ledger: Ledger) -> None:
    data = ask(server_of(ledger), make_query("example.com", "A", ProofRequest()))
    reply = parse_reply(data)
    assert reply.record.header.rcode == 5 and reply.proof is None  # REFUSED, as without the option


def test_a_server_without_proofs_ignores_the_option(ledger: Ledger) -> None:
    result = DnsServer(ledger).dispatch(
        make_query("alice.p2p", "A", ProofRequest()), PEER, tcp=True
    )
    assert isinstance(result, tuple) and result[0] is not None
    assert parse_reply(result[0]).proof is None


def test_an_option_appended_to_a_packed_reply_is_what_dnslib_would_pack() -> None:
    reply = dnslib.DNSRecord.question("alice.p2p", "A").reply()
    reply.add_answer(*dnslib.RR.fromZone("alice.p2p. 300 IN A 192.0.2.1"))
    reply.add_ar(dnslib.EDNS0(udp_len=1232, flags="do"))
    packed = bytes(reply.pack())
    reply.ar[-1].rdata.append(dnslib.EDNSOption(PROOF_OPTION_CODE, b"\x01\x02\x03"))
    assert with_option(packed, PROOF_OPTION_CODE, b"\x01\x02\x03") == bytes(reply.pack())
