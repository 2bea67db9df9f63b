"""The p2p layer with real libp2p hosts on 127.0.0.1 (Noise + Yamux over TCP), in one trio run."""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from ledgerdns.p2p import P2PConfig, P2PError, P2PService
from ledgerdns.p2p.host import parse_addrs

pytestmark = [
    pytest.mark.integration,
    # Open problem (docs/p2p.md): now and then a connection that py-libp2p is still
    # setting up when a node stops is never closed, and its socket is reported when
    # garbage-collected, inside whatever test runs then. Only that warning is ignored.
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
    ),
]

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
TOPIC = "ledgerdns/test"


def config(key: Path, bootstrap: list[str] = (), listen: str = LOOPBACK, **kw: object) -> P2PConfig:
    return P2PConfig(key_path=key, listen=[listen], bootstrap=list(bootstrap), topics=[TOPIC], **kw)  # type: ignore[arg-type]


class Inbox:
    """Collects (source, data) pairs a node's handler receives."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self._changed = trio.Event()

    async def handle(self, source: str, data: bytes) -> None:
        self.items.append((source, data))
        self._changed.set()
        self._changed = trio.Event()

    def data(self) -> list[bytes]:
        return [data for _, data in self.items]

    async def wait_for(self, data: bytes) -> None:
        while data not in self.data():
            await self._changed.wait()


async def eventually(check: Callable[[], bool], step: float = 0.05) -> None:
    while not check():
        await trio.sleep(step)


async def mesh_ready(sender: P2PService, inbox: Inbox) -> None:
    """Publish distinct pings until one arrives: the gossip path is up."""
    n = 0
    while True:
        n += 1
        ping = b"ping-%d" % n
        await sender.publish(TOPIC, ping)
        with trio.move_on_after(0.3):
            await inbox.wait_for(ping)
            return


@asynccontextmanager
async def running(*nodes: P2PService) -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        for node in nodes:
            await nursery.start(node.run)
        yield nursery
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_identity_persists_across_restart(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "node.key"
    with trio.fail_after(10):
        first = P2PService(config(key))
        async with running(first):
            addrs = list(first.listen_addrs)
        assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
        second = P2PService(config(key))
    assert second.peer_id == first.peer_id
    assert addrs and all(a.endswith("/p2p/" + first.peer_id) for a in addrs)
    assert "/tcp/0/" not in addrs[0]  # the bound port, not the requested 0


def test_bad_key_file_and_bad_bootstrap_are_clear_errors(tmp_path: Path) -> None:
    key = tmp_path / "node.key"
    key.write_bytes(b"not a key")
    key.chmod(0o600)
    with pytest.raises(P2PError, match="cannot load node key"):
        P2PService(config(key))
    with pytest.raises(P2PError, match="/p2p/"):
        P2PService(config(tmp_path / "ok.key", bootstrap=["/ip4/127.0.0.1/tcp/1"]))


@pytest.mark.trio
async def test_chain_gossip_reaches_the_far_end_and_dht_connects_it(tmp_path: Path) -> None:
    with trio.fail_after(15):
        a = P2PService(config(tmp_path / "a"))
        inbox_a, inbox_c = Inbox(), Inbox()
        a.set_handler(TOPIC, inbox_a.handle)
        async with running(a) as nursery:
            b = P2PService(config(tmp_path / "b", [a.listen_addrs[0]]))
            await nursery.start(b.run)
            c = P2PService(config(tmp_path / "c", [b.listen_addrs[0]]))  # knows only B
            c.set_handler(TOPIC, inbox_c.handle)
            await nursery.start(c.run)
            await eventually(lambda: a.peer_id in c.connected_peers())  # found via the DHT
            await mesh_ready(a, inbox_c)
            await a.publish(TOPIC, b"from a")
            await inbox_c.wait_for(b"from a")
            assert (a.peer_id, b"from a") in inbox_c.items  # source is the publisher
            assert b"from a" not in inbox_a.data()  # our own publishes are not handed back
            await c.publish(TOPIC, b"from c")
            await inbox_a.wait_for(b"from c")
            # A learns C's listen addresses from identify, which may still be on its way
            # when gossip already flows (the test raced it: failed about 1 run in 10)
            await eventually(lambda: bool(a.peer_addrs(c.peer_id)))


@pytest.mark.trio
async def test_rejected_message_is_not_delivered_nor_forwarded_and_ban_disconnects(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ledgerdns.p2p")
    with trio.fail_after(20):
        a = P2PService(config(tmp_path / "a"))
        inbox_b, inbox_c = Inbox(), Inbox()
        async with running(a) as nursery:
            b = P2PService(config(tmp_path / "b", [a.listen_addrs[0]]))

            def validate(forwarder: str, data: bytes) -> bool:
                if data.startswith(b"bad"):
                    b.penalize(forwarder, 60, "invalid test message")
                    return False
                return True

            b.set_validator(TOPIC, validate)
            b.set_handler(TOPIC, inbox_b.handle)
            await nursery.start(b.run)
            c = P2PService(config(tmp_path / "c", [b.listen_addrs[0]]))
            # A refuses C, so whatever C gets from A went through B's validator.
            a.penalize(c.peer_id, 1000, "test: keep C two hops away")
            c.set_handler(TOPIC, inbox_c.handle)
            await nursery.start(c.run)
            await mesh_ready(a, inbox_c)

            await a.publish(TOPIC, b"bad 1")
            await a.publish(TOPIC, b"good 1")
            await inbox_c.wait_for(b"good 1")
            await inbox_b.wait_for(b"good 1")
            assert b.penalty(a.peer_id) == 60
            assert a.peer_id in b.connected_peers()

            await a.publish(TOPIC, b"bad 2")  # 120 points: banned
            await eventually(lambda: a.peer_id not in b.connected_peers())
            assert b.penalty(a.peer_id) == 120
            await a.publish(TOPIC, b"good 2")  # A still dials B every few seconds: refused
            await trio.sleep(1.0)
            await eventually(lambda: a.peer_id not in b.connected_peers())
    assert not any(d.startswith(b"bad") for d in inbox_b.data() + inbox_c.data())
    assert b"good 2" not in inbox_b.data()
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("ledgerdns.p2p")]
    assert any("banned peer=" + a.peer_id in m and "invalid test message" in m for m in warnings)


@pytest.mark.trio
async def test_request_response(tmp_path: Path) -> None:
    big = bytes(range(256)) * (8 << 10)  # 2 MiB

    async def serve(peer: str, request: bytes) -> bytes:
        return big if request == b"big" else b"echo:" + request

    async def refuse(peer: str, request: bytes) -> bytes:
        raise P2PError("no such block")

    async def crash(peer: str, request: bytes) -> bytes:
        raise RuntimeError("bug")

    async def slow(peer: str, request: bytes) -> bytes:
        await trio.sleep(5)
        return b""

    with trio.fail_after(15):
        a = P2PService(config(tmp_path / "a"))
        a.set_request_handler("/t/get/1", serve)
        a.set_request_handler("/t/refuse/1", refuse)
        a.set_request_handler("/t/crash/1", crash)
        a.set_request_handler("/t/slow/1", slow)
        async with running(a) as nursery:
            b = P2PService(config(tmp_path / "b", [a.listen_addrs[0]]))
            await nursery.start(b.run)
            await eventually(lambda: a.peer_id in b.connected_peers())
            assert await b.request(a.peer_id, "/t/get/1", b"hi") == b"echo:hi"
            assert await b.request(a.peer_id, "/t/get/1", b"big") == big
            with pytest.raises(P2PError, match="remote error: no such block"):
                await b.request(a.peer_id, "/t/refuse/1", b"x")
            with pytest.raises(P2PError, match="remote error: internal error"):
                await b.request(a.peer_id, "/t/crash/1", b"x")
            with pytest.raises(P2PError, match="timed out"):
                await b.request(a.peer_id, "/t/slow/1", b"x", timeout=0.5)
            with pytest.raises(P2PError, match="cannot open stream"):
                await b.request(a.peer_id, "/t/nobody-serves-this/1", b"x")
            stranger = P2PService(config(tmp_path / "stranger")).peer_id
            with pytest.raises(P2PError, match="unknown peer"):
                await b.request(stranger, "/t/get/1", b"x")
            with pytest.raises(P2PError, match="bad peer id"):
                await b.request("not-a-peer", "/t/get/1", b"x")
            assert await b.request(a.peer_id, "/t/get/1", b"still fine") == b"echo:still fine"


@pytest.mark.trio
async def test_restarted_peer_is_reconnected_within_seconds(tmp_path: Path) -> None:
    with trio.fail_after(20):
        a = P2PService(config(tmp_path / "a", reconnect_interval=1.0))
        async with running(a) as nursery:
            b_key = tmp_path / "b"
            b = P2PService(config(b_key, [a.listen_addrs[0]]))
            b_scope = trio.CancelScope()
            b_stopped = trio.Event()
            nursery.start_soon(_run_in, b, b_scope, b_stopped)
            await eventually(lambda: b.peer_id in a.connected_peers())
            await eventually(lambda: bool(a.peer_addrs(b.peer_id)))  # identify told A where B listens
            port_addr = b.listen_addrs[0].rpartition("/p2p/")[0]
            b_scope.cancel()
            await eventually(lambda: b.peer_id not in a.connected_peers())
            await b_stopped.wait()  # its listener closed: the port is free for the next one
            # Same key, same port, and B does not dial anyone: only A's loop can bring it back.
            b2 = P2PService(config(b_key, listen=port_addr))
            await nursery.start(b2.run)
            started = time.monotonic()
            await eventually(lambda: b2.peer_id in a.connected_peers(), step=0.02)
            assert time.monotonic() - started < 3.0


async def _run_in(node: P2PService, scope: trio.CancelScope, stopped: trio.Event) -> None:
    with scope:
        await node.run()
    stopped.set()


@pytest.mark.trio
async def test_plaintext_peer_is_refused(tmp_path: Path) -> None:
    key_pair = create_new_key_pair()
    plain = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(PLAINTEXT_PROTOCOL_ID): InsecureTransport(key_pair)},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
    )
    with trio.fail_after(15):
        a = P2PService(config(tmp_path / "a"))
        async with running(a):
            async with plain.run(listen_addrs=parse_addrs([LOOPBACK])):
                with pytest.raises(Exception):  # noqa: B017 - any failure to connect will do
                    await plain.connect(info_from_p2p_addr(parse_addrs(a.listen_addrs)[0]))
                assert plain.get_id().to_base58() not in a.connected_peers()
                await plain.close()  # leaving run() by cancellation would leak its sockets


@pytest.mark.slow
@pytest.mark.trio
async def test_mdns_finds_a_peer_on_loopback(tmp_path: Path) -> None:
    with trio.fail_after(15):
        a = P2PService(config(tmp_path / "a", mdns=True, mdns_interfaces=["127.0.0.1"]))
        b = P2PService(config(tmp_path / "b", mdns=True, mdns_interfaces=["127.0.0.1"]))
        async with running(a, b):
            await eventually(lambda: b.peer_id in a.connected_peers())


@pytest.mark.trio
async def test_a_malformed_pubsub_rpc_does_not_stop_the_node(tmp_path: Path) -> None:
    """Garbage on a peer's pubsub stream costs that stream, not the receiving node."""
    from libp2p.peer.id import ID
    from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11

    with trio.fail_after(20):
        b = P2PService(config(tmp_path / "b.key"))
        inbox_b = Inbox()
        b.set_handler(TOPIC, inbox_b.handle)
        async with running(b):
            a = P2PService(config(tmp_path / "a.key", bootstrap=b.listen_addrs[:1]))
            async with running(a):
                await mesh_ready(a, inbox_b)
                assert a._live is not None
                stream = await a._live.host.new_stream(ID.from_base58(b.peer_id), [PROTOCOL_ID_V11])
                await stream.write(b"\x05\xff\xff\xff\xff\xff")  # a length prefix, then not an RPC
                await trio.sleep(0.5)
                # b still runs, and the gossip path comes back (a re-opens its stream)
                await mesh_ready(a, inbox_b)
                await a.publish(TOPIC, b"after garbage")
                await inbox_b.wait_for(b"after garbage")


@pytest.mark.trio
async def test_connections_give_up_on_a_silent_path_within_seconds(tmp_path: Path) -> None:
    """Every p2p socket carries TCP_USER_TIMEOUT and keepalive, so a partition ends it in ~10 s.

    Without them a connection whose packets are dropped stays open for minutes
    and, after the path heals, waits out TCP's doubled retransmission timer
    (tools/partition.py measured 14 s of recovery after a 15 s cut, 3 s with them).
    """
    import socket

    from ledgerdns.p2p.connections import TCP_USER_TIMEOUT_MS

    with trio.fail_after(15):
        a = P2PService(config(tmp_path / "a"))
        async with running(a) as nursery:
            b = P2PService(config(tmp_path / "b", [a.listen_addrs[0]]))
            await nursery.start(b.run)
            await eventually(lambda: a.peer_id in b.connected_peers())
            for node in (a, b):
                live = node._live
                assert live is not None
                conns = [c for cs in live.host.get_network().get_connections_map().values() for c in cs]
                assert conns
                for conn in conns:
                    sock = conn.muxed_conn.secured_conn.conn.read_writer.read_write_closer.stream.stream.socket
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == TCP_USER_TIMEOUT_MS
                    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            nursery.cancel_scope.cancel()
