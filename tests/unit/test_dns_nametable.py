"""The workers' name table against the node's own answers (no sockets, real LevelDB).

Every question the table answers must get exactly the reply the node would
send over UDP; what it cannot answer exactly it must leave to the node (None).
"""

from __future__ import annotations

import dataclasses
import itertools
import marshal
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from chain.genesis import make_single_validator_genesis
from chain.tx import Op
from ledgerdns.dns import AnswerBuilder
from ledgerdns.dns.nametable import NameTable, split_names
from ledgerdns.dns.nametable_build import NameTableSource
from ledgerdns.dns.wire import Query, parse_query
from tests.support.instant_node import VALIDATOR_KEY, InstantNode, now_ms
from tests.unit.test_dns_answer import ALICE, BIG_TXT, CONFIG, DELEGATED, register, update

NAMES = [
    "alice.p2p",
    "ALICE.p2P",
    "mail.alice.p2p",
    "www.alice.p2p",
    "web.alice.p2p",
    "ext.alice.p2p",
    "dangling.alice.p2p",
    "loop1.alice.p2p",
    "_sip._tcp.alice.p2p",
    "_tcp.alice.p2p",  # an empty non-terminal
    "c.alice.p2p",
    "b.c.alice.p2p",
    "a.b.c.alice.p2p",
    "*.wild.alice.p2p",
    "x.wild.alice.p2p",  # synthesized from the wildcard: left to the node
    "sub.alice.p2p",
    "ns1.sub.alice.p2p",
    "deep.sub.alice.p2p",
    "nothere.alice.p2p",
    "deleg.p2p",
    "ns1.deleg.p2p",
    "big.p2p",
    "unregistered.p2p",
    "p2p",
    "example.com",
]
TYPES = [
    "A",
    "AAAA",
    "MX",
    "TXT",
    "CAA",
    "CNAME",
    "SRV",
    "NS",
    "SOA",
    "DS",
    "ANY",
    "TYPE65280",
    "PTR",
]
# Always answered by the table: the common questions about registered names.
MUST_ANSWER = {
    ("alice.p2p", "A"),
    ("ALICE.p2P", "AAAA"),
    ("alice.p2p", "MX"),
    ("alice.p2p", "PTR"),  # NODATA
    ("www.alice.p2p", "A"),  # a CNAME chain
    ("www.alice.p2p", "TXT"),
    ("mail.alice.p2p", "AAAA"),
    ("_sip._tcp.alice.p2p", "SRV"),
    ("_tcp.alice.p2p", "A"),
    ("ns1.sub.alice.p2p", "A"),  # a referral with glue
    ("sub.alice.p2p", "DS"),
}


def query(name: str, rdtype: str, variant: str) -> bytes:
    if variant == "plain":
        message = dns.message.make_query(name, rdtype, use_edns=False)
    elif variant == "do":
        message = dns.message.make_query(name, rdtype, use_edns=0, want_dnssec=True)
    elif variant == "small":
        message = dns.message.make_query(name, rdtype, use_edns=0, payload=512)
    elif variant == "cookie":
        cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345678")
        message = dns.message.make_query(name, rdtype, use_edns=0, options=[cookie])
    elif variant == "proof":
        proof = dns.edns.GenericOption(65353, b"\x83\x18\x2a\x01\x00")
        message = dns.message.make_query(name, rdtype, use_edns=0, options=[proof])
    elif variant == "v1":
        message = dns.message.make_query(name, rdtype, use_edns=1)
    else:
        message = dns.message.make_query(name, rdtype, use_edns=0)
        if variant == "nord":
            message.flags &= ~dns.flags.RD
        if variant == "cd":
            message.flags |= dns.flags.CD
    message.id = 4242
    return message.to_wire()


def node_reply(builder: AnswerBuilder, wire: bytes) -> bytes:
    parsed = parse_query(wire)
    assert isinstance(parsed, Query)
    return builder.respond(parsed).fitting(parsed.udp_limit(1232))


def filled(builder: AnswerBuilder, node: InstantNode) -> tuple[NameTable, NameTableSource]:
    source = NameTableSource(builder, node.ledger)
    table = NameTable(1232)
    table.set_now(source.now_s())
    for batch in source.batches(page=2):  # small pages: the paging is exercised too
        for apex, entries in batch:
            table.replace(apex, entries)
    return table, source


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstantNode]:
    instant = InstantNode(tmp_path_factory.mktemp("nametable"))
    register(instant, "alice.p2p", ALICE)
    register(instant, "deleg.p2p", DELEGATED)
    register(instant, "big.p2p", BIG_TXT)
    yield instant
    instant.close()


def test_every_answer_from_the_table_is_the_nodes_answer(node: InstantNode) -> None:
    builder = AnswerBuilder(node.ledger, CONFIG)
    table, _ = filled(builder, node)
    answered = set()
    variants = ["edns", "plain", "do", "small", "cookie", "nord", "cd", "proof", "v1"]
    for name, rdtype, variant in itertools.product(NAMES, TYPES, variants):
        wire = query(name, rdtype, variant)
        tail = table.answer(wire[2:])
        if tail is None:
            continue
        got = dns.message.from_wire(wire[:2] + tail)
        want = dns.message.from_wire(node_reply(builder, wire))
        context = f"{name} {rdtype} {variant}"
        assert got == want, context  # dnspython compares header, question and every section
        assert got.edns == want.edns and got.ednsflags == want.ednsflags, context
        assert got.payload == want.payload, context
        answered.add((name, rdtype, variant))
    for name, rdtype in MUST_ANSWER:
        for variant in ("edns", "plain", "do", "cookie", "nord", "cd"):
            assert (name, rdtype, variant) in answered, f"{name} {rdtype} {variant}"
    # Left to the node: proofs, other EDNS versions, the TLD (its SOA serial is the
    # height), names synthesized from a wildcard or absent, names outside the ledger,
    # an apex DS (the TLD's), AXFR-like meta types, and replies too big for the client.
    for variant in ("proof", "v1"):
        assert not any(v == variant for _, _, v in answered)
    for name in ("p2p", "x.wild.alice.p2p", "nothere.alice.p2p", "unregistered.p2p", "example.com"):
        assert not any(n == name for n, _, _ in answered), name
    assert ("alice.p2p", "DS", "edns") not in answered
    assert ("alice.p2p", "SOA", "edns") not in answered  # its serial: the node's to repeat
    assert ("big.p2p", "TXT", "edns") not in answered


def test_a_lapsed_domain_goes_to_the_node(tmp_path: Path) -> None:
    base = make_single_validator_genesis(
        VALIDATOR_KEY.public_key, genesis_time_ms=now_ms() - 1000, chain_id="instant-test"
    )
    genesis = dataclasses.replace(
        base, params=dataclasses.replace(base.params, name_lifetime_s=3600)
    )
    node = InstantNode(tmp_path, genesis)
    try:
        register(node, "lapse.p2p", ["@ 300 A 192.0.2.10"])
        table, source = filled(AnswerBuilder(node.ledger, CONFIG), node)
        wire = query("lapse.p2p", "A", "edns")
        assert table.answer(wire[2:]) is not None
        table.set_now(source.now_s() + 3601)  # a later block's time, past the expiry
        assert table.answer(wire[2:]) is None
    finally:
        node.close()


def test_a_block_replaces_a_domains_names(tmp_path: Path) -> None:
    node = InstantNode(tmp_path)
    try:
        register(
            node, "alice.p2p", ["@ 300 A 192.0.2.1", "www 300 A 192.0.2.80", "x.y 300 A 192.0.2.7"]
        )
        builder = AnswerBuilder(node.ledger, CONFIG)
        table, source = filled(builder, node)
        assert len(table) == 4  # the apex, www, y (empty non-terminal) and x.y
        update(node, "alice.p2p", ["@ 300 A 192.0.2.2"])
        for apex, entries in source.changed({"alice.p2p"}):
            table.replace(apex, entries)
        table.forget_recent()  # as the worker does after every change
        assert len(table) == 1
        wire = query("www.alice.p2p", "A", "edns")
        assert table.answer(wire[2:]) is None  # gone: the node says NXDOMAIN
        tail = table.answer(query("alice.p2p", "A", "edns")[2:])
        assert tail is not None and "192.0.2.2" in dns.message.from_wire(b"\0\0" + tail).to_text()
        update(node, "alice.p2p", [], op=Op.RELEASE)
        for apex, entries in source.changed({"alice.p2p"}):
            table.replace(apex, entries)
        assert len(table) == 0
        reply = dns.message.from_wire(node_reply(builder, query("alice.p2p", "A", "edns")))
        assert reply.rcode() == dns.rcode.NXDOMAIN
    finally:
        node.close()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda w: w[:2] + bytes([w[2] | 0x80]) + w[3:],  # a response
        lambda w: w[:2] + bytes([w[2] | 0x28]) + w[3:],  # opcode 5 (UPDATE)
        lambda w: w[:5] + b"\x02" + w[6:],  # two questions
        lambda w: w + b"\x00",  # a trailing byte
        lambda w: w[:-1],  # cut short
        lambda w: w[:-13] + b"\x00\x03" + w[-11:],  # class CH (before the OPT)
    ],
)
def test_odd_queries_go_to_the_node(node: InstantNode, mangle: object) -> None:
    table, _ = filled(AnswerBuilder(node.ledger, CONFIG), node)
    wire = query("alice.p2p", "A", "edns")
    assert table.answer(wire[2:]) is not None
    assert table.answer(mangle(wire)[2:]) is None  # type: ignore[operator]


def test_kept_replies_are_bounded_and_dropped_at_a_change(node: InstantNode) -> None:
    builder = AnswerBuilder(node.ledger, CONFIG)
    source = NameTableSource(builder, node.ledger)
    table = NameTable(1232, recent_entries=3)
    for batch in source.batches():
        for apex, entries in batch:
            table.replace(apex, entries)
    spellings = ["alice.p2p", "Alice.p2p", "aLice.p2p", "alIce.p2p", "aliCe.p2p", "ALICE.P2P"]
    for name in spellings:
        assert table.answer(query(name, "A", "edns")[2:]) is not None
        assert len(table.recent) <= 3
    table.forget_recent()
    assert not table.recent


def test_a_failing_domain_is_left_to_the_node_not_kept_stale(
    node: InstantNode, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    builder = AnswerBuilder(node.ledger, CONFIG)
    source = NameTableSource(builder, node.ledger)
    table, _ = filled(builder, node)
    assert table.answer(query("alice.p2p", "A", "edns")[2:]) is not None

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(AnswerBuilder, "lookup", broken)
    for apex, entries in source.changed({"alice.p2p"}):
        assert entries == []
        table.replace(apex, entries)
    table.forget_recent()
    assert table.answer(query("alice.p2p", "A", "edns")[2:]) is None
    assert "name table entries failed domain=alice.p2p" in caplog.text
    assert list(source.batches()) == [[]]  # every domain fails: none filled, the node answers


def test_large_changes_are_cut_into_messages_and_land_whole() -> None:
    def entries(domain: int, count: int) -> list[tuple[bytes, bytes]]:
        apex = b"\x04d%03d\x03p2p\x00" % domain
        return [(apex if i == 0 else bytes([4]) + b"n%03d" % i + apex, bytes(200)) for i in range(count)]

    domains = [(b"\x04d%03d\x03p2p\x00" % d, entries(d, 1)) for d in range(900)]
    domains.append((b"\x04d999\x03p2p\x00", entries(999, 2_000)))  # one domain alone over budget
    messages = split_names(domains, budget=64 * 1024)
    assert len(messages) > 4
    assert all(len(marshal.dumps(m)) < 96 * 1024 for m in messages)
    table = NameTable()
    table.replace(b"\x04d999\x03p2p\x00", [(b"\x03old\x04d999\x03p2p\x00", bytes(10))])
    for message in messages:
        for apex, part, extend in message:
            table.replace(apex, part, extend=extend)
    assert len(table) == 900 + 2_000  # the old name went with the first part
    table.replace(b"\x04d999\x03p2p\x00", [])  # and every part goes with the domain
    assert len(table) == 900
