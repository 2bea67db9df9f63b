"""Tendermint consensus (Buchman, Kwon, Milosevic 2018, Algorithm 1) as a pure state machine.

Inputs are method calls (`on_proposal`, `on_vote`, `on_timeout`,
`on_txs_available`, `on_synced`, `advance`), each with the caller's clock
reading `now_ms`; outputs are lists of effects (`chain.consensus_effects`) that
the driver executes in order. Nothing here reads a clock, opens a socket or
draws randomness, so the simulator in the tests replays any run from its seed.

The line numbers in comments (L22, L36, ...) are those of Algorithm 1.

Differences from the paper, all for operation rather than safety:
- A height is *started* only when there is something to do: transactions are
  available, the heartbeat interval passed, or a message for this height
  arrived. An idle network therefore sends nothing and grows no blocks.
- After a decision the machine waits for `advance()`, called by the driver
  once the block is stored, before it starts the next height.
- Messages for the next height are buffered (bounded) and replayed on entry.
- A validator restarted mid-height resumes after the last round it signed in
  (its `SignGuard`), not at round 0, and gets back the block it locked on
  (`LockRecord`, written before the precommit that locks): otherwise a
  quorum restarted past round 0 refuses every round-0 signature and the
  chain halts for good.
- Memory is bounded whatever a Byzantine validator sends: proposals and votes
  are kept only up to `ROUND_WINDOW` rounds ahead of the current one (further
  ones only move a per-validator "highest round seen", which the round-skip
  rule reads), one piece of evidence per (validator, round, vote type) per
  height, and the next-height buffer holds one message per slot, in bytes too.
- A fresh proposal (no proof-of-lock round) is prevoted only if its block time
  is at most `MAX_BLOCK_AGE_MS` older than when it arrived (as CometBFT's
  proposer-based timestamps): a proposer cannot date a block in the past to
  include long-expired transactions or hold back name expiry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import IntEnum

from chain.block import Block
from chain.consensus_buffer import NextHeightBuffer
from chain.consensus_effects import (
    BlockJudge,
    Broadcast,
    ConsensusApp,
    Decide,
    Effect,
    EvidenceFound,
    InvalidProposalFound,
    PersistGuard,
    PersistLock,
    ScheduleTimeout,
    TimeoutKind,
)
from chain.consensus_lock import LockRecord
from chain.consensus_messages import (
    Evidence,
    Proposal,
    SignGuard,
    SignStep,
    validate_proposal_signer,
    vote_step,
)
from chain.consensus_votes import VoteBook
from chain.crypto import PrivateKey
from chain.errors import InvalidUpdate, RejectReason
from chain.params import ConsensusParams
from chain.quorum import CommitCertificate, ValidatorSet, Vote, VoteType, max_faulty

NIL = b""
# Proposals and votes are kept for rounds up to the current one plus this; a message
# further ahead only tells the round-skip rule that its signer is there.
ROUND_WINDOW = 2
# A fresh proposal's block may be at most this much older than its arrival (defect 4 of
# issue 13): blocks are built when their round starts and gossiped in milliseconds, so
# half a minute leaves room for slow links and clocks that are seconds apart.
MAX_BLOCK_AGE_MS = 30_000


class Step(IntEnum):
    """Where a validator is within a height."""

    WAITING = 0  # height entered, nothing to do yet
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3
    COMMITTING = 4  # decided; waiting for the driver's advance()


class Tendermint:
    """One validator's (or observer's, with no key) view of consensus."""

    height: int
    round: int
    step: Step
    locked_hash: bytes | None
    locked_round: int
    valid_value: Block | None
    valid_round: int
    proposals: dict[int, Proposal]

    def __init__(
        self,
        *,
        chain_id: str,
        genesis_hash: bytes,
        validators: ValidatorSet,
        params: ConsensusParams,
        app: ConsensusApp,
        key: PrivateKey | None,
        guard: SignGuard,
        height: int,
        judge: BlockJudge | None = None,
        lock: LockRecord | None = None,
        validators_at: Callable[[int], ValidatorSet] | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.genesis_hash = genesis_hash  # signed into every proposal and vote, never sent
        # The set deciding the current height; `validators_at` (the ledger's, when the set
        # can change: chain/validators.py) gives each height's as the machine enters it.
        self.validators = validators
        self._validators_at = validators_at
        self.params = params
        self.app = app
        self.key = key
        self.guard = guard
        self.judge = judge
        self._future = NextHeightBuffer()
        self._restored = lock
        self._enter_height(height)

    # -- public inputs --

    def start(self, now_ms: int) -> list[Effect]:
        """Begin (or resume after a restart) at the current height."""
        effects: list[Effect] = []
        if self.params.heartbeat_ms:
            effects.append(
                ScheduleTimeout(TimeoutKind.HEARTBEAT, self.height, 0, self.params.heartbeat_ms)
            )
        return effects

    def on_txs_available(self, now_ms: int) -> list[Effect]:
        """The mempool holds transactions: start the height if it is waiting."""
        effects: list[Effect] = []
        if self.step == Step.WAITING:
            self._start_round(self.round, now_ms, effects)
            self._evaluate(now_ms, effects)
        return effects

    def on_proposal(self, proposal: Proposal, now_ms: int) -> list[Effect]:
        """A proposal arrived (from the network or a replay).

        Raises:
            InvalidUpdate: wrong network, not from the round's proposer, bad signature.
        """
        effects: list[Effect] = []
        if proposal.height == self.height + 1:
            # Only the round's own proposer, and only early rounds: one slot per round.
            if proposal.round <= ROUND_WINDOW and proposal.proposer == self._set_of(
                proposal.height
            ).proposer(proposal.height, proposal.round):
                self._future.add(proposal)
            return effects
        if proposal.height != self.height or self.step == Step.COMMITTING:
            return effects
        if proposal.round in self.proposals:
            return effects
        self._check_proposal(proposal)
        if proposal.round > self.round + ROUND_WINDOW:
            self._note_ahead(self.validators.index_of(proposal.proposer), proposal.round)
            self._wake(now_ms, effects)
            self._evaluate(now_ms, effects)
            return effects
        self._wake(now_ms, effects)
        self.proposals[proposal.round] = proposal
        self._received_ms[proposal.round] = now_ms
        self._judge(proposal, effects)
        self._evaluate(now_ms, effects)
        return effects

    def on_vote(self, vote: Vote, now_ms: int) -> list[Effect]:
        """A prevote or precommit arrived.

        Raises:
            InvalidUpdate: wrong network, not a validator, bad signature.
        """
        effects: list[Effect] = []
        if vote.height == self.height + 1:
            if vote.round <= ROUND_WINDOW:
                self._future.add(vote)
            return effects
        if vote.height != self.height or self.step == Step.COMMITTING:
            return effects
        index = self._check_vote(vote)
        if vote.round > self.round + ROUND_WINDOW:
            self._note_ahead(index, vote.round)
            self._wake(now_ms, effects)
            self._evaluate(now_ms, effects)
            return effects
        counts, evidence = self.book.add(index, vote, self._was_proposed)
        if evidence is not None:
            effects.append(EvidenceFound(evidence))
        if counts:
            self._wake(now_ms, effects)
            self._evaluate(now_ms, effects)
        return effects

    def on_timeout(self, kind: TimeoutKind, height: int, round_: int, now_ms: int) -> list[Effect]:
        """A scheduled timeout fired."""
        effects: list[Effect] = []
        if height != self.height or self.step == Step.COMMITTING:
            return effects
        if kind == TimeoutKind.HEARTBEAT:
            if self.step == Step.WAITING:
                self._start_round(self.round, now_ms, effects)
        elif round_ != self.round:
            return effects
        elif kind == TimeoutKind.PROPOSE and self.step == Step.PROPOSE:  # OnTimeoutPropose
            self._vote(VoteType.PREVOTE, NIL, effects)
            self.step = Step.PREVOTE
        elif kind == TimeoutKind.PREVOTE and self.step == Step.PREVOTE:  # OnTimeoutPrevote
            self._vote(VoteType.PRECOMMIT, NIL, effects)
            self.step = Step.PRECOMMIT
        elif kind == TimeoutKind.PRECOMMIT:  # OnTimeoutPrecommit
            self._start_round(self.round + 1, now_ms, effects)
        self._evaluate(now_ms, effects)
        return effects

    def on_synced(self, block: Block, certificate: CommitCertificate, now_ms: int) -> list[Effect]:
        """The block at the current height was finalized elsewhere (learned by sync).

        The caller has verified the certificate; this only stops the height's
        work. The driver stores the block and calls `advance()` as after a Decide.
        """
        if block.height == self.height and self.step != Step.COMMITTING:
            self.step = Step.COMMITTING
        return []

    def advance(self, now_ms: int, *, txs_available: bool) -> list[Effect]:
        """The decided block is stored: enter the next height and replay what was buffered."""
        self._enter_height(self.height + 1)
        effects = self.start(now_ms)
        if txs_available:
            self._start_round(self.round, now_ms, effects)
        # a bad buffered message is dropped like a bad live one
        effects.extend(replay(self, self._future.drain(), now_ms))
        self._evaluate(now_ms, effects)
        return effects

    # -- height and round --

    def _set_of(self, height: int) -> ValidatorSet:
        """The validator set of `height` (the current one or the next: both are known)."""
        if self._validators_at is None or height == self.height:
            return self.validators
        return self._validators_at(height)

    def _enter_height(self, height: int) -> None:
        self.height = height
        if self._validators_at is not None:
            self.validators = self._validators_at(height)
        self.round = 0  # the round the height starts in (see below); WAITING until then
        self.step = Step.WAITING
        self.locked_hash = None
        self.locked_round = -1
        self.valid_value = None
        self.valid_round = -1
        self.proposals = {}
        self.book = VoteBook()
        self._received_ms: dict[int, int] = {}  # round -> when its proposal arrived
        self._ahead: dict[int, int] = {}  # validator index -> highest round seen past the window
        if self.guard.height == height and self.guard.round >= 0:
            self._resume(height)
        self._valid: dict[bytes, bool] = {}
        self._done: set[tuple[str, int]] = set()  # "upon ... for the first time" rules fired

    def _resume(self, height: int) -> None:
        """Restarted mid-height: go on after the last round signed in, with the lock.

        The guard refuses every signature at or before its round and step, so a
        validator that started again at round 0 would sign nothing until the
        others moved past its round, and a quorum restarted together never would.
        The next round is clean: nothing was signed in it.
        """
        self.round = self.guard.round + 1
        if self.guard.lock_round < 0:
            return
        # The lock survives (see SignGuard); the locked block and its proof-of-lock
        # prevotes too, if they were written (`PersistLock`) before the precommit.
        self.locked_hash, self.locked_round = self.guard.lock_hash, self.guard.lock_round
        record, self._restored = self._restored, None
        if (
            record is None
            or record.height != height
            or record.round != self.locked_round
            or record.proposal.block.hash != self.locked_hash
        ):
            return
        self.valid_value, self.valid_round = record.proposal.block, record.round
        self.proposals[record.round] = record.proposal
        slot = self.votes.setdefault((record.round, VoteType.PREVOTE), {})
        for vote in record.prevotes:
            index = self.validators.index_of(vote.validator)
            if index is not None:
                slot[index] = vote

    def _wake(self, now_ms: int, effects: list[Effect]) -> None:
        if self.step == Step.WAITING:
            self._start_round(self.round, now_ms, effects)

    def _note_ahead(self, index: int | None, round_: int) -> None:
        """A validator signed something for a round past the window: remember only the highest."""
        if index is not None and round_ > self._ahead.get(index, -1):
            self._ahead[index] = round_

    def _start_round(self, round_: int, now_ms: int, effects: list[Effect]) -> None:
        """StartRound (L11)."""
        self.round = round_
        self.step = Step.PROPOSE
        if self.key is not None and self.validators.proposer(self.height, round_) == self.key.public_key:
            if self.valid_value is not None:
                block, pol_round = self.valid_value, self.valid_round
            else:
                block, pol_round = self.app.build_proposal(self.height, now_ms), -1
            if self._propose(block, pol_round, now_ms, effects):
                return
        # Not the proposer, or the guard refused the proposal: either way the round must
        # be able to end without one, or this validator would wait in it forever.
        delay = self.params.timeout_propose_ms + round_ * self.params.timeout_delta_ms
        effects.append(ScheduleTimeout(TimeoutKind.PROPOSE, self.height, round_, delay))

    # -- the upon rules --

    def _evaluate(self, now_ms: int, effects: list[Effect]) -> None:
        """Fire every rule whose condition holds, until none does."""
        changed = True
        while changed and self.step not in (Step.WAITING, Step.COMMITTING):
            changed = (
                self._decide_rule(effects)
                or self._skip_round_rule(now_ms, effects)
                or self._proposal_rules(effects)
                or self._prevote_rules(effects)
                or self._precommit_timeout_rule(effects)
            )

    def _decide_rule(self, effects: list[Effect]) -> bool:
        """L49: a proposal and a quorum of precommits for it, in any round."""
        for round_, proposal in self.proposals.items():
            block = proposal.block
            if self._count(round_, VoteType.PRECOMMIT, block.hash) >= self.validators.quorum:
                if not self._is_valid(block):
                    continue
                votes = self._votes_for(round_, VoteType.PRECOMMIT, block.hash)
                effects.append(Decide(block, CommitCertificate.from_votes(votes, self.validators)))
                self.step = Step.COMMITTING
                return True
        return False

    def _skip_round_rule(self, now_ms: int, effects: list[Effect]) -> bool:
        """L55: f+1 validators are at a higher round: join it."""
        # Each validator's highest round above ours, from the kept messages (within the
        # window) and from the rounds noted past it. If f+1 validators are at rounds >= r,
        # at least one honest validator is: skip to the highest such r. (Algorithm 1 asks
        # for f+1 messages of one round; counting "at or above" keeps the memory at one
        # number per validator and only ever skips to a round an honest validator reached.)
        highest = {i: r for i, r in self._ahead.items() if r > self.round}
        for (round_, _), slot in self.votes.items():
            if round_ > self.round:
                for index in slot:
                    highest[index] = max(highest.get(index, -1), round_)
        for round_, proposal in self.proposals.items():
            if round_ > self.round:
                signer = self.validators.index_of(proposal.proposer)
                if signer is not None:
                    highest[signer] = max(highest.get(signer, -1), round_)
        f = max_faulty(self.validators.n)
        if len(highest) <= f:
            return False
        target = sorted(highest.values(), reverse=True)[f]
        self._start_round(target, now_ms, effects)
        return True

    def _proposal_rules(self, effects: list[Effect]) -> bool:
        """L22 and L28: prevote on the current round's proposal."""
        proposal = self.proposals.get(self.round)
        if self.step != Step.PROPOSE or proposal is None:
            return False
        block, vr = proposal.block, proposal.pol_round
        if vr == -1:  # L22, with the block time's lower bound (a fresh block must be recent)
            good = (
                self._is_timely(block, self.round)
                and self._is_valid(block)
                and (self.locked_round == -1 or self.locked_hash == block.hash)
            )
        elif self._count(vr, VoteType.PREVOTE, block.hash) >= self.validators.quorum:  # L28
            good = self._is_valid(block) and (
                self.locked_round <= vr or self.locked_hash == block.hash
            )
        else:
            return False
        self._vote(VoteType.PREVOTE, block.hash if good else NIL, effects)
        self.step = Step.PREVOTE
        return True

    def _prevote_rules(self, effects: list[Effect]) -> bool:
        """L34 (prevote timeout), L36 (lock and precommit), L44 (precommit nil)."""
        quorum = self.validators.quorum
        r = self.round
        proposal = self.proposals.get(r)
        if (
            proposal is not None
            and self.step >= Step.PREVOTE
            and ("L36", r) not in self._done
            and self._count(r, VoteType.PREVOTE, proposal.block.hash) >= quorum
            and self._is_valid(proposal.block)
        ):
            self._done.add(("L36", r))
            if self.step == Step.PREVOTE:
                self.locked_hash, self.locked_round = proposal.block.hash, r
                if self._may_sign(r, SignStep.PRECOMMIT, proposal.block.hash):
                    polka = self._votes_for(r, VoteType.PREVOTE, proposal.block.hash)
                    effects.append(PersistLock(LockRecord(proposal=proposal, prevotes=tuple(polka))))
                self._vote(VoteType.PRECOMMIT, proposal.block.hash, effects, lock=True)
                self.step = Step.PRECOMMIT
            self.valid_value, self.valid_round = proposal.block, r
            return True
        if self.step == Step.PREVOTE and self._count(r, VoteType.PREVOTE, NIL) >= quorum:  # L44
            self._vote(VoteType.PRECOMMIT, NIL, effects)
            self.step = Step.PRECOMMIT
            return True
        if (
            self.step == Step.PREVOTE
            and ("L34", r) not in self._done
            and self._count(r, VoteType.PREVOTE, None) >= quorum
        ):
            self._done.add(("L34", r))
            delay = self.params.timeout_prevote_ms + r * self.params.timeout_delta_ms
            effects.append(ScheduleTimeout(TimeoutKind.PREVOTE, self.height, r, delay))
            return True
        return False

    def _precommit_timeout_rule(self, effects: list[Effect]) -> bool:
        """L47: a quorum of precommits for anything: schedule the precommit timeout."""
        r = self.round
        if ("L47", r) in self._done or self._count(r, VoteType.PRECOMMIT, None) < self.validators.quorum:
            return False
        self._done.add(("L47", r))
        delay = self.params.timeout_precommit_ms + r * self.params.timeout_delta_ms
        effects.append(ScheduleTimeout(TimeoutKind.PRECOMMIT, self.height, r, delay))
        return True

    # -- helpers --

    def _count(self, round_: int, vtype: VoteType, block_hash: bytes | None) -> int:
        return self.book.count(round_, vtype, block_hash)

    def _votes_for(self, round_: int, vtype: VoteType, block_hash: bytes) -> list[Vote]:
        return self.book.votes_for(round_, vtype, block_hash)

    @property
    def votes(self) -> dict[tuple[int, VoteType], dict[int, Vote]]:
        """This height's votes: (round, type) -> validator index -> its first vote."""
        return self.book.votes

    @property
    def evidence(self) -> dict[tuple[int, int, VoteType], Evidence]:
        """(validator index, round, vote type) -> the first evidence found there, this height."""
        return self.book.evidence

    @property
    def _conflicting(self) -> dict[tuple[int, VoteType], dict[int, dict[bytes, Vote]]]:
        return self.book.conflicting

    def _is_valid(self, block: Block) -> bool:
        known = self._valid.get(block.hash)
        if known is None:
            known = block.height == self.height and self.app.is_valid(block)
            self._valid[block.hash] = known
        return known

    def _was_proposed(self, block_hash: bytes) -> bool:
        """Whether a kept proposal (of any round of this height) carries this block."""
        return any(p.block.hash == block_hash for p in self.proposals.values())

    def _is_timely(self, block: Block, round_: int) -> bool:
        """Whether a fresh proposal's block time is at most `MAX_BLOCK_AGE_MS` before its arrival."""
        received = self._received_ms.get(round_)
        return received is None or block.header.time_ms >= received - MAX_BLOCK_AGE_MS

    def _judge(self, proposal: Proposal, effects: list[Effect]) -> None:
        """Blame the proposer of a provably invalid block (once: one proposal per round is kept).

        `_check_proposal` has already tied the proposal to its round's proposer
        and checked its signature and body, so the fault is the proposer's own.
        """
        if self.judge is None:
            return
        reason = self.judge.block_fault(proposal.block)
        if reason is not None:
            self._valid[proposal.block.hash] = False
            effects.append(InvalidProposalFound(proposal, reason))

    def _may_sign(self, round_: int, step: SignStep, block_hash: bytes) -> bool:
        """Whether this validator has a key in the set and its guard allows this signature."""
        if self.key is None or self.validators.index_of(self.key.public_key) is None:
            return False
        return self.guard.allows(self.height, round_, step, block_hash)

    def _sign_allowed(
        self, round_: int, step: SignStep, block_hash: bytes, effects: list[Effect], *, lock: bool = False
    ) -> bool:
        if not self._may_sign(round_, step, block_hash):
            return False
        self.guard = self.guard.after(self.height, round_, step, block_hash)
        if lock:
            self.guard = self.guard.locked(round_, block_hash)
        effects.append(PersistGuard(self.guard.to_bytes()))
        return True

    def _propose(self, block: Block, pol_round: int, now_ms: int, effects: list[Effect]) -> bool:
        """Sign and send a proposal; False if the guard refused it."""
        if not self._sign_allowed(self.round, SignStep.PROPOSAL, block.hash, effects):
            return False
        assert self.key is not None
        proposal = Proposal.create(
            self.key, chain_id=self.chain_id, genesis_hash=self.genesis_hash, round_=self.round,
            block=block, pol_round=pol_round,
        )  # fmt: skip
        effects.append(Broadcast(proposal))
        self.proposals[self.round] = proposal
        self._received_ms[self.round] = now_ms
        return True

    def _vote(
        self, vtype: VoteType, block_hash: bytes, effects: list[Effect], *, lock: bool = False
    ) -> None:
        if not self._sign_allowed(self.round, vote_step(vtype), block_hash, effects, lock=lock):
            return
        assert self.key is not None
        vote = Vote.create(
            self.key, chain_id=self.chain_id, genesis_hash=self.genesis_hash, vtype=vtype,
            height=self.height, round_=self.round, block_hash=block_hash,
        )  # fmt: skip
        effects.append(Broadcast(vote))
        index = self.validators.index_of(self.key.public_key)
        assert index is not None
        self.votes.setdefault((self.round, vtype), {})[index] = vote

    def _check_proposal(self, proposal: Proposal) -> None:
        validate_proposal_signer(
            proposal, chain_id=self.chain_id, genesis_hash=self.genesis_hash,
            validators=self.validators,
        )  # fmt: skip
        if not proposal.block.body_matches_header():
            # Refused before it is stored, so a copy altered in transit cannot take the
            # round's slot from the proposer's genuine one.
            raise InvalidUpdate(RejectReason.BAD_TX_ROOT, "proposal body does not match its header")

    def _check_vote(self, vote: Vote) -> int:
        if vote.chain_id != self.chain_id:
            raise InvalidUpdate(RejectReason.WRONG_CHAIN, "vote for another network")
        index = self.validators.index_of(vote.validator)
        if index is None:
            raise InvalidUpdate(RejectReason.UNKNOWN_VALIDATOR, "vote by a non-validator")
        if not vote.is_valid_signature(self.genesis_hash):
            raise InvalidUpdate(RejectReason.BAD_SIGNATURE, "vote signature is bad")
        return index



def replay(machine: Tendermint, messages: Iterable[Proposal | Vote], now_ms: int) -> list[Effect]:
    """Feed several messages, collecting effects and skipping invalid ones."""
    effects: list[Effect] = []
    for message in messages:
        try:
            if isinstance(message, Proposal):
                effects.extend(machine.on_proposal(message, now_ms))
            else:
                effects.extend(machine.on_vote(message, now_ms))
        except InvalidUpdate:
            continue
    return effects
