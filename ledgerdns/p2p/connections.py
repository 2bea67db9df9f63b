"""What a libp2p connection needs around it: fail-fast sockets, redials the swarm would refuse,
an orderly close, and bootstrap addresses (helpers of `P2PService`)."""

from __future__ import annotations

import logging
import socket
from typing import Any

import trio
from libp2p.abc import IHost, INetConn
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID

from ledgerdns.p2p import reqresp
from ledgerdns.p2p.errors import P2PError
from ledgerdns.p2p.host import parse_addrs

log = logging.getLogger("ledgerdns.p2p.service")

SHUTDOWN_TIMEOUT = 3.0


TCP_USER_TIMEOUT_MS = 10_000  # data unacknowledged this long: the path is gone (a partition)


def fail_fast(conn: INetConn) -> bool:
    """Let the kernel abort a connection whose packets are dropped (a partition).

    Plain TCP keeps such a connection open for about 15 minutes, retransmitting
    with a doubling back-off, so after the path heals each direction waits for
    its next retransmission (measured: 14 s of recovery after a 15 s cut). With
    TCP_USER_TIMEOUT, and keepalive probes for idle connections, it fails after
    about 10 s and the reconnect loop dials a fresh one, which works as soon as
    the path is back (3 s median after a 15 s cut).
    The socket sits at SwarmConn → Yamux → Noise session → packet reader →
    raw connection → trio stream → socket in py-libp2p 0.8.1.
    """
    sock: Any = conn.muxed_conn
    for attr in (
        "secured_conn",
        "conn",
        "read_writer",
        "read_write_closer",
        "stream",
        "stream",
        "socket",
    ):
        sock = getattr(sock, attr, None)
    if sock is None or not hasattr(sock, "setsockopt"):
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_MS)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    except (OSError, AttributeError):  # not Linux, or not TCP
        return False
    return True


def unblock(host: IHost, pid: ID) -> None:
    """Forget a failed dial, so the swarm does not refuse to redial the peer for 60 s."""
    network = host.get_network()
    if isinstance(network, Swarm):
        network.unblock_peer(pid)


async def stop_when(stopping: trio.Event, host: IHost, stack: trio.CancelScope) -> None:
    """Once `stopping` is set, close connections and listeners, then cancel the stack.

    Cancelling the swarm directly aborts its clean-up at the first await and
    leaves connection sockets open.
    """
    await stopping.wait()
    with trio.move_on_after(SHUTDOWN_TIMEOUT):
        try:
            await host.close()
            # A dial that completed while the swarm was closing is not in the
            # list host.close() walked: close those too.
            for conns in list(host.get_network().get_connections_map().values()):
                for conn in list(conns):
                    await conn.close()
        except Exception as exc:  # a connection that is already half gone
            log.debug("host close failed: %r", exc)
    stack.cancel()


def split_p2p_addr(text: str) -> tuple[str, str]:
    """`/ip4/…/tcp/…/p2p/<id>` → (peer id, transport address); P2PError if malformed."""
    addr, sep, peer = text.rpartition("/p2p/")
    if not sep or not addr or not peer:
        raise P2PError(f"bootstrap address needs a /p2p/<peer id> part: {text!r}")
    reqresp.parse_peer_id(peer)
    parse_addrs([addr])
    return peer, addr
