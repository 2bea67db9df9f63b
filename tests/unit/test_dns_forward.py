"""`Forwarder` without sockets: what it says before (or instead of) asking an upstream.

With no upstreams configured every miss fails at once, so these run no I/O.
Answers from real upstreams are in tests/integration/test_dns_forward.py.
"""

from __future__ import annotations

import functools

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerdns.dns.forward import Forwarder
from ledgerdns.dns.settings import ForwardSettings

QUERY = dns.message.make_query("WwW.Example.COM", "A", use_edns=0).to_wire()


def answer(wire: bytes, limit: int = 512) -> bytes | None:
    fwd = Forwarder(ForwardSettings(upstreams=()))
    return trio.run(functools.partial(fwd.answer, wire, limit=limit))


def _response() -> bytes:
    return dns.message.make_response(dns.message.from_wire(QUERY)).to_wire()


def _notify() -> bytes:
    message = dns.message.from_wire(QUERY)
    message.set_opcode(dns.opcode.NOTIFY)
    return message.to_wire()


def _two_questions() -> bytes:
    message = dns.message.make_query("a.example", "A")
    message.question.append(dns.message.make_query("b.example", "A").question[0])
    return message.to_wire()


@pytest.mark.parametrize(
    "wire",
    [b"", QUERY[:11], QUERY[:20], QUERY + b"\x00", _response(), _notify(), _two_questions()],
    ids=["empty", "short-header", "cut-question", "trailing", "response", "notify", "two-q"],
)
def test_not_a_query_gets_no_reply(wire: bytes) -> None:
    assert answer(wire) is None


def test_servfail_without_upstreams_echoes_the_question() -> None:
    wire = answer(QUERY)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert dns.message.from_wire(QUERY).is_response(reply)
    assert wire[12 : 12 + 17] == QUERY[12 : 12 + 17]  # WwW.Example.COM as sent
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert reply.flags & (dns.flags.RA | dns.flags.RD) == dns.flags.RA | dns.flags.RD
    assert not reply.flags & dns.flags.AA and reply.payload == 1232


@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR", "TSIG"])
def test_meta_types_are_refused(rdtype: str) -> None:
    wire = answer(dns.message.make_query("example.com", rdtype).to_wire())
    assert wire is not None and dns.message.from_wire(wire).rcode() == dns.rcode.REFUSED


def test_edns_versions_above_0_get_badvers() -> None:
    query = dns.message.make_query("example.com", "A", use_edns=1)
    wire = answer(query.to_wire())
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.rcode() == dns.rcode.BADVERS and reply.edns == 0


@settings(max_examples=150, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=80),
        st.tuples(st.integers(0, len(QUERY) - 1), st.binary(min_size=1, max_size=4)).map(
            lambda m: QUERY[: m[0]] + m[1] + QUERY[m[0] + len(m[1]) :]
        ),
    )
)
def test_never_raises(data: bytes) -> None:
    wire = answer(data)
    if wire is not None:
        reply = dns.message.from_wire(wire, keyring=False)
        assert reply.flags & dns.flags.QR
