"""Gossip limits: the token bucket, the per-(peer, topic) limiter and the default table."""

from __future__ import annotations

import pytest

from chain.crypto import SIGNATURE_SIZE
from chain.quorum import MAX_VALIDATORS, CommitCertificate
from chain.wire import MAX_BATCH_BYTES, CommitNotice, topic
from ledgerdns.p2p.limits import (
    DEFAULT_LIMIT,
    DEFAULT_TOPIC_LIMITS,
    MAX_RPC_FRAME_BYTES,
    GossipLimit,
    RateLimiter,
    TokenBucket,
    limit_for,
    topic_name,
)

LIMIT = GossipLimit(max_bytes=100, rate=10.0, burst=5.0)


def test_bucket_starts_full_then_refills_at_the_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=5.0, stamp=100.0)
    assert all(bucket.take(100.0) for _ in range(5))
    assert not bucket.take(100.0)  # empty: the burst is spent
    assert not bucket.take(100.05)  # half a token back
    assert bucket.take(100.1)  # one token back after 1/rate seconds
    assert not bucket.take(100.1)


def test_bucket_never_holds_more_than_the_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=5.0, stamp=0.0)
    assert bucket.take(1000.0)  # a long quiet spell refills to the burst, not beyond
    assert sum(bucket.take(1000.0) for _ in range(10)) == 4


def test_bucket_sustains_exactly_its_rate() -> None:
    bucket = TokenBucket(rate=50.0, burst=10.0, stamp=0.0)
    # 200 messages a second for 10 s: the burst plus rate x time get through
    passed = sum(bucket.take(i / 200) for i in range(2000))
    assert 50 * 10 <= passed <= 50 * 10 + 10 + 1


def test_bucket_ignores_a_clock_that_goes_back() -> None:
    bucket = TokenBucket(rate=1.0, burst=1.0, stamp=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)  # no refill, no negative refill either
    assert bucket.take(11.0)


def test_bucket_full_at() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0, stamp=0.0)
    assert bucket.full_at(0.0)
    bucket.take(0.0)
    assert not bucket.full_at(0.5)
    assert bucket.full_at(1.0)


def test_limiter_keeps_one_bucket_per_peer_and_topic() -> None:
    limiter = RateLimiter()
    assert all(limiter.allow("p1", "t", LIMIT, 0.0) for _ in range(5))
    assert not limiter.allow("p1", "t", LIMIT, 0.0)
    assert limiter.allow("p1", "other", LIMIT, 0.0)  # another topic: its own bucket
    assert limiter.allow("p2", "t", LIMIT, 0.0)  # another peer: its own bucket
    assert len(limiter) == 3


def test_limiter_forget_and_sweep() -> None:
    limiter = RateLimiter()
    for peer in ("p1", "p2"):
        for _ in range(5):
            limiter.allow(peer, "t", LIMIT, 0.0)
    limiter.allow("p3", "t", LIMIT, 0.4)
    limiter.forget("p1")
    assert len(limiter) == 2
    assert limiter.sweep(0.45) == 0  # p2 is refilling, p3 is 0.05 s in: both hold history
    assert limiter.sweep(0.5) == 2  # p2 full again after burst/rate, p3 after 1/rate
    assert len(limiter) == 0
    # p1 was forgotten: it starts with a full bucket again
    assert all(limiter.allow("p1", "t", LIMIT, 0.0) for _ in range(5))


def test_limiter_table_is_bounded() -> None:
    limiter = RateLimiter(max_entries=3)
    for i in range(10):
        limiter.allow(f"p{i}", "t", LIMIT, 0.0)
    assert len(limiter) == 3


def test_limit_lookup_by_full_topic_then_by_name() -> None:
    exact = GossipLimit(max_bytes=1, rate=1.0, burst=1.0)
    limits = {"txs": DEFAULT_TOPIC_LIMITS["txs"], "/x/y/txs/1": exact}
    assert limit_for("/x/y/txs/1", limits) is exact
    assert limit_for(topic("other-net", "txs"), limits) is DEFAULT_TOPIC_LIMITS["txs"]
    assert limit_for("ledgerdns/test", limits) is DEFAULT_LIMIT
    assert topic_name("/ledgerdns/main/consensus/1") == "consensus"
    assert topic_name("plain") == "plain"


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        GossipLimit(max_bytes=0, rate=1.0, burst=1.0)
    with pytest.raises(ValueError):
        GossipLimit(max_bytes=1, rate=0.0, burst=1.0)


def test_default_caps_admit_every_honest_message() -> None:
    """The caps follow the decoders' own bounds and py-libp2p's frame limit."""
    limits = {
        name: limit_for(topic("net", name), DEFAULT_TOPIC_LIMITS)
        for name in ("txs", "consensus", "blocks")
    }
    assert limits["txs"].max_bytes == MAX_BATCH_BYTES  # TxBatch.from_bytes refuses more
    assert limits["consensus"].max_bytes == MAX_RPC_FRAME_BYTES
    # the largest commit notice: every one of MAX_VALIDATORS validators signed
    cert = CommitCertificate(
        height=2**62,
        round=2**30,
        block_hash=bytes(32),
        signatures=tuple((i, bytes(SIGNATURE_SIZE)) for i in range(MAX_VALIDATORS)),
    )
    notice = CommitNotice(height=2**62, block_hash=bytes(32), certificate=cert).to_bytes()
    assert len(notice) <= limits["blocks"].max_bytes
    assert CommitNotice.from_bytes(notice).height == 2**62  # and the decoder takes it
    for limit in limits.values():
        assert limit.max_bytes <= MAX_RPC_FRAME_BYTES  # nothing above it can arrive anyway
