"""Peer-to-peer request/response over a raw libp2p stream (the sync protocol's transport).

Named `reqresp`, not `rpc`: `ledgerdns/rpc/` is the node's HTTP API for wallets
and the explorer; this module is libp2p request/response between nodes.

One request per stream: the requester writes the request and closes its side;
the responder reads to end of stream, answers with one status byte (0 = ok,
1 = error) and the body (the response, or a UTF-8 error message) and closes.
Raw streams, not the library's `RequestResponse`, because the latter gives up
on bodies above ~6.5 MiB (it stops after 100 partial reads).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerstore import PeerStoreError

from ledgerdns.p2p.errors import P2PError

log = logging.getLogger(__name__)

RequestHandler = Callable[[str, bytes], Awaitable[bytes]]

MAX_REQUEST_BYTES = 1 << 20
MAX_RESPONSE_BYTES = 16 << 20
SERVE_TIMEOUT = 30.0
_OK = b"\x00"
_ERROR = b"\x01"
_CHUNK = 1 << 16


def stream_handler(protocol: str, fn: RequestHandler) -> Callable[[INetStream], Awaitable[None]]:
    """A libp2p stream handler that answers each request on `protocol` with `fn(peer, request)`.

    `fn` may raise `P2PError` to refuse a request (its message goes to the
    requester); any other exception is logged here and the requester only
    learns "internal error".
    """

    async def handle(stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id.to_base58()
        try:
            with trio.move_on_after(SERVE_TIMEOUT) as scope:
                request = await read_to_end(stream, MAX_REQUEST_BYTES)
                reply = await _answer(protocol, fn, peer, request)
                await stream.write(reply)
                await stream.close()
            if scope.cancelled_caught:
                log.warning("request timed out protocol=%s peer=%s", protocol, peer)
                await _reset_quietly(stream)
        except P2PError as exc:  # request too big, or the stream broke
            log.info("bad request protocol=%s peer=%s: %s", protocol, peer, exc)
            await _reset_quietly(stream)
        except Exception as exc:  # the requester went away mid-answer
            log.debug("request stream failed protocol=%s peer=%s: %r", protocol, peer, exc)
            await _reset_quietly(stream)

    return handle


async def _answer(protocol: str, fn: RequestHandler, peer: str, request: bytes) -> bytes:
    try:
        return _OK + await fn(peer, request)
    except P2PError as exc:
        return _ERROR + str(exc).encode()
    except Exception:
        log.error("request handler failed protocol=%s peer=%s", protocol, peer, exc_info=True)
        return _ERROR + b"internal error"


async def request(host: IHost, peer_id: str, protocol: str, data: bytes, timeout: float) -> bytes:
    """Send `data` to the peer on `protocol` and return its response body.

    Raises:
        P2PError: bad or unknown peer, no connection, the peer refused or failed,
            or `timeout` seconds passed (the message says which).
    """
    if len(data) > MAX_REQUEST_BYTES:
        raise P2PError(f"request too large: {len(data)} > {MAX_REQUEST_BYTES} bytes")
    pid = parse_peer_id(peer_id)
    where = f"peer={peer_id} protocol={protocol}"
    connected = bool(host.get_network().get_connections(pid))
    if not connected and not known_addrs(host, pid):
        raise P2PError(f"request failed {where}: unknown peer (no connection, no address)")
    with trio.move_on_after(timeout):
        try:
            stream = await host.new_stream(pid, [TProtocol(protocol)])
        except Exception as exc:  # dial, negotiation or muxer failures, all typed differently
            raise P2PError(f"request failed {where}: cannot open stream: {exc}") from exc
        try:
            await stream.write(data)
            await stream.close()
            reply = await read_to_end(stream, MAX_RESPONSE_BYTES + 1)
        except BaseException:
            await _reset_quietly(stream)
            raise
        if not reply:
            raise P2PError(f"request failed {where}: empty response")
        if reply[:1] != _OK:
            message = reply[1:].decode(errors="replace")
            raise P2PError(f"request failed {where}: remote error: {message}")
        return reply[1:]
    raise P2PError(f"request failed {where}: timed out after {timeout} s")


async def read_to_end(stream: INetStream, limit: int) -> bytes:
    """Read the stream until its end; raises P2PError past `limit` bytes or on a broken stream."""
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = await stream.read(_CHUNK)
        except EOFError:  # StreamEOF: the library's way of saying "done"
            break
        except Exception as exc:  # StreamReset, muxer and connection errors
            raise P2PError(f"stream broken after {size} bytes: {exc!r}") from exc
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise P2PError(f"message too large: more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def known_addrs(host: IHost, pid: ID) -> list[str]:
    """Transport addresses the host's peerstore holds for `pid` (no `/p2p/` part; may be empty)."""
    try:
        addrs = host.get_peerstore().addrs(pid)
    except PeerStoreError:
        return []
    return [str(addr).partition("/p2p/")[0] for addr in addrs]


def known_protocols(host: IHost, pid: ID) -> list[str]:
    """The protocols `pid` announced by identify, as the host's peerstore holds them."""
    try:
        return [str(protocol) for protocol in host.get_peerstore().get_protocols(pid)]
    except PeerStoreError:
        return []


def parse_peer_id(peer_id: str) -> ID:
    """The libp2p `ID` for a base58 peer id; raises P2PError if it is not one."""
    try:
        return _peer_id(peer_id)
    except Exception as exc:  # base58 and multihash errors
        raise P2PError(f"bad peer id {peer_id!r}") from exc


@functools.lru_cache(maxsize=4096)
def _peer_id(peer_id: str) -> ID:
    """Decoded once: every link message names its peer (base58-decoding it was ~3 % of a
    31-validator node's CPU while re-sending to every validator, issue 20)."""
    return ID.from_base58(peer_id)


async def _reset_quietly(stream: INetStream) -> None:
    with trio.CancelScope(shield=True):
        try:
            await stream.reset()
        except Exception:  # already gone; nothing left to release
            log.debug("stream reset failed", exc_info=True)
