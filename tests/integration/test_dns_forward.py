"""`Forwarder` against real upstream resolvers on 127.0.0.1, with real sockets.

Two kinds of upstream, both started here: dnsmasq (a real resolver, answering
from a hosts file; skipped when not installed) and `Upstream`, a small
dnspython server answering from a zone, for what a test must control (TTLs,
an SOA in negative answers, truncation, delay, silence). TTL ageing uses an
injected clock; timeouts use trio's real one.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest
import trio
import trio.testing

from chain.records import Record, canonical_record_set
from ledgerdns.dns.forward import Forwarder
from ledgerdns.dns.server import DnsServer
from ledgerdns.dns.settings import DnsSettings, ForwardSettings
from tests.support.instant_node import InstantNode
from tools.devchain import dev_key, register_tx, soon

pytestmark = [pytest.mark.integration, pytest.mark.trio]

HOST = "127.0.0.1"
TCP_LIMIT = 65535
TEST_DEADLINE_S = 5.0
Address = tuple[str, int]

ZONE = dns.zone.from_text(
    """
@        3600 SOA  ns.example.test. hostmaster.example.test. 1 3600 600 86400 60
@        3600 NS    ns.example.test.
www       300 A     192.0.2.1
www       300 AAAA  2001:db8::1
alias     600 CNAME www
week   604800 A     192.0.2.7
"""
    + "".join(f'big 300 TXT "{chr(97 + i) * 200}"\n' for i in range(8)),  # ~1.7 kB reply
    origin="example.test.",
    relativize=False,
)


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def zone_reply(query: dns.message.Message) -> dns.message.Message:
    """What a recursive resolver would say about `query` from `ZONE`."""
    reply = dns.message.make_response(query, recursion_available=True)
    question = query.question[0]
    rrset = ZONE.get_rrset(question.name, question.rdtype)
    if rrset is not None:
        reply.answer.append(rrset)
    else:
        if ZONE.get_node(question.name) is None:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        reply.authority.append(ZONE.find_rrset("example.test.", dns.rdatatype.SOA))
    return reply


@dataclass
class Upstream:
    """A resolver on 127.0.0.1 (UDP and TCP on one port) answering with `respond`."""

    respond: Callable[[dns.message.Message], dns.message.Message] = zone_reply
    delay_s: float = 0.0
    udp_queries: int = 0
    tcp_queries: int = 0
    address: Address = (HOST, 0)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        udp, tcp = await _bind_pair()
        with udp, tcp:
            self.address = (HOST, udp.getsockname()[1])
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve_udp, udp, nursery)
                nursery.start_soon(self._serve_tcp, tcp, nursery)
                task_status.started(self.address)

    async def _reply(self, wire: bytes, tcp: bool) -> bytes:
        await trio.sleep(self.delay_s)
        query = dns.message.from_wire(wire)
        reply = self.respond(query)
        if tcp:
            return reply.to_wire(max_size=65535)
        try:
            return reply.to_wire(max_size=max(512, query.payload))
        except dns.exception.TooBig:  # as a real server does: TC=1, the client retries over TCP
            reply.answer.clear()
            reply.authority.clear()
            reply.flags |= dns.flags.TC
            return reply.to_wire()

    async def _serve_udp(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        async def one(wire: bytes, peer: Any) -> None:
            await sock.sendto(await self._reply(wire, False), peer)

        while True:
            wire, peer = await sock.recvfrom(65535)
            self.udp_queries += 1
            nursery.start_soon(one, wire, peer)

    async def _serve_tcp(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        async def one(stream: trio.SocketStream) -> None:
            async with stream:
                data = b""
                while len(data) < 2 or len(data) < 2 + int.from_bytes(data[:2]):
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    data += chunk
                self.tcp_queries += 1
                reply = await self._reply(data[2 : 2 + int.from_bytes(data[:2])], True)
                await stream.send_all(len(reply).to_bytes(2) + reply)

        listener = trio.SocketListener(sock)
        while True:
            nursery.start_soon(one, await listener.accept())


async def _bind_pair() -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    """A UDP socket and a listening TCP socket on the same free loopback port."""
    for _ in range(20):
        udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await udp.bind((HOST, 0))
        tcp = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            await tcp.bind((HOST, udp.getsockname()[1]))
        except OSError as exc:
            udp.close()
            tcp.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        tcp.listen(16)
        return udp, tcp
    raise RuntimeError("no free port pair on loopback")


@asynccontextmanager
async def upstreams(*servers: Upstream, silent: int = 0) -> AsyncIterator[list[Address]]:
    """Start `servers`, then `silent` UDP sockets that never answer; yield their addresses.

    The whole block must finish within TEST_DEADLINE_S.
    """
    with trio.fail_after(TEST_DEADLINE_S):
        async with trio.open_nursery() as nursery:
            addresses = [await nursery.start(server.run) for server in servers]
            holes = [trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(silent)]
            for hole in holes:
                await hole.bind((HOST, 0))
                addresses.append((HOST, hole.getsockname()[1]))
            try:
                yield addresses
            finally:
                for hole in holes:
                    hole.close()
                nursery.cancel_scope.cancel()


def forwarder(
    addresses: list[Address], clock: FakeClock | None = None, **options: Any
) -> Forwarder:
    settings = ForwardSettings(upstreams=tuple(addresses), **{"timeout_s": 0.3, **options})
    return Forwarder(settings) if clock is None else Forwarder(settings, clock=clock)


async def ask(
    fwd: Forwarder, name: str, rdtype: str = "A", *, limit: int = TCP_LIMIT, **options: Any
) -> tuple[dns.message.Message, dns.message.Message, bytes]:
    """The query, the parsed reply (checked to answer it) and the reply's bytes."""
    query = dns.message.make_query(name, rdtype, **options)
    wire = await fwd.answer(query.to_wire(), limit=limit)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert query.is_response(reply)
    return query, reply, wire


def texts(reply: dns.message.Message, section: str = "answer") -> list[str]:
    return [line for rrset in getattr(reply, section) for line in rrset.to_text().splitlines()]


# -- dnsmasq: a real resolver --

DNSMASQ = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((HOST, 0))
        return int(udp.getsockname()[1])


def _wait_answering(port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            dns.query.udp(
                dns.message.make_query("host.lan.test", "A"), HOST, port=port, timeout=0.2
            )
            return True
        except dns.exception.Timeout:
            continue
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Address]:
    """dnsmasq on a free loopback port serving lan.test from a hosts file (TTL 300).

    Names under lan.test it does not know are NXDOMAIN (without SOA); other names
    are REFUSED (it has no upstream).
    """
    if DNSMASQ is None:
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
    hosts = tmp_path_factory.mktemp("dnsmasq") / "hosts"
    hosts.write_text("192.0.2.10 host.lan.test\n2001:db8::10 host.lan.test\n")
    for _ in range(5):
        port = _free_port()
        process = _start_dnsmasq(hosts, port)
        try:
            if _wait_answering(port, process, timeout=5.0):
                yield (HOST, port)
                return
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    pytest.fail("dnsmasq did not start answering")


def _start_dnsmasq(hosts: Path, port: int) -> subprocess.Popen[bytes]:
    args = [
        DNSMASQ or "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
        "--no-hosts", f"--addn-hosts={hosts}", "--local=/lan.test/", "--local-ttl=300",
        "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={port}", "--pid-file=",
        *(["--user=root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


async def test_answers_match_dnsmasq(dnsmasq: Address) -> None:
    fwd = forwarder([dnsmasq])
    for rdtype, expected in [("A", "192.0.2.10"), ("AAAA", "2001:db8::10")]:
        query, reply, _ = await ask(fwd, "host.lan.test", rdtype)
        direct = dns.query.udp(
            dns.message.make_query("host.lan.test", rdtype), HOST, port=dnsmasq[1], timeout=1
        )
        assert texts(reply) == texts(direct) == [f"host.lan.test. 300 IN {rdtype} {expected}"]
        assert reply.id == query.id and reply.rcode() == dns.rcode.NOERROR
        assert reply.flags & dns.flags.RA and reply.flags & dns.flags.RD
        assert not reply.flags & dns.flags.AA
    _, again, _ = await ask(fwd, "host.lan.test", "A")
    assert texts(again) == ["host.lan.test. 300 IN A 192.0.2.10"]
    assert fwd.stats() == {
        "hits": 1,
        "misses": 2,
        "coalesced": 0,
        "upstream_failures": 0,
        "entries": 2,
    }


async def test_nxdomain_without_soa_is_not_cached(dnsmasq: Address) -> None:
    fwd = forwarder([dnsmasq])
    for _ in range(2):
        _, reply, _ = await ask(fwd, "nope.lan.test")
        assert reply.rcode() == dns.rcode.NXDOMAIN and not reply.answer
    assert fwd.stats()["misses"] == 2 and fwd.stats()["entries"] == 0


async def test_a_refusing_upstream_is_skipped(dnsmasq: Address) -> None:
    # dnsmasq REFUSES names outside lan.test: the next upstream answers them.
    async with upstreams(Upstream()) as (second,):
        fwd = forwarder([dnsmasq, second])
        _, reply, _ = await ask(fwd, "www.example.test")
        assert texts(reply) == ["www.example.test. 300 IN A 192.0.2.1"]
        assert fwd.stats()["upstream_failures"] == 1
        assert fwd.upstream_answers == 1 and 0 < fwd.upstream_seconds < 5  # the answered attempt


# -- the cache --


async def test_ttl_counts_down_and_expires() -> None:
    server, clock = Upstream(), FakeClock()
    async with upstreams(server) as addresses:
        fwd = forwarder(addresses, clock)
        _, first, _ = await ask(fwd, "www.example.test")
        clock.now += 7.5
        _, second, _ = await ask(fwd, "www.example.test")
        assert [first.answer[0].ttl, second.answer[0].ttl] == [300, 293]
        assert server.udp_queries == 1
        clock.now += 292.4  # 299.9 s old: still served, with TTL 1
        _, last, _ = await ask(fwd, "www.example.test")
        assert last.answer[0].ttl == 1 and server.udp_queries == 1
        clock.now += 0.1  # 300 s old: gone, asked again
        _, fresh, _ = await ask(fwd, "www.example.test")
        assert fresh.answer[0].ttl == 300 and server.udp_queries == 2


async def test_a_chain_lives_as_long_as_its_shortest_ttl() -> None:
    server, clock = Upstream(), FakeClock()
    async with upstreams(server) as addresses:
        fwd = forwarder(addresses, clock)
        await ask(fwd, "alias.example.test", "CNAME")
        clock.now += 599
        _, reply, _ = await ask(fwd, "alias.example.test", "CNAME")
        assert texts(reply) == ["alias.example.test. 1 IN CNAME www.example.test."]
        assert server.udp_queries == 1


async def test_ttls_are_capped_at_max_ttl() -> None:
    server, clock = Upstream(), FakeClock()
    async with upstreams(server) as addresses:
        fwd = forwarder(addresses, clock, max_ttl=3600)
        _, reply, _ = await ask(fwd, "week.example.test")
        assert reply.answer[0].ttl == 3600
        clock.now += 3600
        await ask(fwd, "week.example.test")
        assert server.udp_queries == 2


async def test_negative_answers_are_cached_for_the_soa_minimum() -> None:
    server, clock = Upstream(), FakeClock()
    async with upstreams(server) as addresses:
        fwd = forwarder(addresses, clock)
        for name, rdtype, rcode in [
            ("nope.example.test", "A", dns.rcode.NXDOMAIN),
            ("www.example.test", "MX", dns.rcode.NOERROR),  # NODATA
        ]:
            _, reply, _ = await ask(fwd, name, rdtype)
            assert reply.rcode() == rcode and not reply.answer
            # SOA TTL 3600, MINIMUM 60: min of the two (RFC 2308).
            assert [r.split()[:4] for r in texts(reply, "authority")] == [
                ["example.test.", "60", "IN", "SOA"]
            ]
        clock.now += 59
        _, aged, _ = await ask(fwd, "nope.example.test")
        assert aged.rcode() == dns.rcode.NXDOMAIN and aged.authority[0].ttl == 1
        assert server.udp_queries == 2
        clock.now += 1
        await ask(fwd, "nope.example.test")
        assert server.udp_queries == 3


async def test_the_cache_is_bounded_lru() -> None:
    server = Upstream()
    async with upstreams(server) as addresses:
        fwd = forwarder(addresses, cache_entries=2)
        for name in ["www", "alias", "www", "week"]:  # alias is least recently used
            await ask(fwd, f"{name}.example.test")
        assert fwd.stats()["entries"] == 2 and server.udp_queries == 3
        await ask(fwd, "www.example.test")
        assert server.udp_queries == 3
        await ask(fwd, "alias.example.test")
        assert server.udp_queries == 4


async def test_identical_misses_share_one_upstream_query() -> None:
    server = Upstream(delay_s=0.1)
    async with upstreams(server) as addresses:
        fwd = forwarder(addresses)
        replies: list[dns.message.Message] = []

        async def one(name: str) -> None:
            replies.append((await ask(fwd, name))[1])

        async with trio.open_nursery() as nursery:
            for name in ["www.example.test", "WWW.example.test", "www.EXAMPLE.test"] * 2:
                nursery.start_soon(one, name)
        assert server.udp_queries == 1 and len(replies) == 6
        assert {texts(r)[0].lower() for r in replies} == {"www.example.test. 300 in a 192.0.2.1"}
        assert fwd.stats()["misses"] == 1 and fwd.stats()["coalesced"] == 5


async def test_a_cancelled_miss_does_not_strand_the_ones_waiting_for_it() -> None:
    server = Upstream(delay_s=0.2)
    async with upstreams(server) as addresses:
        fwd = forwarder(addresses, timeout_s=1.0)
        first = trio.CancelScope()
        replies: list[dns.message.Message] = []

        async def leader() -> None:
            with first:
                await ask(fwd, "www.example.test")

        async def follower() -> None:
            replies.append((await ask(fwd, "www.example.test"))[1])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(leader)
            await trio.testing.wait_all_tasks_blocked()  # its query is out, the reply 0.2 s off
            nursery.start_soon(follower)
            await trio.testing.wait_all_tasks_blocked()
            first.cancel()
        assert [texts(r) for r in replies] == [["www.example.test. 300 IN A 192.0.2.1"]]
        assert server.udp_queries == 2 and fwd.stats()["misses"] == 2


# -- upstream trouble --


async def test_tcp_fallback_when_the_upstream_truncates() -> None:
    server = Upstream()  # the answer (~1.7 kB) does not fit the 1232 bytes we offer over UDP
    async with upstreams(server) as addresses:
        fwd = forwarder(addresses)
        _, reply, _ = await ask(fwd, "big.example.test", "TXT", use_edns=0)
        assert len(reply.answer[0]) == 8 and not reply.flags & dns.flags.TC
        assert (server.udp_queries, server.tcp_queries) == (1, 1)


async def test_failover_to_the_next_upstream() -> None:
    async with upstreams(Upstream(), silent=1) as (good, dead):
        fwd = forwarder([dead, good], timeout_s=0.3)
        started = trio.current_time()
        _, reply, _ = await ask(fwd, "www.example.test")
        assert texts(reply) == ["www.example.test. 300 IN A 192.0.2.1"]
        assert 0.3 <= trio.current_time() - started < 1.0
        assert fwd.stats()["upstream_failures"] == 1


async def test_servfail_when_every_upstream_fails(caplog: pytest.LogCaptureFixture) -> None:
    def refuse(query: dns.message.Message) -> dns.message.Message:
        reply = dns.message.make_response(query)
        reply.set_rcode(dns.rcode.REFUSED)
        return reply

    refusing = Upstream(respond=refuse)
    async with upstreams(refusing, silent=1) as addresses:
        closed = (HOST, _free_port())  # nothing listens: ICMP port unreachable
        fwd = forwarder([*addresses, closed], timeout_s=0.2)
        for _ in range(2):  # SERVFAIL is not cached: the upstreams are asked each time
            query, reply, _ = await ask(fwd, "www.example.test", use_edns=0)
            assert reply.rcode() == dns.rcode.SERVFAIL and not reply.answer
            assert reply.flags & dns.flags.RA and not reply.flags & dns.flags.AA
            assert reply.edns == 0 and reply.payload == 1232
        assert refusing.udp_queries == 2
        assert fwd.stats()["upstream_failures"] == 6 and fwd.stats()["entries"] == 0
    # Each failing upstream is logged once (a warning), not once per query.
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sorted(w.split(" error=")[0] for w in warnings) == sorted(
        f"forward upstream failing upstream={host}:{port}" for host, port in (*addresses, closed)
    )
    assert "error=answered REFUSED" in " ".join(warnings)
    assert "error=no answer in 0.2 s" in " ".join(warnings)


# -- the reply --


async def test_the_question_keeps_the_clients_case() -> None:
    async with upstreams(Upstream()) as addresses:
        fwd = forwarder(addresses)
        for name in ["wWw.ExAmPlE.TeSt", "WWW.example.TEST"]:  # the second from the cache
            query, reply, wire = await ask(fwd, name)
            question = query.to_wire()[12 : 12 + len(name) + 2]
            assert wire[12 : 12 + len(question)] == question
            assert reply.answer[0].name.to_text() == name + "."
        assert fwd.stats()["hits"] == 1


async def test_truncated_to_the_limit() -> None:
    async with upstreams(Upstream()) as addresses:
        fwd = forwarder(addresses)
        for edns in [0, -1]:
            _, reply, wire = await ask(fwd, "big.example.test", "TXT", limit=512, use_edns=edns)
            assert len(wire) <= 512 and reply.flags & dns.flags.TC and reply.flags & dns.flags.RA
            assert not reply.answer and not reply.authority and not reply.additional
            assert reply.edns == edns
            _, whole, _ = await ask(fwd, "big.example.test", "TXT", limit=4096, use_edns=edns)
            assert len(whole.answer[0]) == 8 and not whole.flags & dns.flags.TC
        assert fwd.stats()["misses"] == 1


async def test_edns_follows_the_client() -> None:
    async with upstreams(Upstream()) as addresses:
        fwd = forwarder(addresses)
        _, plain, _ = await ask(fwd, "www.example.test", use_edns=-1)
        assert plain.edns == -1 and plain.opt is None
        cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345678")
        _, edns, _ = await ask(fwd, "www.example.test", use_edns=0, payload=4096, options=[cookie])
        assert edns.edns == 0 and edns.payload == 1232 and not edns.options
        assert not edns.ednsflags & dns.flags.DO
        _, do, _ = await ask(fwd, "www.example.test", want_dnssec=True)
        assert do.ednsflags & dns.flags.DO
        assert fwd.stats()["misses"] == 2  # DO is part of the key; EDNS presence is not


# -- through the node's DNS server --


@asynccontextmanager
async def node_server(tmp_path: Path, upstream: Address, **forward: Any) -> AsyncIterator[Address]:
    """A `DnsServer` (one UDP worker) over an `InstantNode` holding alice.p2p, forwarding to `upstream`."""
    node = InstantNode(tmp_path)
    try:
        recs = canonical_record_set([Record.from_text("@ 300 A 192.0.2.10", origin="alice.p2p")])
        tx = register_tx(
            node.genesis, dev_key("fwd", 0), "alice.p2p", recs, valid_until=soon(node.ledger)
        )
        await node.submit(tx)
        settings = DnsSettings(workers=1, forward=ForwardSettings(upstreams=(upstream,), **forward))
        server = DnsServer(node.ledger, HOST, 0, blocks=node, settings=settings, forwarder=Forwarder(settings.forward))
        async with trio.open_nursery() as nursery:
            yield await nursery.start(server.run)
            nursery.cancel_scope.cancel()
    finally:
        node.close()


async def _udp(address: Address, name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    call = functools.partial(dns.query.udp, query, address[0], port=address[1], timeout=3)
    reply: dns.message.Message = await trio.to_thread.run_sync(call)
    return reply


async def test_the_node_answers_its_names_and_forwards_the_rest(tmp_path: Path) -> None:
    async with upstreams(Upstream()) as (upstream,), node_server(tmp_path, upstream) as address:
        own = await _udp(address, "alice.p2p")
        assert texts(own) == ["alice.p2p. 300 IN A 192.0.2.10"]
        assert own.flags & dns.flags.AA and not own.flags & dns.flags.RA
        for _ in range(3):  # repeats too: the workers never keep forwarded answers
            other = await _udp(address, "www.example.test")
            assert texts(other) == ["www.example.test. 300 IN A 192.0.2.1"]
            assert other.flags & dns.flags.RA and not other.flags & dns.flags.AA
        missing = await _udp(address, "nope.example.test")
        assert missing.rcode() == dns.rcode.NXDOMAIN and missing.flags & dns.flags.RA


async def test_clients_outside_allow_are_refused_recursion(tmp_path: Path) -> None:
    allow = (ipaddress.ip_network("10.0.0.0/8"),)
    async with (
        upstreams(Upstream()) as (upstream,),
        node_server(tmp_path, upstream, allow=allow) as address,
    ):
        refused = await _udp(address, "www.example.test")
        assert refused.rcode() == dns.rcode.REFUSED and not refused.answer
        assert not refused.flags & dns.flags.RA
        own = await _udp(address, "alice.p2p")  # the ledger's own names are for everyone
        assert texts(own) == ["alice.p2p. 300 IN A 192.0.2.10"]
