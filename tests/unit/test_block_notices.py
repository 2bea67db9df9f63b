"""Finalized blocks on the ``blocks`` topic (issue 20): a real `Node` (LevelDB in a temporary
directory, host never started) takes a one-block page through its real filter and handler."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from chain.block import read_block_frame
from chain.encoding import Kind, frame
from chain.tx import decoded_cached
from chain.wire import BlocksPage, FinalizedBlock
from ledgerdns.node.config import NodeConfig, Prepared
from ledgerdns.node.node import Node
from tools.devchain import certify, dev_key, register_tx
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


def _block_with_txs(node: Node) -> tuple[bytes, list[bytes]]:
    """A certified next block holding three registrations: its page, and its transactions' bytes."""
    ledger = node.driver.ledger
    owner = dev_key("owner", 5)
    valid = GENESIS.genesis_time_ms // 1000 + 3600
    txs = [register_tx(GENESIS, owner, f"memo{i}.p2p", valid_until=valid) for i in range(3)]
    update, _ = ledger.build_update(txs, time_ms=GENESIS.genesis_time_ms + 1_000, proposer=KEYS[1].public_key)
    cert = certify(ledger, update.block.hash, update.block.height, KEYS[:3])
    page = BlocksPage((FinalizedBlock(update.block.to_bytes(), cert.to_bytes()),)).to_bytes()
    ledger.commit(update, cert)  # as a validator does over its links, before the page comes
    return page, [tx.to_bytes() for tx in txs]


@pytest.mark.trio
async def test_a_block_final_here_already_is_passed_on_without_decoding_its_transactions(node: Node) -> None:
    # Issue 21: a validator commits over links before the proposer's page arrives; decoding the
    # page's transactions then filled the decode memo with final ones (~26 MiB per validator).
    page, _ = _block_with_txs(node)
    before = decoded_cached()
    assert node.notices.validate(PEER, page)  # still passed on: others may need it
    await node.notices.on_message(PEER, page)
    assert decoded_cached() == before and node.p2p.penalty(PEER) == 0


def test_a_page_whose_body_is_not_its_headers_costs_its_sender(node: Node) -> None:
    page, raw = _block_with_txs(node)
    item = BlocksPage.from_bytes(page).blocks[0]
    header, _ = read_block_frame(item.block)
    swapped = frame(Kind.BLOCK, header.to_bytes(), list(reversed(raw)))  # same header, other order
    forged = BlocksPage((FinalizedBlock(swapped, item.certificate),)).to_bytes()

    async def main() -> tuple[bool, int]:
        return node.notices.validate(PEER, forged), node.p2p.penalty(PEER)

    passed, penalty = trio.run(main)
    assert not passed and penalty > 0
