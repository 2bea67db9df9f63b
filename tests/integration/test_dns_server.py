"""The DNS server on 127.0.0.1, port 0, queried with dnspython (and dig, when installed).

The ledger is an `InstantNode` (real LevelDB, every transaction finalized at
once), so a record update is visible in the next answer.
"""

from __future__ import annotations

import functools
import shutil
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
import trio

from chain.records import Record, canonical_record_set
from ledgerdns.dns import DnsServer, ZoneConfig
from tests.support.instant_node import InstantNode
from tools.devchain import dev_key, next_tx, register_tx, soon

pytestmark = [pytest.mark.integration, pytest.mark.trio]

OWNER = dev_key("dns-owner", 0)
HOST = "127.0.0.1"
CONFIG = ZoneConfig(server_name="ns1.example.net")
TIMEOUT_S = 3.0

ALICE = [
    "@ 300 A 192.0.2.1",
    "@ 300 AAAA 2001:db8::1",
    "@ 300 MX 10 mail",
    '@ 300 TXT "hello world"',
    '@ 300 CAA 0 issue "letsencrypt.org"',
    "mail 300 A 192.0.2.2",
    "www 120 CNAME alice.p2p.",
    "_sip._tcp 300 SRV 10 5 5060 sip",
    "sip 300 A 192.0.2.3",
    "a.b 300 A 192.0.2.4",
    "sub 300 NS ns1.sub",
    "ns1.sub 300 A 192.0.2.53",
]
BIG_TXT = [f'@ 300 TXT "{chr(ord("a") + i) * 200}"' for i in range(8)]  # ~1.7 kB reply

Address = tuple[str, int]


def records(domain: str, lines: list[str]) -> tuple[Record, ...]:
    return canonical_record_set(Record.from_text(line, origin=domain) for line in lines)


async def register(node: InstantNode, domain: str, lines: list[str]) -> None:
    recs = records(domain, lines)
    await node.submit(register_tx(node.genesis, OWNER, domain, recs, valid_until=soon(node.ledger)))


@dataclass
class Served:
    node: InstantNode
    server: DnsServer
    address: Address


@asynccontextmanager
async def serving(node: InstantNode, source: Any = None, **options: Any) -> AsyncIterator[Served]:
    server = DnsServer(
        source or node.ledger, HOST, 0, config=CONFIG, blocks=None if source else node, **options
    )
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.run)
        yield Served(node, server, address)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[InstantNode]:
    instant = InstantNode(tmp_path)
    try:
        await register(instant, "alice.p2p", ALICE)
        await register(instant, "big.p2p", BIG_TXT)
        yield instant
    finally:
        instant.close()


@pytest.fixture
async def served(node: InstantNode) -> AsyncIterator[Served]:
    async with serving(node) as running:
        yield running


def query(name: str, rdtype: str = "A", **options: Any) -> dns.message.Message:
    options.setdefault("use_edns", 0)
    return dns.message.make_query(name, rdtype, **options)


async def udp(address: Address, message: dns.message.Message, **options: Any) -> dns.message.Message:
    call = functools.partial(
        dns.query.udp, message, address[0], port=address[1], timeout=TIMEOUT_S, **options
    )
    reply: dns.message.Message = await trio.to_thread.run_sync(call)
    return reply


async def tcp(address: Address, message: dns.message.Message) -> dns.message.Message:
    call = functools.partial(dns.query.tcp, message, address[0], port=address[1], timeout=TIMEOUT_S)
    reply: dns.message.Message = await trio.to_thread.run_sync(call)
    return reply


def texts(reply: dns.message.Message, section: str = "answer") -> list[str]:
    return [line for rrset in getattr(reply, section) for line in rrset.to_text().splitlines()]


# -- binding --


async def test_udp_and_tcp_share_the_reported_port(served: Served) -> None:
    host, port = served.address
    assert host == HOST and port != 0 and served.server.address == served.address
    for ask in (udp, tcp):
        reply = await ask(served.address, query("alice.p2p"))
        assert texts(reply) == ["alice.p2p. 300 IN A 192.0.2.1"]


async def test_a_taken_port_is_an_error(node: InstantNode) -> None:
    with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as taken:
        await taken.bind((HOST, 0))
        server = DnsServer(node.ledger, HOST, taken.getsockname()[1], blocks=node)
        with pytest.raises(OSError):
            await server.run()
    with pytest.raises(RuntimeError, match="not listening"):
        _ = server.address


# -- answers --


ANSWERS = [
    ("alice.p2p", "A", ["alice.p2p. 300 IN A 192.0.2.1"]),
    ("alice.p2p", "AAAA", ["alice.p2p. 300 IN AAAA 2001:db8::1"]),
    ("www.alice.p2p", "A", ["www.alice.p2p. 120 IN CNAME alice.p2p.", "alice.p2p. 300 IN A 192.0.2.1"]),
    ("alice.p2p", "MX", ["alice.p2p. 300 IN MX 10 mail.alice.p2p."]),
    ("alice.p2p", "TXT", ['alice.p2p. 300 IN TXT "hello world"']),
    ("_sip._tcp.alice.p2p", "SRV", ["_sip._tcp.alice.p2p. 300 IN SRV 10 5 5060 sip.alice.p2p."]),
    ("alice.p2p", "CAA", ['alice.p2p. 300 IN CAA 0 issue "letsencrypt.org"']),
    ("alice.p2p", "NS", ["alice.p2p. 3600 IN NS ns1.example.net."]),
]


async def test_record_types(served: Served) -> None:
    for name, rdtype, expected in ANSWERS:
        reply = await udp(served.address, query(name, rdtype))
        assert reply.rcode() == dns.rcode.NOERROR, (name, rdtype)
        assert reply.flags & dns.flags.AA and not reply.flags & dns.flags.RA
        assert texts(reply) == expected, (name, rdtype)


async def test_soa_serial_is_the_height_of_the_zones_last_change(served: Served) -> None:
    reply = await udp(served.address, query("alice.p2p", "SOA"))
    soa = reply.answer[0][0]
    assert soa.serial == 1 and served.node.ledger.height == 2  # big.p2p came after alice
    tld = (await udp(served.address, query("p2p", "SOA"))).answer[0][0]
    assert tld.serial == served.node.ledger.height  # the TLD's serial is the head height
    assert soa.mname.to_text() == "ns1.example.net." and soa.rname.to_text() == "hostmaster.alice.p2p."


async def test_referral_with_glue(served: Served) -> None:
    reply = await udp(served.address, query("www.sub.alice.p2p"))
    assert reply.rcode() == dns.rcode.NOERROR
    assert not reply.flags & dns.flags.AA and not reply.answer
    assert texts(reply, "authority") == ["sub.alice.p2p. 300 IN NS ns1.sub.alice.p2p."]
    assert texts(reply, "additional") == ["ns1.sub.alice.p2p. 300 IN A 192.0.2.53"]


async def test_negative_answers(served: Served) -> None:
    cases = [
        ("nope.alice.p2p", "A", dns.rcode.NXDOMAIN, "alice.p2p."),
        ("bob.p2p", "A", dns.rcode.NXDOMAIN, "p2p."),
        ("alice.p2p", "SRV", dns.rcode.NOERROR, "alice.p2p."),
        ("b.alice.p2p", "A", dns.rcode.NOERROR, "alice.p2p."),  # empty non-terminal
        ("p2p", "A", dns.rcode.NOERROR, "p2p."),
    ]
    for name, rdtype, rcode, zone in cases:
        reply = await udp(served.address, query(name, rdtype))
        assert reply.rcode() == rcode, name
        assert reply.flags & dns.flags.AA and not reply.answer, name
        (soa,) = reply.authority
        assert soa.name.to_text() == zone and soa.ttl == 60, name


async def test_names_outside_the_tlds_are_refused(served: Served) -> None:
    for name in ["example.com", "localhost"]:
        reply = await udp(served.address, query(name))
        assert reply.rcode() == dns.rcode.REFUSED and not reply.answer


# -- size, EDNS, case --


async def test_big_answer_truncated_over_udp_whole_over_tcp(served: Served) -> None:
    message = query("big.p2p", "TXT", payload=4096)
    truncated = await udp(served.address, message, ignore_trailing=True, raise_on_truncation=False)
    assert truncated.flags & dns.flags.TC and not truncated.answer
    assert len(truncated.question) == 1
    whole = await tcp(served.address, message)
    assert not whole.flags & dns.flags.TC and len(whole.answer[0]) == 8
    call = functools.partial(
        dns.query.udp_with_fallback, message, HOST, port=served.address[1], timeout=TIMEOUT_S
    )
    reply, used_tcp = await trio.to_thread.run_sync(call)
    assert used_tcp and len(reply.answer[0]) == 8


async def test_edns_payload_is_ours_and_plain_dns_gets_512(served: Served) -> None:
    reply = await udp(served.address, query("alice.p2p", payload=4096))
    assert reply.edns == 0 and reply.payload == 1232
    plain = await udp(served.address, query("alice.p2p", use_edns=False))
    assert plain.edns == -1 and texts(plain) == ["alice.p2p. 300 IN A 192.0.2.1"]


async def test_question_case_is_preserved(served: Served) -> None:
    # Over UDP the worker's name table answers (the last one from its kept replies);
    # over TCP the node's cache (the last one a hit).
    for spelling in ["wWw.AlIcE.p2P", "WWW.alice.P2P", "WwW.AlIcE.p2P"]:
        for reply in (await udp(served.address, query(spelling)), await tcp(served.address, query(spelling))):
            assert reply.question[0].name.to_text() == f"{spelling}."
            assert reply.answer[0].name.to_text() == f"{spelling}."
    assert served.server.cache.hits >= 1


async def test_garbage_gets_formerr_and_fragments_nothing(served: Served) -> None:
    with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as sock:
        await sock.connect(served.address)
        await sock.send(b"\x01\x02")  # not even a header: dropped
        await sock.send(struct.pack("!6H", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\xff\xfe garbage")
        with trio.fail_after(TIMEOUT_S):
            data = await sock.recv(512)
    reply = dns.message.from_wire(data)
    assert reply.id == 0xBEEF and reply.rcode() == dns.rcode.FORMERR


# -- the ledger moves --


async def test_an_update_is_visible_after_the_next_block(served: Served) -> None:
    node = served.node
    assert texts(await udp(served.address, query("alice.p2p")))[0].endswith("192.0.2.1")
    lines = [line.replace("192.0.2.1", "192.0.2.99") for line in ALICE]
    tx = next_tx(
        node.genesis, node.ledger, OWNER, "alice.p2p", records("alice.p2p", lines),
        valid_until=soon(node.ledger),
    )
    await node.submit(tx)
    # The UDP worker hears of the block a moment after it is applied (docs/dns.md).
    with trio.fail_after(1):
        while texts(await udp(served.address, query("alice.p2p"))) != [
            "alice.p2p. 300 IN A 192.0.2.99"
        ]:
            await trio.sleep(0.005)
    await register(node, "carol.p2p", ["@ 300 A 192.0.2.7"])
    assert texts(await tcp(served.address, query("carol.p2p"))) == ["carol.p2p. 300 IN A 192.0.2.7"]


async def test_a_bare_ledger_is_served_and_followed(node: InstantNode) -> None:
    async with serving(node, node.ledger) as running:
        nx = await udp(running.address, query("dave.p2p"))
        assert nx.rcode() == dns.rcode.NXDOMAIN
        await register(node, "dave.p2p", ["@ 300 A 192.0.2.8"])
        assert texts(await udp(running.address, query("dave.p2p"))) == [
            "dave.p2p. 300 IN A 192.0.2.8"
        ]


# -- TCP connections --


def framed(message: dns.message.Message) -> bytes:
    wire = message.to_wire()
    return len(wire).to_bytes(2, "big") + wire


class Framed:
    """Length-prefixed messages from a TCP stream (several may arrive in one read)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def read(self) -> bytes | None:
        while len(self.buffer) < 2 or len(self.buffer) < 2 + int.from_bytes(self.buffer[:2], "big"):
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                return None
            self.buffer += chunk
        size = int.from_bytes(self.buffer[:2], "big")
        message, self.buffer = self.buffer[2 : 2 + size], self.buffer[2 + size :]
        return message


async def read_framed(stream: trio.SocketStream) -> bytes | None:
    return await Framed(stream).read()


async def test_several_queries_on_one_tcp_connection(served: Served) -> None:
    names = ["alice.p2p", "mail.alice.p2p", "sip.alice.p2p"]
    messages = [query(name) for name in names]
    stream = await trio.open_tcp_stream(*served.address)
    async with stream:
        await stream.send_all(b"".join(framed(m) for m in messages))  # pipelined
        replies = Framed(stream)
        with trio.fail_after(TIMEOUT_S):
            for message in messages:
                wire = await replies.read()
                assert wire is not None
                assert message.is_response(dns.message.from_wire(wire))


async def test_idle_tcp_connections_are_closed(node: InstantNode) -> None:
    async with serving(node, tcp_idle_timeout_s=0.2) as running:
        stream = await trio.open_tcp_stream(*running.address)
        async with stream:
            await stream.send_all(framed(query("alice.p2p")))
            with trio.fail_after(TIMEOUT_S):
                assert await read_framed(stream) is not None
                assert await stream.receive_some(1) == b""  # closed after 0.2 s idle


async def test_tcp_connections_are_capped(node: InstantNode) -> None:
    async with serving(node, max_tcp_connections=1) as running:
        first = await trio.open_tcp_stream(*running.address)
        async with first:
            await first.send_all(framed(query("alice.p2p")))
            with trio.fail_after(TIMEOUT_S):
                assert await read_framed(first) is not None
            second = await trio.open_tcp_stream(*running.address)
            async with second:
                with trio.fail_after(TIMEOUT_S):
                    assert await second.receive_some(1) == b""  # closed at once
            assert running.server.tcp_refused == 1
            await first.send_all(framed(query("mail.alice.p2p")))
            with trio.fail_after(TIMEOUT_S):
                assert await read_framed(first) is not None


# -- a real client --


DIG = shutil.which("dig")


@pytest.mark.skipif(DIG is None, reason="dig is not installed (Debian: apt-get install bind9-dnsutils)")
async def test_dig(served: Served) -> None:
    assert DIG is not None
    host, port = served.address
    for flags in ([], ["+tcp"]):
        result = await trio.run_process(
            [DIG, f"@{host}", "-p", str(port), "+short", "+time=2", "+tries=1", *flags,
             "www.alice.p2p", "A"],
            capture_stdout=True,
        )
        assert result.stdout.decode().split() == ["alice.p2p.", "192.0.2.1"]
