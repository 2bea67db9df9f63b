"""Gossip limits: a size cap and a token-bucket rate per (forwarding peer, topic).

Plain bookkeeping, no clock and no sockets: the caller passes `now` (trio's clock,
in seconds). `GossipGate` in `gossip.py` applies these to every message another
peer hands us, before any decoding or signature check.

The defaults below are derived from what an honest ledgerdns message can be and
how fast an honest network produces them (numbers in docs/p2p.md):

- size: ``txs`` 1 MiB (`chain.wire.MAX_BATCH_BYTES`, the batch decoder's bound;
  senders keep batches under 960 KiB); ``consensus`` 1 MiB (a proposal carries a
  whole block, but py-libp2p neither sends nor reads a pubsub RPC frame above
  1 MiB, so no larger consensus message can be gossiped at all; the node's
  proposals stay under ~270 KiB); ``blocks`` 1 MiB (a finalized block with its
  certificate, as the proposal that carried it; a certificate of 256 validators is ~18 KiB).
- rate: the busiest single forwarder sent one node at most 54 msg/s on ``txs``,
  42 msg/s on ``consensus`` and 3 msg/s on ``blocks`` in any one second (at most
  83, 200 and 9 in any 5 s), measured in every node of a 4 + 1 cluster under
  `tools/bench_net.py --quick --visible 200 --load 20000` (20,000 transactions,
  361 tx/s on a loaded machine, 645 tx/s on a quiet one). A forwarder relays
  everyone's messages, so the defaults allow 5-10 times that: 300/s on ``txs``
  and ``consensus``, 30/s on ``blocks``, with a burst of 5 s at that rate (a
  peer that connects is sent the last 3 s of each topic at once). An honest node
  forwards only what it validated, at a few ms of CPU per message (docs/p2p.md),
  so 300/s is about as much as one can relay at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

KIB = 1024
MIB = 1024 * KIB

# py-libp2p 0.8.1 (`pubsub.rpc_queue.DefaultMaxMessageSize`): the largest pubsub RPC
# frame it reads from a peer (a longer length prefix resets the stream before any
# byte of the body is buffered) and the largest it sends (bigger parts are dropped).
MAX_RPC_FRAME_BYTES = 1 * MIB


@dataclass(frozen=True, slots=True)
class GossipLimit:
    """What one forwarding peer may send us on one topic.

    Attributes:
        max_bytes: the largest message (its data, before any decoding).
        rate: messages per second, sustained.
        burst: messages allowed at once on top of an empty history (the bucket size).
    """

    max_bytes: int
    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.rate <= 0 or self.burst < 1:
            raise ValueError(f"gossip limit needs max_bytes >= 1, rate > 0, burst >= 1: {self}")


# Keyed by topic name: the segment before the version in `/ledgerdns/<chain>/<name>/1`.
DEFAULT_TOPIC_LIMITS: Mapping[str, GossipLimit] = {
    "txs": GossipLimit(max_bytes=1 * MIB, rate=300.0, burst=1500.0),
    "consensus": GossipLimit(max_bytes=1 * MIB, rate=300.0, burst=1500.0),
    "blocks": GossipLimit(max_bytes=1 * MIB, rate=30.0, burst=150.0),  # finalized blocks (issue 20)
}
# Any other topic: the frame cap and the largest of the rates above.
DEFAULT_LIMIT = GossipLimit(max_bytes=MAX_RPC_FRAME_BYTES, rate=300.0, burst=1500.0)


def topic_name(topic: str) -> str:
    """`/ledgerdns/<chain>/<name>/<version>` → `<name>`; any other topic string as it is."""
    parts = topic.strip("/").split("/")
    return parts[-2] if len(parts) >= 3 else topic


def limit_for(
    topic: str, limits: Mapping[str, GossipLimit], default: GossipLimit = DEFAULT_LIMIT
) -> GossipLimit:
    """The limit of `topic`: by its full name, else by its `topic_name`, else `default`."""
    found = limits.get(topic)
    if found is None:
        found = limits.get(topic_name(topic), default)
    return found


_EPSILON = 1e-9  # a refill of exactly one token must not come out at 0.9999999


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens a second up to `burst`; each message takes one. Starts full."""

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens at `now`; False (nothing taken) if there are not enough."""
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= cost - _EPSILON:
            self.tokens = max(0.0, self.tokens - cost)
            return True
        return False

    def full_at(self, now: float) -> bool:
        """True if the bucket would be full at `now` (it then carries no history)."""
        return self.tokens + max(0.0, now - self.stamp) * self.rate >= self.burst - _EPSILON


@dataclass(slots=True)
class RateLimiter:
    """One token bucket per (peer, topic), created full on a pair's first message.

    Idle full buckets are dropped by `sweep` (call it every few seconds) so a peer
    churn of fresh identities does not grow the table for ever; `max_entries`
    bounds it in between (the oldest entry goes first: it starts full again).
    """

    max_entries: int = 65_536
    _buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)

    def allow(self, peer: str, topic: str, limit: GossipLimit, now: float) -> bool:
        """Count one message from `peer` on `topic`; False if it is over the rate."""
        key = (peer, topic)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_entries:
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[key] = TokenBucket(limit.rate, limit.burst, stamp=now)
        return bucket.take(now)

    def forget(self, peer: str) -> None:
        """Drop the peer's buckets (say, once it is banned)."""
        for key in [key for key in self._buckets if key[0] == peer]:
            del self._buckets[key]

    def sweep(self, now: float) -> int:
        """Drop buckets that have refilled (they hold no history); returns how many."""
        idle = [key for key, bucket in self._buckets.items() if bucket.full_at(now)]
        for key in idle:
            del self._buckets[key]
        return len(idle)

    def __len__(self) -> int:
        return len(self._buckets)
