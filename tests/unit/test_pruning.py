"""Pruning: old blocks go, the state, proofs, snapshots and new blocks stay right."""

from __future__ import annotations

import pytest

from chain.errors import NotFound
from chain.pruning import prune
from chain.records import Record
from chain.snapshot_build import SnapshotSource
from ledgerdns.p2p import P2PError
from ledgerdns.protocol.sync import SyncServer
from tests.unit.test_ledger import OWNER, finalize, propose
from tests.unit.test_snapshot import _chain
from tools.devchain import next_tx, soon


def test_pruned_blocks_are_gone_and_the_rest_still_works() -> None:
    ledger = _chain(12, blocks=6)  # 7 blocks: six of registrations, one update
    head = ledger.height
    old = ledger.get_block(2)
    assert prune(ledger, head - 1, max_blocks=100) == head - 1
    assert ledger.base_height == head - 1
    with pytest.raises(NotFound, match="keeps blocks from height"):
        ledger.get_block(2)
    with pytest.raises(NotFound):
        ledger.get_tx(old.txs[0].txid)
    assert ledger.get_block(head).height == head  # kept: the last blocks and their certificates
    proof = ledger.prove_domain("n0x0.p2p")
    assert proof.verify(ledger.params) is not None  # proofs still served
    source = SnapshotSource.take(ledger)  # and snapshots
    assert source is not None and source.build()[0].height == head
    # History starts at the base; the head comes from the state.
    assert [s for s, _ in ledger.history("n0x0.p2p")] == [1]
    upd = next_tx(
        ledger.genesis, ledger, OWNER, "n0x0.p2p",
        (Record.from_text("@ 60 A 10.7.7.7", origin="n0x0.p2p"),), valid_until=soon(ledger),
    )  # fmt: skip
    finalize(ledger, propose(ledger, [upd]))
    assert [s for s, _ in ledger.history("n0x0.p2p")] == [1, 2]


def test_pruning_is_bounded_and_keeps_the_head() -> None:
    ledger = _chain(6, blocks=3)
    assert prune(ledger, 10_000, max_blocks=1) == 2
    assert prune(ledger, 10_000, max_blocks=100) == ledger.height
    ledger.get_block(ledger.height)


def test_a_pruned_node_refuses_old_blocks_to_peers() -> None:
    ledger = _chain(6, blocks=3)
    server = SyncServer(ledger.genesis, ledger)
    assert len(server.page(1, 10).blocks) == ledger.height
    prune(ledger, ledger.height, max_blocks=100)
    with pytest.raises(P2PError, match="pruned: this node keeps blocks from height"):
        server.page(1, 10)
    assert [b.decode()[0].height for b in server.page(ledger.height, 10).blocks] == [ledger.height]
