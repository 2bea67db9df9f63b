"""The resolver answers from proven state exactly as the node answers from its ledger (issue 16).

A real `Ledger` on a `MemoryStore` with four validators holds a few zones (A,
CNAME inside and out, wildcard, MX, a delegated sub-zone, a domain delegated
whole). For each question the node's reply (`AnswerBuilder` over the ledger)
is compared with the resolver's (`verified_reply` over the state that
`verify_answer` proved from the node's `ProofBuilder` answer): the same rcode
and the same records in every section; only the header bits differ (AA=0,
RA=1, AD=1). Then the verified-reply cache: TTLs counted down, the client's
ID and spelling, the freshness bound.
"""

from __future__ import annotations

import dataclasses

import dnslib
import pytest

from chain.block import Block
from chain.dns_proof import ProofAnswer, ProofRequest, VerifiedAnswer, verify_answer
from chain.errors import ConfigError
from chain.genesis import Genesis, make_single_validator_genesis
from chain.ledger import Ledger
from chain.quorum import ValidatorSet
from chain.records import Record, canonical_record_set
from chain.store import MemoryStore
from ledgerdns.dns.answer import AnswerBuilder
from ledgerdns.dns.proofs import ProofBuilder
from ledgerdns.dns.wire import Query, parse_query
from ledgerdns.resolver.answers import (
    EDE_NO_REACHABLE_AUTHORITY,
    EDE_OPTION,
    EDE_OTHER,
    FLAG_AD,
    FLAG_RA,
    Failure,
    servfail_reply,
    verified_reply,
)
from ledgerdns.resolver.cache import VerifiedCache, ttl_fields
from ledgerdns.resolver.config import parse_address
from tools.devchain import certify, dev_key, register_tx, soon

KEYS = [dev_key("validator", i) for i in range(4)]
OWNER = dev_key("owner", 0)
GENESIS_MS = 1_700_000_000_000
T1 = GENESIS_MS + 5_000
NOW = T1 + 2_000

ZONES = {
    "alice.p2p": [
        "@ A 192.0.2.1",
        "@ AAAA 2001:db8::1",
        "@ MX 10 mail",
        "mail A 192.0.2.25",
        "www CNAME @",
        "out CNAME www.example.com.",
        "*.wild A 192.0.2.9",
        'txt TXT "hello world"',
        "sub NS ns1.sub",
        "ns1.sub A 192.0.2.53",
    ],
    "bob.p2p": ["@ NS ns.example.net."],
}

QUESTIONS = [
    ("alice.p2p", "A"),
    ("ALICE.p2p", "A"),
    ("alice.p2p", "AAAA"),
    ("alice.p2p", "MX"),
    ("alice.p2p", "TXT"),  # NODATA
    ("alice.p2p", "SOA"),
    ("alice.p2p", "NS"),
    ("alice.p2p", "ANY"),
    ("www.alice.p2p", "A"),  # CNAME inside the zone
    ("out.alice.p2p", "A"),  # CNAME out of the ledger
    ("x.wild.alice.p2p", "A"),  # wildcard
    ("x.wild.alice.p2p", "MX"),  # wildcard NODATA
    ("nothere.alice.p2p", "A"),  # NXDOMAIN in a zone
    ("txt.alice.p2p", "TXT"),
    ("host.sub.alice.p2p", "A"),  # referral to a delegated sub-zone, with glue
    ("bob.p2p", "A"),  # the whole domain delegated
    ("www.bob.p2p", "AAAA"),
    ("carol.p2p", "A"),  # never registered: proven absent, NXDOMAIN
    ("deep.carol.p2p", "TXT"),
    ("p2p", "SOA"),  # the TLD apex: no domain proof needed
    ("p2p", "NS"),
    ("p2p", "A"),
    ("bad_label.p2p", "A"),  # a label no domain could have: NXDOMAIN by the rules
    ("alice.p2p", "DS"),
]


def make_genesis() -> Genesis:
    base = make_single_validator_genesis(KEYS[0].public_key, genesis_time_ms=GENESIS_MS)
    params = dataclasses.replace(
        base.params, validators=ValidatorSet(tuple(k.public_key for k in KEYS))
    )
    return dataclasses.replace(
        base, params=params, validator_names=tuple(f"v{i}" for i in range(4))
    )


def finalize(ledger: Ledger, txs: list, time_ms: int) -> Block:  # type: ignore[type-arg]
    proposer = ledger.params.validators.proposer(ledger.height + 1, 0)
    block, rejected = ledger.build_block(txs, time_ms=time_ms, proposer=proposer)
    assert not rejected
    ledger.apply_block(block, certify(ledger, block.hash, block.height, KEYS[:3]))
    return block


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    genesis = make_genesis()
    chain = Ledger(MemoryStore(), genesis)
    chain.initialize()
    txs = [
        register_tx(
            genesis,
            OWNER,
            domain,
            canonical_record_set(Record.from_text(line, origin=domain) for line in lines),
            valid_until=soon(chain),
        )  # fmt: skip
        for domain, lines in ZONES.items()
    ]
    finalize(chain, txs, T1)
    return chain


def make_query(name: str, qtype: str, *, edns: bool = True, msg_id: int = 4242) -> Query:
    message = dnslib.DNSRecord(
        dnslib.DNSHeader(id=msg_id, rd=1), q=dnslib.DNSQuestion(name, dnslib.QTYPE.reverse[qtype])
    )
    if edns:
        message.add_ar(dnslib.EDNS0(udp_len=1232))
    query = parse_query(bytes(message.pack()))
    assert isinstance(query, Query)
    return query


def proven(ledger: Ledger, query: Query) -> VerifiedAnswer:
    qname = tuple(label.lower() for label in query.qname)
    built = ProofBuilder(ledger).answer(ProofRequest(), qname, budget=65_000)
    assert built is not None
    return verify_answer(
        ProofAnswer.from_bytes(built.to_bytes()),  # over the wire and back
        params=ledger.params,
        known=None,
        qname=qname,
        now_ms=NOW,
        max_age_ms=60_000,
    )


def sections(message: dnslib.DNSRecord) -> list[list[tuple[str, int, int, str]]]:
    return [
        [(str(rr.rname), rr.rtype, rr.ttl, str(rr.rdata)) for rr in part if rr.rtype != 41]
        for part in (message.rr, message.auth, message.ar)
    ]


@pytest.mark.parametrize(("name", "qtype"), QUESTIONS)
def test_the_resolver_answers_as_the_node_does(ledger: Ledger, name: str, qtype: str) -> None:
    query = make_query(name, qtype)
    node = dnslib.DNSRecord.parse(AnswerBuilder(ledger).respond(query).full)
    ours = dnslib.DNSRecord.parse(verified_reply(ledger.params, proven(ledger, query), query).full)
    assert ours.header.rcode == node.header.rcode
    assert sections(ours) == sections(node)
    assert str(ours.q.qname) == str(node.q.qname) == name + "."  # the client's spelling
    assert (ours.header.aa, ours.header.ra, ours.header.ad) == (0, 1, 1)
    assert ours.header.id == 4242 and ours.header.rd == 1


def test_the_zone_serial_is_the_height_the_node_names(ledger: Ledger) -> None:
    query = make_query("alice.p2p", "SOA")
    answer = proven(ledger, query)
    assert answer.serial == 1
    soa = dnslib.DNSRecord.parse(verified_reply(ledger.params, answer, query).full).rr[0]
    assert soa.rdata.times[0] == 1


def test_servfail_names_every_upstream_that_failed() -> None:
    failures = [
        Failure("127.0.0.1:5301", "bad-proof", "alice.p2p: the proof does not match"),
        Failure("127.0.0.1:5302", "timeout", "no reply in 1 s", unreachable=True),
    ]
    reply = dnslib.DNSRecord.parse(servfail_reply(make_query("Alice.p2p", "A"), failures))
    assert reply.header.rcode == 2 and reply.header.ra == 1 and reply.header.id == 4242
    assert str(reply.q.qname) == "Alice.p2p."
    (opt,) = [rr for rr in reply.ar if rr.rtype == 41]
    errors = [(o.data[:2], o.data[2:].decode()) for o in opt.rdata if o.code == EDE_OPTION]
    assert errors == [
        (
            EDE_OTHER.to_bytes(2, "big"),
            "127.0.0.1:5301 bad-proof: alice.p2p: the proof does not match",
        ),
        (EDE_NO_REACHABLE_AUTHORITY.to_bytes(2, "big"), "127.0.0.1:5302 timeout: no reply in 1 s"),
    ]


def test_servfail_without_edns_has_no_opt_record() -> None:
    failures = [Failure("127.0.0.1:5301", "bad-proof", "forged")]
    reply = dnslib.DNSRecord.parse(
        servfail_reply(make_query("alice.p2p", "A", edns=False), failures)
    )
    assert reply.header.rcode == 2 and not reply.ar


# -- the cache --


def cached_reply(ledger: Ledger, name: str, qtype: str) -> tuple[Query, bytes]:
    query = make_query(name, qtype)
    return query, verified_reply(ledger.params, proven(ledger, query), query).full


def test_ttl_fields_finds_every_record_but_opt(ledger: Ledger) -> None:
    _, full = cached_reply(ledger, "nothere.alice.p2p", "A")  # SOA in authority, OPT
    fields = ttl_fields(full)
    assert [ttl for _, ttl in fields] == [60]  # the negative SOA TTL
    _, full = cached_reply(ledger, "www.alice.p2p", "A")
    assert [ttl for _, ttl in ttl_fields(full)] == [300, 300]


def test_a_cached_reply_counts_its_ttls_down_and_takes_the_clients_id_and_case(
    ledger: Ledger,
) -> None:
    query, full = cached_reply(ledger, "www.alice.p2p", "A")
    cache = VerifiedCache()
    assert cache.store(query, full, None, now=100.0, fresh_until=10_000.0) == 300
    again = make_query("WWW.Alice.p2p", "A", msg_id=7)
    hit = dnslib.DNSRecord.parse(cache.lookup(again, now=130.5, limit=1232) or b"")
    assert hit.header.id == 7 and str(hit.q.qname) == "WWW.Alice.p2p."
    assert [rr.ttl for rr in hit.rr] == [270, 270]
    assert (hit.header.ad, hit.header.aa) == (1, 0)
    assert cache.lookup(again, now=400.0, limit=1232) is None  # past the TTL
    assert (cache.hits, cache.misses) == (1, 1)


def test_a_cached_reply_never_outlives_the_freshness_of_its_proof(ledger: Ledger) -> None:
    query, full = cached_reply(ledger, "alice.p2p", "A")
    cache = VerifiedCache()
    assert cache.store(query, full, None, now=100.0, fresh_until=110.0) == 10.0
    assert cache.lookup(query, now=109.9, limit=1232) is not None
    assert cache.lookup(query, now=110.0, limit=1232) is None
    assert cache.store(query, full, None, now=100.0, fresh_until=99.0) == 0  # already stale
    assert len(cache) == 0


def test_the_cache_keys_on_edns(ledger: Ledger) -> None:
    query, full = cached_reply(ledger, "alice.p2p", "A")
    cache = VerifiedCache()
    cache.store(query, full, None, now=0.0, fresh_until=100.0)
    assert cache.lookup(make_query("alice.p2p", "A", edns=False), now=1.0, limit=512) is None


# -- flags --


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:53", ("127.0.0.1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text, "--listen") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("localhost:53", "not an IP address"),
        ("127.0.0.1", "expected HOST:PORT"),
        ("127.0.0.1:99999", "not a port"),
        ("127.0.0.1:x", "not a port"),
        (":53", "expected HOST:PORT"),
    ],
)
def test_parse_address_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_address(text, "--upstream")
    assert info.value.key == "--upstream"


def test_flags_constants_are_the_rfc_bits() -> None:
    assert (FLAG_RA, FLAG_AD) == (0x0080, 0x0020)


def test_the_same_udp_query_bytes_are_answered_without_parsing(ledger: Ledger) -> None:
    query, full = cached_reply(ledger, "www.alice.p2p", "A")
    cache = VerifiedCache()
    cache.store(query, full, None, now=100.0, fresh_until=10_000.0)
    wire = make_wire("Www.alice.p2p", msg_id=1)
    assert cache.lookup_exact(wire, now=100.5) is None  # not answered from the cache yet
    asked = parse_query(wire)
    assert isinstance(asked, Query)
    first = cache.lookup(asked, now=100.5, limit=1232, udp_bytes=wire)
    again = cache.lookup_exact(b"\x00\x09" + wire[2:], now=131.0)
    assert first is not None and again is not None
    hit = dnslib.DNSRecord.parse(again)
    assert hit.header.id == 9 and str(hit.q.qname) == "Www.alice.p2p."
    assert [rr.ttl for rr in hit.rr] == [269, 269]  # 31 s after the proof was stored
    assert again[2:] != first[2:] and len(again) == len(first)
    assert cache.lookup_exact(wire, now=400.0) is None  # past the TTL, for this map too
    cache.clear()
    assert cache.lookup_exact(wire, now=101.0) is None


def make_wire(name: str, *, msg_id: int) -> bytes:
    message = dnslib.DNSRecord(dnslib.DNSHeader(id=msg_id, rd=1), q=dnslib.DNSQuestion(name, 1))
    message.add_ar(dnslib.EDNS0(udp_len=1232))
    return bytes(message.pack())
