"""An equivocator hiding in `Resent`, through a real node's consensus handler (in-process, no network).

The node is a follower of `localnet(4)` with its store in a temporary directory
and its consensus driver running; gossip is left out: the handler is given what
the gossip layer would hand it, the publisher's peer id and the message bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from chain.evidence_store import list_evidence
from chain.quorum import Vote, VoteType
from chain.wire import Resent
from ledgerdns.node.config import NodeConfig, Prepared
from ledgerdns.node.node import Node
from ledgerdns.protocol.offences import EQUIVOCATION_PENALTY
from tools.devchain import dev_key
from tools.make_dev_genesis import localnet

pytestmark = pytest.mark.integration

GENESIS = localnet(4)
EQUIVOCATOR = dev_key("validator", 3)
A, B = b"\xaa" * 32, b"\xbb" * 32


def prevote(block_hash: bytes) -> Vote:
    return Vote.create(
        EQUIVOCATOR, chain_id=GENESIS.chain_id, genesis_hash=GENESIS.hash(),
        vtype=VoteType.PREVOTE, height=1, round_=0, block_hash=block_hash,
    )  # fmt: skip


def resent(vote: Vote, nonce: int) -> bytes:
    return Resent(nonce=nonce, payload=vote.to_bytes()).to_bytes()


@asynccontextmanager
async def follower(data_dir: Path) -> AsyncIterator[Node]:
    prepared = Prepared(genesis=GENESIS, key=None, validator_name=None, created_devnet=False)
    node = Node(NodeConfig(data_dir=data_dir), prepared)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.driver.run)
            yield node
            nursery.cancel_scope.cancel()
    finally:
        node.store.close()


@pytest.mark.trio
async def test_a_peer_resending_both_halves_of_an_equivocation_is_banned(tmp_path: Path) -> None:
    async with follower(tmp_path) as node:
        await node.consensus.on_message("relay-a", resent(prevote(A), 1))  # honest relays: one vote each
        await node.consensus.on_message("byzantine", resent(prevote(A), 2))
        await node.consensus.on_message("relay-b", resent(prevote(B), 3))
        await node.consensus.on_message("relay-a", resent(prevote(A), 4))  # the same vote again
        await node.consensus.on_message("byzantine", resent(prevote(B), 5))

        # The node proved the equivocation (from relay-b's copy already; stored off the loop)...
        with trio.fail_after(5):
            while not list_evidence(node.store):
                await trio.sleep(0.01)
        (evidence,) = list_evidence(node.store)
        assert {evidence.first.block_hash, evidence.second.block_hash} == {A, B}
        # ...and banned the one peer that published both votes, nobody else.
        assert node.p2p.is_banned("byzantine")
        peers = {p.peer_id: p for p in node.peers()}
        assert peers["byzantine"].banned and peers["byzantine"].penalty == EQUIVOCATION_PENALTY
        for relay in ("relay-a", "relay-b"):
            assert node.p2p.penalty(relay) == 0 and not node.p2p.is_banned(relay)
            assert relay not in peers
