"""DNS protocol compliance: what BIND, Knot and NSD do as authoritative servers, over real sockets.

A real `DnsServer` on 127.0.0.1 (port 0) backed by an `InstantNode`, queried
with dnspython (raw bytes where the message has to be malformed) and with the
real `dig` (BIND) and `kdig` (Knot) clients. Each test asserts what a client
sees: header flags, rcodes, sections, TTLs. Every wait has a deadline; the
file runs in a few seconds. See docs/dns.md for the behaviour and the choices
(ANY, DS at an apex, CHAOS).
"""

from __future__ import annotations

import queue
import random
import re
import shutil
import struct
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
import trio

from chain.records import Record, canonical_record_set
from ledgerdns.dns import AnswerBuilder, AnswerCache, DnsServer, ZoneConfig
from ledgerdns.dns.settings import ChaosSettings
from tests.support.instant_node import InstantNode
from tools.devchain import dev_key, register_tx, soon

pytestmark = [pytest.mark.integration, pytest.mark.trio]

OWNER = dev_key("dns-owner", 0)
HOST = "127.0.0.1"
CONFIG = ZoneConfig(server_name="ns1.example.net", soa_ttl=300, negative_ttl=60)
TIMEOUT_S = 3.0
QUICK_S = 1.0  # what "answered quickly" means on a loaded two-core CI machine

ZONES = {
    "alice.p2p": [
        "@ 300 A 192.0.2.1",
        "@ 300 AAAA 2001:db8::1",
        "@ 300 MX 10 mail",
        '@ 300 TXT "v=spf1 -all"',
        "mail 300 A 192.0.2.2",
        "www 120 CNAME web",
        "web 120 CNAME alice.p2p.",
        "ext 120 CNAME example.com.",
        "dangling 120 CNAME nowhere",
        "a.b.c 300 A 192.0.2.4",
        '*.wild 300 TXT "wild"',
        "sub 300 NS ns1.sub",
        "sub 300 NS ns.example.net.",
        "ns1.sub 300 A 192.0.2.53",
        "ns1.sub 300 AAAA 2001:db8::53",
    ],
    "deleg.p2p": ["@ 300 NS ns1", "ns1 300 A 192.0.2.54"],  # the whole domain delegated
    "medium.p2p": [f'@ 300 TXT "{c * 200}"' for c in "abc"],  # ~680-byte reply
    "big.p2p": [f'@ 300 TXT "{c * 200}"' for c in "abcdefgh"],  # ~1.7 kB reply
}

Address = tuple[str, int]

# -- the server --


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstantNode]:
    instant = InstantNode(tmp_path_factory.mktemp("dns-compliance"))
    try:
        for domain, lines in ZONES.items():
            recs = canonical_record_set(Record.from_text(line, origin=domain) for line in lines)
            tx = register_tx(instant.genesis, OWNER, domain, recs, valid_until=soon(instant.ledger))
            trio.run(instant.submit, tx)
        yield instant
    finally:
        instant.close()


@asynccontextmanager
async def serving(node: InstantNode, **options: Any) -> AsyncIterator[tuple[DnsServer, Address]]:
    options.setdefault("config", CONFIG)
    server = DnsServer(node.ledger, HOST, 0, blocks=node, **options)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.run)
        yield server, address
        nursery.cancel_scope.cancel()


@pytest.fixture(scope="module")
def address(node: InstantNode) -> Iterator[Address]:
    """One server for the module, run by its own trio loop in a thread.

    Starting a server (and its UDP worker process) per test would cost more
    than the tests; tests that need other options start their own.
    """
    started: queue.Queue[tuple[Address, trio.CancelScope, trio.lowlevel.TrioToken]] = queue.Queue()

    async def serve() -> None:
        async with serving(node) as (_, bound):
            with trio.CancelScope() as scope:
                started.put((bound, scope, trio.lowlevel.current_trio_token()))
                await trio.sleep_forever()

    thread = threading.Thread(target=trio.run, args=(serve,), name="dns-server", daemon=True)
    thread.start()
    bound, scope, token = started.get(timeout=30)
    try:
        yield bound
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(TIMEOUT_S)
        assert not thread.is_alive()


# -- clients --


def query(name: str, rdtype: str = "A", *, rd: bool = True, **options: Any) -> dns.message.Message:
    options.setdefault("use_edns", 0)
    message = dns.message.make_query(name, rdtype, **options)
    if not rd:
        message.flags &= ~dns.flags.RD
    return message


async def exchange(address: Address, wire: bytes, *, timeout: float = TIMEOUT_S) -> bytes:
    """The UDP datagram answering `wire` (same ID); others are skipped."""
    with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as sock:
        await sock.connect(address)
        await sock.send(wire)
        with trio.fail_after(timeout):
            while True:
                data: bytes = await sock.recv(65535)
                if data[:2] == wire[:2]:
                    return data


async def udp(address: Address, message: dns.message.Message) -> dns.message.Message:
    reply = dns.message.from_wire(await exchange(address, message.to_wire()))
    assert message.is_response(reply)
    return reply


def framed(wire: bytes) -> bytes:
    return len(wire).to_bytes(2, "big") + wire


class Framed:
    """Length-prefixed messages read from a TCP stream."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def read(self) -> bytes | None:
        while len(self.buffer) < 2 or len(self.buffer) < 2 + int.from_bytes(self.buffer[:2]):
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                return None
            self.buffer += chunk
        size = int.from_bytes(self.buffer[:2])
        message, self.buffer = self.buffer[2 : 2 + size], self.buffer[2 + size :]
        return message


async def tcp(address: Address, message: dns.message.Message) -> dns.message.Message:
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(framed(message.to_wire()))
        with trio.fail_after(TIMEOUT_S):
            wire = await Framed(stream).read()
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert message.is_response(reply)
    return reply


async def closed_by_server(stream: trio.SocketStream) -> bool:
    """Whether the server closed the connection (EOF or reset), reading what is left."""
    try:
        while await stream.receive_some(65536):
            pass
    except trio.BrokenResourceError:
        pass
    return True


def texts(section: list[dns.rrset.RRset]) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


def soa_in_authority(reply: dns.message.Message) -> tuple[str, int, int]:
    """The authority SOA's owner, TTL and MINIMUM (the only record there)."""
    (rrset,) = reply.authority
    assert rrset.rdtype == dns.rdatatype.SOA
    return rrset.name.to_text(), rrset.ttl, rrset[0].minimum


# -- raw messages --


def header(*, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!6H", 0x1234, flags, qd, an, ns, ar)


QNAME = b"\x05alice\x03p2p\x00"  # at offset 12; the question ends at 27
QUESTION = QNAME + b"\x00\x01\x00\x01"
OPT = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
LONG_LABELS = (b"\x3f" + b"a" * 63) * 4  # 256 bytes: too long with any ending


def a_record(owner: bytes) -> bytes:
    return owner + struct.pack("!HHIH", 1, 1, 60, 4) + bytes((192, 0, 2, 9))


def opt_with(options: bytes) -> bytes:
    return b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(options)) + options


MALFORMED = {
    "an count past the end": header(an=1) + QUESTION,
    "ar count past the end": header(ar=3) + QUESTION + OPT,
    "counts short of the bytes": header() + QUESTION + OPT,
    "no question": header(qd=0),
    "two questions": header(qd=2) + QUESTION + QUESTION,
    "name cut short": header() + b"\x05ali",
    "question cut short": header() + QNAME + b"\x00\x01",
    "record cut short": header(an=1) + QUESTION + a_record(b"\xc0\x0c")[:-2],
    "pointer in the question": header() + b"\xc0\x0c\x00\x01\x00\x01",
    "pointer to itself": header(ar=1) + QUESTION + a_record(b"\xc0\x1b"),
    "pointer loop after a label": header(ar=1) + QUESTION + a_record(b"\x01x\xc0\x1b"),
    "pointer forwards": header(an=1, ar=1) + QUESTION + a_record(b"\xc0\x2b") + OPT,
    "pointer past the end": header(ar=1) + QUESTION + a_record(b"\xc3\xff"),
    "question name over 255 bytes": header() + LONG_LABELS + b"\x00\x00\x01\x00\x01",
    "compressed name over 255 bytes": header(ar=1) + QUESTION + a_record(LONG_LABELS + b"\xc0\x0c"),
    "label type 0x40": header() + b"\x41" + b"a" + b"\x00\x00\x01\x00\x01",
    "two OPT records": header(ar=2) + QUESTION + OPT + OPT,
    "OPT not owned by the root": header(ar=1) + QUESTION + b"\x01x\x00" + OPT[1:],
    "OPT in the answer section": header(an=1) + QUESTION + OPT,
    "EDNS option past its record": header(ar=1) + QUESTION + opt_with(b"\xfd\xe9\x00\x0axyz"),
    "EDNS option header cut": header(ar=1) + QUESTION + opt_with(b"\xfd\xe9\x00"),
    "COOKIE of 5 bytes": header(ar=1) + QUESTION + opt_with(b"\x00\x0a\x00\x05abcde"),
    "question type OPT": header() + QNAME + b"\x00\x29\x00\x01",
}


# -- header flags --


async def test_header_flags_of_an_authoritative_answer(address: Address) -> None:
    for rd in (True, False):
        message = query("alice.p2p", rd=rd)
        message.flags |= dns.flags.CD | dns.flags.AD
        reply = await udp(address, message)
        assert reply.flags & dns.flags.QR and reply.flags & dns.flags.AA
        assert reply.opcode() == dns.opcode.QUERY and reply.rcode() == dns.rcode.NOERROR
        assert bool(reply.flags & dns.flags.RD) == rd  # copied
        assert reply.flags & dns.flags.CD  # copied (RFC 4035 3.1.6)
        assert not reply.flags & (dns.flags.RA | dns.flags.TC | dns.flags.AD)  # no recursion
        assert reply.flags & 0x0040 == 0  # Z
        assert texts(reply.answer) == ["alice.p2p. 300 IN A 192.0.2.1"]


@pytest.mark.parametrize("opcode", [1, 2, 3, 4, 5, 6, 15])
async def test_unknown_opcodes_get_notimp(address: Address, opcode: int) -> None:
    zone_type = b"\x00\x06\x00\x01"  # SOA: what UPDATE (5) and NOTIFY (4) name
    data = header(flags=0x0110 | opcode << 11, ar=1) + QNAME + zone_type + OPT  # RD, CD set
    reply = dns.message.from_wire(await exchange(address, data))
    assert reply.id == 0x1234 and reply.flags & dns.flags.QR
    assert reply.opcode() == opcode and reply.rcode() == dns.rcode.NOTIMP
    # Only QR and the opcode: RD and CD mean nothing for an opcode other than QUERY.
    assert reply.flags & ~0x780F == dns.flags.QR
    assert [q.to_text() for q in reply.question] == ["alice.p2p. IN SOA"]
    assert reply.edns == 0  # an OPT in, an OPT out (RFC 6891 7)


async def test_responses_are_never_answered(address: Address) -> None:
    response = header(flags=0x8500) + QUESTION  # QR=1: answering could start a loop
    normal = query("alice.p2p")
    with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as sock:
        await sock.connect(address)
        await sock.send(response)
        await sock.send(normal.to_wire())
        seen: list[bytes] = []
        with trio.fail_after(TIMEOUT_S):
            while not seen or seen[-1][:2] != normal.to_wire()[:2]:
                seen.append(await sock.recv(65535))
        with trio.move_on_after(0.2):
            seen.append(await sock.recv(65535))
    assert [data[:2] for data in seen] == [normal.to_wire()[:2]]


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_messages_get_formerr(address: Address, data: bytes) -> None:
    reply = dns.message.from_wire(await exchange(address, data))
    assert reply.id == 0x1234 and reply.rcode() == dns.rcode.FORMERR
    assert reply.flags & dns.flags.QR and not reply.flags & dns.flags.AA
    assert not reply.answer and not reply.authority


async def test_backward_compression_in_other_sections_is_fine(address: Address) -> None:
    data = header(an=1, ar=1) + QUESTION + a_record(b"\x01x\xc0\x0c") + OPT
    reply = dns.message.from_wire(await exchange(address, data))
    assert reply.rcode() == dns.rcode.NOERROR
    assert texts(reply.answer) == ["alice.p2p. 300 IN A 192.0.2.1"]


async def test_a_flood_of_malformed_messages_does_not_stall_the_server(
    address: Address,
) -> None:
    rng = random.Random(8482)
    garbage = [rng.randbytes(rng.randrange(0, 300)) for _ in range(200)]
    flips = []
    for _ in range(200):
        base = bytearray(rng.choice(list(MALFORMED.values())))
        base[rng.randrange(2, len(base))] = rng.randrange(256)
        flips.append(bytes(base))
    batch = [*MALFORMED.values(), *garbage, *flips]
    with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as flood:
        await flood.connect(address)
        for data in batch:
            await flood.send(data)
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(b"".join(framed(data) for data in MALFORMED.values()))
        start = trio.current_time()
        # The worker drops a question it cannot hand to a node still busy with the flood
        # (UDP: as any busy server does); a stub resolver asks again, so this does too.
        wire = query("mail.alice.p2p").to_wire()
        for attempt in range(3):
            try:
                reply = dns.message.from_wire(await exchange(address, wire, timeout=QUICK_S / 4))
                break
            except trio.TooSlowError:
                if attempt == 2:
                    raise
        assert texts(reply.answer) == ["mail.alice.p2p. 300 IN A 192.0.2.2"]
        assert trio.current_time() - start < QUICK_S
        # The TCP connection answered each malformed message and is still usable.
        frames = Framed(stream)
        with trio.fail_after(TIMEOUT_S):
            for _ in MALFORMED:
                wire = await frames.read()
                assert wire is not None
                assert dns.message.from_wire(wire).rcode() == dns.rcode.FORMERR
            message = query("alice.p2p")
            await stream.send_all(framed(message.to_wire()))
            wire = await frames.read()
        assert wire is not None and message.is_response(dns.message.from_wire(wire))


# -- negative answers (RFC 2308) and the zone's shape --


async def test_nxdomain_has_the_zone_soa_with_the_negative_ttl(address: Address) -> None:
    for name, zone in [("nope.alice.p2p", "alice.p2p."), ("bob.p2p", "p2p.")]:
        reply = await udp(address, query(name))
        assert reply.rcode() == dns.rcode.NXDOMAIN and reply.flags & dns.flags.AA
        assert not reply.answer and not reply.additional
        assert soa_in_authority(reply) == (zone, 60, 60)


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("alice.p2p", "SRV"),  # the name holds other types
        ("mail.alice.p2p", "AAAA"),
        ("b.c.alice.p2p", "A"),  # empty non-terminals: NODATA, never NXDOMAIN
        ("c.alice.p2p", "TXT"),
        ("x.wild.alice.p2p", "A"),  # a wildcard without that type
        ("alice.p2p", "DNSKEY"),  # unsigned zone
    ],
)
async def test_nodata_has_the_zone_soa(address: Address, name: str, rdtype: str) -> None:
    reply = await udp(address, query(name, rdtype))
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert not reply.answer
    assert soa_in_authority(reply) == ("alice.p2p.", 60, 60)


@pytest.mark.parametrize(("soa_ttl", "minimum"), [(300, 60), (30, 60), (60, 60)])
async def test_negative_ttl_is_the_smaller_of_soa_ttl_and_minimum(
    node: InstantNode, soa_ttl: int, minimum: int
) -> None:
    config = ZoneConfig(server_name="ns1.example.net", soa_ttl=soa_ttl, negative_ttl=minimum)
    async with serving(node, config=config) as (_, bound):
        for name, rdtype in [("nope.alice.p2p", "A"), ("alice.p2p", "SRV"), ("bob.p2p", "A")]:
            reply = await udp(bound, query(name, rdtype))
            assert soa_in_authority(reply)[1:] == (min(soa_ttl, minimum), minimum)
        positive = await udp(bound, query("alice.p2p", "SOA"))
        assert positive.answer[0].ttl == soa_ttl


async def test_cname_chains_are_followed_inside_the_zone(address: Address) -> None:
    reply = await udp(address, query("www.alice.p2p"))
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert texts(reply.answer) == [
        "www.alice.p2p. 120 IN CNAME web.alice.p2p.",
        "web.alice.p2p. 120 IN CNAME alice.p2p.",
        "alice.p2p. 300 IN A 192.0.2.1",
    ]
    only = await udp(address, query("www.alice.p2p", "CNAME"))
    assert texts(only.answer) == ["www.alice.p2p. 120 IN CNAME web.alice.p2p."]
    outside = await udp(address, query("ext.alice.p2p"))  # left to the resolver
    assert outside.rcode() == dns.rcode.NOERROR and not outside.authority
    assert texts(outside.answer) == ["ext.alice.p2p. 120 IN CNAME example.com."]
    dangling = await udp(address, query("dangling.alice.p2p"))  # RFC 6604
    assert dangling.rcode() == dns.rcode.NXDOMAIN
    assert texts(dangling.answer) == ["dangling.alice.p2p. 120 IN CNAME nowhere.alice.p2p."]
    assert soa_in_authority(dangling)[0] == "alice.p2p."


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [("www.sub.alice.p2p", "A"), ("sub.alice.p2p", "NS"), ("sub.alice.p2p", "A")],
)
async def test_delegations_are_referrals_with_glue(
    address: Address, name: str, rdtype: str
) -> None:
    for rd in (True, False):
        reply = await udp(address, query(name, rdtype, rd=rd))
        assert reply.rcode() == dns.rcode.NOERROR
        assert not reply.flags & dns.flags.AA and not reply.flags & dns.flags.RA
        assert not reply.answer
        assert sorted(texts(reply.authority)) == [
            "sub.alice.p2p. 300 IN NS ns.example.net.",
            "sub.alice.p2p. 300 IN NS ns1.sub.alice.p2p.",
        ]
        assert sorted(texts(reply.additional)) == [
            "ns1.sub.alice.p2p. 300 IN A 192.0.2.53",
            "ns1.sub.alice.p2p. 300 IN AAAA 2001:db8::53",
        ]


async def test_a_delegated_domain_is_a_referral_from_the_tld(address: Address) -> None:
    reply = await udp(address, query("www.deleg.p2p"))
    assert not reply.flags & dns.flags.AA and not reply.answer
    assert texts(reply.authority) == ["deleg.p2p. 300 IN NS ns1.deleg.p2p."]
    assert texts(reply.additional) == ["ns1.deleg.p2p. 300 IN A 192.0.2.54"]


async def test_wildcards_synthesize_the_question_name(address: Address) -> None:
    for name in ["x.wild.alice.p2p", "deep.x.wild.alice.p2p"]:
        reply = await udp(address, query(name, "TXT"))
        assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
        assert texts(reply.answer) == [f'{name}. 300 IN TXT "wild"']
    # Elsewhere the closest encloser (here the empty non-terminal b.c) has no '*'.
    assert (await udp(address, query("z.b.c.alice.p2p", "TXT"))).rcode() == dns.rcode.NXDOMAIN


async def test_any_gets_one_rrset_rfc8482(address: Address) -> None:
    cases = [
        ("alice.p2p", ["alice.p2p. 300 IN A 192.0.2.1"]),  # the lowest type at the name
        ("p2p", ["p2p. 3600 IN NS ns1.example.net."]),  # the TLD: NS, not its SOA
        ("www.alice.p2p", ["www.alice.p2p. 120 IN CNAME web.alice.p2p."]),  # not chased
        ("x.wild.alice.p2p", ['x.wild.alice.p2p. 300 IN TXT "wild"']),
    ]
    for name, expected in cases:
        for ask in (udp, tcp):  # the same over TCP (documented)
            reply = await ask(address, query(name, "ANY"))
            assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA, name
            assert texts(reply.answer) == expected, name
    nx = await udp(address, query("nope.alice.p2p", "ANY"))
    assert nx.rcode() == dns.rcode.NXDOMAIN and soa_in_authority(nx)[0] == "alice.p2p."


@pytest.mark.parametrize(
    ("name", "rcode", "zone"),
    [
        ("alice.p2p", dns.rcode.NOERROR, "p2p."),  # an apex: the TLD (parent) answers
        ("deleg.p2p", dns.rcode.NOERROR, "p2p."),  # a delegated apex: the same
        ("sub.alice.p2p", dns.rcode.NOERROR, "alice.p2p."),  # a cut inside a zone
        ("mail.alice.p2p", dns.rcode.NOERROR, "alice.p2p."),  # not a cut: plain NODATA
        ("p2p", dns.rcode.NOERROR, "p2p."),  # the TLD (we do not serve the root)
        ("bob.p2p", dns.rcode.NXDOMAIN, "p2p."),
    ],
)
async def test_ds_is_answered_from_the_parent_side(
    address: Address, name: str, rcode: int, zone: str
) -> None:
    reply = await udp(address, query(name, "DS", want_dnssec=True))
    assert reply.rcode() == rcode and reply.flags & dns.flags.AA and not reply.answer
    assert soa_in_authority(reply)[0] == zone


async def test_dnskey_is_nodata_everywhere(address: Address) -> None:
    for name, zone in [("alice.p2p", "alice.p2p."), ("p2p", "p2p.")]:
        reply = await udp(address, query(name, "DNSKEY", want_dnssec=True))
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
        assert soa_in_authority(reply)[0] == zone


# -- EDNS0 (RFC 6891) --


async def test_opt_is_echoed_with_our_payload_and_no_options(address: Address) -> None:
    reply = await udp(address, query("alice.p2p", payload=4096))
    assert reply.edns == 0 and reply.payload == 1232 and not reply.options
    plain = await udp(address, query("alice.p2p", use_edns=False))
    assert plain.edns == -1  # no OPT in, no OPT out


@pytest.mark.parametrize("version", [1, 2, 255])
async def test_edns_versions_above_0_get_badvers(address: Address, version: int) -> None:
    for ask in (udp, tcp):
        reply = await ask(address, query("alice.p2p", use_edns=version))
        assert reply.rcode() == dns.rcode.BADVERS  # 16: the upper bits live in the OPT
        assert reply.edns == 0  # the version we do speak
        assert not reply.answer and not reply.authority and not reply.flags & dns.flags.AA


async def test_unknown_edns_options_are_ignored(address: Address) -> None:
    options = [
        dns.edns.GenericOption(dns.edns.OptionType.make(65001), b"anything"),
        dns.edns.CookieOption(b"12345678", b""),  # a client cookie: we do not do cookies
        dns.edns.GenericOption(dns.edns.OptionType.NSID, b""),
    ]
    reply = await udp(address, query("alice.p2p", options=options))
    assert reply.rcode() == dns.rcode.NOERROR and not reply.options
    assert texts(reply.answer) == ["alice.p2p. 300 IN A 192.0.2.1"]


async def test_the_do_bit_is_copied(address: Address) -> None:
    # The same question with and without DO, in turns, so cached replies are patched too.
    for name, rdtype in [("alice.p2p", "A"), ("nope.alice.p2p", "A"), ("big.p2p", "TXT")]:
        for ask in (udp, tcp):
            for do in (True, False, True, False):
                reply = await ask(address, query(name, rdtype, want_dnssec=do))
                assert bool(reply.ednsflags & dns.flags.DO) == do, (name, ask, do)
    badvers = await udp(address, query("alice.p2p", use_edns=1, want_dnssec=True))
    assert badvers.rcode() == dns.rcode.BADVERS and badvers.ednsflags & dns.flags.DO


async def test_the_clients_payload_size_is_honoured(address: Address) -> None:
    whole = await tcp(address, query("medium.p2p", "TXT"))
    size = len(whole.to_wire())
    assert 512 < size < 1232
    cases = [(size, False), (size - 1, True), (1232, False), (4096, False), (512, True)]
    for payload, truncated in cases:
        reply = await udp(address, query("medium.p2p", "TXT", payload=payload))
        assert bool(reply.flags & dns.flags.TC) == truncated, payload
        assert len(reply.answer) == (0 if truncated else 1)
        assert len(reply.question) == 1 and reply.edns == 0
    # Below 512 counts as 512 (RFC 6891 6.2.5): a 100-byte answer still fits...
    small = await udp(address, query("alice.p2p", "MX", payload=100))
    assert not small.flags & dns.flags.TC and small.answer
    # ...and a larger one is truncated.
    over = await udp(address, query("medium.p2p", "TXT", payload=100))
    assert over.flags & dns.flags.TC and not over.answer


async def test_nothing_over_512_bytes_without_edns(address: Address) -> None:
    questions = [("big.p2p", "TXT"), ("medium.p2p", "TXT"), ("www.sub.alice.p2p", "A")]
    for name, rdtype in questions:
        message = query(name, rdtype, use_edns=False)
        wire = await exchange(address, message.to_wire())
        reply = dns.message.from_wire(wire)
        assert len(wire) <= 512 and reply.edns == -1, name
        assert bool(reply.flags & dns.flags.TC) == (name != "www.sub.alice.p2p"), name
        if reply.flags & dns.flags.TC:  # then TCP has it whole
            assert not (await tcp(address, message)).flags & dns.flags.TC


# -- TCP (RFC 7766) --


async def test_pipelined_tcp_queries_are_all_answered(address: Address) -> None:
    names = ["alice.p2p", "mail.alice.p2p", "www.alice.p2p", "nope.alice.p2p", "big.p2p"]
    messages = {m.id: m for m in (query(name, "TXT" if "big" in name else "A") for name in names)}
    assert len(messages) == len(names)
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(b"".join(framed(m.to_wire()) for m in messages.values()))
        frames = Framed(stream)
        with trio.fail_after(TIMEOUT_S):
            for _ in names:
                wire = await frames.read()
                assert wire is not None
                reply = dns.message.from_wire(wire)
                assert messages.pop(reply.id).is_response(reply)
    assert not messages


async def test_a_tcp_query_split_across_segments(address: Address) -> None:
    message = query("mail.alice.p2p")
    data = framed(message.to_wire())
    stream = await trio.open_tcp_stream(*address)  # TCP_NODELAY: each write is a segment
    async with stream:
        for piece in (data[:1], data[1:2], data[2:9], data[9:20], data[20:]):
            await stream.send_all(piece)
            await trio.sleep(0.03)
        with trio.fail_after(TIMEOUT_S):
            wire = await Framed(stream).read()
    assert wire is not None
    assert texts(dns.message.from_wire(wire).answer) == ["mail.alice.p2p. 300 IN A 192.0.2.2"]


async def test_a_stalled_tcp_client_blocks_nobody_and_is_closed(node: InstantNode) -> None:
    idle = 0.5
    async with serving(node, tcp_idle_timeout_s=idle) as (_, bound):
        stalled = await trio.open_tcp_stream(*bound)
        async with stalled:
            start = trio.current_time()
            await stalled.send_all(framed(query("alice.p2p").to_wire())[:7])  # half a query
            began = trio.current_time()
            assert (await tcp(bound, query("mail.alice.p2p"))).answer
            assert (await udp(bound, query("mail.alice.p2p"))).answer
            assert trio.current_time() - began < QUICK_S
            with trio.fail_after(idle + TIMEOUT_S):
                assert await closed_by_server(stalled)
            assert trio.current_time() - start >= idle * 0.9


async def test_a_slow_dripping_tcp_client_is_closed(node: InstantNode) -> None:
    idle = 0.5
    async with serving(node, tcp_idle_timeout_s=idle) as (_, bound):
        stream = await trio.open_tcp_stream(*bound)
        data = framed(query("alice.p2p").to_wire())  # ~40 bytes: 4 s at this pace
        async with stream:

            async def drip() -> None:
                try:
                    for i in range(len(data)):
                        await stream.send_all(data[i : i + 1])
                        await trio.sleep(0.1)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the server hung up: what we wait for

            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drip)
                with trio.fail_after(idle + TIMEOUT_S):
                    assert await closed_by_server(stream)
                nursery.cancel_scope.cancel()
            assert trio.current_time() - start < len(data) * 0.1  # before the query completed


async def test_tcp_connections_are_capped(node: InstantNode) -> None:
    async with serving(node, max_tcp_connections=2) as (_, bound):
        held = [await trio.open_tcp_stream(*bound) for _ in range(2)]
        try:
            for stream in held:  # each one answered, so both are counted
                await stream.send_all(framed(query("alice.p2p").to_wire()))
                with trio.fail_after(TIMEOUT_S):
                    assert await Framed(stream).read() is not None
            extra = await trio.open_tcp_stream(*bound)
            async with extra:
                with trio.fail_after(TIMEOUT_S):
                    assert await closed_by_server(extra)  # closed at once
        finally:
            for stream in held:
                await stream.aclose()
        # Once they are gone, there is room again (the server notices the close soon).
        with trio.fail_after(TIMEOUT_S):
            while True:
                try:
                    reply = await tcp(bound, query("mail.alice.p2p"))
                except (AssertionError, trio.BrokenResourceError, OSError):
                    await trio.sleep(0.05)
                    continue
                break
        assert reply.answer


# -- case (0x20) --


async def test_mixed_case_is_preserved(address: Address) -> None:
    # Each spelling twice: the second reply comes from the cache.
    for spelling in ["AlIcE.P2p", "aLiCe.p2P", "AlIcE.P2p"]:
        reply = await udp(address, query(spelling))
        assert reply.question[0].name.to_text(omit_final_dot=True) == spelling
        assert reply.answer[0].name.to_text(omit_final_dot=True) == spelling
    chain = await udp(address, query("WwW.AlIcE.p2p"))
    assert [rrset.name.to_text() for rrset in chain.answer] == [
        "WwW.AlIcE.p2p.",  # the question's own spelling
        "web.alice.p2p.",  # other names as the zone spells them
        "alice.p2p.",
    ]
    wild = await tcp(address, query("X.wIlD.AliCE.p2p", "TXT"))
    assert wild.answer[0].name.to_text() == "X.wIlD.AliCE.p2p."
    nx = await udp(address, query("NoPe.ALICE.p2p"))
    assert nx.question[0].name.to_text() == "NoPe.ALICE.p2p."
    assert soa_in_authority(nx)[0] == "alice.p2p."


# -- CHAOS --


def chaos(
    name: str, rdtype: str = "TXT", rdclass: dns.rdataclass.RdataClass = dns.rdataclass.CH
) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, rdclass=rdclass, use_edns=0)


@pytest.mark.parametrize("name", ["version.bind", "version.server", "VERSION.Bind"])
async def test_chaos_version(address: Address, name: str) -> None:
    reply = await udp(address, chaos(name))
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA  # as BIND
    assert texts(reply.answer) == [f'{name}. 0 CH TXT "ledgerdns"']
    assert not reply.authority


@pytest.mark.parametrize(
    ("name", "rdtype", "rdclass"),
    [
        ("id.server", "TXT", dns.rdataclass.CH),  # the id is unset by default: refused
        ("hostname.bind", "TXT", dns.rdataclass.CH),
        ("authors.bind", "TXT", dns.rdataclass.CH),
        ("version.bind", "A", dns.rdataclass.CH),
        ("version.bind", "ANY", dns.rdataclass.CH),
        ("x.version.bind", "TXT", dns.rdataclass.CH),
        ("alice.p2p", "TXT", dns.rdataclass.CH),
        ("version.bind", "TXT", dns.rdataclass.HS),
        ("alice.p2p", "A", dns.rdataclass.ANY),
    ],
)
async def test_other_chaos_and_class_questions_are_refused(
    address: Address, name: str, rdtype: str, rdclass: dns.rdataclass.RdataClass
) -> None:
    reply = await udp(address, chaos(name, rdtype, rdclass))
    assert reply.rcode() == dns.rcode.REFUSED and not reply.flags & dns.flags.AA
    assert not reply.answer and not reply.authority


async def test_chaos_answers_follow_the_settings(node: InstantNode) -> None:
    # In process: DnsServer hands `settings.chaos` to its AnswerBuilder.
    settings = ChaosSettings(version="", id="ns1.example.net")
    cache = AnswerCache(AnswerBuilder(node.ledger, CONFIG, chaos=settings))
    for name, expected in [
        ("id.server", ['id.server. 0 CH TXT "ns1.example.net"']),
        ("hostname.bind", ['hostname.bind. 0 CH TXT "ns1.example.net"']),
        ("version.bind", None),
    ]:
        message = chaos(name)
        reply = dns.message.from_wire(cache.answer(message.to_wire(), tcp=False) or b"")
        assert message.is_response(reply)
        if expected is None:
            assert reply.rcode() == dns.rcode.REFUSED
        else:
            assert reply.flags & dns.flags.AA and texts(reply.answer) == expected


# -- real clients: dig (BIND) and kdig (Knot) --

DIG = shutil.which("dig")
KDIG = shutil.which("kdig")
needs_dig = pytest.mark.skipif(DIG is None, reason="dig not installed (Debian: bind9-dnsutils)")
needs_kdig = pytest.mark.skipif(KDIG is None, reason="kdig not installed (Debian: knot-dnsutils)")


async def run(tool: str | None, address: Address, *args: str) -> str:
    assert tool is not None
    retries = "+tries=1" if tool == DIG else "+retry=0"
    argv = [tool, f"@{address[0]}", "-p", str(address[1]), "+time=2", retries, *args]
    with trio.fail_after(10):
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    return str(done.stdout.decode())


def flags_of(output: str) -> list[set[str]]:
    """The header flags of each reply in dig's or kdig's output."""
    found = re.findall(r"^;; [Ff]lags: ([a-z ]*);", output, re.MULTILINE)
    return [set(flags.split()) for flags in found]


def statuses(output: str) -> list[str]:
    return re.findall(r"status: ([A-Z]+)", output)


def answer_lines(output: str) -> list[str]:
    """Records in ANSWER sections, whitespace collapsed (dig and kdig print them alike)."""
    lines: list[str] = []
    inside = False
    for line in output.splitlines():
        if "ANSWER SECTION" in line:
            inside = True
        elif not line.strip() or line.startswith(";;"):
            inside = False
        elif inside:
            lines.append(" ".join(line.split()))
    return lines


@needs_dig
async def test_dig_norec(address: Address) -> None:
    out = await run(DIG, address, "+norec", "alice.p2p", "A")
    assert statuses(out) == ["NOERROR"] and flags_of(out) == [{"qr", "aa"}]
    assert answer_lines(out) == ["alice.p2p. 300 IN A 192.0.2.1"]
    referral = await run(DIG, address, "+norec", "www.sub.alice.p2p", "A")
    assert flags_of(referral) == [{"qr"}] and "AUTHORITY: 2" in referral
    nx = await run(DIG, address, "+norec", "nope.alice.p2p", "A")
    assert statuses(nx) == ["NXDOMAIN"] and re.search(r"^alice\.p2p\.\s+60\s+IN\s+SOA", nx, re.M)


@needs_dig
async def test_dig_tcp(address: Address) -> None:
    out = await run(DIG, address, "+tcp", "www.alice.p2p", "A")
    assert "(TCP)" in out and statuses(out) == ["NOERROR"]
    assert flags_of(out) == [{"qr", "aa", "rd"}]  # RD copied, RA never
    assert answer_lines(out)[-1] == "alice.p2p. 300 IN A 192.0.2.1"


@needs_dig
async def test_dig_dnssec_gets_do_back(address: Address) -> None:
    out = await run(DIG, address, "+dnssec", "alice.p2p", "A")
    assert re.search(r"EDNS: version: 0, flags: do; udp: 1232", out)
    plain = await run(DIG, address, "alice.p2p", "A")
    assert re.search(r"EDNS: version: 0, flags:; udp: 1232", plain)


@needs_dig
async def test_dig_edns1_gets_badvers(address: Address) -> None:
    out = await run(DIG, address, "+edns=1", "+noednsnegotiation", "alice.p2p", "A")
    assert statuses(out) == ["BADVERS"] and "EDNS: version: 0" in out
    negotiated = await run(DIG, address, "+edns=1", "alice.p2p", "A")  # dig falls back to 0
    assert "BADVERS, retrying with EDNS version 0" in negotiated
    assert statuses(negotiated)[-1] == "NOERROR" and answer_lines(negotiated)


@needs_dig
async def test_dig_bufsize_512(address: Address) -> None:
    out = await run(DIG, address, "+bufsize=512", "+ignore", "big.p2p", "TXT")
    assert flags_of(out) == [{"qr", "aa", "tc", "rd"}] and "ANSWER: 0" in out
    retried = await run(DIG, address, "+bufsize=512", "big.p2p", "TXT")
    assert "Truncated, retrying in TCP mode" in retried and "(TCP)" in retried
    assert len(answer_lines(retried)) == 8
    fits = await run(DIG, address, "+bufsize=512", "alice.p2p", "MX")
    assert "tc" not in flags_of(fits)[0] and answer_lines(fits)


@needs_dig
async def test_dig_opcode_and_chaos(address: Address) -> None:
    out = await run(DIG, address, "+opcode=status", "alice.p2p", "A")
    assert statuses(out) == ["NOTIMP"]
    version = await run(DIG, address, "CH", "TXT", "version.bind")
    assert flags_of(version)[0] >= {"qr", "aa"}
    assert answer_lines(version) == ['version.bind. 0 CH TXT "ledgerdns"']
    ident = await run(DIG, address, "CH", "TXT", "id.server")
    assert statuses(ident) == ["REFUSED"]


@needs_kdig
async def test_kdig_tcp_keepopen_several_queries(address: Address) -> None:
    out = await run(
        KDIG, address, "+tcp", "+keepopen",
        "alice.p2p", "A", "mail.alice.p2p", "A", "nope.alice.p2p", "A", "big.p2p", "TXT",
    )  # fmt: skip
    assert statuses(out) == ["NOERROR", "NOERROR", "NXDOMAIN", "NOERROR"]
    assert out.count("(TCP)") == 4
    answers = answer_lines(out)
    assert answers[:2] == ["alice.p2p. 300 IN A 192.0.2.1", "mail.alice.p2p. 300 IN A 192.0.2.2"]
    assert len(answers) == 2 + 8


@needs_kdig
async def test_kdig_flags_edns_and_truncation(address: Address) -> None:
    out = await run(KDIG, address, "+norec", "+edns", "www.alice.p2p", "A")
    assert flags_of(out) == [{"qr", "aa"}] and "Version: 0" in out
    assert answer_lines(out)[-1] == "alice.p2p. 300 IN A 192.0.2.1"
    badvers = await run(KDIG, address, "+edns=1", "alice.p2p", "A")
    assert statuses(badvers) == ["BADVERS"] and "Version: 0" in badvers
    truncated = await run(KDIG, address, "+bufsize=512", "+ignore", "big.p2p", "TXT")
    assert "tc" in flags_of(truncated)[0]
    version = await run(KDIG, address, "CH", "TXT", "version.server")
    assert answer_lines(version) == ['version.server. 0 CH TXT "ledgerdns"']
