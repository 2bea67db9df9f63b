"""The state-sync join against peers in memory: a lying peer is caught at its chunk and left."""

from __future__ import annotations

from typing import cast

import pytest
import trio
from trio.testing import MockClock

import chain.snapshot as snapshot
from chain.ledger import Ledger
from chain.snapshot import Chunk, ChunkRequest, decode_snapshot_request
from chain.snapshot_build import SnapshotSource
from chain.store import MemoryStore
from ledgerdns.p2p import P2PService
from ledgerdns.protocol.statesync import IN_FLIGHT_PER_PEER, StateSync, StateSyncFailed
from tests.unit.test_snapshot import _chain


class Peers:
    """Peers answering snapshot requests from one snapshot; `liars` corrupt every chunk."""

    def __init__(self, ledger: Ledger, names: list[str], liars: set[str]) -> None:
        source = SnapshotSource.take(ledger)
        assert source is not None
        manifest, chunks = source.build()
        self.manifest = manifest.to_bytes()
        self.chunks = chunks
        self.names = names
        self.liars = liars
        self.penalties: dict[str, int] = {}
        self.asked: list[tuple[str, int]] = []

    def connected_peers(self) -> list[str]:
        return list(self.names)

    def penalize(self, peer_id: str, points: int, reason: str) -> None:
        self.penalties[peer_id] = self.penalties.get(peer_id, 0) + points

    async def request(
        self, peer_id: str, protocol: str, data: bytes, timeout: float = 10.0
    ) -> bytes:
        await trio.lowlevel.checkpoint()
        request = decode_snapshot_request(data)
        if not isinstance(request, ChunkRequest):
            return self.manifest
        self.asked.append((peer_id, request.index))
        raw = self.chunks[request.index]
        if peer_id not in self.liars:
            return raw
        chunk = Chunk.from_bytes(raw)
        ident, value = chunk.items[0]
        items = ((ident, value[:-1] + bytes([value[-1] ^ 1])), *chunk.items[1:])
        return Chunk(height=chunk.height, index=chunk.index, items=items).to_bytes()


def _join(ledger: Ledger, peers: Peers) -> tuple[Ledger, StateSync, bool]:
    joiner = Ledger(MemoryStore(), ledger.genesis)
    joiner.initialize()
    sync = StateSync(
        genesis=ledger.genesis, ledger=joiner, p2p=cast(P2PService, peers),
        protocol="/test/snapshot/1", wait_s=5,
    )  # fmt: skip
    joined = trio.run(sync.join)
    return joiner, sync, joined


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "CHUNK_LEAVES", 8)


def test_a_lying_peer_is_caught_penalized_and_the_chunks_come_from_another() -> None:
    ledger = _chain(120)
    peers = Peers(ledger, ["peer-a", "peer-b", "peer-c"], liars={"peer-a"})
    joiner, sync, joined = _join(ledger, peers)
    assert joined and joiner.head == ledger.head and joiner.tree.root() == ledger.head.state_root
    assert sync.bad_chunks >= 1 and peers.penalties == {"peer-a": 100 * sync.bad_chunks}
    # Caught at the first of its chunks checked; asked nothing more after that: at most
    # its requests in flight and the answers queued for checking meanwhile.
    asked_liar = len([p for p, _ in peers.asked if p == "peer-a"])
    assert asked_liar <= 3 * IN_FLIGHT_PER_PEER < len(peers.chunks)
    assert {i for p, i in peers.asked if p != "peer-a"} == set(range(len(peers.chunks)))


def test_with_only_liars_the_join_fails_and_says_so() -> None:
    ledger = _chain(40)
    peers = Peers(ledger, ["peer-a", "peer-b"], liars={"peer-a", "peer-b"})
    with pytest.raises(StateSyncFailed, match="could not be fetched from any peer"):
        _join(ledger, peers)


def test_no_snapshot_offered_falls_back_to_block_sync() -> None:
    ledger = _chain(4)
    peers = Peers(ledger, [], liars=set())
    joiner = Ledger(MemoryStore(), ledger.genesis)
    joiner.initialize()
    sync = StateSync(
        genesis=ledger.genesis, ledger=joiner, p2p=cast(P2PService, peers),
        protocol="/test/snapshot/1", wait_s=0.5,
    )  # fmt: skip
    assert trio.run(sync.join, clock=MockClock(autojump_threshold=0)) is False
    assert joiner.height == 0


def test_a_bad_manifest_costs_its_sender() -> None:
    ledger = _chain(4)
    peers = Peers(ledger, ["peer-a"], liars=set())
    peers.manifest = peers.manifest[:-1] + bytes([peers.manifest[-1] ^ 1])
    joiner = Ledger(MemoryStore(), ledger.genesis)
    joiner.initialize()
    sync = StateSync(
        genesis=ledger.genesis, ledger=joiner, p2p=cast(P2PService, peers),
        protocol="/test/snapshot/1", wait_s=0.5,
    )  # fmt: skip
    assert trio.run(sync.join, clock=MockClock(autojump_threshold=0)) is False
    assert peers.penalties["peer-a"] > 0
