"""Tendermint in the deterministic simulator: safety, liveness, the guard, conflicts, evidence.

Every run is reproduced from its seed: ``pytest tests/simulation -k seed-123``,
or ``python tools/sim.py --seeds 124`` for the same scenario among others.
"""

from __future__ import annotations

import random
from typing import ClassVar

import pytest

import chain.consensus
from chain.block import Block
from chain.consensus import NIL, ROUND_WINDOW, Tendermint, replay
from chain.consensus_effects import Broadcast, Effect, EvidenceFound, TimeoutKind
from chain.consensus_messages import Proposal, SignGuard, SignStep
from chain.consensus_votes import MAX_CONFLICTING_PER_SLOT
from chain.crypto import PrivateKey, sha256
from chain.errors import InvalidUpdate, RejectReason
from chain.ledger import Ledger
from chain.quorum import ValidatorSet, Vote, VoteType
from chain.store import MemoryStore
from chain.tx import Op
from chain.validators import CHANGE_DELAY
from tests.simulation.changes import Changes
from tests.simulation.devnet import node_key, rotated_key
from tests.simulation.scenario import (
    MIXES,
    Crash,
    DelayModel,
    QuorumRestart,
    Scenario,
    Submission,
    ValidatorPlan,
    generate,
)
from tests.simulation.simnet import (
    GENESIS_DOMAIN,
    MachineFactory,
    Report,
    SimNode,
    Simulation,
    client_tx,
    default_factory,
    fast_key,
    genesis_for,
    make_machine,
    run_seed,
)
from tools.devchain import dev_key

SEEDS = 1000  # cycling through the fault mixes; the long run is `tools/sim.py --seeds 10000`


# -- (a) many seeds across the fault mixes --


@pytest.mark.parametrize("seed", range(SEEDS), ids=lambda s: f"seed-{s}")
def test_seed_has_no_violation(seed: int) -> None:
    report = run_seed(seed)
    assert not report.violations, report.scenario.describe() + "\n" + "\n".join(report.violations)
    if not report.scenario.adversary:
        assert report.heights >= 1


def test_every_mix_is_covered_and_injects_faults() -> None:
    seen = {generate(seed).mix for seed in range(len(MIXES))}
    assert seen == set(MIXES)
    for seed in range(1, len(MIXES)):  # seed 0 is the clean mix
        report = run_seed(seed)
        assert report.faults_injected > 0 or report.scenario.n == 1, report.scenario.describe()


def test_runs_are_reproducible_from_the_seed() -> None:
    a, b = run_seed(8), run_seed(8)  # chaos
    assert (a.events, a.decisions, a.faults, a.sim_ms) == (b.events, b.decisions, b.faults, b.sim_ms)


def test_fast_key_signs_like_the_real_key() -> None:
    key = dev_key("validator", 2)
    for i in range(20):
        digest = sha256(b"%d" % i)
        assert fast_key("validator", 2).sign_digest(digest) == key.sign_digest(digest)


# -- (b) the good case: three message delays --


@pytest.mark.parametrize("n, d", [(4, 5), (4, 20), (7, 10)])
def test_good_case_finalizes_three_message_delays_after_the_proposal(n: int, d: int) -> None:
    subs = (Submission(0, 0, name=0), Submission(2000, 1, name=1), Submission(4000, n - 1, seq=1))
    scenario = Scenario(seed=n * 100 + d, mix="clean", n=n, delay=DelayModel("fixed", d, d),
                        submissions=subs)  # fmt: skip
    report = Simulation(scenario).run()
    assert not report.violations
    assert report.heights == 3
    assert len(report.decisions) == 3 * n  # every validator decided every height itself
    for _, height, round_, at in report.decisions:
        assert round_ == 0
        assert at - report.proposals_sent[(height, 0)] == 3 * d


# -- (c) a crash between the guard write and the send --


class GuardProbe(Tendermint):
    """The real machine, recording every signature its guard refuses."""

    refused: ClassVar[list[tuple[int, int, int, int, bytes]]] = []

    def _sign_allowed(
        self, round_: int, step: SignStep, block_hash: bytes, effects: list[Effect], *,
        lock: bool = False,
    ) -> bool:  # fmt: skip
        allowed = super()._sign_allowed(round_, step, block_hash, effects, lock=lock)
        if not allowed and self.key is not None:
            index = self.validators.index_of(self.key.public_key)
            assert index is not None
            self.refused.append((index, self.height, round_, int(step), block_hash))
        return allowed


def test_restart_after_a_crash_between_guard_write_and_send_refuses_to_conflict() -> None:
    # Validator 2 persists its prevote for block 1's proposal, then dies before sending it.
    # It restarts cut off from the others with the transaction in its mempool; before issue 13
    # it went back to round 0, where its propose timeout made it want to prevote nil.
    GuardProbe.refused = []
    scenario = Scenario(
        seed=3, mix="crash", n=4, delay=DelayModel("fixed", 5, 5), heal_ms=3000,
        partition=frozenset({2}), partition_from_ms=11,
        crashes=(Crash(2, 0, 40, after_guard=True),),
        submissions=(Submission(0, 0, name=0), Submission(60, 2, name=0)),
    )  # fmt: skip
    sim = Simulation(scenario, factory=lambda node, guard, h: make_machine(GuardProbe, node, guard, h))
    report = sim.run()
    assert not report.violations, report.violations
    assert report.faults["crash after guard write"] == 1
    persisted = sim.signed[(2, 1, 0, SignStep.PREVOTE)]
    assert persisted != NIL  # the prevote for the proposal, written but never sent
    # Restarted, it resumes at round 1, after the last round it signed in (issue 13, defect 1),
    # so it never even asks to sign again in round 0: the guard has nothing to refuse there.
    assert not [r for r in GuardProbe.refused if r[:3] == (2, 1, 0)]
    assert all(n.ledger.height == 1 for n in sim.honest)  # caught up by sync after the heal
    assert sim.nodes[2].ledger.get_block(1).hash == sim.committed[1]


# -- (c2) a quorum, or every validator, restarted together past round 0 (issue 13, defect 1) --


class RestartsAtRoundZero(Tendermint):
    """Broken as the machine was before issue 13: a validator restarted mid-height starts it
    again at round 0 and takes only the lock from its guard (no lock record)."""

    def _resume(self, height: int) -> None:
        self._restored = None
        super()._resume(height)
        self.round = 0


@pytest.mark.parametrize("broken", [False, True], ids=["real", "round-zero"])
@pytest.mark.parametrize("locked", [False, True], ids=["unlocked", "locked"])
@pytest.mark.parametrize("nodes", [(0, 1, 2, 3), (0, 1, 3)], ids=["all-4", "n-f"])
def test_validators_restarted_together_at_round_one_finish_the_height(
    nodes: tuple[int, ...], locked: bool, broken: bool
) -> None:
    # Round 0's proposal is lost, so round 0 fails; when the first validator reaches
    # round 1 (or, `locked`, locks on round 1's block, whose precommits are lost), the
    # validators of `nodes` crash together and come back 400 ms later with their guard
    # and lock record. The real machine resumes after its guard's round and finishes the
    # height. Gossip is off: the node re-sends only its own messages and the prevotes
    # behind its lock (`ConsensusDriver.stuck_messages`), while the simulator's gossip relays
    # everyone's, which lets even the broken machine catch up from the survivor.
    cls = RestartsAtRoundZero if broken else Tendermint
    restart = QuorumRestart(nodes=nodes, round=1, down_ms=400, locked=locked, delay_ms=20)
    subs = (Submission(0, 0, name=0), Submission(3000, 1, name=1))
    scenario = Scenario(seed=7, mix="restart", n=4, delay=DelayModel("fixed", 5, 5),
                        heal_ms=60_000, submissions=subs, restart=restart)  # fmt: skip
    sim = Simulation(scenario, factory=lambda node, guard, h: make_machine(cls, node, guard, h),
                     gossip_ms=0)  # fmt: skip
    report = sim.run()
    assert sorted(i for i, _, _ in report.restarts) == list(nodes)
    assert {h for _, h, _ in report.restarts} == {1}
    assert max(r for _, _, r in report.restarts) >= 1  # crashed mid-height, past round 0
    if locked:
        assert all(sim.nodes[i].disk.get("lock") for i in nodes)
    if broken:  # nobody signs again: the transactions are never finalized
        assert report.violations and "liveness" in report.violations[0], report.violations
        assert report.heights == 0
        return
    assert not report.violations, report.violations
    assert report.heights >= 1 and not sim.pending
    assert all(n.ledger.height == report.heights for n in sim.honest)


# -- (d) conflicting updates and registrations --


@pytest.mark.parametrize("seed", range(6))
def test_conflicting_transactions_exactly_one_wins_everywhere(seed: int) -> None:
    n = 4
    rng = random.Random(seed)
    at = rng.randint(0, 100)
    a, b, c, d = rng.sample(range(n), 4)
    subs = (
        Submission(at, a, seq=1, variant=0, contested=True),  # two updates on the same prev
        Submission(at, b, seq=1, variant=1, contested=True),
        Submission(at, c, name=5, owner=1, contested=True),  # two registrations of one name
        Submission(at, d, name=5, owner=2, contested=True),
    )
    scenario = Scenario(seed=seed, mix="conflict", n=n, delay=DelayModel("uniform", 1, 40),
                        submissions=subs)  # fmt: skip
    sim = Simulation(scenario)
    report = sim.run()
    assert not report.violations, report.violations
    for first, second in ((subs[0], subs[1]), (subs[2], subs[3])):
        pair = (client_tx(n, first), client_tx(n, second))
        winners = {tx.txid for tx in pair if tx.txid in sim.honest[0].finalized}
        assert len(winners) == 1
        loser = next(tx for tx in pair if tx.txid not in winners)
        for node in sim.honest:
            assert {tx.txid for tx in pair if tx.txid in node.finalized} == winners
            reasons = node.rejections.get(loser.txid)  # at admission, or dropped after the block
            assert reasons, f"validator {node.index} never rejected the loser"
            for where, error in reasons:
                assert error.reason == RejectReason.BAD_SEQUENCE, (where, str(error))
                assert "another update got there first" in str(error)
    state = sim.honest[0].ledger.get_domain(GENESIS_DOMAIN)
    assert state is not None and state.seq == 1


# -- (e) the simulator bites: broken validator variants are reported --


class LockIgnoring(Tendermint):
    """Broken: prevotes for any valid proposal, as if it held no lock (L22/L28 without lock)."""

    def _proposal_rules(self, effects: list[Effect]) -> bool:
        saved = self.locked_hash, self.locked_round
        self.locked_hash, self.locked_round = None, -1
        try:
            return super()._proposal_rules(effects)
        finally:
            self.locked_hash, self.locked_round = saved


class MajorityQuorum(ValidatorSet):
    """Broken: a quorum of floor(n/2) + 1 instead of floor(2n/3) + 1."""

    @property
    def quorum(self) -> int:
        return self.n // 2 + 1


def _lock_schedule(src: int, dst: int, payload: object, now: int) -> bool:
    """Height 1, round 0: validator 2 never gets the proposal; precommits 1->3, 3->1 and
    3->2 are lost. Validator 0 decides v; 1 and 3 lock v but time out; 2 (no valid value)
    proposes a fresh block in round 1."""
    if isinstance(payload, Proposal):
        return (payload.height, payload.round, dst) == (1, 0, 2)
    if isinstance(payload, Vote) and payload.vtype == VoteType.PRECOMMIT:
        return (payload.height, payload.round) == (1, 0) and (src, dst) in {(1, 3), (3, 1), (3, 2)}
    return False


@pytest.mark.parametrize("broken", [False, True])
def test_scripted_schedule_catches_a_validator_that_ignores_its_lock(broken: bool) -> None:
    cls = LockIgnoring if broken else Tendermint
    scenario = Scenario(seed=1, mix="scripted", n=4, delay=DelayModel("fixed", 5, 5),
                        heal_ms=10**12, submissions=(Submission(0, 0, name=0),))  # fmt: skip
    sim = Simulation(scenario, factory=lambda node, guard, h: make_machine(cls, node, guard, h),
                     drop=_lock_schedule, gossip_ms=0, liveness=False, horizon_ms=20_000)  # fmt: skip
    report = sim.run()
    if broken:
        assert any("agreement" in v for v in report.violations), report.violations
    else:  # the real machine re-proposes the locked block and everyone decides it
        assert not report.violations
        assert {h for _, h, _, _ in report.decisions} == {1} and len(report.decisions) == 4


def _lossy_adversary(seed: int) -> Scenario:
    """Proposals lost with p=0.2, precommits with p=0.4, forever; gossip and sync off."""
    rng = random.Random(seed)
    names = range(rng.randint(2, 5))
    subs = sorted((Submission(rng.randint(0, 3000), rng.randrange(4), name=i) for i in names),
                  key=lambda s: s.at_ms)  # fmt: skip
    return Scenario(seed=seed, mix="adversary", n=4, delay=DelayModel("uniform", 5, 100),
                    heal_ms=10**12, submissions=tuple(subs), tight=True,
                    adversary=(0.2, 0.0, 0.4))  # fmt: skip


def test_random_search_catches_a_validator_that_ignores_its_lock() -> None:
    # Within seeds 0..299 of this adversarial family the first agreement violation is at
    # seed 53 (then 75, 280; 11 of seeds 0..599). The real machine is clean on these
    # seeds (test_real_machine_is_safe_under_the_lossy_adversary).
    for seed in range(300):
        sim = Simulation(_lossy_adversary(seed),
                         factory=lambda node, guard, h: make_machine(LockIgnoring, node, guard, h))  # fmt: skip
        report = sim.run()
        if report.violations:
            assert "agreement" in report.violations[0]
            return
    pytest.fail("no violation in 300 seeds")


def test_real_machine_is_safe_under_the_lossy_adversary() -> None:
    for seed in range(100):
        report = Simulation(_lossy_adversary(seed)).run()
        assert not report.violations, (seed, report.violations)


def test_random_search_catches_a_majority_quorum() -> None:
    # With two equivocating validators of seven, a floor(n/2)+1 quorum lets the two halves
    # of the honest validators finalize different blocks. First caught at seed 10.
    keys = genesis_for(7).params.validators.keys
    for seed in range(100):
        scenario = generate(seed, "equivocate")
        if scenario.n != 7:
            continue
        report = Simulation(scenario, validators=MajorityQuorum(keys)).run()
        if report.violations:
            assert any("agreement" in v for v in report.violations), report.violations
            return
    pytest.fail("no violation in 100 seeds")


# -- (e2) a flooding validator: the honest machines' state stays bounded (issue 13, defect 3) --


def _flood_run() -> tuple[Simulation, Scenario]:
    """Validator 3 floods 10 bursts a gossip tick (up to 130 junk messages to each peer), all run.

    Delays up to 500 ms against tight timeouts make rounds fail, so heights last and reach
    round 3: the flood has rounds and heights in progress to aim at.
    """
    subs = tuple(Submission(i * 1000, i % 3, name=i) for i in range(6))
    scenario = Scenario(seed=11, mix="flood", n=4, delay=DelayModel("uniform", 50, 500),
                        byzantine=((3, "flood"),), submissions=subs, tight=True, flood_bursts=10,
                        flood_after_heal=True)  # fmt: skip
    return Simulation(scenario), scenario


def test_a_flooding_validator_cannot_grow_the_honest_machines_state() -> None:
    sim, scenario = _flood_run()
    report = sim.run()
    assert not report.violations, report.violations
    assert report.heights >= 1 and not sim.pending
    assert report.faults["flooded message"] > 1000
    assert report.evidence == {3}
    n, f, state = scenario.n, scenario.f, report.state
    rounds = report.max_round + ROUND_WINDOW + 1  # rounds a height can hold messages for
    assert state.proposals <= rounds
    assert state.votes <= n * 2 * rounds
    # per equivocator and slot: the cap, plus votes for blocks actually proposed (one per round)
    assert state.conflicting <= f * 2 * rounds * (MAX_CONFLICTING_PER_SLOT + rounds)
    assert state.evidence <= f * 2 * rounds
    assert state.buffered <= (ROUND_WINDOW + 1) * (2 * n + 1)  # one per (round, type, signer)
    assert state.buffered_bytes <= 64 * 1024
    assert state.votes > 0 and state.conflicting > 0 and state.buffered > 0  # it did measure


def test_the_flood_bounds_bite_on_a_machine_that_keeps_every_future_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Broken as before issue 13: votes and proposals for any future round are kept.
    monkeypatch.setattr(chain.consensus, "ROUND_WINDOW", 2**31)
    sim, scenario = _flood_run()
    report = sim.run()
    rounds = report.max_round + ROUND_WINDOW + 1
    assert report.state.votes > scenario.n * 2 * rounds


# -- (f) evidence --


def test_equivocation_is_recorded_as_evidence_by_honest_validators() -> None:
    subs = tuple(Submission(i * 500, 0, name=i) for i in range(4))
    scenario = Scenario(seed=5, mix="equivocate", n=4, delay=DelayModel("fixed", 5, 5),
                        byzantine=((3, "equivocate"),), submissions=subs)  # fmt: skip
    report = Simulation(scenario).run()
    assert not report.violations, report.violations
    assert report.faults["equivocation"] > 0
    assert report.evidence == {3}


def test_equivocators_are_caught_across_seeds() -> None:
    caught = total = 0
    for seed in range(60):
        scenario = generate(seed, "equivocate")
        report = Simulation(scenario).run()
        assert not report.violations
        total += 1
        caught += report.evidence == {i for i, _ in scenario.byzantine}
    assert caught >= total * 0.8, (caught, total)


# -- regression: an equivocator's other vote still counts (found by the simulator) --


class _LedgerApp:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def build_proposal(self, height: int, time_ms: int) -> Block:
        proposer = fast_key("validator", 0).public_key
        block, _ = self.ledger.build_block([], time_ms=time_ms, proposer=proposer)
        return block

    def is_valid(self, block: Block) -> bool:
        try:
            self.ledger.check_block(block)
        except InvalidUpdate:
            return False
        return True


def test_conflicting_prevote_counts_towards_the_polka_it_belongs_to() -> None:
    # Validator 2 prevotes some other block to validator 0 first, then block A. With 0's
    # and 1's prevotes for A, that makes 2f+1 = 3 prevotes for A: 0 must lock and
    # precommit A (Algorithm 1 counts messages). Before the fix only the first vote of
    # a validator counted, so an equivocator could hide a polka others locked on from
    # a validator forever (seeds 275, 302, 311, 374 and 458 of the first simulator
    # version ended with honest validators locked on different blocks, in a live lock).
    genesis = genesis_for(4)
    ledger = Ledger(MemoryStore(), genesis)
    ledger.initialize()
    keys = [fast_key("validator", i) for i in range(4)]
    machine = Tendermint(chain_id=genesis.chain_id, genesis_hash=genesis.hash(),
                         validators=genesis.params.validators,
                         params=genesis.params.consensus, app=_LedgerApp(ledger), key=keys[0],
                         guard=SignGuard(), height=1)  # fmt: skip
    now = genesis.genesis_time_ms + 1000
    block, _ = ledger.build_block([], time_ms=now, proposer=keys[1].public_key)
    proposal = Proposal.create(keys[1], chain_id=genesis.chain_id, genesis_hash=genesis.hash(),
                               round_=0, block=block, pol_round=-1)  # fmt: skip

    def prevote(i: int, block_hash: bytes) -> Vote:
        return Vote.create(keys[i], chain_id=genesis.chain_id, genesis_hash=genesis.hash(),
                           vtype=VoteType.PREVOTE, height=1, round_=0,
                           block_hash=block_hash)  # fmt: skip

    effects = machine.on_proposal(proposal, now)  # 0 prevotes A
    effects += machine.on_vote(prevote(1, block.hash), now)
    effects += machine.on_vote(prevote(2, sha256(b"another block")), now)
    effects += machine.on_vote(prevote(2, block.hash), now)
    assert any(isinstance(e, EvidenceFound) for e in effects)
    precommits = [e.message for e in effects
                  if isinstance(e, Broadcast) and isinstance(e.message, Vote)
                  and e.message.vtype == VoteType.PRECOMMIT]  # fmt: skip
    assert [v.block_hash for v in precommits] == [block.hash]
    assert machine.locked_hash == block.hash


def test_a_polka_completed_by_a_flooding_equivocator_still_counts_for_its_re_proposal() -> None:
    # Validator 3 floods validator 0 with prevotes for fresh hashes at round 0, then prevotes
    # block X like 1 and 2. Validator 2 counted 3's X prevote first, so it locked on X; in
    # round 1 it re-proposes X with proof-of-lock round 0 and relays the polka. Validator 0
    # must prevote X then (L28): if it cannot count 3's X prevote, it never can, validator 2
    # prevotes nothing but X, and with 3 silent the height never ends (found by the flood
    # mix: 0 and 1 stuck with 2 of 3 prevotes for X, 2 locked on X, for good).
    genesis = genesis_for(4)
    ledger = Ledger(MemoryStore(), genesis)
    ledger.initialize()
    keys = [fast_key("validator", i) for i in range(4)]
    gh = genesis.hash()
    machine = Tendermint(chain_id=genesis.chain_id, genesis_hash=gh,
                         validators=genesis.params.validators, params=genesis.params.consensus,
                         app=_LedgerApp(ledger), key=keys[0], guard=SignGuard(), height=1)  # fmt: skip
    now = genesis.genesis_time_ms + 1000
    block, _ = ledger.build_block([], time_ms=now, proposer=keys[1].public_key)

    def prevote(i: int, round_: int, block_hash: bytes) -> Vote:
        return Vote.create(keys[i], chain_id=genesis.chain_id, genesis_hash=gh,
                           vtype=VoteType.PREVOTE, height=1, round_=round_,
                           block_hash=block_hash)  # fmt: skip

    machine.on_txs_available(now)
    machine.on_timeout(TimeoutKind.PROPOSE, 1, 0, now)  # round 0's proposal never came: nil
    for i in range(MAX_CONFLICTING_PER_SLOT + 1):
        machine.on_vote(prevote(3, 0, sha256(b"fresh %d" % i)), now)
    polka = [prevote(1, 0, block.hash), prevote(2, 0, block.hash), prevote(3, 0, block.hash)]
    replay(machine, polka, now)
    machine.on_timeout(TimeoutKind.PREVOTE, 1, 0, now)
    machine.on_timeout(TimeoutKind.PRECOMMIT, 1, 0, now)  # round 1, led by validator 2
    assert machine.round == 1
    again = Proposal.create(keys[2], chain_id=genesis.chain_id, genesis_hash=gh, round_=1,
                            block=block, pol_round=0)  # fmt: skip
    effects = machine.on_proposal(again, now)
    effects += replay(machine, polka, now)  # validator 2 relays the polka behind its lock
    prevotes = [e.message for e in effects
                if isinstance(e, Broadcast) and isinstance(e.message, Vote)
                and e.message.vtype == VoteType.PREVOTE]  # fmt: skip
    assert [(v.round, v.block_hash) for v in prevotes] == [(1, block.hash)]


# -- (g) validator-set changes (issue 15): under every fault mix, and at the right height --

CHANGE_SEEDS = 156  # 12 per fault mix; `tools/sim.py --seeds 2000 --changes` for the long run


@pytest.mark.parametrize("seed", range(CHANGE_SEEDS), ids=lambda s: f"seed-{s}-changes")
def test_seed_with_validator_changes_has_no_violation(seed: int) -> None:
    report = run_seed(seed, changes=True)
    sc = report.scenario
    assert not report.violations, sc.describe() + "\n" + "\n".join(report.violations)
    if not sc.adversary:  # no heal, no liveness: the changes may not get through
        assert sum(report.validator_changes.values()) == len(sc.changes), sc.describe()


def _change_run(
    plan: ValidatorPlan, *, extra: int = 0, factory: MachineFactory = default_factory
) -> tuple[Simulation, Report]:
    """Four validators (and `extra` nodes outside the set) on a clean 5 ms network, one change."""
    subs = (Submission(0, 1, name=0), Submission(3000, 2, name=1))
    scenario = Scenario(seed=15, mix="changes", n=4, delay=DelayModel("fixed", 5, 5),
                        submissions=subs, extra=extra, changes=(plan,))  # fmt: skip
    sim = Simulation(scenario, factory=factory)
    return sim, sim.run()


def _approved_at(ledger: Ledger) -> int:
    """The height of the block with the approval that completed the quorum (the last one)."""
    return max(
        h for h in range(1, ledger.height + 1)
        if any(tx.body.op == Op.VALIDATOR_APPROVE for tx in ledger.get_block(h).txs)
    )  # fmt: skip


def _observer(ledger: Ledger, height: int, key: PrivateKey | None = None,
              guard: SignGuard | None = None) -> Tendermint:  # fmt: skip
    """A machine at `height` that takes each height's set from `ledger`."""
    genesis = ledger.genesis
    return Tendermint(
        chain_id=genesis.chain_id, genesis_hash=genesis.hash(),
        validators=ledger.validators_at(height), validators_at=ledger.validators_at,
        params=genesis.params.consensus, app=_LedgerApp(ledger), key=key,
        guard=guard or SignGuard(), height=height,
    )  # fmt: skip


def _precommit(key: PrivateKey, ledger: Ledger, height: int) -> Vote:
    genesis = ledger.genesis
    return Vote.create(key, chain_id=genesis.chain_id, genesis_hash=genesis.hash(),
                       vtype=VoteType.PRECOMMIT, height=height, round_=0,
                       block_hash=ledger.get_block(height).hash)  # fmt: skip


def test_a_removed_validators_votes_stop_counting_at_exactly_two_heights_after_approval() -> None:
    sim, report = _change_run(ValidatorPlan(0, "remove", 3, proposer=0))
    assert not report.violations, report.violations
    assert report.validator_changes == {"remove": 1}
    ledger, start = sim.nodes[0].ledger, report.roster_heights[1]
    assert start == _approved_at(ledger) + CHANGE_DELAY
    assert ledger.height > start  # the heartbeat kept heights coming
    removed = node_key(3)
    # It voted up to the height before and signed nothing from then on (it follows).
    assert sim.signed_heights[(3, bytes(removed.public_key))][1] == start - 1
    assert sim.nodes[3].ledger.height == ledger.height
    # Its vote still counts at start - 1 and is refused at start, where the set is 3.
    _observer(ledger, start - 1).on_vote(_precommit(removed, ledger, start - 1), 0)
    with pytest.raises(InvalidUpdate) as info:
        _observer(ledger, start).on_vote(_precommit(removed, ledger, start), 0)
    assert info.value.reason == RejectReason.UNKNOWN_VALIDATOR
    for h in range(start, ledger.height + 1):
        assert all(i < 3 for i, _ in ledger.get_certificate(h).signatures)


def test_a_rotated_key_cannot_sign_after_the_change_and_the_guards_stay_apart() -> None:
    sim, report = _change_run(ValidatorPlan(0, "rotate", 2, proposer=0, new_key=0))
    assert not report.violations, report.violations
    node, start = sim.nodes[2], report.roster_heights[1]
    old, new = node_key(2), rotated_key(0)
    assert start == _approved_at(node.ledger) + CHANGE_DELAY
    assert report.faults["restart with a rotated key"] == 1 and node.key is new
    # The old key signed up to start - 1, the new one from start: never both for one height.
    assert sim.signed_heights[(2, bytes(old.public_key))][1] == start - 1
    assert sim.signed_heights[(2, bytes(new.public_key))][0] == start
    (old_guard,) = node.old_guards
    assert SignGuard.from_bytes(old_guard).height == start - 1
    # Height `start`'s round-0 proposal: the old key with its guard signs nothing for it,
    # the new key with its fresh guard prevotes it.
    ledger = node.ledger
    proposer = ledger.validators_at(start).proposer(start, 0)
    signer = next(n.key for n in sim.nodes if n.key.public_key == proposer)
    proposal = Proposal.create(signer, chain_id=ledger.genesis.chain_id,
                               genesis_hash=ledger.genesis.hash(), round_=0,
                               block=ledger.get_block(start), pol_round=-1)  # fmt: skip
    now = ledger.get_block(start).header.time_ms
    for key, guard, signs in ((old, SignGuard.from_bytes(old_guard), False), (new, SignGuard(), True)):
        machine = _observer(ledger, start, key, guard)
        effects = machine.on_txs_available(now) + machine.on_proposal(proposal, now)
        effects += machine.on_timeout(TimeoutKind.PROPOSE, start, 0, now)
        sent = [e.message for e in effects if isinstance(e, Broadcast)]
        assert bool(sent) == signs, (key is new, sent)


def test_a_node_added_mid_run_follows_and_starts_voting_at_its_height() -> None:
    sim, report = _change_run(ValidatorPlan(0, "add", 4, proposer=1), extra=1)
    assert not report.violations, report.violations
    start = report.roster_heights[1]
    added = sim.nodes[4]
    assert start == _approved_at(added.ledger) + CHANGE_DELAY
    assert sim.signed_heights[(4, bytes(node_key(4).public_key))][0] == start
    assert any(h < start for i, h, _, _ in report.decisions if i == 4)  # it followed before
    assert {(h, r) for (i, h, r, _) in sim.signed if i == 4} >= {(start, 0)}


def _off_by_one(shift: int) -> MachineFactory:
    """Broken: each height is decided by the set of height + `shift` (a change applied late
    with -1, early with +1); the ledger itself is right."""

    def factory(node: SimNode, guard: SignGuard, height: int) -> Tendermint:
        def validators_at(h: int) -> ValidatorSet:
            return node.ledger.validators_at(max(h + shift, 1))

        return Tendermint(
            chain_id=node.sim.genesis.chain_id, genesis_hash=node.sim.genesis.hash(),
            validators=validators_at(height), validators_at=validators_at,
            params=node.sim.params.consensus, app=node.app, key=node.key, guard=guard,
            height=height, lock=node.stored_lock(),
        )  # fmt: skip

    return factory


@pytest.mark.parametrize(
    "shift, plan, signer, extra",
    [
        (-1, ValidatorPlan(0, "remove", 3, proposer=0), 3, 0),  # still signs at its first height out
        (+1, ValidatorPlan(0, "add", 4, proposer=1), 4, 1),  # signs a height before it is in
    ],
    ids=["late-removal", "early-addition"],
)
def test_a_change_applied_a_height_off_is_caught(
    shift: int, plan: ValidatorPlan, signer: int, extra: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the check that each machine holds its height's set: the behaviour is caught.
    monkeypatch.setattr(Changes, "check_machine", lambda self, node: None)
    sim, report = _change_run(plan, extra=extra, factory=_off_by_one(shift))
    start = report.roster_heights[1]
    height = start if shift < 0 else start - 1
    assert report.violations, "not caught"
    assert f"membership: validator {signer} signed a " in report.violations[0], report.violations
    assert f"for height {height} " in report.violations[0], report.violations
