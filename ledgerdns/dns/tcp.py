"""DNS over TCP (RFC 7766) and over TLS (RFC 7858): length-prefixed messages, bounded.

A connection carries several queries (pipelined: replies go out in the order
the answers are ready, which for the ledger is the order asked). It is closed
after `idle_s` without a complete query or when the client does not read its
replies for as long; at most `max_connections` are open at once, and more are
closed as soon as they are accepted. With a TLS context the same front serves
DNS over TLS: the handshake must finish within `idle_s` too.
"""

from __future__ import annotations

import errno
import logging
import socket as stdlib_socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import trio

log = logging.getLogger(__name__)

# Out of file descriptors or buffers: wait and accept again (as trio.serve_listeners does).
_ACCEPT_PAUSE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_LISTEN_BACKLOG = 128

Dispatch = Callable[
    [bytes, Any], "tuple[bytes | None, Any] | list[bytes] | Awaitable[bytes | None]"
]


class CappedListener:
    """Accepts TCP connections, each handled in its own task, at most `max_connections` at once.

    Subclasses say what a connection is for in `handle`.

    Attributes:
        connections: open connections now.
        refused: connections closed at once because `max_connections` were open.
    """

    what = "dns tcp"  # what the log calls this listener

    def __init__(self, *, max_connections: int) -> None:
        self._max = max_connections
        self.connections = 0
        self.refused = 0

    async def run(
        self, host: str, port: int, *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on ``host:port`` (port 0: any), report ``(host, port)``, serve until cancelled.

        Raises:
            OSError: the address cannot be bound.
        """
        sock = listening_socket(host, port)
        with sock:
            bound = sock.getsockname()[:2]
            log.info("%s listening host=%s port=%d", self.what, bound[0], bound[1])
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.serve, trio.socket.from_stdlib_socket(sock), nursery)
                task_status.started(bound)

    async def serve(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        """Accept on the listening `sock` forever, each connection a task in `nursery`."""
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
            if self.connections >= self._max:
                self.refused += 1
                await stream.aclose()
                continue
            self.connections += 1
            nursery.start_soon(self._counted, stream)

    async def _counted(self, stream: trio.SocketStream) -> None:
        try:
            await self.handle(stream)
        finally:
            self.connections -= 1

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one accepted connection (and close it)."""
        raise NotImplementedError


class TcpFront(CappedListener):
    """Serves DNS messages over TCP, or over TLS with `tls`, with the server's `dispatch`."""

    def __init__(
        self,
        dispatch: Dispatch,
        *,
        idle_s: float,
        max_connections: int,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(max_connections=max_connections)
        self._dispatch = dispatch
        self._idle = idle_s
        self._tls = tls
        self.what = "dns tcp" if tls is None else "dns over tls"

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            peer = stream.socket.getpeername()
        except OSError:
            await stream.aclose()
            return  # the client has gone already
        messages: trio.abc.Stream = stream
        if self._tls is not None:
            messages = trio.SSLStream(stream, self._tls, server_side=True)
        try:
            await self._messages(messages, peer)
        except trio.BrokenResourceError as exc:  # also a failed TLS handshake
            log.debug("dns tcp connection broken tls=%s error=%s", self._tls is not None, exc)
        finally:
            with trio.move_on_after(self._idle):  # TLS says goodbye: bounded, then forced
                await messages.aclose()

    async def _messages(self, stream: trio.abc.Stream, peer: Any) -> None:
        if isinstance(stream, trio.SSLStream):
            with trio.move_on_after(self._idle) as handshake:
                await stream.do_handshake()
            if handshake.cancelled_caught:
                return  # too slow
        buffer = bytearray()
        while True:
            message = None
            with trio.move_on_after(self._idle):
                message = await _read_message(stream, buffer)
            if message is None:
                return  # idle, closed by the client, or cut mid-message
            replies = await self._replies(message, peer)
            if not replies:
                return  # a response or a fragment: nothing sensible to say
            with trio.move_on_after(self._idle) as scope:
                await stream.send_all(b"".join(len(r).to_bytes(2, "big") + r for r in replies))
            if scope.cancelled_caught:
                return  # the client does not read its replies

    async def _replies(self, message: bytes, peer: Any) -> list[bytes]:
        result = self._dispatch(message, peer)
        if isinstance(result, list):
            return result
        reply = result[0] if isinstance(result, tuple) else await result
        return [reply] if reply is not None else []


def listening_socket(host: str, port: int) -> stdlib_socket.socket:
    """A TCP socket listening on ``host:port`` (an IP address; port 0 picks a free one)."""
    family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
    sock = stdlib_socket.socket(family, stdlib_socket.SOCK_STREAM)
    try:
        sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


async def _read_message(stream: trio.abc.ReceiveStream, buffer: bytearray) -> bytes | None:
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
