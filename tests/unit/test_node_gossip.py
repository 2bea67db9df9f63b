"""The node's gossip filters drop and blame what no honest peer sends (issue 13, defect 2).

A real `Node` (LevelDB in a temporary directory, a libp2p host that never
starts) and its real `TxGossip.validate` and `ConsensusGossip.validate`, as the gossip
library calls them; penalties are read back from the node's own peer scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cbor2
import pytest
import trio
import trio.testing

from chain.block import Block, BlockHeader, tx_root
from chain.consensus import ROUND_WINDOW
from chain.consensus_messages import Proposal
from chain.crypto import PrivateKey
from chain.encoding import encode
from chain.errors import DEFAULT_PENALTY, InvalidUpdate, RejectReason
from chain.quorum import Vote, VoteType
from chain.records import Record, RType
from chain.tx import ZERO_HASH, Op, Transaction, TxBody
from chain.wire import Resent, TxBatch
from ledgerdns.clock import ManualClock
from ledgerdns.node.config import NodeConfig, Prepared
from ledgerdns.node.node import Node
from ledgerdns.protocol.offences import BAD_MESSAGE_PENALTY
from ledgerdns.protocol.txgossip import EXPIRY_SWEEP_S
from tools.devchain import dev_key
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)
PARAMS = GENESIS.params
KEYS = [dev_key("validator", i) for i in range(4)]
PEER = "12D3KooWJunkSender"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    prepared = Prepared(genesis=GENESIS, key=None, validator_name=None, created_devnet=False)
    node = Node(NodeConfig(data_dir=tmp_path), prepared)
    try:
        yield node
    finally:
        node.close()


def gossip(node: Node, check: Callable[[str, bytes], bool], data: bytes) -> tuple[bool, int]:
    """A gossip filter's verdict on `data` from PEER, and PEER's penalty after it.

    Run on the trio loop, where the gossip library runs it (peer scores read its clock).
    """

    async def main() -> tuple[bool, int]:
        return check(PEER, data), node.p2p.penalty(PEER)

    return trio.run(main)


def register(name: str, records: tuple[Record, ...] = (), **changes: object) -> Transaction:
    key = PrivateKey.generate(f"gossip owner {name}".encode())
    fields: dict[str, object] = {
        "chain_id": PARAMS.chain_id, "domain": name, "seq": 0, "prev": ZERO_HASH, "op": Op.REGISTER,
        "records": records, "owner": key.public_key, "valid_until": int(time.time()) + 600,
    }  # fmt: skip
    fields.update(changes)
    return Transaction.sign(TxBody(**fields), key, GENESIS.hash())  # type: ignore[arg-type]


def a_records(n: int) -> tuple[Record, ...]:
    return tuple(
        Record(name="@", rtype=RType.A, ttl=0, rdata=bytes([10, 0, i // 256, i % 256]))
        for i in range(n)
    )


JUNK: dict[str, Callable[[], Transaction]] = {
    # The measured junk: 1,024 records a transaction, far over the genesis 64.
    "1024-records": lambda: register("junk.p2p", a_records(1024)),
    "65-records": lambda: register("junk.p2p", a_records(65)),
    "records-too-large": lambda: register(
        "junk.p2p",
        tuple(
            Record(name=f"t{i:02}", rtype=RType.TXT, ttl=0, rdata=b"\xff" + b"x" * 255)
            for i in range(40)
        ),
    ),
    "bad-name": lambda: register("not a name.p2p"),
    "not-under-a-tld": lambda: register("junk.com"),
    "registration-signed-by-another": lambda: Transaction.sign(
        register("junk.p2p").body, dev_key("owner", 999), GENESIS.hash()
    ),
}


@pytest.mark.parametrize("junk", list(JUNK))
def test_a_batch_holding_a_tx_that_can_never_be_valid_is_dropped_and_its_sender_penalized(
    node: Node, junk: str
) -> None:
    good = register("good.p2p")
    batch = TxBatch((good, JUNK[junk]())).to_bytes()
    assert gossip(node, node.txs.validate, batch) == (False, DEFAULT_PENALTY)  # not forwarded
    assert len(node.mempool) == 0  # checked whole before anything is admitted


def test_a_resent_junk_batch_is_dropped_too(node: Node) -> None:
    batch = TxBatch((JUNK["1024-records"](),)).to_bytes()
    resent = Resent(nonce=1, payload=batch).to_bytes()
    assert gossip(node, node.txs.validate, resent) == (False, DEFAULT_PENALTY)


def test_state_and_clock_rejections_are_forwarded_unpenalized(node: Node) -> None:
    good = register("good.p2p")
    taken = register("ledgerdns.p2p")  # a genesis name: NAME_TAKEN
    expired = register("late.p2p", valid_until=int(time.time()) - 60)  # TX_EXPIRED by our clock
    too_far = register("early.p2p", valid_until=int(time.time()) + 10 * 86400)  # TX_TOO_FAR
    batch = TxBatch((good, taken, expired, too_far)).to_bytes()
    assert gossip(node, node.txs.validate, batch) == (True, 0)
    assert node.mempool.snapshot() == [good]
    again = Resent(nonce=2, payload=TxBatch((good,)).to_bytes()).to_bytes()  # DUPLICATE now
    assert gossip(node, node.txs.validate, again) == (True, 0)


def test_admission_and_expiry_follow_the_node_clock(tmp_path: Path) -> None:
    clock = ManualClock(GENESIS.genesis_time_ms + 60_000)  # years behind the real clock
    prepared = Prepared(genesis=GENESIS, key=None, validator_name=None, created_devnet=False)
    node = Node(NodeConfig(data_dir=tmp_path), prepared, clock)
    try:
        then = clock.now_s()
        with pytest.raises(InvalidUpdate) as refused:
            node.txs.admit(register("now.p2p"))  # valid for 600 s from the real now
        assert refused.value.reason == RejectReason.TX_TOO_FAR  # by the node's clock
        on_time = register("then.p2p", valid_until=then + 600)
        node.txs.admit(on_time)
        assert node.mempool.snapshot() == [on_time]
        clock.advance_ms(601_000)
        trio.run(sweep_once, node, clock=trio.testing.MockClock(autojump_threshold=0))
        assert len(node.mempool) == 0  # expired by the node's clock, not the real one
    finally:
        node.close()


async def sweep_once(node: Node) -> None:
    with trio.move_on_after(EXPIRY_SWEEP_S + 1):
        await node.txs.sweep_expired()


def proposal_bytes(key_index: int, tx_items: list[bytes]) -> bytes:
    """A round-0 proposal for height 1 signed by validator `key_index`, carrying `tx_items`."""
    header = BlockHeader(
        chain_id=PARAMS.chain_id, height=1, prev_block=b"\x02" * 32, time_ms=5,
        proposer=KEYS[key_index].public_key, tx_root=tx_root([]), state_root=b"\x03" * 32,
        validators_hash=PARAMS.validators.hash(),
        next_validators_hash=PARAMS.validators.hash(),
    )  # fmt: skip
    block = Block(header=header, txs=())
    proposal = Proposal.create(
        KEYS[key_index], chain_id=PARAMS.chain_id, genesis_hash=GENESIS.hash(), round_=0,
        block=block, pol_round=-1,
    )  # fmt: skip
    wire = cbor2.loads(proposal.to_bytes())
    block_wire = cbor2.loads(block.to_bytes())
    block_wire[-1] = tx_items
    wire[wire.index(block.to_bytes())] = encode(block_wire)
    return encode(wire)


@pytest.mark.parametrize("body", ["valid", "junk"])
def test_a_proposal_from_a_non_proposer_is_refused_and_its_sender_penalized(
    node: Node, body: str
) -> None:
    assert PARAMS.validators.proposer(1, 0) == KEYS[1].public_key
    tx = register("good.p2p").to_bytes() if body == "valid" else encode(["not", "a", "tx"])
    data = proposal_bytes(2, [tx])  # validator 2 does not lead height 1, round 0
    assert gossip(node, node.consensus.validate, data) == (False, BAD_MESSAGE_PENALTY)
    assert data not in node.consensus._decoded


def test_the_rounds_proposer_is_forwarded(node: Node) -> None:
    data = proposal_bytes(1, [register("good.p2p").to_bytes()])
    assert gossip(node, node.consensus.validate, data) == (True, 0)


# -- issue 13, defect 3: a flood of far-ahead consensus messages is not passed on --


def vote_at(height: int, round_: int, signer: int = 3) -> bytes:
    return Vote.create(
        KEYS[signer], chain_id=PARAMS.chain_id, genesis_hash=GENESIS.hash(), vtype=VoteType.PREVOTE,
        height=height, round_=round_, block_hash=b"",
    ).to_bytes()  # fmt: skip


def test_votes_far_past_the_round_window_are_not_forwarded_nor_blamed(node: Node) -> None:
    assert gossip(node, node.consensus.validate, vote_at(1, 0)) == (True, 0)
    assert gossip(node, node.consensus.validate, vote_at(1, ROUND_WINDOW)) == (True, 0)
    for round_ in (ROUND_WINDOW + 1, 1000, 2**31 - 1):
        assert gossip(node, node.consensus.validate, vote_at(1, round_)) == (False, 0)
    # the next height: early rounds only; two heights ahead: never
    assert gossip(node, node.consensus.validate, vote_at(2, 0)) == (True, 0)
    assert gossip(node, node.consensus.validate, vote_at(2, ROUND_WINDOW + 1)) == (False, 0)
    assert gossip(node, node.consensus.validate, vote_at(3, 0)) == (False, 0)
