"""Links: long-lived, one-way message streams to chosen peers (validators' votes, issue 20).

Gossip hands every message to a mesh that forwards it on, wrapped in a signed
pubsub envelope, and each node gets it several times over. For a message that
must reach a known set of peers and nobody else (a vote, from one validator to
the others), that is several times the work of sending it to each of them once.
A link is one libp2p stream per (peer, protocol), opened by the sender on its
first message and kept open: the first frame is a greeting (who the sender is,
which the receiver checks before anything else), then one frame per message.
A frame is a 4-byte big-endian length and the bytes.

Sending never blocks the caller: each link has a queue of `QUEUE_FRAMES`, and its
writer sends whatever has queued up since its last write as one write (one
Yamux frame, one Noise record). A full queue drops the message (gossip's re-send
of a stuck height covers it); a link whose stream breaks is dropped and opened
again on the next message.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Awaitable, Callable

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

log = logging.getLogger(__name__)

QUEUE_FRAMES = 256  # messages waiting per link; then new ones are dropped
# A stream that broke after living this long is replaced at once, so the next message does
# not wait for a stream to open (over 1 s on a machine running 32 nodes); one that broke
# sooner only when the next message comes.
REOPEN_AFTER_S = 5.0
OPEN_TIMEOUT_S = 15.0  # a loaded peer (31 nodes on 2 cores) took over 5 s to answer a new stream
READ_CHUNK = 1 << 16
_LENGTH = struct.Struct(">I")

Greeting = Callable[[], bytes]
AcceptGreeting = Callable[[str, bytes], bool]
OnFrame = Callable[[str, bytes], Awaitable[bool]]


def encode_frame(data: bytes) -> bytes:
    """One frame: the length, then the bytes."""
    return _LENGTH.pack(len(data)) + data


class LinkSender:
    """The sending ends of one protocol's links, one writer task per peer.

    Bounds: one queue of `QUEUE_FRAMES` messages per peer linked right now (a link
    ends, and its queue with it, when its stream breaks or the peer disconnects).
    """

    def __init__(
        self, host: IHost, nursery: trio.Nursery, protocol: str, greeting: Greeting
    ) -> None:
        self._host = host
        self._nursery = nursery
        self._protocol = TProtocol(protocol)
        self._greeting = greeting
        self._queues: dict[ID, trio.MemorySendChannel[bytes]] = {}
        self.dropped = 0  # messages dropped because a link's queue was full
        self.broken = 0  # streams that broke under an open link (each replaced by a new one)

    def open(self, peer: ID) -> trio.MemorySendChannel[bytes] | None:
        """The queue of our link to `peer`, opened (and greeted on) if need be; None if the
        peer is not connected."""
        queue = self._queues.get(peer)
        if queue is None:
            if not self._host.get_network().get_connections(peer):
                return None
            queue, receive = trio.open_memory_channel[bytes](QUEUE_FRAMES)
            try:
                self._nursery.start_soon(self._write, peer, queue, receive)
            except RuntimeError:  # "Nursery is closed to new arrivals": the service is stopping
                return None
            self._queues[peer] = queue
        return queue

    def send(self, peer: ID, data: bytes) -> bool:
        """Queue `data` for `peer`; False if it is not connected or its queue is full."""
        queue = self.open(peer)
        if queue is None:
            return False
        try:
            queue.send_nowait(encode_frame(data))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            # Broken: the link's writer ended and closed its end, and is still closing (an
            # await) before it forgets the queue; this raised out of a re-send and stopped a
            # 31-validator node (issue 20). The next message opens a new link.
            self.dropped += 1
            return False
        return True

    def linked(self) -> set[ID]:
        """Peers with a link open (or opening) right now."""
        return set(self._queues)

    async def _write(
        self,
        peer: ID,
        queue: trio.MemorySendChannel[bytes],
        receive: trio.MemoryReceiveChannel[bytes],
    ) -> None:
        """Open the link, then write what is queued, batched; a stream that breaks is
        replaced by a new one (greeted again) when there is something to write, and the
        batch it broke under is written there, not lost."""
        try:
            async with receive:
                pending: list[bytes] = []
                while True:
                    stream = await self._open_stream(peer)
                    opened = trio.current_time()
                    try:
                        closed = await self._write_until_broken(stream, receive, pending)
                    finally:
                        await _reset(stream)
                    if closed:
                        return
                    self.broken += 1
                    log.debug("link to %s on %s broke: opening a new stream", peer, self._protocol)
                    if not pending and trio.current_time() - opened < REOPEN_AFTER_S:
                        # Broke right after opening (a refused greeting?): open again only
                        # when there is something to send, not in a loop.
                        pending.append(await receive.receive())
        except (trio.EndOfChannel, trio.ClosedResourceError):
            pass
        except Exception as exc:  # stream, muxer and dial errors (all typed differently), timeout
            log.debug("link to %s on %s ended: %r", peer, self._protocol, exc)
        finally:
            if self._queues.get(peer) is queue:
                del self._queues[peer]
            queue.close()

    async def _write_until_broken(
        self, stream: INetStream, receive: trio.MemoryReceiveChannel[bytes], pending: list[bytes]
    ) -> bool:
        """Write `pending`, then what is queued, batched, until the stream breaks (False,
        with what was not written left in `pending`) or the queue is closed (True).

        The link is one-way, so a reset from the receiver (a refused frame, its end gone)
        is seen by a read that never returns data: it ends the writing, and the batch that
        would have met the reset goes on a new stream instead (at 31 validators on one
        machine a re-send meeting a reset link was lost and the height waited ~2 s more).
        """
        closed = False
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                try:
                    await stream.read(1)
                except Exception:  # reset, EOF: the stream is gone either way
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            while True:
                if not pending:
                    try:
                        pending.append(await receive.receive())
                    except trio.EndOfChannel:
                        closed = True
                        break
                while True:
                    try:
                        pending.append(receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                if len(pending) > QUEUE_FRAMES:  # streams breaking one after another
                    self.dropped += len(pending) - QUEUE_FRAMES
                    del pending[:-QUEUE_FRAMES]
                try:
                    await stream.write(b"".join(pending))
                except Exception:  # broken: keep the batch for the next stream
                    break
                pending.clear()
            nursery.cancel_scope.cancel()
        return closed

    async def _open_stream(self, peer: ID) -> INetStream:
        """A new stream to `peer` on our protocol, greeted.

        Raises:
            trio.TooSlowError: not open and greeted within `OPEN_TIMEOUT_S`.
            Exception: the library's stream, muxer and dial errors.
        """
        started = trio.current_time()
        with trio.fail_after(OPEN_TIMEOUT_S):
            stream = await self._host.new_stream(peer, [self._protocol])
            try:
                await stream.write(encode_frame(self._greeting()))
            except BaseException:
                await _reset(stream)
                raise
        log.debug("link to %s on %s open in %.0f ms", peer, self._protocol, (trio.current_time() - started) * 1000)
        return stream


def link_handler(
    accept_greeting: AcceptGreeting, on_frame: OnFrame, max_frame: int
) -> Callable[[INetStream], Awaitable[None]]:
    """A stream handler for the receiving end of links on one protocol.

    `accept_greeting(peer, data)` sees the first frame; False (or a frame over
    `max_frame` bytes) resets the stream. Each later frame goes to
    `await on_frame(peer, data)`, one at a time in order; False resets the stream.
    """

    async def handle(stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id.to_base58()
        buffer = bytearray()
        greeted = False
        try:
            while True:
                try:
                    chunk = await stream.read(READ_CHUNK)
                except EOFError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while len(buffer) >= _LENGTH.size:
                    (size,) = _LENGTH.unpack_from(buffer)
                    if size > max_frame:
                        log.info("link frame of %d bytes from %s (cap %d): closed", size, peer, max_frame)
                        await _reset(stream)
                        return
                    end = _LENGTH.size + size
                    if len(buffer) < end:
                        break
                    data = bytes(buffer[_LENGTH.size : end])
                    del buffer[:end]
                    ok = await on_frame(peer, data) if greeted else accept_greeting(peer, data)
                    if not ok:
                        await _reset(stream)
                        return
                    greeted = True
        except Exception as exc:  # the stream broke: the sender opens a new one
            log.debug("link from %s ended: %r", peer, exc)

    return handle


async def _reset(stream: INetStream) -> None:
    with trio.CancelScope(shield=True):
        try:
            await stream.reset()
        except Exception:  # already gone
            pass
