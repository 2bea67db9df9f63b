"""DNS over TCP (RFC 7766): length-prefixed messages, several per connection, bounded.

A connection is closed after `idle_s` without a complete query or when the
client does not read its replies for as long; at most `max_connections` are
open at once, and more are closed as soon as they are accepted.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

log = logging.getLogger(__name__)

# Out of file descriptors or buffers: wait and accept again (as trio.serve_listeners does).
_ACCEPT_PAUSE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})

Dispatch = Callable[
    [bytes, Any], "tuple[bytes | None, Any] | list[bytes] | Awaitable[bytes | None]"
]


class TcpFront:
    """Serves the TCP side of the DNS port with the server's `dispatch`.

    Attributes:
        connections: open connections now.
        refused: connections closed at once because `max_connections` were open.
    """

    def __init__(self, dispatch: Dispatch, *, idle_s: float, max_connections: int) -> None:
        self._dispatch = dispatch
        self._idle = idle_s
        self._max = max_connections
        self.connections = 0
        self.refused = 0

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
            nursery.start_soon(self._connection, stream)

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            async with stream:
                try:
                    peer = stream.socket.getpeername()
                except OSError:
                    return  # the client has gone already
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
                        await stream.send_all(
                            b"".join(len(r).to_bytes(2, "big") + r for r in replies)
                        )
                    if scope.cancelled_caught:
                        return  # the client does not read its replies
        except trio.BrokenResourceError as exc:
            log.debug("dns tcp connection broken error=%s", exc)
        finally:
            self.connections -= 1

    async def _replies(self, message: bytes, peer: Any) -> list[bytes]:
        result = self._dispatch(message, peer)
        if isinstance(result, list):
            return result
        reply = result[0] if isinstance(result, tuple) else await result
        return [reply] if reply is not None else []


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
