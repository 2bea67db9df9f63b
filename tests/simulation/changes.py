"""Validator-set changes in the simulator: the operators who make them, and what is checked.

A scenario's `ValidatorPlan`s are made as an operator makes them (issue 15, §1):
the proposer's operator signs a `VALIDATOR_PROPOSE` transaction with its
validator key and hands it to its node, which gossips it; the operator of every
honest validator in the set approves through its own node once the proposal is
pending in that node's ledger (and again after a restart, whose mempool is gone).
Plans go one at a time: the next is proposed once the last is scheduled. A node
whose key is rotated restarts with the new key and a fresh signing guard when its
ledger reaches the height before the change takes effect (`key_for`); a removed
node goes on following; an added node follows from the start and votes from the
height its key enters the set, as the machine's `validators_at` gives it.

Checked after every step, besides simnet's checks (violations as strings):

- roster history: every honest node's `Ledger.rosters()` is a prefix of one
  history, and each change in it is the plan's next change, applied;
- every honest machine decides a height with the set of that height;
- a key signs (or records in its guard) only for heights where it is a member,
  so a removed or rotated-away key signs nothing from the change's height on, and
  a new key nothing before it; a validator's old and new keys together never sign
  two things for one (height, round, step) (simnet's double-signing check is per
  node, across its keys);
- an honest machine takes no vote of a key outside its height's set;
- every committed certificate verifies against the reference set of its height,
  and no signature in it is a retired key's (checked on each distinct one);
- liveness: after the heal, each change takes effect at every honest node
  within `Simulation.liveness_budget` times `CHANGE_BUDGETS` plus the heartbeats
  of `CHANGE_DELAY` heights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chain.block import Block
from chain.crypto import PublicKey, sha256, verify
from chain.errors import InvalidUpdate
from chain.quorum import CommitCertificate, ValidatorSet, Vote, VoteType, vote_sign_bytes
from chain.tx import Op, Transaction
from chain.txbuilder import build_validator_tx
from chain.validators import CHANGE_DELAY, ChangeAction, Roster, ValidatorChange, genesis_roster
from tests.simulation.devnet import FastKey, node_key, rotated_key, tx_deadline
from tests.simulation.scenario import ValidatorPlan

if TYPE_CHECKING:
    from tests.simulation.simnet import Simulation
    from tests.simulation.validators import SimNode

HEARTBEAT_MS = 1000  # change scenarios make a block a second when idle, so changes take effect
CHANGE_BUDGETS = 3  # the proposal, the approvals, then CHANGE_DELAY heights
RETRY_MS = 200  # an operator whose node is down, or whose last change is not in, tries again
ACTIONS = {"add": ChangeAction.ADD, "remove": ChangeAction.REMOVE, "rotate": ChangeAction.ROTATE}


class Changes:
    """The operators of one run's validator-set changes, and the reference roster history."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.plans = sim.sc.changes
        self.history: list[tuple[int, Roster]] = [(1, genesis_roster(sim.params))]
        self.proposals: dict[int, Transaction] = {}  # plan index -> its proposing transaction
        self.proposed_at: dict[int, int] = {}
        self.starts: dict[int, int] = {}  # plan index -> the height it takes effect at
        self.approved: set[tuple[int, int, bytes, int]] = set()  # (plan, node, key, incarnation)
        self.retired: dict[bytes, int] = {}  # key -> the first height it is not a member at
        self.private: dict[bytes, FastKey] = {}  # every key a node may come to hold
        for plan in self.plans:
            if plan.new_key >= 0:
                key = rotated_key(plan.new_key)
                self.private[bytes(key.public_key)] = key
        self.owner: dict[bytes, int] = {}  # key -> the node that holds or held it
        for node in sim.nodes:
            self.owner[bytes(node.key.public_key)] = node.index
        for plan in self.plans:
            if plan.new_key >= 0:
                self.owner[bytes(rotated_key(plan.new_key).public_key)] = plan.node
        self.certificates: set[tuple[int, int, bytes, tuple[tuple[int, bytes], ...]]] = set()
        self.deadline: int | None = None

    # -- names and keys --

    def name_of(self, index: int) -> str:
        """The roster name of node `index` (genesis names, ``sim-i`` for an added node)."""
        genesis = self.history[0][1]
        return genesis.names[index] if index < len(genesis.names) else f"sim-{index}"

    def validators_at(self, height: int) -> ValidatorSet:
        """The reference set of `height` (from the longest roster history an honest node holds)."""
        found = self.history[0][1]
        for start, roster in self.history:
            if start > height:
                break
            found = roster
        return found.validators

    def key_for(self, node: SimNode) -> FastKey | None:
        """The key `node`'s operator must switch to before the next height, None if none.

        From the node's own ledger: the set of the next height names the node with a
        key it does not hold yet (a rotation that takes effect there).
        """
        ledger = node.ledger
        key = ledger.roster_at(ledger.height + 1).key_of(self.name_of(node.index))
        if key is None or key == node.key.public_key:
            return None
        return self.private.get(bytes(key))

    def fresh_guard(self, key: FastKey) -> bool:
        """Whether the node rotated to `key` starts with a fresh guard (else it keeps its own)."""
        return next(
            p.fresh_guard for p in self.plans if p.new_key >= 0 and rotated_key(p.new_key) is key
        )

    def node_of(self, key: bytes) -> int | None:
        """The node that holds or held `key`."""
        return self.owner.get(bytes(key))

    # -- the operators --

    def start(self) -> None:
        """Schedule the first plan's proposal."""
        if self.plans:
            self.sim.schedule_change(self.plans[0].at_ms, 0)

    def propose(self, k: int) -> None:
        """Plan `k`'s proposer hands its proposal to its node (or tries again later)."""
        sim, plan = self.sim, self.plans[k]
        node = sim.nodes[plan.proposer]
        if k in self.proposals:
            return
        if not node.up or len(node.ledger.rosters()) < k + 1:
            sim.schedule_change(sim.now + RETRY_MS, k)
            return
        tx = build_validator_tx(
            op=Op.VALIDATOR_PROPOSE, change=self.change_of(plan).to_bytes(), key=node.key,
            chain_id=sim.genesis.chain_id, genesis_hash=sim.genesis.hash(),
            deadline=tx_deadline(sim.genesis),
        )  # fmt: skip
        self.proposals[k] = tx
        self.proposed_at[k] = sim.now
        sim.faults["validator change proposed"] += 1
        sim.hand_over(node, tx)
        if sim.healed:
            self.set_deadline()

    def change_of(self, plan: ValidatorPlan) -> ValidatorChange:
        """The `ValidatorChange` a plan makes."""
        action = ACTIONS[plan.action]
        if action == ChangeAction.ADD:
            key = bytes(node_key(plan.node).public_key)
        elif action == ChangeAction.ROTATE:
            key = bytes(rotated_key(plan.new_key).public_key)
        else:
            key = b""
        return ValidatorChange(action=action, name=self.name_of(plan.node), key=key)

    def operate(self, node: SimNode, *, resend: bool = False) -> None:
        """`node`'s operator approves what is pending in its ledger (`resend`: its mempool is gone)."""
        if not node.up or node.byzantine or not self.proposals:
            return
        sim, ledger = self.sim, node.ledger
        me = node.key.public_key
        for k, proposal in self.proposals.items():
            if k in self.starts:
                continue
            if (
                resend
                and node.index == self.plans[k].proposer
                and ledger.get_proposal(proposal.txid) is None
            ):
                sim.hand_over(node, proposal)  # not in a block yet: send it again
                continue
            pending = ledger.get_proposal(proposal.txid)
            if pending is None or me in pending.approvals:
                continue
            if ledger.validators_at(ledger.height + 1).index_of(me) is None:
                continue
            mark = (k, node.index, bytes(me), node.incarnation)
            if mark in self.approved:
                continue
            self.approved.add(mark)
            tx = build_validator_tx(
                op=Op.VALIDATOR_APPROVE, change=proposal.txid, key=node.key,
                chain_id=sim.genesis.chain_id, genesis_hash=sim.genesis.hash(),
                deadline=tx_deadline(sim.genesis),
            )  # fmt: skip
            sim.faults_seen["validator change approvals"] += 1
            sim.hand_over(node, tx)

    # -- checks --

    def on_commit(self, node: SimNode, block: Block, cert: CommitCertificate) -> None:
        """An honest node stored `block`: its roster history, the certificate, its operator."""
        self.note_rosters(node)
        self.check_certificate(node, block, cert)
        if self.plans:
            self.operate(node)

    def note_rosters(self, node: SimNode) -> None:
        """Every honest node's roster history is a prefix of one history, of planned changes."""
        mine = node.ledger.rosters()
        known = self.history
        common = min(len(mine), len(known))
        if mine[:common] != known[:common]:
            self.sim.violation(
                f"roster history: validator {node.index} holds {_describe(mine)}, "
                f"another honest node {_describe(known)}"
            )
            return
        for start, roster in mine[len(known) :]:
            k = len(self.history) - 1
            previous_start, previous = self.history[-1]
            if k >= len(self.plans) or roster != previous.applied(self.change_of(self.plans[k])):
                self.sim.violation(f"roster history: an unplanned change at height {start}")
                return
            self.history.append((start, roster))
            self.starts[k] = start
            self.sim.faults["validator change scheduled"] += 1
            for key in set(previous.validators.keys) - set(roster.validators.keys):
                self.retired.setdefault(bytes(key), start)
            if k + 1 < len(self.plans):
                self.sim.schedule_change(max(self.plans[k + 1].at_ms, self.sim.now), k + 1)

    def check_member(self, node: SimNode, key: PublicKey, height: int, what: str) -> None:
        """An honest node signed (or recorded in its guard) for `height` with `key`."""
        if self.validators_at(height).index_of(key) is None:
            self.sim.violation(
                f"membership: validator {node.index} signed a {what} for height {height} with key "
                f"{bytes(key).hex()[:8]}, not in that height's set"
            )

    def check_machine(self, node: SimNode) -> None:
        """An honest machine entering a height holds that height's set."""
        m = node.machine
        if node.seen_height == m.height:
            return
        node.seen_height = m.height
        if m.validators.keys != self.validators_at(m.height).keys:
            self.sim.violation(f"membership: validator {node.index} runs height {m.height} "
                               f"with another set")  # fmt: skip

    def check_vote_taken(self, node: SimNode, vote: Vote) -> None:
        """An honest machine took `vote` at its height: its signer is in that height's set."""
        if self.validators_at(vote.height).index_of(vote.validator) is None:
            self.sim.violation(
                f"membership: validator {node.index} took a vote of key "
                f"{bytes(vote.validator).hex()[:8]} at height {vote.height}, not in its set"
            )

    def check_certificate(self, node: SimNode, block: Block, cert: CommitCertificate) -> None:
        """The certificate verifies against the reference set; no retired key signed it."""
        seen = (block.height, cert.round, block.hash, cert.signatures)
        if seen in self.certificates:
            return
        self.certificates.add(seen)
        genesis = self.sim.genesis
        try:
            cert.verify(self.validators_at(block.height), genesis.chain_id, block.hash,
                        genesis_hash=genesis.hash())  # fmt: skip
        except InvalidUpdate as exc:
            self.sim.violation(
                f"validity: validator {node.index}'s certificate of height {block.height} "
                f"fails against the reference set: {exc}"
            )
        for key, since in self.retired.items():
            if since > block.height:
                continue
            digest = sha256(vote_sign_bytes(
                genesis.chain_id, genesis.hash(), VoteType.PRECOMMIT, block.height, cert.round,
                block.hash, PublicKey(key),
            ))  # fmt: skip
            if any(verify(key, signature, digest) for _, signature in cert.signatures):
                self.sim.violation(
                    f"membership: the certificate of height {block.height} holds a vote of key "
                    f"{key.hex()[:8]}, out of the set since height {since}"
                )

    # -- liveness --

    def set_deadline(self) -> None:
        """After the heal: every proposed change in effect everywhere within its budget."""
        pending = [k for k in self.proposed_at if k not in self.starts]
        if not pending and len(self.proposals) == len(self.plans):
            return
        r0 = max((n.machine.round for n in self.sim.honest if n.up), default=0)
        budget = CHANGE_BUDGETS * self.sim.liveness_budget(r0) + CHANGE_DELAY * HEARTBEAT_MS
        self.deadline = max(self.deadline or 0, self.sim.now + budget)

    def done(self) -> bool:
        """Every plan proposed, scheduled and in effect at every honest node, keys switched."""
        if len(self.starts) < len(self.plans):
            return False
        last = max(self.starts.values(), default=0)
        return all(
            n.up and n.ledger.height >= last and self.key_for(n) is None for n in self.sim.honest
        )

    def check_liveness(self) -> None:
        """A violation if the changes are not in effect by the deadline."""
        if self.deadline is not None and self.sim.now > self.deadline and not self.done():
            behind = {n.index: n.ledger.height for n in self.sim.honest}
            self.sim.violation(
                f"liveness: validator changes {len(self.starts)}/{len(self.plans)} scheduled "
                f"(starts {self.starts}), not in effect everywhere by t={self.deadline}: {behind}"
            )
            self.deadline = None


def _describe(history: list[tuple[int, Roster]]) -> str:
    return "; ".join(f"{start}: {','.join(r.names)}" for start, r in history)
