"""The gossip library's per-message state stays bounded (issue 21).

py-libp2p 0.8.1 keeps every message's time per topic (pruned only by adaptive
gossip, which we turn off) and the first whole message per (from, seqno).
`BoundedGossipSub` keeps both bounded; a real router, no host needed.
"""

from __future__ import annotations

import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11
from libp2p.pubsub.pb import rpc_pb2

from ledgerdns.p2p import gossip
from ledgerdns.p2p import host as host_module
from ledgerdns.p2p.host import (
    DELIVERY_HISTORY,
    EQUIVOCATION_ENTRIES,
    BoundedGossipSub,
    build_host,
    build_pubsub,
)

TOPIC = "/ledgerdns/net/txs/1"


def router() -> BoundedGossipSub:
    return BoundedGossipSub(
        protocols=[PROTOCOL_ID_V11, PROTOCOL_ID], degree=3, degree_low=2, degree_high=5,
        adaptive_gossip_enabled=False, spam_protection_enabled=False,
    )  # fmt: skip


def message(seqno: int, data: bytes = b"x" * 1000, topic: str = TOPIC) -> rpc_pb2.Message:
    return rpc_pb2.Message(
        from_id=b"peer", seqno=seqno.to_bytes(8, "big"), data=data, topicIDs=[topic]
    )


def test_the_equivocation_check_keeps_digests_not_messages_and_at_most_its_bound() -> None:
    r = router()
    for n in range(EQUIVOCATION_ENTRIES * 3):
        assert r._check_equivocation(message(n))
    table = r.equivocation_detection
    assert len(table) == EQUIVOCATION_ENTRIES
    assert all(isinstance(v, bytes) and len(v) == 32 for v in table.values())  # type: ignore[arg-type]
    r._periodic_security_cleanup()  # the library's own trim still applies
    assert len(r.equivocation_detection) <= EQUIVOCATION_ENTRIES


def test_the_equivocation_check_still_decides_the_same() -> None:
    r = router()
    assert r._check_equivocation(message(1, b"first"))
    assert r._check_equivocation(message(1, b"first"))  # the same message again
    assert not r._check_equivocation(message(1, b"other"))  # same seqno, other data
    assert not r._check_equivocation(message(1, b"first", topic="/other/1"))  # other topic


def test_delivery_times_are_trimmed_each_heartbeat() -> None:
    r = router()
    for n in range(DELIVERY_HISTORY * 5):
        r.recent_message_deliveries[TOPIC].append(float(n))
    r._periodic_security_cleanup()
    kept = r.recent_message_deliveries[TOPIC]
    assert len(kept) == DELIVERY_HISTORY
    assert kept[-1] == DELIVERY_HISTORY * 5 - 1  # the newest are kept


class _Host:
    """Stands in for an `IHost` as a weak key (the memo keeps one table per host)."""


def test_the_peer_record_memo_is_bounded_per_host() -> None:
    checked: list[bytes] = []

    def original(msg: rpc_pb2.RPC, host: object, peer: object) -> bool:
        checked.append(msg.senderRecord)
        return True

    check = host_module._remembering_record_check(original)  # type: ignore[arg-type]
    host = _Host()
    for n in range(host_module.CONSUMED_RECORDS * 2 + 10):
        assert check(rpc_pb2.RPC(senderRecord=b"r%d" % n), host, n)  # type: ignore[arg-type]
        assert len(host_module._consumed_records[host]) <= host_module.CONSUMED_RECORDS  # type: ignore[index]
    assert check(rpc_pb2.RPC(senderRecord=b"r9"), host, 9) and checked.count(b"r9") == 2  # type: ignore[arg-type]
    last = host_module.CONSUMED_RECORDS * 2 + 9
    assert check(rpc_pb2.RPC(senderRecord=b"r%d" % last), host, last)  # type: ignore[arg-type]
    assert checked.count(b"r%d" % last) == 1  # remembered: not checked again


def test_the_library_caches_we_rely_on_expire_or_are_capped() -> None:
    host = build_host(create_new_key_pair(), ["/ip4/127.0.0.1/tcp/0"])
    pubsub, router = build_pubsub(host, seqno_start=1)
    try:
        assert pubsub.seen_messages.ttl == 120 and pubsub.seen_messages.sweep_interval == 60
        assert pubsub.validation_cache.max_size == 1000
        assert router.mcache.history_size == 5  # heartbeats (1 s each) of messages kept
        assert isinstance(router, BoundedGossipSub)
    finally:
        pubsub.seen_messages.stop()


class _Subscription:
    def __init__(self, n: int) -> None:
        self.left = n

    async def get(self) -> rpc_pb2.Message:
        if not self.left:
            await trio.sleep_forever()
        self.left -= 1
        return message(self.left)


def test_the_gossip_queue_drops_past_its_size() -> None:
    async def main() -> int:
        send, receive = trio.open_memory_channel[rpc_pb2.Message](gossip.QUEUE_SIZE)
        with trio.move_on_after(1):
            await gossip.drain(TOPIC, _Subscription(gossip.QUEUE_SIZE + 100), send)  # type: ignore[arg-type]
        return receive.statistics().current_buffer_used

    assert trio.run(main) == gossip.QUEUE_SIZE


def test_a_mesh_at_its_high_bound_refuses_a_graft_with_a_prune() -> None:
    # Between heartbeats the library took every GRAFT: a follower (high bound 6) was seen
    # holding 12 peers. Now the sixth newcomer to a mesh of high bound 5 is pruned and
    # backed off, while a mesh below the bound still takes one.
    r = router()
    peers = [create_new_key_pair().public_key for _ in range(7)]
    ids = [ID.from_pubkey(k) for k in peers]
    pruned: list[ID] = []

    async def emit_prune(topic: str, to_peer: ID, do_px: bool, is_unsubscribe: bool) -> None:
        pruned.append(to_peer)

    r.emit_prune = emit_prune  # type: ignore[method-assign]
    r.mesh[TOPIC] = set(ids[:4])

    async def graft(peer: ID) -> None:
        await r.handle_graft(rpc_pb2.ControlGraft(topicID=TOPIC), peer)

    trio.run(graft, ids[4])
    assert ids[4] in r.mesh[TOPIC] and pruned == []
    trio.run(graft, ids[5])
    assert ids[5] not in r.mesh[TOPIC] and pruned == [ids[5]] and len(r.mesh[TOPIC]) == 5
    assert r._check_back_off(ids[5], TOPIC)  # it may not come back before the back-off ends
    trio.run(graft, ids[0])  # a peer already in the mesh is not pruned
    assert pruned == [ids[5]]
