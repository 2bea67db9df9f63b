"""Gossip topics: a gate and validators in front of the library, and a drain behind it.

`GossipGate` sees every message another peer hands us, before the library's
seen-cache, signature check and our validators: a message over its topic's size
cap or over the forwarder's rate on that topic is dropped (not delivered, not
forwarded) and costs the forwarder penalty points.

The library hands each accepted message to a 32-slot queue per topic and drops
messages when it is full. One task per topic empties that queue into our own,
much larger queue as fast as messages come; a second task feeds the caller's
handler from it, one message at a time, so messages of a topic reach the
handler in arrival order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

import trio
from libp2p.abc import ISubscriptionAPI
from libp2p.custom_types import SyncValidatorFn
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

from ledgerdns.p2p.limits import DEFAULT_LIMIT, GossipLimit, RateLimiter, limit_for

log = logging.getLogger(__name__)

Validator = Callable[[str, bytes], bool]
Handler = Callable[[str, bytes], Awaitable[None]]
Penalize = Callable[[str, int, str], None]

QUEUE_SIZE = 4096  # messages per topic between the library's queue and the handler; then dropped


def wrap_validator(
    topic: str, fn: Validator, own_id: ID, rejected: dict[str, int] | None = None
) -> SyncValidatorFn:
    """Adapt `fn(forwarder, data) -> bool` to the library's validator signature.

    Our own publishes are accepted without asking `fn` (the caller chose to send
    them). A validator that raises rejects the message and logs the error, so a
    bug in it cannot stop gossip for everyone. Each rejection adds one to
    ``rejected[topic]``, if given.
    """
    counts: dict[str, int] = {} if rejected is None else rejected

    def validate(forwarder: ID, msg: rpc_pb2.Message) -> bool:
        if forwarder == own_id:
            return True
        try:
            ok = fn(forwarder.to_base58(), msg.data)
        except Exception:
            log.error("validator failed topic=%s peer=%s", topic, forwarder, exc_info=True)
            ok = False
        if not ok:
            counts[topic] = counts.get(topic, 0) + 1
            log.debug("rejected gossip topic=%s peer=%s size=%d", topic, forwarder, len(msg.data))
        return ok

    return validate


class GossipGate:
    """Size cap and per-(forwarder, topic) rate limit on gossip from other peers.

    Applied by `GuardedPubsub.push_msg` ahead of the library's own checks rather
    than as a topic validator: the library caches a validator's verdict per
    message id (the content hash) for 5 minutes, so a message refused because
    *this* forwarder was over its rate would then be refused from every other
    forwarder too. Our own publishes are never limited.

    Only `topics` (the ones we joined) are counted: a message may name any number
    of topic strings, and a bucket per made-up topic would let a peer grow the
    table and push its own buckets out (which refills them).
    """

    def __init__(
        self,
        own_id: ID,
        penalize: Penalize,
        clock: Callable[[], float],
        topics: Iterable[str],
        limits: Mapping[str, GossipLimit],
        default: GossipLimit = DEFAULT_LIMIT,
        *,
        oversize_penalty: int,
        rate_penalty: int,
    ) -> None:
        self._own = own_id
        # The topics we joined, with their limits worked out once (only these are counted).
        self._topic_limits = {topic: limit_for(topic, limits, default) for topic in topics}
        self._penalize = penalize
        self._clock = clock
        self._limits = limits
        self._default = default
        self._oversize_penalty = oversize_penalty
        self._rate_penalty = rate_penalty
        self.limiter = RateLimiter()
        self.oversized = 0  # messages dropped for their size
        self.over_rate = 0  # messages dropped for their forwarder's rate
        self.refused: dict[str, int] = {}  # both, per joined topic

    def limit(self, topic: str) -> GossipLimit:
        """The limit that applies to `topic`."""
        found = self._topic_limits.get(topic)
        return found if found is not None else limit_for(topic, self._limits, self._default)

    def check(self, forwarder: ID, msg: rpc_pb2.Message) -> bool:
        """True to let the message on to the library; False drops it (and penalizes)."""
        if forwarder == self._own:
            return True
        size = len(msg.data)
        limits = self._topic_limits
        topics = [(topic, limits[topic]) for topic in msg.topicIDs if topic in limits]
        peer = forwarder.to_base58()
        for topic, limit in topics:
            if size > limit.max_bytes:
                self.oversized += 1
                self.refused[topic] = self.refused.get(topic, 0) + 1
                self._penalize(
                    peer,
                    self._oversize_penalty,
                    f"gossip message of {size} bytes on {topic} (cap {limit.max_bytes})",
                )
                return False
        now = self._clock()
        for topic, limit in topics:
            if not self.limiter.allow(peer, topic, limit, now):
                self.over_rate += 1
                self.refused[topic] = self.refused.get(topic, 0) + 1
                self._penalize(
                    peer,
                    self._rate_penalty,
                    f"gossip over rate on {topic} ({limit.rate:g}/s, burst {limit.burst:g})",
                )
                return False
        return True


async def drain(
    topic: str, sub: ISubscriptionAPI, out: trio.MemorySendChannel[rpc_pb2.Message]
) -> None:
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
    received: dict[str, int],
) -> None:
    """Call the topic's handler for each message from another node, in arrival order.

    The handler is looked up per message, so one set after start-up takes effect.
    `received[topic]` counts the messages handed over. An exception from the handler
    propagates (a bug stops the node, by design).
    """
    own = own_id.to_bytes()
    async for msg in queue:
        if msg.from_id == own:
            continue
        received[topic] = received.get(topic, 0) + 1
        handler = handlers.get(topic)
        if handler is None:
            log.debug("no handler, dropped gossip topic=%s", topic)
            continue
        await handler(ID(msg.from_id).to_base58(), msg.data)
