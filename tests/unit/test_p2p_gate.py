"""`GossipGate`: size caps and per-(forwarder, topic) rates in front of the library's checks."""

from __future__ import annotations

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

from ledgerdns.p2p.gossip import GossipGate
from ledgerdns.p2p.limits import GossipLimit

TXS = "/ledgerdns/net/txs/1"
BLOCKS = "/ledgerdns/net/blocks/1"
OTHER = "some/other/topic"
LIMITS = {
    "txs": GossipLimit(max_bytes=1000, rate=10.0, burst=20.0),
    "blocks": GossipLimit(max_bytes=100, rate=1.0, burst=2.0),
}


def new_id() -> ID:
    return ID.from_pubkey(create_new_key_pair().public_key)


def message(topic: str, size: int, n: int = 0) -> rpc_pb2.Message:
    return rpc_pb2.Message(data=n.to_bytes(4, "big") + bytes(max(0, size - 4)), topicIDs=[topic])


class Harness:
    def __init__(self, *, oversize_penalty: int = 25, rate_penalty: int = 1) -> None:
        self.own = new_id()
        self.now = 0.0
        self.penalties: list[tuple[str, int, str]] = []
        self.gate = GossipGate(
            self.own,
            lambda peer, points, reason: self.penalties.append((peer, points, reason)),
            lambda: self.now,
            [TXS, BLOCKS, OTHER],
            LIMITS,
            oversize_penalty=oversize_penalty,
            rate_penalty=rate_penalty,
        )

    def points(self, peer: ID) -> int:
        return sum(points for p, points, _ in self.penalties if p == peer.to_base58())


def test_a_message_over_its_topics_cap_is_refused_and_costs_the_forwarder() -> None:
    h = Harness()
    peer = new_id()
    assert h.gate.check(peer, message(TXS, 1000))  # exactly the cap
    assert not h.gate.check(peer, message(TXS, 1001))
    assert not h.gate.check(peer, message(BLOCKS, 101))  # each topic its own cap
    assert h.gate.check(peer, message(BLOCKS, 100))
    assert h.points(peer) == 50
    assert "1001 bytes" in h.penalties[0][2] and TXS in h.penalties[0][2]
    assert h.gate.oversized == 2


def test_oversized_messages_do_not_use_up_the_rate() -> None:
    h = Harness()
    peer = new_id()
    for _ in range(30):
        h.gate.check(peer, message(TXS, 5000))
    assert all(h.gate.check(peer, message(TXS, 10, n)) for n in range(20))  # the whole burst


def test_a_flood_over_the_rate_is_refused_and_ends_in_a_ban_worth_of_points() -> None:
    h = Harness()
    flooder, honest = new_id(), new_id()
    accepted = 0
    # 1000 messages a second for 2 s against 10/s with a burst of 20
    for i in range(2000):
        h.now = i / 1000
        accepted += h.gate.check(flooder, message(TXS, 10, i))
        if i % 100 == 0:  # another forwarder at its honest 10/s is untouched
            assert h.gate.check(honest, message(TXS, 10, i))
    assert 20 + 10 * 2 - 1 <= accepted <= 20 + 10 * 2 + 1
    assert h.points(flooder) == 2000 - accepted >= 100  # one point per refused message
    assert h.points(honest) == 0
    assert h.gate.over_rate == 2000 - accepted
    assert "over rate" in h.penalties[0][2]


def test_an_honest_burst_within_the_bucket_costs_nothing() -> None:
    h = Harness()
    peer = new_id()
    for second in range(10):
        h.now = float(second * 3)  # a burst of 20 every 3 s: averages under the rate
        assert all(h.gate.check(peer, message(TXS, 10, second * 100 + n)) for n in range(20))
    assert h.penalties == []


def test_topics_are_limited_separately() -> None:
    h = Harness()
    peer = new_id()
    assert [h.gate.check(peer, message(BLOCKS, 10, n)) for n in range(3)] == [True, True, False]
    assert h.gate.check(peer, message(TXS, 10))  # the txs bucket is untouched


def test_our_own_publishes_are_never_limited() -> None:
    h = Harness()
    assert all(h.gate.check(h.own, message(BLOCKS, 10, n)) for n in range(100))
    assert h.gate.check(h.own, message(BLOCKS, 10_000))
    assert h.penalties == []


def test_unknown_topics_get_the_default_limit() -> None:
    h = Harness()
    peer = new_id()
    assert h.gate.limit(OTHER).max_bytes == 1024 * 1024
    assert h.gate.check(peer, message(OTHER, 500_000))


def test_only_our_topics_are_counted() -> None:
    h = Harness()
    peer = new_id()
    junk = [f"junk/{n}" for n in range(1000)]
    msg = rpc_pb2.Message(data=b"x" * 50_000, topicIDs=[BLOCKS, *junk])
    assert not h.gate.check(peer, msg)  # over the blocks cap, whatever else it names
    for n in range(2):
        msg = rpc_pb2.Message(data=b"%d" % n, topicIDs=[*junk, BLOCKS])
        assert h.gate.check(peer, msg)
    assert len(h.gate.limiter) == 1  # no bucket per made-up topic
    assert not h.gate.check(peer, rpc_pb2.Message(data=b"3", topicIDs=[*junk, BLOCKS]))
