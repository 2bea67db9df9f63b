"""The consensus driver: real timers and gossip around the pure Tendermint machine.

Every input (a gossiped proposal or vote, a fired timer, transactions arriving,
a block learned by sync) is handled under one lock, and the machine's effects
are executed in the order given: the signing guard is on disk (fsynced) before
the signature that needed it is broadcast; a decided block is stored in one
synced batch before `advance()` moves to the next height.

Followers run the same machine without a key: they decide from the validators'
messages, so they finalize as fast as validators do.

Misbehaviour the machine proves (equivocation, a provably invalid proposal) is
stored for operators and reported through the `offence` callback, which the
node turns into a penalty for the peers that speak for that validator.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import trio

from chain import keys
from chain.block import Block
from chain.consensus import Step, Tendermint
from chain.consensus_effects import (
    Broadcast,
    Decide,
    Effect,
    EvidenceFound,
    InvalidProposalFound,
    PersistGuard,
    PersistLock,
    ScheduleTimeout,
)
from chain.consensus_lock import LockRecord
from chain.consensus_messages import (
    MAX_FAULT_REASON,
    Evidence,
    InvalidProposal,
    Proposal,
    SignGuard,
)
from chain.crypto import PrivateKey, PublicKey
from chain.errors import InvalidUpdate
from chain.evidence_store import put_evidence, put_invalid_proposal
from chain.genesis import Genesis
from chain.ledger import BlockUpdate, Ledger
from chain.mempool import Mempool
from chain.quorum import CommitCertificate, Vote, VoteType
from chain.store import WriteBatch
from ledgerdns.clock import Clock
from ledgerdns.consensus.guardfile import GuardFile

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("ledgerdns.consensus")

V = TypeVar("V")

MAX_FUTURE_MS = 15_000  # a proposed block may be at most this far ahead of our clock
# A proposal is one gossip message: kept well under the library's 1 MiB cap, and small
# enough that it spreads and is checked quickly (many small blocks beat a few huge ones).
PROPOSAL_MAX_BYTES = 256 * 1024
PROPOSAL_MAX_TXS = 600
# Invalid proposals stored per height: each may be a large block, and a Byzantine proposer
# (or its sybil relays, until each is banned) could sign one for every round it leads.
MAX_INVALID_PROPOSALS_STORED = 4
# Blocks judged at the current height (both tables are emptied when it is decided): one per
# proposal seen, so a height stuck for many rounds would otherwise keep every one. Past the
# bound the oldest is forgotten, and judged again if it comes back (same verdict).
CHECKED_BLOCKS = 16


class LedgerApp:
    """`ConsensusApp` and `BlockJudge` adapter: blocks from the mempool, validity from the ledger.

    Validity has two parts. `block_fault` is the ledger's check against the
    finalized head: deterministic, so every honest node agrees, and a failure is
    the proposer's provable fault. `is_valid` adds the local clock (a block time
    at most `MAX_FUTURE_MS` ahead of `clock`), which only decides this node's vote.
    """

    def __init__(
        self, ledger: Ledger, mempool: Mempool, key: PrivateKey | None, clock: Clock
    ) -> None:
        self.ledger = ledger
        self.mempool = mempool
        self.key = key
        self.clock = clock
        self.checked: dict[bytes, BlockUpdate] = {}  # ≤ CHECKED_BLOCKS, this height only
        self.faults: dict[bytes, str] = {}  # block hash → why it fails (≤ CHECKED_BLOCKS)

    def build_proposal(self, height: int, time_ms: int) -> Block:
        assert self.key is not None, "only validators propose"
        limits = self.ledger.params.consensus
        batch = self.mempool.batch(
            min(limits.max_block_txs, PROPOSAL_MAX_TXS), min(limits.max_block_bytes, PROPOSAL_MAX_BYTES)
        )
        update, rejected = self.ledger.build_update(
            batch, time_ms=time_ms, proposer=self.key.public_key
        )
        for r in rejected:
            for tx, error in self.mempool.discard(r.tx.txid, r.error):
                log.info("dropped %s from the mempool: %s", tx.txid.hex()[:16], error)
        _remember(self.checked, update.block.hash, update)
        return update.block

    def block_fault(self, block: Block) -> str | None:
        if block.hash in self.checked:
            return None
        fault = self.faults.get(block.hash)
        if fault is not None:
            return fault
        try:
            _remember(self.checked, block.hash, self.ledger.check_block(block))
        except InvalidUpdate as exc:
            log.warning("invalid proposed block: %s", exc)
            fault = str(exc)
            _remember(self.faults, block.hash, fault)
            return fault
        return None

    def is_valid(self, block: Block) -> bool:
        if self.block_fault(block) is not None:
            return False
        now_ms = self.clock.now_ms()
        if block.header.time_ms > now_ms + MAX_FUTURE_MS:
            log.warning("block %d is %d ms in the future: refused", block.height,
                        block.header.time_ms - now_ms)
            return False
        return True

    def take(self, block: Block) -> BlockUpdate:
        """The checked update for `block` (checking it now if needed); forgets the rest.

        Raises:
            InvalidUpdate: the block is not a valid next block.
        """
        update = self.checked.get(block.hash)
        if update is None or block.header.prev_block != self.ledger.head.hash:
            update = self.ledger.check_block(block)
        self.checked.clear()
        self.faults.clear()
        return update


def _remember(table: dict[bytes, V], block_hash: bytes, value: V) -> None:
    """Add to a per-height table, forgetting its oldest entry past `CHECKED_BLOCKS`."""
    table[block_hash] = value
    while len(table) > CHECKED_BLOCKS:
        del table[next(iter(table))]


Committed = Callable[[Block, CommitCertificate, bool], Awaitable[None]]
# (the misbehaving validator's key, the proof, what it did in words)
Offence = Callable[[PublicKey, Evidence | InvalidProposal, str], None]


class ConsensusDriver:
    """Runs one node's Tendermint machine against the real clock and network.

    `clock` is the wall clock: it dates the blocks this node proposes and every
    input the machine is given; the timers run on trio's clock.
    """

    def __init__(
        self,
        *,
        genesis: Genesis,
        ledger: Ledger,
        mempool: Mempool,
        key: PrivateKey | None,
        guard_file: GuardFile | None,
        broadcast: Callable[[Proposal | Vote], Awaitable[None]],
        committed: Committed,
        clock: Clock,
        offence: Offence | None = None,
    ) -> None:
        self.clock = clock
        self.ledger = ledger
        self.mempool = mempool
        self.key = key
        self.guard_file = guard_file
        self._broadcast = broadcast
        self._committed = committed
        self._offence = offence
        self._invalid_stored: tuple[int, int] = (0, 0)  # (height, invalid proposals stored at it)
        self.app = LedgerApp(ledger, mempool, key, clock)
        self._genesis = genesis
        self.machine = self._new_machine()
        self.lock = trio.Lock()
        # validator key → (ms, height, round): only messages that passed the gossip filter get
        # here, and it admits only genesis validators' signatures, so ≤ one entry per validator
        self.last_seen: dict[bytes, tuple[int, int, int]] = {}
        self._nursery: trio.Nursery | None = None
        self._started = trio.Event()
        self.blocks_applied = 0  # blocks stored, decided here or finalized elsewhere
        self.apply_seconds = 0.0  # the time taking their update and committing it, summed
        self.rounds_ended = 0  # rounds left for the next round or height (`_note_round`)
        self.round_seconds = 0.0  # their durations, summed
        self._round: tuple[int, int, float] | None = None  # (height, round, trio time it began)

    def _new_machine(self) -> Tendermint:
        """The state machine at the ledger's next height (guard and lock from disk)."""
        ledger, key, genesis = self.ledger, self.key, self._genesis
        guard_file = self.guard_file
        guard = guard_file.load() if guard_file is not None and key is not None else SignGuard()
        lock = _load_lock(ledger, guard) if key is not None else None
        return Tendermint(
            chain_id=genesis.chain_id,
            genesis_hash=genesis.hash(),
            validators=ledger.validators_at(ledger.height + 1),
            validators_at=ledger.validators_at,
            params=genesis.params.consensus,
            app=self.app,
            key=key,
            guard=guard,
            height=ledger.height + 1,
            judge=self.app,
            lock=lock,
        )

    def restart_at_head(self) -> None:
        """Start over at the ledger's head, which moved under us (a state sync); before `run`."""
        assert not self._started.is_set(), "the machine is already running"
        self.machine = self._new_machine()

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the machine and serve its timers until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            async with self.lock:
                await self._execute(self.machine.start(self.clock.now_ms()))
                if len(self.mempool):
                    await self._execute(self.machine.on_txs_available(self.clock.now_ms()))
            self._started.set()
            task_status.started()
            await trio.sleep_forever()

    # -- inputs --

    async def on_message(self, message: Proposal | Vote) -> None:
        """A proposal or vote from the network (signature checks happen in the machine).

        Raises:
            InvalidUpdate: the message is invalid (the sender should be penalized).
        """
        signer = message.proposer if isinstance(message, Proposal) else message.validator
        self.last_seen[bytes(signer)] = (self.clock.now_ms(), message.height, message.round)
        await self._started.wait()  # gossip may start flowing before the machine does
        async with self.lock:
            if isinstance(message, Proposal):
                effects = self.machine.on_proposal(message, self.clock.now_ms())
            else:
                effects = self.machine.on_vote(message, self.clock.now_ms())
            await self._execute(effects)

    async def txs_available(self) -> None:
        """The mempool holds transactions."""
        if not self._started.is_set():
            return  # `run` looks at the mempool when it starts the machine
        async with self.lock:
            await self._execute(self.machine.on_txs_available(self.clock.now_ms()))

    def proposed_block(self, height: int, block_hash: bytes) -> Block | None:
        """A block with this hash proposed at `height`, if this node saw it."""
        if self.machine.height != height:
            return None
        for proposal in self.machine.proposals.values():
            if proposal.block.hash == block_hash:
                return proposal.block
        return None

    async def apply_finalized(
        self, block: Block, certificate: CommitCertificate, *, durable: bool = True
    ) -> bool:
        """Store a block finalized elsewhere (sync, commit notice) if it is the next one.

        `durable=False` skips the disk flush (sync passes it for all but the last
        block of a page: peers can give those again after a power cut).

        Returns whether it was applied (False if it is not the next height).

        Raises:
            InvalidUpdate: the block or its certificate is invalid.
        """
        # A finalized block can come by gossip before the machine runs (the p2p service starts
        # first): applying it then advanced a machine with no timers yet and stopped the node.
        await self._started.wait()
        async with self.lock:
            if block.height != self.ledger.height + 1:
                return False
            params = self.ledger.params
            certificate.verify(
                self.ledger.validators_at(block.height),
                params.chain_id,
                block.hash,
                genesis_hash=params.genesis_hash,
            )
            started = trio.current_time()
            update = self.app.take(block)
            self.ledger.commit(update, certificate, sync=durable)
            self._applied(started)
            self.machine.on_synced(block, certificate, self.clock.now_ms())
            await self._committed(block, certificate, False)
            await self._execute(
                self.machine.advance(self.clock.now_ms(), txs_available=len(self.mempool) > 0)
            )
            return True

    def own_messages(self) -> list[Proposal | Vote]:
        """What this validator signed at the current height, in the last two rounds.

        Gossip is best effort: a validator that was down or partitioned when these
        went out never saw them. Re-sending them while the height is stuck is what
        lets the height finish once a quorum is reachable again.
        """
        machine = self.machine
        if self.key is None or machine.step in (Step.WAITING, Step.COMMITTING):
            return []
        index = machine.validators.index_of(self.key.public_key)
        out: list[Proposal | Vote] = []
        for round_ in sorted({machine.round - 1, machine.round}):
            proposal = machine.proposals.get(round_)
            if proposal is not None and proposal.proposer == self.key.public_key:
                out.append(proposal)
            for vtype in (VoteType.PREVOTE, VoteType.PRECOMMIT):
                vote = machine.votes.get((round_, vtype), {}).get(index) if index is not None else None
                if vote is not None:
                    out.append(vote)
        return out

    def leads_round(self) -> bool:
        """Whether this validator is the proposer of the machine's current round."""
        machine = self.machine
        return self.key is not None and machine.validators.proposer(machine.height, machine.round) == self.key.public_key

    def stuck_messages(self) -> list[Proposal | Vote]:
        """What to send again while the height is stuck: `own_messages`, and the votes behind a lock.

        A validator that locked on a block in some round re-proposes it later with
        that round as its proof-of-lock round, and the others accept it only once
        they hold that round's quorum of prevotes. One who missed a prevote of a
        validator that is now cut off (a partition) can never get it from its
        signer; without a relay the remaining quorum re-proposes, refuses and
        times out round after round (seen: 75 s without a block until the cut
        healed). So the prevotes of the valid and locked rounds are relayed too,
        whoever signed them. Any node may relay: the signatures are the votes'.
        """
        out = self.own_messages()
        machine = self.machine
        if machine.step in (Step.WAITING, Step.COMMITTING):
            return out
        for round_ in sorted({r for r in (machine.valid_round, machine.locked_round) if r >= 0}):
            for vote in machine.votes.get((round_, VoteType.PREVOTE), {}).values():
                if vote not in out:
                    out.append(vote)
        return out

    # -- effects --

    async def _execute(self, effects: list[Effect]) -> None:
        try:
            await self._run_effects(effects)
        finally:
            self._note_round()

    def _note_round(self) -> None:
        """Time rounds: one ends when the machine is at another (height, round) after an input."""
        height, round_ = self.machine.height, self.machine.round
        now = trio.current_time()
        if self._round is None:
            self._round = (height, round_, now)
        elif self._round[:2] != (height, round_):
            self.rounds_ended += 1
            self.round_seconds += now - self._round[2]
            self._round = (height, round_, now)

    async def _run_effects(self, effects: list[Effect]) -> None:
        queue: deque[Effect] = deque(effects)
        while queue:
            effect = queue.popleft()
            if isinstance(effect, PersistGuard):
                assert self.guard_file is not None
                # In a thread: gossip, DNS and RPC go on during the sync; the machine
                # waits (we hold the lock), and nothing later is sent if it raises.
                await trio.to_thread.run_sync(self.guard_file.store, effect.data)
            elif isinstance(effect, PersistLock):
                # Before the guard write that records the lock, and so before the
                # precommit: a restart then finds the block it is locked on.
                batch = WriteBatch()
                batch.put(keys.LOCK, effect.record.to_bytes())
                await trio.to_thread.run_sync(self._write_synced, batch)
            elif isinstance(effect, Broadcast):
                await self._broadcast(effect.message)
            elif isinstance(effect, ScheduleTimeout):
                assert self._nursery is not None
                try:
                    self._nursery.start_soon(self._timer, effect)
                except RuntimeError:  # "Nursery is closed to new arrivals": stopping
                    log.debug("timeout not scheduled: the node is stopping")
                    return
            elif isinstance(effect, Decide):
                if await self._decide(effect.block, effect.certificate):
                    now_ms = self.clock.now_ms()
                    queue.extend(self.machine.advance(now_ms, txs_available=len(self.mempool) > 0))
            elif isinstance(effect, EvidenceFound):
                self._record_evidence(effect.evidence)
            elif isinstance(effect, InvalidProposalFound):
                self._record_invalid_proposal(effect.proposal, effect.reason)

    async def _decide(self, block: Block, certificate: CommitCertificate) -> bool:
        if block.height != self.ledger.height + 1:
            return False  # sync got there first
        started = trio.current_time()
        try:
            update = self.app.take(block)
            self.ledger.commit(update, certificate)
        except InvalidUpdate as exc:  # a bug or a Byzantine quorum: never store it
            log.error("decided block %d does not apply: %s", block.height, exc)
            return False
        self._applied(started)
        mine = self.key is not None and block.header.proposer == self.key.public_key
        await self._committed(block, certificate, mine)
        return True

    def _applied(self, started: float) -> None:
        self.blocks_applied += 1
        self.apply_seconds += trio.current_time() - started

    def _record_evidence(self, evidence: Evidence) -> None:
        log.warning(
            "validator %s equivocated at height %d round %d",
            bytes(evidence.first.validator).hex()[:16], evidence.first.height, evidence.first.round,
        )
        batch = WriteBatch()
        put_evidence(batch, evidence)
        # Off the event loop and off the consensus lock: evidence is for operators, and
        # the machine emits at most one per validator, round and vote type per height.
        if self._nursery is not None:
            self._nursery.start_soon(trio.to_thread.run_sync, self._write_synced, batch)
        else:
            self._write_synced(batch)
        if self._offence is not None:
            vote = evidence.first
            kind = vote.vtype.name.lower()
            what = f"equivocation: two {kind}s at height {vote.height} round {vote.round}"
            self._offence(vote.validator, evidence, what)

    def _record_invalid_proposal(self, proposal: Proposal, reason: str) -> None:
        log.warning(
            "validator %s proposed an invalid block at height %d round %d: %s",
            bytes(proposal.proposer).hex()[:16], proposal.height, proposal.round, reason,
        )  # fmt: skip
        text = reason.encode()[:MAX_FAULT_REASON].decode(errors="ignore")
        record = InvalidProposal(proposal=proposal, reason=text)
        height, stored = self._invalid_stored
        if height != proposal.height:
            height, stored = proposal.height, 0
        if stored < MAX_INVALID_PROPOSALS_STORED:
            batch = WriteBatch()
            put_invalid_proposal(batch, record)
            if self._nursery is not None:
                self._nursery.start_soon(trio.to_thread.run_sync, self._write_synced, batch)
            else:
                self._write_synced(batch)
            stored += 1
        self._invalid_stored = (height, stored)
        if self._offence is not None:
            what = f"invalid proposal at height {proposal.height} round {proposal.round}: {reason}"
            self._offence(proposal.proposer, record, what)

    def _write_synced(self, batch: WriteBatch) -> None:
        self.ledger.store.write(batch, sync=True)

    async def _timer(self, effect: ScheduleTimeout) -> None:
        await trio.sleep(effect.delay_ms / 1000)
        log.debug("timeout %s h=%d r=%d", effect.kind.name, effect.height, effect.round)
        async with self.lock:
            now_ms = self.clock.now_ms()
            effects = self.machine.on_timeout(effect.kind, effect.height, effect.round, now_ms)
            await self._execute(effects)


def _load_lock(ledger: Ledger, guard: SignGuard) -> LockRecord | None:
    """The stored lock record if it is the guard's lock at the next height, else None."""
    raw = ledger.store.get(keys.LOCK)
    if raw is None or guard.lock_round < 0 or guard.height != ledger.height + 1:
        return None
    try:
        record = LockRecord.from_bytes(raw)
    except InvalidUpdate as exc:
        log.warning("ignoring an unreadable lock record: %s", exc)
        return None
    if (record.height, record.round, record.proposal.block.hash) != (
        guard.height, guard.lock_round, guard.lock_hash,
    ):  # fmt: skip
        return None
    return record
