"""Gossip topics: validators in front of the library, and a drain behind it.

The library hands each accepted message to a 32-slot queue per topic and drops
messages when it is full. One task per topic empties that queue into our own,
much larger queue as fast as messages come; a second task feeds the caller's
handler from it, one message at a time, so messages of a topic reach the
handler in arrival order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio
from libp2p.abc import ISubscriptionAPI
from libp2p.custom_types import SyncValidatorFn
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

log = logging.getLogger(__name__)

Validator = Callable[[str, bytes], bool]
Handler = Callable[[str, bytes], Awaitable[None]]

QUEUE_SIZE = 4096


def wrap_validator(topic: str, fn: Validator, own_id: ID) -> SyncValidatorFn:
    """Adapt `fn(forwarder, data) -> bool` to the library's validator signature.

    Our own publishes are accepted without asking `fn` (the caller chose to send
    them). A validator that raises rejects the message and logs the error, so a
    bug in it cannot stop gossip for everyone.
    """

    def validate(forwarder: ID, msg: rpc_pb2.Message) -> bool:
        if forwarder == own_id:
            return True
        try:
            ok = fn(forwarder.to_base58(), msg.data)
        except Exception:
            log.error("validator failed topic=%s peer=%s", topic, forwarder, exc_info=True)
            return False
        if not ok:
            log.debug("rejected gossip topic=%s peer=%s size=%d", topic, forwarder, len(msg.data))
        return ok

    return validate


async def drain(topic: str, sub: ISubscriptionAPI, out: trio.MemorySendChannel[rpc_pb2.Message]) -> None:
    """Move every message from the library's subscription queue into `out`, never blocking."""
    dropped = 0
    while True:
        msg = await sub.get()
        try:
            out.send_nowait(msg)
        except trio.WouldBlock:
            dropped += 1
            if dropped == 1 or dropped % 100 == 0:
                log.warning("gossip queue full, dropped topic=%s total_dropped=%d", topic, dropped)


async def deliver(
    topic: str,
    queue: trio.MemoryReceiveChannel[rpc_pb2.Message],
    handlers: dict[str, Handler],
    own_id: ID,
) -> None:
    """Call the topic's handler for each message from another node, in arrival order.

    The handler is looked up per message, so one set after start-up takes effect.
    An exception from the handler propagates (a bug stops the node, by design).
    """
    own = own_id.to_bytes()
    async for msg in queue:
        if msg.from_id == own:
            continue
        handler = handlers.get(topic)
        if handler is None:
            log.debug("no handler, dropped gossip topic=%s", topic)
            continue
        await handler(ID(msg.from_id).to_base58(), msg.data)
