"""Finalized blocks on the ``blocks`` topic (issue 20): a real `Node` (LevelDB in a temporary
directory, host never started) takes a one-block page through its real filter and handler."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from chain.wire import BlocksPage, FinalizedBlock
from ledgerdns.node.config import NodeConfig, Prepared
from ledgerdns.node.node import Node
from tools.devchain import certify, dev_key
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)
KEYS = [dev_key("validator", i) for i in range(4)]
PEER = "12D3KooWJunkSender"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A follower node that never starts its host."""
    prepared = Prepared(genesis=GENESIS, key=None, validator_name=None, created_devnet=False)
    node = Node(NodeConfig(data_dir=tmp_path), prepared)
    try:
        yield node
    finally:
        node.close()


def next_block_page(node: Node, signers: int = 3) -> bytes:
    """The node's next block (empty), certified by `signers` validators, as gossip carries it."""
    ledger = node.driver.ledger
    update, _ = ledger.build_update((), time_ms=GENESIS.genesis_time_ms + 1_000, proposer=KEYS[1].public_key)
    block = update.block
    cert = certify(ledger, block.hash, block.height, KEYS[:signers])
    return BlocksPage((FinalizedBlock(block.to_bytes(), cert.to_bytes()),)).to_bytes()


@pytest.mark.trio
async def test_a_block_that_comes_before_the_machine_runs_waits_for_it(node: Node) -> None:
    """The p2p service starts before the consensus machine: a finalized block gossiped in
    between used to advance a machine with no timers yet, which stopped the node."""
    page = next_block_page(node)
    assert node.notices.validate(PEER, page)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node.notices.on_message, PEER, page)
        await trio.sleep(0.2)
        assert node.driver.ledger.height == 0  # waiting for the machine, not applied, not crashed
        await nursery.start(node.driver.run)
        with trio.fail_after(5):
            while node.driver.ledger.height < 1:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert node.p2p.penalty(PEER) == 0


def test_a_block_without_a_quorum_costs_its_sender(node: Node) -> None:
    async def main() -> tuple[bool, int]:
        return node.notices.validate(PEER, next_block_page(node, signers=2)), node.p2p.penalty(PEER)

    passed, penalty = trio.run(main)
    assert not passed and penalty > 0
