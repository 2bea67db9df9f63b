"""The consensus state machine on its own: one validator's reactions to single inputs."""

from __future__ import annotations

import dataclasses

import pytest

from chain.block import Block
from chain.consensus import Step, Tendermint
from chain.consensus_effects import Broadcast, PersistGuard, ScheduleTimeout, TimeoutKind
from chain.consensus_messages import Proposal, SignGuard
from chain.errors import InvalidUpdate, RejectReason
from chain.ledger import Ledger
from chain.quorum import Vote, VoteType
from chain.store import MemoryStore
from chain.tx import Transaction
from tools.devchain import dev_key, register_tx
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)
KEYS = [dev_key("validator", i) for i in range(4)]
NOW = GENESIS.genesis_time_ms + 5000


class App:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def build_proposal(self, height: int, time_ms: int) -> Block:
        return self.ledger.build_block([], time_ms=time_ms, proposer=KEYS[height % 4].public_key)[0]

    def is_valid(self, block: Block) -> bool:
        try:
            self.ledger.check_block(block)
        except InvalidUpdate:
            return False
        return True


def machine(index: int) -> tuple[Tendermint, Ledger]:
    ledger = Ledger(MemoryStore(), GENESIS)
    ledger.initialize()
    m = Tendermint(
        chain_id=GENESIS.chain_id, genesis_hash=GENESIS.hash(), validators=GENESIS.params.validators,
        params=GENESIS.params.consensus, app=App(ledger), key=KEYS[index], guard=SignGuard(), height=1,
    )  # fmt: skip
    return m, ledger


def proposal_with_tx(ledger: Ledger) -> Proposal:
    tx = register_tx(GENESIS, dev_key("owner", 0), "alice.p2p", valid_until=NOW // 1000 + 60)
    proposer = KEYS[1]  # proposer of height 1, round 0
    block, _ = ledger.build_block([tx], time_ms=NOW, proposer=proposer.public_key)
    return Proposal.create(
        proposer, chain_id=GENESIS.chain_id, genesis_hash=GENESIS.hash(), round_=0, block=block,
        pol_round=-1,
    )  # fmt: skip


def test_idle_validator_sends_nothing() -> None:
    m, _ = machine(2)
    assert m.start(NOW) == [] and m.step == Step.WAITING


def test_proposer_proposes_when_transactions_arrive_and_persists_guard_first() -> None:
    m, _ = machine(1)
    effects = m.on_txs_available(NOW)
    assert isinstance(effects[0], PersistGuard) and isinstance(effects[1], Broadcast)
    assert isinstance(effects[1].message, Proposal) and m.guard.height == 1


def test_prevote_for_a_valid_proposal() -> None:
    m, ledger = machine(2)
    proposal = proposal_with_tx(ledger)
    effects = m.on_proposal(proposal, NOW)
    votes = [e.message for e in effects if isinstance(e, Broadcast)]
    assert len(votes) == 1 and isinstance(votes[0], Vote)
    assert votes[0].vtype == VoteType.PREVOTE and votes[0].block_hash == proposal.block.hash


def test_altered_body_is_refused_and_the_genuine_proposal_still_counts() -> None:
    m, ledger = machine(2)
    genuine = proposal_with_tx(ledger)
    tx = genuine.block.txs[0]
    flipped = Transaction(body=tx.body, body_bytes=tx.body_bytes,
                          signature=bytes([tx.signature[0] ^ 1]) + tx.signature[1:])
    relayed = dataclasses.replace(genuine, block=Block(header=genuine.block.header, txs=(flipped,)))
    assert relayed.is_valid_signature(GENESIS.hash())  # the proposer's signature covers only the header hash
    with pytest.raises(InvalidUpdate) as info:
        m.on_proposal(relayed, NOW)
    assert info.value.reason == RejectReason.BAD_TX_ROOT
    votes = [e.message for e in m.on_proposal(genuine, NOW) if isinstance(e, Broadcast)]
    assert [v.block_hash for v in votes if isinstance(v, Vote)] == [genuine.block.hash]


def test_proposal_from_the_wrong_proposer_is_refused() -> None:
    m, ledger = machine(2)
    genuine = proposal_with_tx(ledger)
    wrong = Proposal.create(
        KEYS[3], chain_id=GENESIS.chain_id, genesis_hash=GENESIS.hash(), round_=0,
        block=genuine.block, pol_round=-1,
    )  # fmt: skip
    with pytest.raises(InvalidUpdate) as info:
        m.on_proposal(wrong, NOW)
    assert info.value.reason == RejectReason.BAD_PROPOSER


def test_propose_timeout_prevotes_nil_and_timeouts_grow_with_the_round() -> None:
    m, _ = machine(2)
    effects = m.on_txs_available(NOW)
    timeout = next(e for e in effects if isinstance(e, ScheduleTimeout))
    assert timeout.kind == TimeoutKind.PROPOSE and timeout.delay_ms == GENESIS.params.consensus.timeout_propose_ms
    effects = m.on_timeout(TimeoutKind.PROPOSE, 1, 0, NOW + timeout.delay_ms)
    votes = [e.message for e in effects if isinstance(e, Broadcast)]
    assert isinstance(votes[0], Vote) and votes[0].block_hash == b""
    m._start_round(3, NOW, later := [])  # the round timer formula
    delay = next(e for e in later if isinstance(e, ScheduleTimeout)).delay_ms
    assert delay == GENESIS.params.consensus.timeout_propose_ms + 3 * GENESIS.params.consensus.timeout_delta_ms
