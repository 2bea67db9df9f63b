"""Every per-transaction and per-message table of a real node stays within its bound (issue 21).

A real `Node` (LevelDB in a temporary directory, a libp2p host that never
starts), filled past each bound through its own entry points.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from chain import tx as tx_module
from chain.block import Block, BlockHeader, tx_root
from chain.consensus import ROUND_WINDOW
from chain.quorum import CommitCertificate
from ledgerdns.consensus import driver as driver_module
from ledgerdns.node.config import NodeConfig, Prepared
from ledgerdns.node.node import Node
from ledgerdns.protocol import consensus_gossip, txgossip
from tests.unit.test_node_gossip import GENESIS, KEYS, PARAMS, gossip, register, vote_at


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    prepared = Prepared(genesis=GENESIS, key=None, validator_name=None, created_devnet=False)
    node = Node(NodeConfig(data_dir=tmp_path), prepared)
    try:
        yield node
    finally:
        node.close()


def run(fn: object, *args: object) -> object:
    return trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def block_with(txs: tuple[object, ...], height: int = 1, prev: bytes = b"\x02" * 32) -> Block:
    header = BlockHeader(
        chain_id=PARAMS.chain_id, height=height, prev_block=prev, time_ms=GENESIS.genesis_time_ms + 1,
        proposer=KEYS[1].public_key, tx_root=tx_root(txs), state_root=b"\x03" * 32,  # type: ignore[arg-type]
        validators_hash=PARAMS.validators.hash(),
        next_validators_hash=PARAMS.validators.hash(),
    )  # fmt: skip
    return Block(header=header, txs=txs)  # type: ignore[arg-type]


# -- Commits: waiters of transactions that never become final --


def test_waiters_that_give_up_leave_nothing_behind(node: Node) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(200):  # 200 RPC calls with ?wait= for transactions never final
                nursery.start_soon(node.wait_finalized, bytes([i % 256]) * 32, 1 + i % 3)
            await trio.sleep(0.5)
            assert node.commits.waiting() == 200
        assert node.commits.waiting() == 0

    run(main)


def test_a_waiter_giving_up_keeps_the_others_on_the_same_transaction(node: Node) -> None:
    tx = register("wait.p2p")
    results: dict[str, object] = {}

    async def wait(name: str, timeout: float) -> None:
        results[name] = await node.wait_finalized(tx.txid, timeout)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait, "patient", 10.0)
            nursery.start_soon(wait, "hasty", 1.0)
            await trio.sleep(2)
            assert results == {"hasty": None} and node.commits.waiting() == 1
            # The block is "stored": the ledger now finds the txid, the waiter wakes.
            node.ledger.get_tx = lambda txid: (tx, 1, 0)  # type: ignore[method-assign]
            certificate = CommitCertificate(
                height=1, round=0, block_hash=b"\x01" * 32, signatures=()
            )
            await node.commits.committed(block_with((tx,)), certificate, False)
        assert results["patient"] == (1, 0)
        assert tx.to_bytes() not in tx_module._decoded  # final: out of the decode memo
        assert node.commits.waiting() == 0

    run(main)


# -- ConsensusGossip: the filter's decodes kept for the handler --


def test_refused_consensus_messages_leave_no_decode_behind(node: Node) -> None:
    for r in range(ROUND_WINDOW + 1, ROUND_WINDOW + 300):  # valid, but too far ahead to pass on
        assert gossip(node, node.consensus.validate, vote_at(1, r)) == (False, 0)
    assert node.consensus.decoded_cached() == (0, 0)


def test_passed_decodes_are_bounded_in_entries_and_bytes(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    passed = [vote_at(h, r, s) for h in (1, 2) for r in range(ROUND_WINDOW + 1) for s in range(4)]
    monkeypatch.setattr(consensus_gossip, "DECODED_CACHE", 5)
    for data in passed:
        assert gossip(node, node.consensus.validate, data) == (True, 0)
        entries, size = node.consensus.decoded_cached()
        assert entries <= 5 and size == sum(len(d) for d in node.consensus._decoded)
    assert node.consensus.decoded_cached()[0] == 5
    monkeypatch.setattr(consensus_gossip, "DECODED_CACHE_BYTES", 3 * len(passed[0]))
    assert gossip(node, node.consensus.validate, vote_at(2, 0, 0)) == (True, 0)  # seen: kept
    node.consensus._keep_decoded(vote_at(1, 0, 0) + b"", node.consensus._decode(vote_at(1, 0, 0)))
    assert node.consensus.decoded_cached()[1] <= 3 * len(passed[0])


def test_peers_remembered_as_publishers_are_bounded(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consensus_gossip, "PEER_VALIDATORS", 8)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.driver.run)
            # Distinct votes: a copy of one already taken is dropped before its publisher is noted.
            votes = [vote_at(1, r, s) for r in range(ROUND_WINDOW + 1) for s in range(4)]
            for i, data in enumerate(votes):
                await node.consensus.on_message(f"12D3KooWPeer{i}", data)
            nursery.cancel_scope.cancel()

    run(main)
    assert len(node.consensus.peer_validator) == 8
    assert "12D3KooWPeer11" in node.consensus.peer_validator  # the newest are kept
    assert len(node.driver.last_seen) == len(PARAMS.validators.keys)  # one per validator


# -- LedgerApp: blocks judged at the current height --


def test_blocks_judged_at_one_height_are_bounded(node: Node) -> None:
    app = node.driver.app
    for i in range(driver_module.CHECKED_BLOCKS * 4):
        block = block_with((), prev=i.to_bytes(32, "big"))  # never the head: always a fault
        assert app.block_fault(block) is not None
    assert len(app.faults) == driver_module.CHECKED_BLOCKS
    assert len(app.checked) == 0
    newest = block_with((), prev=(driver_module.CHECKED_BLOCKS * 4 - 1).to_bytes(32, "big"))
    assert newest.hash in app.faults  # the newest verdicts are kept


# -- TxGossip: local submissions remembered for re-sending --


def test_local_submissions_kept_for_resending_are_bounded(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(txgossip, "TX_BATCH_MAX", 4)
    published: list[bytes] = []

    async def publish(topic: str, data: bytes) -> None:
        published.append(data)

    async def nothing() -> None:
        pass

    monkeypatch.setattr(node.p2p, "publish", publish)
    monkeypatch.setattr(node.txs, "_txs_available", nothing)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node.txs.run_outbox)
            for i in range(30):
                await node.txs.submit(register(f"sent{i}.p2p"))
                await trio.sleep(0.1)
                assert len(node.txs._sent) <= 4
            nursery.cancel_scope.cancel()

    run(main)
    assert len(published) >= 8 and len(node.txs._sent) == 4
