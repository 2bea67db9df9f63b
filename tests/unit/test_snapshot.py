"""State snapshots: chunks that verify alone against a certified root, and a restore that matches."""

from __future__ import annotations

import pytest

import chain.snapshot as snapshot
from chain.errors import ConfigError, InvalidUpdate, RejectReason
from chain.ledger import Ledger
from chain.records import Record
from chain.snapshot import (
    Chunk,
    ChunkRequest,
    Manifest,
    ManifestRequest,
    decode_snapshot_request,
    root_from_entries,
    verify_chunk,
    verify_manifest,
)
from chain.snapshot_build import SnapshotSource
from chain.snapshot_restore import StateRestore, is_partial
from chain.store import MemoryStore
from tests.unit.test_ledger import OWNER, finalize, make_genesis, propose
from tools.devchain import next_tx, register_tx, soon


def _chain(names: int, blocks: int = 2) -> Ledger:
    ledger = Ledger(MemoryStore(), make_genesis())
    ledger.initialize()
    for b in range(blocks):
        txs = [
            register_tx(ledger.genesis, OWNER, f"n{b}x{i}.p2p", valid_until=soon(ledger))
            for i in range(len(range(b, names, blocks)))
        ]
        finalize(ledger, propose(ledger, txs))
    rec = (Record.from_text("@ 60 A 10.9.9.9", origin="n0x0.p2p"),)
    upd = next_tx(ledger.genesis, ledger, OWNER, "n0x0.p2p", rec, valid_until=soon(ledger))
    finalize(ledger, propose(ledger, [upd]))
    return ledger


def _snapshot(ledger: Ledger) -> tuple[Manifest, list[Chunk]]:
    source = SnapshotSource.take(ledger)
    assert source is not None
    manifest, chunks = source.build()
    return Manifest.from_bytes(manifest.to_bytes()), [Chunk.from_bytes(c) for c in chunks]


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "CHUNK_LEAVES", 16)


def _restore(ledger: Ledger, manifest: Manifest, chunks: list[Chunk]) -> Ledger:
    joiner = Ledger(MemoryStore(), ledger.genesis)
    joiner.initialize()
    verified = verify_manifest(ledger.params, manifest)
    restore = StateRestore(joiner.store, joiner.params, verified)
    restore.begin()
    assert is_partial(joiner.store)
    for chunk in chunks:
        restore.add(verify_chunk(manifest, chunk))
    assert restore.missing == []
    restore.finish()
    joiner.reload()
    return joiner


@pytest.mark.parametrize("names", [0, 1, 2, 60, 200])
def test_restored_state_is_the_same_state(names: int, small_chunks: None) -> None:
    ledger = _chain(names) if names else _empty_chain()
    manifest, chunks = _snapshot(ledger)
    assert root_from_entries(manifest.entries, manifest.depth) == ledger.head.state_root
    joiner = _restore(ledger, manifest, chunks)
    assert not is_partial(joiner.store)
    assert joiner.head == ledger.head and joiner.base_height == ledger.height
    assert joiner.tree.root() == ledger.head.state_root
    # The store holds exactly the same tree and states: nodes and domains compared key by key.
    for prefix in (b"N", b"D", b"K"):
        with ledger.store.iterate(prefix) as a, joiner.store.iterate(prefix) as b:
            assert list(a) == list(b)
    for state in ledger.domains(limit=1000):
        assert joiner.history(state.domain)[-1] == (state.seq, state.head)


def _empty_chain() -> Ledger:
    ledger = Ledger(MemoryStore(), make_genesis())
    ledger.initialize()
    finalize(ledger, propose(ledger, []))
    return ledger


def test_joiner_follows_the_next_blocks(small_chunks: None) -> None:
    ledger = _chain(60)
    manifest, chunks = _snapshot(ledger)
    joiner = _restore(ledger, manifest, chunks)
    reg = register_tx(ledger.genesis, OWNER, "later.p2p", valid_until=soon(ledger))
    upd = next_tx(
        ledger.genesis, ledger, OWNER, "n1x3.p2p",
        (Record.from_text("@ 60 A 10.1.2.3", origin="n1x3.p2p"),), valid_until=soon(ledger),
    )  # fmt: skip
    block = propose(ledger, [reg, upd])
    finalize(ledger, block)
    finalize(joiner, block)  # checks the state root against the restored tree
    assert joiner.tree.root() == ledger.tree.root()
    assert [s for s, _ in joiner.history("n1x3.p2p")] == [0, 1]


def _tamper(chunk: Chunk, how: str) -> Chunk:
    items = list(chunk.items)
    if how == "drop":
        items.pop()
    elif how == "swap":
        items[0], items[1] = items[1], items[0]
    elif how == "value":
        ident, value = items[0]
        items[0] = (ident, value[:-1] + bytes([value[-1] ^ 1]))
    elif how == "foreign":
        items.append(items[0])
    return Chunk(height=chunk.height, index=chunk.index, items=tuple(items))


@pytest.mark.parametrize("how", ["drop", "swap", "value", "foreign"])
def test_a_bad_chunk_is_caught_alone(how: str, small_chunks: None) -> None:
    ledger = _chain(200)
    manifest, chunks = _snapshot(ledger)
    assert manifest.depth >= 2
    good = [c for c in chunks if len(c.items) >= 2]
    bad = _tamper(good[0], how)
    with pytest.raises(InvalidUpdate) as info:
        verify_chunk(manifest, bad)
    assert info.value.reason == RejectReason.BAD_PROOF
    assert verify_chunk(manifest, good[1]).index == good[1].index  # the others still verify


def test_a_chunk_from_another_place_is_refused(small_chunks: None) -> None:
    ledger = _chain(200)
    manifest, chunks = _snapshot(ledger)
    moved = Chunk(height=manifest.height, index=chunks[1].index, items=chunks[0].items)
    with pytest.raises(InvalidUpdate):
        verify_chunk(manifest, moved)
    with pytest.raises(InvalidUpdate):
        verify_chunk(manifest, Chunk(height=manifest.height - 1, index=0, items=chunks[0].items))


def test_a_manifest_that_lies_is_refused(small_chunks: None) -> None:
    ledger = _chain(60)
    manifest, _ = _snapshot(ledger)
    entries = bytearray(manifest.entries)
    entries[5] ^= 1
    forged = Manifest(
        height=manifest.height, block=manifest.block, certificate=manifest.certificate,
        depth=manifest.depth, entries=bytes(entries), changes=(),
    )  # fmt: skip
    with pytest.raises(InvalidUpdate):
        verify_manifest(ledger.params, forged)
    other = ledger.get_certificate(1).to_bytes()  # a certificate of another height
    with pytest.raises(InvalidUpdate):
        verify_manifest(ledger.params, Manifest(
            height=manifest.height, block=manifest.block, certificate=other,
            depth=manifest.depth, entries=manifest.entries, changes=(),
        ))  # fmt: skip


def test_restore_needs_a_fresh_store() -> None:
    ledger = _chain(4)
    manifest, _ = _snapshot(ledger)
    verified = verify_manifest(ledger.params, manifest)
    with pytest.raises(ConfigError):
        StateRestore(ledger.store, ledger.params, verified).begin()


def test_requests_round_trip() -> None:
    assert decode_snapshot_request(ManifestRequest().to_bytes()) == ManifestRequest()
    request = ChunkRequest(height=7, index=3)
    assert decode_snapshot_request(request.to_bytes()) == request
    with pytest.raises(InvalidUpdate):
        decode_snapshot_request(b"\x83\x01\x02\x03")
