"""The DNS server: UDP and TCP on one port, answering from the finalized ledger (trio).

UDP is one receive loop that answers synchronously (a cache hit is a copy and
a patch; a miss reads at most one domain state, bounded work) and hands the
reply to a sender task through a bounded queue, so a full socket buffer never
stalls receiving: when the queue is full the reply is dropped, as a busy
server would. TCP takes length-prefixed messages, several per connection, with
an idle timeout and a cap on concurrent connections (RFC 7766).
"""

from __future__ import annotations

import errno
import logging
import socket as stdlib_socket
from typing import Any, TypeGuard, cast

import trio

from ledgerdns.dns.answer import EDNS_PAYLOAD, AnswerBuilder
from ledgerdns.dns.cache import DEFAULT_MAX_ENTRIES, AnswerCache
from ledgerdns.dns.resolve import ZoneSource
from ledgerdns.dns.wire import FLAG_QR, HEADER, HEADER_SIZE, Rcode, Rejection, bare_reply
from ledgerdns.dns.zone import ZoneConfig
from ledgerdns.services import NodeServices

log = logging.getLogger(__name__)

_MAX_UDP_RECEIVE = 65535
_BIND_ATTEMPTS = 20
_LISTEN_BACKLOG = 128
# Out of file descriptors or buffers: wait and accept again (as trio.serve_listeners does).
_ACCEPT_PAUSE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})

Address = tuple[str, int]


def _is_services(source: object) -> TypeGuard[NodeServices]:
    return hasattr(source, "on_block_applied") and hasattr(source, "ledger")


class DnsServer:
    """Serves DNS over UDP and TCP on one address.

    Args:
        source: the running node (`NodeServices`: the cache is invalidated after
            every applied block), or a bare ledger (then the cache is cleared
            whenever it sees the height move).
        host: the address to bind (default loopback).
        port: the port for both UDP and TCP; 0 picks a free one.
        config: what the synthesized SOA and NS records say.
        edns_payload: the UDP payload size we advertise and send at most.
        tcp_idle_timeout_s: a TCP connection with no complete query (or a
            client not reading its reply) for this long is closed.
        max_tcp_connections: more concurrent TCP connections are closed at once.
        udp_queue: replies waiting to be sent; beyond this, replies are dropped.
        cache_entries: the most cached replies.
    """

    def __init__(
        self,
        source: NodeServices | ZoneSource,
        host: str = "127.0.0.1",
        port: int = 53,
        *,
        config: ZoneConfig | None = None,
        edns_payload: int = EDNS_PAYLOAD,
        tcp_idle_timeout_s: float = 10.0,
        max_tcp_connections: int = 100,
        udp_queue: int = 1024,
        cache_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if _is_services(source):
            ledger: ZoneSource = source.ledger
            source.on_block_applied(self._block_applied)
        else:
            ledger = cast(ZoneSource, source)
        builder = AnswerBuilder(ledger, config, edns_payload=edns_payload)
        self.cache = AnswerCache(builder, max_entries=cache_entries)
        self._host = host
        self._port = port
        self._idle = tcp_idle_timeout_s
        self._max_tcp = max_tcp_connections
        self._udp_queue = udp_queue
        self._address: Address | None = None
        self.tcp_connections = 0
        self.udp_dropped = 0
        self.tcp_refused = 0

    @property
    def address(self) -> Address:
        """The bound ``(host, port)``.

        Raises:
            RuntimeError: the server is not listening yet.
        """
        if self._address is None:
            raise RuntimeError("the DNS server is not listening yet")
        return self._address

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Bind, report ``(host, port)`` through `task_status`, and serve until cancelled.

        Raises:
            OSError: the address cannot be bound (in use, not ours, no permission).
        """
        udp, tcp = await self._bind()
        with udp, tcp:
            host, port = udp.getsockname()[:2]
            self._address = (host, port)
            log.info("dns listening host=%s port=%d udp=yes tcp=yes", host, port)
            try:
                async with trio.open_nursery() as nursery:
                    send, receive = trio.open_memory_channel[tuple[bytes, Any]](self._udp_queue)
                    nursery.start_soon(self._udp_send_loop, udp, receive)
                    nursery.start_soon(self._udp_receive_loop, udp, send)
                    nursery.start_soon(self._tcp_accept_loop, tcp, nursery)
                    task_status.started(self._address)
            finally:
                self._address = None

    # -- the ledger hook --

    def _block_applied(self, height: int, changed: frozenset[str]) -> None:
        self.cache.invalidate(changed)

    # -- binding --

    async def _bind(self) -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
        """UDP first, then TCP on the same port; with port 0, retry if TCP finds it taken."""
        infos = await trio.socket.getaddrinfo(
            self._host, self._port, type=stdlib_socket.SOCK_DGRAM
        )
        family, _, _, _, sockaddr = infos[0]
        attempts = _BIND_ATTEMPTS if self._port == 0 else 1
        for attempt in range(attempts):
            udp = trio.socket.socket(family, stdlib_socket.SOCK_DGRAM)
            try:
                await udp.bind(sockaddr)
                port = udp.getsockname()[1]
                tcp = trio.socket.socket(family, stdlib_socket.SOCK_STREAM)
                try:
                    tcp.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
                    await tcp.bind((sockaddr[0], port, *sockaddr[2:]))
                    tcp.listen(_LISTEN_BACKLOG)
                except OSError as exc:
                    tcp.close()
                    if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                        raise
                    log.debug("dns tcp port taken, retrying port=%d", port)
                    udp.close()
                    continue
                return udp, tcp
            except BaseException:
                udp.close()
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- answering (never raises) --

    def _answer(self, data: bytes, *, tcp: bool) -> bytes | None:
        try:
            return self.cache.answer(data, tcp=tcp)
        except Exception:
            # A bug, not bad input (the reader rejects that): one query must not take the
            # node down, so answer SERVFAIL and log loudly with the traceback.
            log.error("dns answer failed size=%d tcp=%s", len(data), tcp, exc_info=True)
            if len(data) < HEADER_SIZE:
                return None
            msg_id, flags = HEADER.unpack_from(data)[:2]
            if flags & FLAG_QR:
                return None
            return bare_reply(Rejection(msg_id, flags, Rcode.SERVFAIL))

    # -- UDP --

    async def _udp_receive_loop(
        self, sock: trio.socket.SocketType, send: trio.MemorySendChannel[tuple[bytes, Any]]
    ) -> None:
        async with send:
            while True:
                try:
                    data, peer = await sock.recvfrom(_MAX_UDP_RECEIVE)
                except OSError as exc:  # an ICMP error for an earlier reply, on some systems
                    log.debug("dns udp receive error=%s", exc)
                    continue
                reply = self._answer(data, tcp=False)
                if reply is None:
                    continue
                try:
                    send.send_nowait((reply, peer))
                except trio.WouldBlock:
                    self.udp_dropped += 1

    async def _udp_send_loop(
        self, sock: trio.socket.SocketType, receive: trio.MemoryReceiveChannel[tuple[bytes, Any]]
    ) -> None:
        async with receive:
            async for reply, peer in receive:
                try:
                    await sock.sendto(reply, peer)
                except OSError as exc:
                    log.debug("dns udp send failed peer=%s error=%s", peer, exc)

    # -- TCP --

    async def _tcp_accept_loop(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        listener = trio.SocketListener(sock)
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_PAUSE_ERRNOS:
                    raise
                log.warning("dns tcp accept paused error=%s", exc)
                await trio.sleep(0.1)
                continue
            if self.tcp_connections >= self._max_tcp:
                self.tcp_refused += 1
                await stream.aclose()
                continue
            self.tcp_connections += 1
            nursery.start_soon(self._tcp_connection, stream)

    async def _tcp_connection(self, stream: trio.SocketStream) -> None:
        try:
            async with stream:
                buffer = bytearray()
                while True:
                    message = None
                    with trio.move_on_after(self._idle):
                        message = await _read_message(stream, buffer)
                    if message is None:
                        return  # idle, closed by the client, or cut mid-message
                    reply = self._answer(message, tcp=True)
                    if reply is None:
                        return  # a response or a fragment: nothing sensible to say
                    with trio.move_on_after(self._idle) as scope:
                        await stream.send_all(len(reply).to_bytes(2, "big") + reply)
                    if scope.cancelled_caught:
                        return  # the client does not read its replies
        except trio.BrokenResourceError as exc:
            log.debug("dns tcp connection broken error=%s", exc)
        finally:
            self.tcp_connections -= 1


async def _read_message(stream: trio.SocketStream, buffer: bytearray) -> bytes | None:
    """The next length-prefixed message (bytes past it stay in `buffer`); None at EOF."""
    while True:
        if len(buffer) >= 2:
            size = int.from_bytes(buffer[:2], "big")
            if len(buffer) >= 2 + size:
                message = bytes(buffer[2 : 2 + size])
                del buffer[: 2 + size]
                return message
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        buffer.extend(chunk)
