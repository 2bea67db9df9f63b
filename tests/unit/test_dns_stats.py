"""Counting what the DNS server answered: question types, rcodes, bounded labels."""

from __future__ import annotations

import dns.message
import dns.rcode
import pytest

from ledgerdns.dns.stats import (
    NO_REPLY,
    OTHER_TYPE,
    QueryCounts,
    question_type,
    rcode_label,
    type_label,
)


def _query(qtype: str, name: str = "www.alice.p2p") -> bytes:
    return dns.message.make_query(name, qtype).to_wire()


def _reply(query: bytes, rcode: dns.rcode.Rcode) -> bytes:
    reply = dns.message.make_response(dns.message.from_wire(query))
    reply.set_rcode(rcode)
    return reply.to_wire()


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (_query("A"), 1),
        (_query("AAAA", "."), 28),
        (_query("TLSA", "_443._tcp.alice.p2p"), 52),
        (_query("TYPE4000"), OTHER_TYPE),  # not a named type: folded
        (b"\x00" * 12, OTHER_TYPE),  # a header and nothing else
        (_query("A")[:-3], OTHER_TYPE),  # cut inside the type
        (b"\x00" * 12 + b"\x3f" + b"a" * 10, OTHER_TYPE),  # a label running off the end
    ],
)
def test_question_type(message: bytes, expected: int) -> None:
    assert question_type(message) == expected


def test_counts_by_transport_rcode_and_type() -> None:
    counts = QueryCounts()
    a, mx = _query("A"), _query("MX")
    counts.note("udp", a, _reply(a, dns.rcode.NOERROR))
    counts.note("udp", a, _reply(a, dns.rcode.NOERROR))
    counts.note("tcp", mx, _reply(mx, dns.rcode.NXDOMAIN))
    counts.note("udp", b"\x00" * 5, None)
    assert counts.counts == {
        ("udp", 0, 1): 2,
        ("tcp", 3, 15): 1,
        ("udp", NO_REPLY, OTHER_TYPE): 1,
    }
    assert (counts.total("udp"), counts.total("tcp"), counts.total()) == (3, 1, 4)


def test_made_up_types_do_not_grow_the_table() -> None:
    counts = QueryCounts()
    for qtype in range(1000, 1200):
        q = _query(f"TYPE{qtype}")
        counts.note("udp", q, _reply(q, dns.rcode.NOERROR))
    assert counts.counts == {("udp", 0, OTHER_TYPE): 200}


def test_labels() -> None:
    assert [type_label(1), type_label(65), type_label(OTHER_TYPE)] == ["A", "HTTPS", "other"]
    assert [rcode_label(0), rcode_label(3), rcode_label(NO_REPLY)] == ["NOERROR", "NXDOMAIN", "none"]
