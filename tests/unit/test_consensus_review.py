"""The consensus machine against the faults of the issue-13 review: restarts, floods, old blocks.

Each test drives the real `Tendermint` with real keys and a real `Ledger`
(on a `MemoryStore`); the small network below delivers every broadcast to
every machine and fires timers in time order, so a halted chain shows up as
"no decision after many simulated seconds".
"""

from __future__ import annotations

import dataclasses
import heapq
import os
from itertools import count

from chain.block import Block
from chain.consensus import MAX_BLOCK_AGE_MS, ROUND_WINDOW, Tendermint
from chain.consensus_effects import (
    Broadcast,
    Decide,
    Effect,
    EvidenceFound,
    PersistLock,
    ScheduleTimeout,
)
from chain.consensus_lock import LockRecord
from chain.consensus_messages import Proposal, SignGuard, SignStep
from chain.consensus_votes import MAX_CONFLICTING_PER_SLOT
from chain.errors import InvalidUpdate, RejectReason
from chain.ledger import Ledger
from chain.quorum import Vote, VoteType
from chain.store import MemoryStore
from tools.devchain import dev_key
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)
GENESIS_HASH = GENESIS.hash()
CHAIN = GENESIS.chain_id
KEYS = [dev_key("validator", i) for i in range(4)]
NOW = GENESIS.genesis_time_ms + 5000


class App:
    def __init__(self, ledger: Ledger, index: int) -> None:
        self.ledger = ledger
        self.key = KEYS[index]

    def build_proposal(self, height: int, time_ms: int) -> Block:
        return self.ledger.build_block([], time_ms=time_ms, proposer=self.key.public_key)[0]

    def is_valid(self, block: Block) -> bool:
        try:
            self.ledger.check_block(block)
        except InvalidUpdate:
            return False
        return True


def machine(index: int, guard: SignGuard | None = None, lock: LockRecord | None = None) -> Tendermint:
    ledger = Ledger(MemoryStore(), GENESIS)
    ledger.initialize()
    return Tendermint(
        chain_id=CHAIN, genesis_hash=GENESIS_HASH, validators=GENESIS.params.validators,
        params=GENESIS.params.consensus, app=App(ledger, index), key=KEYS[index],
        guard=guard or SignGuard(), height=1, lock=lock,
    )  # fmt: skip


def vote(index: int, vtype: VoteType, round_: int, block_hash: bytes, height: int = 1) -> Vote:
    return Vote.create(
        KEYS[index], chain_id=CHAIN, genesis_hash=GENESIS_HASH, vtype=vtype, height=height,
        round_=round_, block_hash=block_hash,
    )  # fmt: skip


def proposal(index: int, round_: int, block: Block, pol_round: int = -1) -> Proposal:
    return Proposal.create(
        KEYS[index], chain_id=CHAIN, genesis_hash=GENESIS_HASH, round_=round_, block=block,
        pol_round=pol_round,
    )  # fmt: skip


def empty_block(time_ms: int, proposer: int) -> Block:
    ledger = Ledger(MemoryStore(), GENESIS)
    ledger.initialize()
    return ledger.build_block([], time_ms=time_ms, proposer=KEYS[proposer].public_key)[0]


def run(machines: list[Tendermint], start: list[list[Effect]], *, limit_ms: int = 600_000) -> dict[int, Block]:
    """Deliver everything to everyone, fire timers in order; the blocks decided, by validator."""
    decided: dict[int, Block] = {}
    clock = NOW
    timers: list[tuple[int, int, int, ScheduleTimeout]] = []
    order = count()
    pending: list[tuple[int, list[Effect]]] = list(enumerate(start))
    while len(decided) < len(machines):
        while pending:
            source, effects = pending.pop(0)
            for effect in effects:
                if isinstance(effect, Broadcast):
                    for i, m in enumerate(machines):
                        if i == source:
                            continue
                        message = effect.message
                        out = m.on_proposal(message, clock) if isinstance(message, Proposal) else m.on_vote(message, clock)
                        pending.append((i, out))
                elif isinstance(effect, ScheduleTimeout):
                    heapq.heappush(timers, (clock + effect.delay_ms, next(order), source, effect))
                elif isinstance(effect, Decide):
                    decided.setdefault(source, effect.block)
        if not timers or timers[0][0] - NOW > limit_ms:
            break
        clock, _, target, timeout = heapq.heappop(timers)
        pending.append(
            (target, machines[target].on_timeout(timeout.kind, timeout.height, timeout.round, clock))
        )
    return decided


# -- defect 1: a quorum restarted mid-height --


def restarted(guards: dict[int, SignGuard]) -> list[Tendermint]:
    return [machine(i, guards.get(i)) for i in range(4)]


def test_all_validators_restarted_at_round_one_finish_the_height() -> None:
    # Every validator prevoted nil at round 1 of height 1, then all restarted together.
    guards = {i: SignGuard(1, 1, int(SignStep.PREVOTE), b"") for i in range(4)}
    machines = restarted(guards)
    assert {m.round for m in machines} == {2}  # after the last round signed in
    decided = run(machines, [m.on_txs_available(NOW) for m in machines])
    assert len(decided) == 4 and len({b.hash for b in decided.values()}) == 1


def test_n_minus_f_restarted_at_round_one_finish_the_height() -> None:
    guards = {i: SignGuard(1, 1, int(SignStep.PRECOMMIT), b"") for i in range(3)}
    machines = restarted(guards)  # validator 3 kept running at round 0
    decided = run(machines, [m.on_txs_available(NOW) for m in machines])
    assert len(decided) == 4


def test_a_refused_proposal_still_schedules_the_propose_timeout() -> None:
    # The guard already holds a different proposal for (1, 0): the proposer must not sit
    # in the round forever waiting for a proposal it may not sign.
    m = machine(1, SignGuard(1, 0, int(SignStep.PROPOSAL), b"\x07" * 32))
    effects: list[Effect] = []
    m._start_round(0, NOW, effects)
    assert not any(isinstance(e, Broadcast) for e in effects)
    assert any(isinstance(e, ScheduleTimeout) and e.round == 0 for e in effects)


def test_a_restarted_validator_re_proposes_the_block_it_locked_on() -> None:
    block = empty_block(NOW, proposer=1)
    locked = proposal(1, 0, block)
    polka = tuple(vote(i, VoteType.PREVOTE, 0, block.hash) for i in range(3))
    record = LockRecord(proposal=locked, prevotes=polka)
    guard = SignGuard(1, 0, int(SignStep.PRECOMMIT), block.hash, 0, block.hash)
    m = machine(2, guard, LockRecord.from_bytes(record.to_bytes()))  # validator 2 leads (1, 1)
    assert (m.round, m.locked_round, m.valid_round) == (1, 0, 0)
    sent = [e.message for e in m.on_txs_available(NOW) if isinstance(e, Broadcast)]
    again = sent[0]
    assert isinstance(again, Proposal) and again.block.hash == block.hash and again.pol_round == 0


def test_the_locking_precommit_is_preceded_by_its_lock_record() -> None:
    m = machine(2)
    block = empty_block(NOW, proposer=1)
    effects = m.on_proposal(proposal(1, 0, block), NOW)
    for i in (0, 1, 3):
        effects += m.on_vote(vote(i, VoteType.PREVOTE, 0, block.hash), NOW)
    kinds = [type(e).__name__ for e in effects]
    lock_at = kinds.index("PersistLock")
    precommit_at = next(
        i for i, e in enumerate(effects)
        if isinstance(e, Broadcast) and isinstance(e.message, Vote) and e.message.vtype == VoteType.PRECOMMIT
    )  # fmt: skip
    assert lock_at < precommit_at
    record = next(e.record for e in effects if isinstance(e, PersistLock))
    assert record.proposal.block.hash == block.hash and len(record.prevotes) >= GENESIS.params.validators.quorum


# -- defect 3: one Byzantine validator's floods stay bounded --


def test_future_round_votes_are_not_kept_but_f_plus_1_still_move_the_round() -> None:
    m = machine(0)
    m.on_txs_available(NOW)
    for r in list(range(ROUND_WINDOW + 1, 2000)) + [2**31 - 1]:
        m.on_vote(vote(3, VoteType.PREVOTE, r, b""), NOW)
    kept = sum(len(slot) for slot in m.votes.values())
    assert kept <= 2 * (ROUND_WINDOW + 1) * 4 and m.round == 0  # one validator moves nobody
    m.on_vote(vote(2, VoteType.PREVOTE, 1500, b""), NOW)  # f+1 = 2 validators are ahead
    assert m.round == 1500


def test_proposals_for_rounds_the_signer_does_not_lead_are_not_buffered() -> None:
    m = machine(0)
    block = empty_block(NOW, proposer=3)
    for r in range(50):
        # height 2 round r is led by validator (2 + r) % 4; validator 3 signs them all
        m.on_proposal(Proposal.create(
            KEYS[3], chain_id=CHAIN, genesis_hash=GENESIS_HASH, round_=r,
            block=Block(header=dataclasses.replace(block.header, height=2), txs=()),
            pol_round=-1,
        ), NOW)  # fmt: skip
    assert len(m._future) <= 1  # only (2, 1), which validator 3 leads, within the window


def test_fresh_hash_equivocations_leave_one_piece_of_evidence() -> None:
    m = machine(0)
    found: list[Effect] = []
    for _ in range(500):
        found += m.on_vote(vote(3, VoteType.PREVOTE, 0, os.urandom(32)), NOW)
    evidence = [e for e in found if isinstance(e, EvidenceFound)]
    assert len(evidence) == 1 and len(m.evidence) == 1
    extra = m._conflicting[(0, VoteType.PREVOTE)][3]
    assert len(extra) <= MAX_CONFLICTING_PER_SLOT


def test_next_height_votes_are_kept_once_per_slot() -> None:
    m = machine(0)
    for _ in range(100):
        m.on_vote(vote(3, VoteType.PREVOTE, 0, os.urandom(32), height=2), NOW)
    assert len(m._future) == 1


# -- defect 4: block time has a lower bound --


def test_a_fresh_block_dated_far_in_the_past_gets_a_nil_prevote() -> None:
    m = machine(2)
    old = empty_block(GENESIS.genesis_time_ms + 1, proposer=1)
    arrival = old.header.time_ms + MAX_BLOCK_AGE_MS + 1
    sent = [e.message for e in m.on_proposal(proposal(1, 0, old), arrival) if isinstance(e, Broadcast)]
    assert [v.block_hash for v in sent if isinstance(v, Vote)] == [b""]


def test_a_recent_block_is_prevoted() -> None:
    m = machine(2)
    block = empty_block(NOW, proposer=1)
    sent = [e.message for e in m.on_proposal(proposal(1, 0, block), NOW + 2000) if isinstance(e, Broadcast)]
    assert [v.block_hash for v in sent if isinstance(v, Vote)] == [block.hash]


# -- defect 6: the header's proposer is authenticated --


def test_a_fresh_proposal_whose_header_names_another_proposer_is_refused() -> None:
    m = machine(2)
    block = empty_block(NOW, proposer=3)  # the header says validator 3
    try:
        m.on_proposal(proposal(1, 0, block), NOW)  # signed by validator 1, the round's proposer
    except InvalidUpdate as exc:
        assert exc.reason == RejectReason.BAD_PROPOSER
    else:
        raise AssertionError("accepted a block whose header names another proposer")
