"""A deterministic discrete-event simulator for `chain.consensus.Tendermint` validators.

Each validator is the real state machine with its own `Ledger` (on a
`MemoryStore`), `Mempool` and a small app adapter; the driver executes the
machine's effects in order, as the node will. One `random.Random` per run,
seeded from the scenario's seed, decides every delay, loss and duplicate, so
a run is reproduced from its seed (see `scenario.py` for what a seed injects).

Modelled around the machine (the node's gossip and sync layers, simplified):

- Broadcasts go to every other validator through the network model: a delay
  per copy (fixed, uniform or heavy-tailed, so messages reorder), loss,
  duplication and a partition, all before the heal time; after it nothing is
  lost and every delay is at most Δ = `DelayModel.max_after_heal`.
- A gossip routine runs every `GOSSIP_MS` on each honest validator: it sends a
  peer at its height the proposals and votes of the current and previous round
  that the peer lacks (with the prevotes of a relayed proposal's POL round),
  and the mempool transactions it lacks. Knowing what a peer lacks stands in
  for Tendermint's peer-state messages.
- Sync: a validator whose peer has a longer chain fetches the missing blocks
  with their certificates (one request and one response through the
  network), applies them with `Ledger.apply_block` and tells the machine
  (`on_synced`, then `advance`). Asked on every gossip tick and whenever a
  message two or more heights ahead arrives.
- A crash loses everything but the disk: the ledger store and the guard bytes
  of the last `PersistGuard`. The restarted validator builds a new machine
  with `SignGuard.from_bytes` at ``ledger.height + 1``, and the `LockRecord`
  of the last `PersistLock`. A crash may also hit
  right after a `PersistGuard`, dropping the effects that follow it.
- A quorum restart (the ``restart`` mixes, `QuorumRestart`): n - f or all
  validators crash together once the first honest one reaches a chosen round
  of a height (or locks on a block), and restart together; the network heals
  when they are back, and clients resend what is not final (their
  validators' mempools are gone). A client whose validator is down retries.
- Byzantine validators (see `ByzantineNode`) equivocate, propose invalid
  blocks and vote for them, stay silent, or flood.
- Validators sign with `devnet.FastKey`: the same signatures as
  `PrivateKey`, made by libsecp256k1.
- Validator-set changes (`Scenario.changes`, see `changes.py`): every machine
  takes each height's set from its own ledger (`validators_at`); nodes whose
  keys are outside the genesis set follow until added; operators propose and
  approve changes as transactions while the faults act; a rotated node
  restarts with its new key. Change scenarios have a 1 s heartbeat, so the
  chain reaches the heights where changes take effect.

Measured after every step: the largest state an honest machine holds
(`StateSizes`: proposals, vote entries, an equivocator's extra votes, the
next-height buffer in messages and bytes, evidence), which the floods would
grow without the machine's bounds, and the process's peak RSS.

Checked after every step (a violation is a string in `Report.violations`):

- agreement: no two honest validators commit different blocks at a height
  (honest: every node that is not Byzantine, members or not);
- validity: every block an honest validator commits passes `check_block` and
  its certificate passes `CommitCertificate.verify`;
- no double signing: every (height, round, step) an honest validator signs or
  records in its guard holds one block hash, across crashes;
- evidence: an honest validator that accepts two conflicting votes of one
  validator records evidence, and evidence never names an honest validator;
- liveness: every submitted transaction is committed by every honest
  validator within `Simulation.liveness_budget` of max(submission, heal), and
  every honest mempool is empty by the last such deadline (so a transaction
  that lost a conflict was dropped, not left hanging). Not for the
  ``adversary`` mix, whose network never heals. In the ``restart`` mixes the
  heal is when the crashed validators are back up, so the bound starts there;
- with validator-set changes, the checks of `changes.py` (roster history,
  membership of every signer and every vote taken, certificates against the
  reference set of their height, the changes' own liveness bound).

The liveness bound (simulated ms, from max(submission time, heal time)) is
``2 * (GOSSIP_MS + 2Δ) + sum(T(r0 + k)) + sum(T(k))`` for k in 0..K-1, where
``T(r) = timeout_propose(r) + timeout_prevote(r) + timeout_precommit(r) + 4Δ``,
r0 is the highest round an honest validator is in at that moment, and
``K = f + 2 + s`` (f of the largest set in the roster history) with s the number of rounds before ``timeout_propose(r) >=
2Δ`` (0 with the default timeouts). That is: one gossip/sync exchange to
repair what the faults lost, then two heights (the one in progress and the
one that includes the transaction) of K rounds each (one to re-align rounds,
up to f with a faulty proposer, s whose propose timeout is still shorter than
a proposal can take, one good round), each bounded by its three timeouts and
four message delays.
"""

from __future__ import annotations

import heapq
import random
import resource
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from chain.block import Block
from chain.consensus import NIL, Step, Tendermint
from chain.consensus_messages import Evidence, Proposal, SignGuard, SignStep, vote_step
from chain.errors import InvalidUpdate
from chain.quorum import CommitCertificate, ValidatorSet, Vote, VoteType
from chain.tx import Transaction
from tests.simulation.changes import HEARTBEAT_MS, Changes
from tests.simulation.devnet import (
    GENESIS_DOMAIN,
    START_MS,
    client_tx,
    fast_key,
    genesis_for,
)
from tests.simulation.scenario import Scenario, Submission, generate
from tests.simulation.validators import ByzantineNode, Event, Message, SimNode

GOSSIP_MS = 500
MAX_EVENTS = 400_000

MachineFactory = Callable[[SimNode, SignGuard, int], Tendermint]
DropRule = Callable[[int, int, object, int], bool]  # (src, dst, payload, now) -> drop?


def make_machine(
    cls: type[Tendermint], node: SimNode, guard: SignGuard, height: int
) -> Tendermint:
    """A state machine of class `cls` (the real one, or a deliberately broken variant)."""
    return cls(
        chain_id=node.sim.genesis.chain_id,
        genesis_hash=node.sim.genesis.hash(),
        validators=node.ledger.validators_at(height),
        validators_at=node.ledger.validators_at,
        params=node.sim.params.consensus,
        app=node.app,
        key=node.key,
        guard=guard,
        height=height,
        lock=node.stored_lock(),
    )


def default_factory(node: SimNode, guard: SignGuard, height: int) -> Tendermint:
    """The real state machine."""
    return make_machine(Tendermint, node, guard, height)


# -- results --


@dataclass
class StateSizes:
    """The largest machine state any honest validator held during a run."""

    proposals: int = 0  # proposals kept at the current height
    votes: int = 0  # entries in the vote slots
    conflicting: int = 0  # an equivocator's extra votes, kept to count its polkas
    buffered: int = 0  # next-height buffer: messages
    buffered_bytes: int = 0  # next-height buffer: bytes as the machine accounts them
    evidence: int = 0  # evidence entries at the current height

    def note(self, m: Tendermint) -> None:
        """Raise each maximum to what `m` holds now."""
        self.proposals = max(self.proposals, len(m.proposals))
        self.votes = max(self.votes, sum(len(slot) for slot in m.votes.values()))
        self.evidence = max(self.evidence, len(m.evidence))
        # Private to the machine; the simulator reads them to show they stay bounded.
        self.conflicting = max(self.conflicting, m.book.conflicting_count)
        self.buffered = max(self.buffered, len(m._future))
        self.buffered_bytes = max(self.buffered_bytes, m._future.size_bytes)


@dataclass
class Report:
    """What one run did and found."""

    scenario: Scenario
    violations: list[str]
    heights: int  # highest height every honest validator committed
    finalized: int  # highest height some honest validator committed
    faults: Counter[str]
    max_round: int
    sim_ms: int
    events: int
    evidence: set[int]  # validators some honest validator holds evidence against
    decisions: list[tuple[int, int, int, int]]  # (node, height, round, time)
    proposals_sent: dict[tuple[int, int], int]  # (height, round) -> time of first broadcast
    max_latency_ratio: float  # slowest finalization / its liveness bound
    state: StateSizes  # the largest machine state an honest validator held
    restarts: list[tuple[int, int, int]]  # quorum restart: (node, height, round) when it crashed
    max_rss_mib: float  # this process's peak resident set so far
    validator_changes: dict[str, int]  # changes that took effect, by action
    roster_heights: list[int]  # the height each roster of the history starts at

    @property
    def faults_injected(self) -> int:
        """Number of injected fault events."""
        return sum(self.faults.values())


@dataclass
class _Pending:
    tx: Transaction
    submitted: int
    missing: set[int]
    via: int  # the validator the client sent it to
    deadline: int | None = None
    bound: int = 0


# -- the simulation --


class Simulation:
    """One seeded run: the network model, the event queue and the checkers."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        factory: MachineFactory = default_factory,
        validators: ValidatorSet | None = None,
        drop: DropRule | None = None,
        gossip_ms: int = GOSSIP_MS,
        liveness: bool = True,
        horizon_ms: int = 120_000,
    ) -> None:
        """`gossip_ms` 0 turns gossip and sync off; without `liveness` only safety is
        checked and the run ends when the queue drains or at `horizon_ms`."""
        self.sc = scenario
        self.liveness = liveness and not scenario.adversary
        self.horizon_ms = horizon_ms
        if scenario.adversary:
            gossip_ms = 0
        self.rng = random.Random(f"ledgerdns-sim-run-{scenario.seed}")
        self.heartbeat_ms = HEARTBEAT_MS if scenario.changes else 0
        genesis = genesis_for(scenario.n, scenario.tight, self.heartbeat_ms)
        if validators is not None:  # a test's broken variant of the validator set
            genesis = replace(genesis, params=replace(genesis.params, validators=validators))
        self.genesis = genesis
        self.params = genesis.params
        self.validators = genesis.params.validators
        self.factory = factory
        self.drop = drop
        self.gossip_ms = gossip_ms
        self.base_ms = genesis.genesis_time_ms + START_MS
        self.queue: list[tuple[int, int, int, int, int, object]] = []
        self.seq = 0
        self.now = 0
        self.events = 0
        self.healed = scenario.heal_ms <= 0
        byz = dict(scenario.byzantine)
        self.nodes: list[SimNode] = [
            ByzantineNode(self, i, byz[i]) if i in byz else SimNode(self, i)
            for i in range(scenario.nodes)
        ]
        self.honest = [node for node in self.nodes if not node.byzantine]
        order = list(range(scenario.nodes))
        self.rng.shuffle(order)
        self.group_a = set(order[: scenario.n // 2])
        honest_ids = [node.index for node in self.honest]
        self.witness = self.rng.choice(honest_ids)
        self.split_proposals: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        self.invalid_blocks: dict[tuple[int, int], bytes] = {}
        # checkers' state
        self.violations: list[str] = []
        self.faults: Counter[str] = Counter()
        self.faults_seen: Counter[str] = Counter()  # not faults: consequences worth counting
        self.signed: dict[tuple[int, int, int, int], bytes] = {}
        # (node, key) -> the lowest and highest height an honest node signed for with that key
        self.signed_heights: dict[tuple[int, bytes], tuple[int, int]] = {}
        self.committed: dict[int, bytes] = {}
        self.decisions: list[tuple[int, int, int, int]] = []
        self.proposals_sent: dict[tuple[int, int], int] = {}
        self.evidence: set[int] = set()
        self.pending: dict[bytes, _Pending] = {}
        self.next_deadline: int | None = None
        self.drain_deadline: int | None = None
        self.max_round = 0
        self.max_latency_ratio = 0.0
        self.submissions_left = len(scenario.submissions)
        self.sizes = StateSizes()
        # quorum restart: 1 waiting for its round, 2 crash scheduled, 0 done (or none)
        self.restart_phase = 1 if scenario.restart else 0
        self.restarts: list[tuple[int, int, int]] = []
        self.heal_at = 0  # not before this (the quorum restart's validators are back)
        self.changes = Changes(self)  # validator-set changes: operators and checks

    # -- running --

    def ms(self, now: int) -> int:
        """The validators' clock reading at simulated time `now`."""
        return self.base_ms + now

    def schedule(self, at: int, kind: int, node: SimNode, payload: object) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, node.index, node.incarnation, payload))

    def run(self) -> Report:
        """Run to completion: every transaction finalized everywhere, or a violation."""
        sc = self.sc
        for node in self.nodes:
            if node.byzantine == "silent":
                self.faults["silent validator"] += 1
            else:
                node.boot(0)
        for crash in sc.crashes:
            node = self.nodes[crash.node]
            node.down_ms = crash.down_ms
            self.schedule(crash.at_ms, Event.ARM if crash.after_guard else Event.CRASH, node, None)
        for sub in sc.submissions:
            self.schedule(sub.at_ms, Event.SUBMIT, self.nodes[sub.node], sub)
        self.changes.start()
        self.schedule(max(sc.heal_ms, 0), Event.HEAL, self.nodes[0], None)
        while self.queue and not self.violations:
            at, _, kind, index, incarnation, payload = heapq.heappop(self.queue)
            if not self.liveness and at > self.horizon_ms:
                break
            self.now = at
            node = self.nodes[index]
            self.dispatch(kind, node, incarnation, payload)
            self.events += 1
            if self.liveness:
                self.check_liveness()
                if self.done():
                    break
            if self.events > MAX_EVENTS:
                self.violation(f"runaway: {self.events} events by t={self.now}")
        if self.liveness and not self.violations and not self.done():
            self.violation("the run stopped with work left")
        return self.report()

    def dispatch(self, kind: int, node: SimNode, incarnation: int, payload: object) -> None:
        if kind == Event.HEAL:
            self.heal()
            return
        if kind == Event.QUORUM_CRASH:
            self.quorum_restart()
            return
        if kind == Event.CHANGE:
            self.changes.propose(payload)  # type: ignore[arg-type]
            return
        if kind in (Event.SUBMIT, Event.RESTART):
            if kind == Event.RESTART:
                node.boot(self.now)
            else:
                self.submit(node, payload)  # type: ignore[arg-type]
            return
        if not node.up or incarnation != node.incarnation:
            return  # sent to, or scheduled by, a process that is gone
        if kind == Event.MSG:
            node.on_message(payload, self.now)  # type: ignore[arg-type]
        elif kind == Event.TIMEOUT:
            node.on_timeout(payload, self.now)  # type: ignore[arg-type]
        elif kind == Event.TX:
            node.on_tx(payload, self.now)  # type: ignore[arg-type]
        elif kind == Event.TICK:
            node.on_tick(self.now)
        elif kind == Event.SYNC:
            node.on_sync(payload, self.now)  # type: ignore[arg-type]
        elif kind == Event.CRASH:
            self.crash(node, after_guard=False)
        elif kind == Event.ARM:
            node.armed = True

    def schedule_change(self, at: int, k: int) -> None:
        """Plan `k`'s proposer proposes it at `at` (see `Changes.propose`)."""
        self.schedule(at, Event.CHANGE, self.nodes[self.sc.changes[k].proposer], k)

    def crash(self, node: SimNode, *, after_guard: bool) -> None:
        node.crash()
        self.faults["crash after guard write" if after_guard else "crash"] += 1
        restart = self.now + node.down_ms
        if self.now < self.sc.heal_ms:
            restart = min(restart, self.sc.heal_ms)
        self.schedule(max(restart, self.now + 1), Event.RESTART, node, None)

    def quorum_restart(self) -> None:
        """Crash the scenario's `QuorumRestart` validators together; restart and heal later."""
        q = self.sc.restart
        if not self.restart_phase or q is None:
            return
        self.restart_phase = 0
        back = self.heal_at = self.now + q.down_ms
        for index in q.nodes:
            node = self.nodes[index]
            if node.up:
                self.restarts.append((index, node.machine.height, node.machine.round))
                node.crash()
                self.schedule(back, Event.RESTART, node, None)
        every = len(q.nodes) == self.sc.n
        self.faults["restart of all validators" if every else "restart of n-f validators"] += 1
        self.schedule(back, Event.HEAL, self.nodes[0], None)  # after the restarts (queue order)

    def stalled(self, payload: object) -> bool:
        """Before a quorum restart: the messages lost so that rounds fail (see `QuorumRestart`)."""
        q = self.sc.restart
        if not self.restart_phase or q is None:
            return False
        if isinstance(payload, Proposal):
            return payload.round < q.round
        return (
            q.locked
            and isinstance(payload, Vote)
            and payload.vtype == VoteType.PRECOMMIT
            and payload.block_hash != NIL
        )

    def heal(self) -> None:
        """From now on: no loss, no partition, bounded delays; no crash is pending."""
        if self.restart_phase:  # the quorum restart's round never came: crash now, heal later
            self.quorum_restart()
            return
        if self.now < self.heal_at or (self.healed and self.sc.restart):
            return  # a quorum restart heals once, when its validators are back
        self.healed = True
        for node in self.nodes:
            node.armed = False
        self.set_deadline(None)
        for p in self.pending.values():
            self.set_deadline(p)
        if self.sc.restart:  # clients resend what is not final: crashed mempools are gone
            for p in list(self.pending.values()):
                self.hand_over(self.nodes[p.via], p.tx)
        if self.sc.changes:
            self.changes.set_deadline()
            for node in self.honest:
                self.changes.operate(node, resend=True)

    def done(self) -> bool:
        """Drained (`drained`), and every validator-set change in effect everywhere."""
        return self.drained() and self.changes.done()

    def drained(self) -> bool:
        """Healed, every transaction sent and finalized, every honest mempool empty."""
        if not self.healed or self.submissions_left or self.pending:
            return False
        return all(n.up and not len(n.mempool) for n in self.honest)

    # -- the network --

    def reachable(self, a: int, b: int) -> bool:
        sc = self.sc
        if self.healed or not sc.partition or self.now < sc.partition_from_ms:
            return True
        return (a in sc.partition) == (b in sc.partition)

    def transmit(self, src: int, dst: int, kind: int, payload: object) -> None:
        """Send one message from `src` to `dst` through the faulty network."""
        sc, rng = self.sc, self.rng
        if not self.reachable(src, dst):
            self.faults["partitioned message"] += 1
            return
        if self.stalled(payload):
            self.faults["stalled message"] += 1
            return
        if not self.healed and sc.loss and rng.random() < sc.loss:
            self.faults["lost message"] += 1
            return
        if self.drop is not None and self.drop(src, dst, payload, self.now):
            self.faults["dropped by script"] += 1
            return
        if sc.adversary and isinstance(payload, (Proposal, Vote)):
            p_proposal, p_prevote, p_precommit = sc.adversary
            if isinstance(payload, Proposal):
                p = p_proposal
            else:
                p = p_prevote if payload.vtype == VoteType.PREVOTE else p_precommit
            if rng.random() < p:
                self.faults["dropped by adversary"] += 1
                return
        copies = 1
        if sc.duplicate and rng.random() < sc.duplicate:
            copies = 2
            self.faults["duplicated message"] += 1
        for _ in range(copies):
            self.schedule(self.now + sc.delay.draw(rng, self.healed), kind, self.nodes[dst], payload)

    def request_sync(self, node: SimNode, peer: SimNode) -> None:
        """A block request and its response, each through the network."""
        sc, rng = self.sc, self.rng
        if self.drop is not None and self.drop(node.index, peer.index, "sync", self.now):
            self.faults["dropped by script"] += 1
            return
        if not self.healed and sc.loss and rng.random() < 1 - (1 - sc.loss) ** 2:
            self.faults["lost message"] += 1
            return
        delay = sc.delay.draw(rng, self.healed) + sc.delay.draw(rng, self.healed)
        self.schedule(self.now + delay, Event.SYNC, node, peer)

    # -- clients and liveness --

    def submit(self, node: SimNode, sub: Submission) -> None:
        """A client hands `sub`'s transaction to `node`, which gossips it."""
        if not node.up and self.sc.restart:  # the client retries until its validator is back
            self.schedule(self.now + 100, Event.SUBMIT, node, sub)
            return
        tx = client_tx(self.sc.n, sub, tight=self.sc.tight, heartbeat_ms=self.heartbeat_ms)
        self.submissions_left -= 1
        final = any(tx.txid in h.finalized for h in self.honest)
        p = None
        if not sub.contested and not final and tx.txid not in self.pending:
            p = _Pending(tx, self.now, {h.index for h in self.honest}, node.index)
            self.pending[tx.txid] = p
        if self.healed:
            self.set_deadline(p)
        if not node.up:
            return
        refusals = len(node.rejections.get(tx.txid, ()))
        self.hand_over(node, tx)
        if not sub.contested and len(node.rejections.get(tx.txid, ())) > refusals:
            self.violation(f"submission: validator {node.index} refused {tx.body.domain}: "
                           f"{node.rejections[tx.txid][-1][1]}")  # fmt: skip

    def hand_over(self, node: SimNode, tx: Transaction) -> None:
        """`node` takes `tx` into its mempool and sends it to every peer."""
        if not node.up:
            return
        node.on_tx(tx, self.now)
        for peer in self.nodes:
            if peer is not node:
                self.transmit(node.index, peer.index, Event.TX, tx)

    def resend(self, node: SimNode) -> None:
        """The clients of `node`, restarted, send again what they gave it and is not final."""
        for p in list(self.pending.values()):
            if p.via == node.index:
                self.hand_over(node, p.tx)

    def liveness_budget(self, r0: int) -> int:
        """How long after max(submission, heal) a transaction may take (see the module doc)."""
        c = self.params.consensus
        delta = self.sc.delay.max_after_heal

        def t(r: int) -> int:
            return (
                c.timeout_propose_ms + c.timeout_prevote_ms + c.timeout_precommit_ms
                + 3 * r * c.timeout_delta_ms + 4 * delta
            )  # fmt: skip

        # rounds until a proposal sent at the start of a round beats the propose timeout
        slow = max(0, -(-(2 * delta - c.timeout_propose_ms) // c.timeout_delta_ms))
        n = max(roster.validators.n for _, roster in self.changes.history)  # the largest f
        rounds = range((n - 1) // 3 + 2 + slow)
        first = sum(t(r0 + k) for k in rounds)
        return 2 * (self.gossip_ms + 2 * delta) + first + sum(t(k) for k in rounds)

    def set_deadline(self, p: _Pending | None) -> None:
        """Fix a transaction's deadline (None: only the drain deadline) from now."""
        r0 = max((n.machine.round for n in self.honest if n.up), default=0)
        bound = self.liveness_budget(r0)
        start = self.now if p is None else max(p.submitted, self.now)
        self.drain_deadline = max(self.drain_deadline or 0, start + bound)
        if p is not None:
            p.bound, p.deadline = bound, start + bound
            self.next_deadline = min(self.next_deadline or p.deadline, p.deadline)

    def check_liveness(self) -> None:
        """Every transaction finalized everywhere by its deadline; mempools drained by the last."""
        if self.next_deadline is not None and self.now > self.next_deadline:
            for p in self.pending.values():
                if p.deadline is not None and self.now > p.deadline:
                    self.violation(
                        f"liveness: {p.tx.body.domain} not finalized at validators "
                        f"{sorted(p.missing)} by t={p.deadline} (bound {p.bound} ms)"
                    )
            later = [p.deadline for p in self.pending.values() if p.deadline is not None]
            self.next_deadline = min(later, default=None)
        self.changes.check_liveness()
        if self.drain_deadline is not None and self.now > self.drain_deadline and not self.drained():
            busy = {n.index: len(n.mempool) for n in self.honest if n.up and len(n.mempool)}
            self.violation(f"liveness: mempools not drained by t={self.drain_deadline}: {busy}")
            self.drain_deadline = None

    # -- checkers --

    def violation(self, text: str) -> None:
        self.violations.append(f"t={self.now} {text}")

    def claim(self, node: SimNode, slot: tuple[int, int, int], block_hash: bytes, what: str) -> None:
        key = (node.index, *slot)
        first = self.signed.setdefault(key, block_hash)
        if first != block_hash:
            self.violation(
                f"double signing: validator {node.index} signed {first.hex()[:8] or 'nil'} and "
                f"{block_hash.hex()[:8] or 'nil'} at height/round/step {slot} ({what})"
            )

    def on_guard(self, node: SimNode, data: bytes) -> None:
        if node.byzantine:
            return
        g = SignGuard.from_bytes(data)
        self.claim(node, (g.height, g.round, g.step), g.block_hash, "guard write")
        self.changes.check_member(node, node.key.public_key, g.height, "guard write")

    def on_signed(self, node: SimNode, message: Message) -> None:
        if not node.byzantine:
            signer = message.proposer if isinstance(message, Proposal) else message.validator
            what = "proposal" if isinstance(message, Proposal) else "vote"
            self.changes.check_member(node, signer, message.height, what)
            low, high = self.signed_heights.get((node.index, bytes(signer)), (message.height, 0))
            self.signed_heights[(node.index, bytes(signer))] = (
                min(low, message.height), max(high, message.height)
            )
        if isinstance(message, Proposal):
            self.proposals_sent.setdefault((message.height, message.round), self.now)
            self.claim(node, (message.height, message.round, SignStep.PROPOSAL), message.block.hash,
                       "proposal")  # fmt: skip
        else:
            step = vote_step(message.vtype)
            self.claim(node, (message.height, message.round, step), message.block_hash, "vote")

    def on_bad_commit(self, node: SimNode, block: Block, exc: InvalidUpdate) -> None:
        self.violation(f"validity: validator {node.index} finalized block {block.height}: {exc}")

    def on_commit(
        self, node: SimNode, block: Block, cert: CommitCertificate, now: int, decided: bool
    ) -> None:
        first = self.committed.setdefault(block.height, block.hash)
        if first != block.hash:
            self.violation(
                f"agreement: validator {node.index} finalized {block.hash.hex()[:8]} at height "
                f"{block.height}, another honest validator {first.hex()[:8]}"
            )
        self.changes.on_commit(node, block, cert)
        if decided:
            self.decisions.append((node.index, block.height, cert.round, now))
        for tx in block.txs:
            p = self.pending.get(tx.txid)
            if p is None:
                continue
            p.missing.discard(node.index)
            if not p.missing:
                del self.pending[tx.txid]
                if p.deadline is not None:
                    elapsed = now - (p.deadline - p.bound)
                    self.max_latency_ratio = max(self.max_latency_ratio, elapsed / p.bound)

    def on_evidence(self, node: SimNode, evidence: Evidence) -> None:
        if node.byzantine:
            return
        index = self.changes.node_of(evidence.first.validator)
        try:
            evidence.verify(self.genesis.hash())
        except InvalidUpdate as exc:
            self.violation(f"evidence: validator {node.index} recorded bad evidence: {exc}")
            return
        if index is None or not self.nodes[index].byzantine:
            self.violation(f"evidence: validator {node.index} accuses honest validator {index}")
        else:
            self.evidence.add(index)

    def expect_evidence(self, node: SimNode, known: Vote, vote: Vote) -> None:
        index = node.machine.validators.index_of(vote.validator)
        held = node.machine.evidence.get((index, vote.round, vote.vtype)) if index is not None else None
        if held is None or held.first.validator != vote.validator:
            self.violation(
                f"evidence: validator {node.index} accepted conflicting votes of "
                f"{self.changes.node_of(vote.validator)} without recording evidence"
            )

    def observe(self, node: SimNode) -> None:
        """After each step of `node`: its round and state sizes, and the quorum restart's trigger."""
        if node.byzantine or not node.up:
            return
        m = node.machine
        self.max_round = max(self.max_round, m.round)
        self.sizes.note(m)
        self.changes.check_machine(node)
        q = self.sc.restart
        if self.restart_phase != 1 or q is None or m.step in (Step.WAITING, Step.COMMITTING):
            return
        if q.locked and m.locked_round >= q.round:
            self.restart_phase = 2
            self.schedule(self.now + q.delay_ms, Event.QUORUM_CRASH, node, None)
        elif not q.locked and m.round >= q.round:
            self.quorum_restart()

    def report(self) -> Report:
        heights = min((n.ledger.height for n in self.honest), default=0)
        return Report(
            scenario=self.sc,
            violations=self.violations,
            heights=heights,
            finalized=max(self.committed, default=0),
            faults=self.faults,
            max_round=self.max_round,
            sim_ms=self.now,
            events=self.events,
            evidence=self.evidence,
            decisions=self.decisions,
            proposals_sent=self.proposals_sent,
            max_latency_ratio=self.max_latency_ratio,
            state=self.sizes,
            restarts=self.restarts,
            max_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            validator_changes=Counter(self.sc.changes[k].action for k in self.changes.starts),
            roster_heights=[start for start, _ in self.changes.history],
        )


def run_seed(seed: int, *, quick: bool = False, changes: bool = False) -> Report:
    """Generate and run the scenario of `seed` (with validator-set changes if asked)."""
    return Simulation(generate(seed, quick=quick, changes=changes)).run()


__all__ = [
    "GENESIS_DOMAIN",
    "ByzantineNode",
    "Report",
    "SimNode",
    "StateSizes",
    "Simulation",
    "client_tx",
    "default_factory",
    "fast_key",
    "genesis_for",
    "run_seed",
]
