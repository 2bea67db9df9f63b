"""The simulated validators: an honest driver around the state machine, and liars.

`SimNode` is what the node will be, in miniature: it executes the machine's
effects in order (guard bytes to its disk before anything else, broadcasts
through the simulated network, timeouts into the event queue, decisions into
its ledger and mempool), gossips what peers lack and syncs blocks it missed.
`ByzantineNode` runs the same machine but lies about what it sends.
"""

from __future__ import annotations

from dataclasses import replace
from enum import IntEnum
from typing import TYPE_CHECKING

from chain.block import Block, tx_root
from chain.consensus import NIL, ROUND_WINDOW, Step
from chain.consensus_effects import (
    Broadcast,
    Decide,
    Effect,
    EvidenceFound,
    PersistGuard,
    PersistLock,
    ScheduleTimeout,
)
from chain.consensus_lock import LockRecord
from chain.consensus_messages import Proposal, SignGuard
from chain.consensus_votes import MAX_CONFLICTING_PER_SLOT
from chain.crypto import sha256
from chain.errors import InvalidUpdate
from chain.ledger import BlockUpdate, Ledger
from chain.mempool import Mempool
from chain.quorum import CommitCertificate, Vote, VoteType
from chain.store import MemoryStore
from chain.tx import Transaction
from tests.simulation.devnet import node_key

if TYPE_CHECKING:
    from tests.simulation.simnet import Simulation

Message = Proposal | Vote
MAX_ROUND = 2**31 - 1  # the largest round the wire format carries
FLOOD_HASHES = MAX_CONFLICTING_PER_SLOT + 2  # fresh block hashes per flooded vote slot


class Event(IntEnum):
    """What a queued event is."""

    MSG = 0
    TIMEOUT = 1
    TX = 2
    SUBMIT = 3
    TICK = 4
    SYNC = 5
    CRASH = 6
    ARM = 7  # crash at the next guard write
    RESTART = 8
    HEAL = 9
    QUORUM_CRASH = 10  # the scenario's quorum restart
    CHANGE = 11  # a validator-set change's proposer proposes it (payload: the plan's index)


def message_key(m: Message) -> tuple[int, int, int, bytes, bytes]:
    """Identity of a proposal or vote for the gossip layer."""
    if isinstance(m, Vote):
        return (m.height, m.round, int(m.vtype), m.validator, m.block_hash)
    return (m.height, m.round, 0, m.proposer, m.block.hash)


class _App:
    """The `ConsensusApp` adapter: proposals from the mempool, validity from the ledger."""

    def __init__(self, node: SimNode) -> None:
        self.node = node
        self.checked: dict[bytes, BlockUpdate] = {}

    def build_proposal(self, height: int, time_ms: int) -> Block:
        node = self.node
        limits = node.sim.params.consensus
        batch = node.mempool.batch(limits.max_block_txs, limits.max_block_bytes)
        block, rejected = node.ledger.build_block(
            batch, time_ms=time_ms, proposer=node.key.public_key
        )
        for r in rejected:
            for tx, error in node.mempool.discard(r.tx.txid, r.error):
                node.reject(tx, error, "build_block")
        return block

    def is_valid(self, block: Block) -> bool:
        try:
            self.checked[block.hash] = self.node.ledger.check_block(block)
        except InvalidUpdate:
            return False
        return True


class SimNode:
    """One honest validator: state machine, ledger, mempool, disk, gossip and sync."""

    byzantine = ""

    def __init__(self, sim: Simulation, index: int) -> None:
        self.sim = sim
        self.index = index
        self.key = node_key(index)  # a genesis validator's, or (index >= n) one outside the set
        self.store = MemoryStore()  # the ledger's data directory: survives crashes
        self.disk: dict[str, bytes] = {}  # the guard file: survives crashes
        self.finalized: set[bytes] = set()  # txids in the ledger (derived from the store)
        self.rejections: dict[bytes, list[tuple[str, InvalidUpdate]]] = {}
        self.up = False
        self.incarnation = 0
        self.armed = False  # crash at the next guard write
        self.down_ms = 0
        self.seen_height = 0  # the last height whose validator set the checks compared
        self.old_guards: list[bytes] = []  # the guards of keys rotated away (kept, unused)

    # -- life cycle --

    def boot(self, now: int) -> None:
        """Start, or restart from the disk."""
        self.ledger = Ledger(self.store, self.sim.genesis)
        self.ledger.initialize()
        self.mempool = Mempool(self.sim.params, chain=self.ledger)
        self.app = _App(self)
        self.seen_height = 0
        rotated = self.sim.changes.key_for(self)
        if rotated is not None:  # the operator starts it with the new key (and maybe a new guard)
            if self.sim.changes.fresh_guard(rotated):
                self.old_guards.append(self.disk.pop("guard", b""))
                self.disk.pop("lock", None)
            self.key = rotated
            self.sim.faults["restart with a rotated key"] += 1
        raw = self.disk.get("guard")
        guard = SignGuard.from_bytes(raw) if raw is not None else SignGuard()
        self.machine = self.sim.factory(self, guard, self.ledger.height + 1)
        self.up = True
        self.received: set[tuple[int, int, int, bytes, bytes]] = set()
        self.relay: dict[int, dict[tuple[int, int, int, bytes, bytes], Message]] = {}
        self.sync_idle_at = 0
        # What the machine restored from the lock record (the locked proposal and the
        # prevotes behind it) is this node's to relay, as the node's stuck-height resend
        # does: the others accept a re-proposal of the block only with those prevotes.
        m = self.machine
        restored: list[Message] = [*m.proposals.values()]
        restored += [vote for slot in m.votes.values() for vote in slot.values()]
        for message in restored:
            self.remember(message)
        self.execute(self.machine.start(self.sim.ms(now)), now)
        if self.sim.gossip_ms:
            self.sim.schedule(now + self.sim.rng.randint(1, self.sim.gossip_ms), Event.TICK, self, None)
        if self.up and not self.byzantine:
            self.sim.changes.operate(self, resend=True)

    def stored_lock(self) -> LockRecord | None:
        """The lock record on disk (the machine checks it against the guard)."""
        raw = self.disk.get("lock")
        return LockRecord.from_bytes(raw) if raw is not None else None

    def crash(self) -> None:
        """Lose everything but `store` and `disk`."""
        self.up = False
        self.armed = False
        self.incarnation += 1
        del self.machine, self.mempool, self.app, self.received, self.relay

    # -- effects --

    def execute(self, effects: list[Effect], now: int) -> None:
        """Run effects in order; after a Decide, store the block, then `advance`."""
        decided = False
        for effect in effects:
            if not self.up:
                return
            if isinstance(effect, PersistLock):
                self.disk["lock"] = effect.record.to_bytes()
            elif isinstance(effect, PersistGuard):
                self.disk["guard"] = effect.data
                self.sim.on_guard(self, effect.data)
                if self.armed:
                    self.sim.crash(self, after_guard=True)
                    return
            elif isinstance(effect, Broadcast):
                self.broadcast(effect.message, now)
            elif isinstance(effect, ScheduleTimeout):
                self.sim.schedule(now + effect.delay_ms, Event.TIMEOUT, self, effect)
            elif isinstance(effect, Decide):
                if self.commit(effect.block, effect.certificate, now, decided_here=True):
                    decided = True
            elif isinstance(effect, EvidenceFound):
                self.sim.on_evidence(self, effect.evidence)
        if decided and self.up:
            if not self.byzantine:
                self.sim.sizes.note(self.machine)  # the height's state, before advance() drops it
            self.advance(now)

    def advance(self, now: int) -> None:
        """Enter the next height; first restart with a new key if a rotation takes effect there."""
        if not self.byzantine and self.sim.changes.key_for(self) is not None:
            self.crash()
            self.boot(now)
            self.sim.resend(self)  # its clients send again what its lost mempool held
            return
        self.execute(self.machine.advance(self.sim.ms(now), txs_available=len(self.mempool) > 0), now)

    def broadcast(self, message: Message, now: int) -> None:
        self.sim.on_signed(self, message)
        self.remember(message)
        for peer in self.sim.nodes:
            if peer is not self:
                self.sim.transmit(self.index, peer.index, Event.MSG, message)

    def remember(self, message: Message) -> None:
        key = message_key(message)
        self.received.add(key)
        self.relay.setdefault(message.height, {})[key] = message

    def commit(self, block: Block, cert: CommitCertificate, now: int, *, decided_here: bool) -> bool:
        """Check and store a finalized block (a validity violation if that fails)."""
        try:
            update = self.app.checked.get(block.hash)
            if update is None or block.header.prev_block != self.ledger.head.hash:
                update = self.ledger.check_block(block)
            genesis = self.sim.genesis
            validators = self.ledger.validators_at(block.height)
            cert.verify(validators, genesis.chain_id, block.hash, genesis_hash=genesis.hash())
            self.ledger.commit(update, cert)
        except InvalidUpdate as exc:
            self.sim.on_bad_commit(self, block, exc)
            return False
        self.app.checked.clear()
        self.finalized.update(tx.txid for tx in block.txs)
        self.sim.on_commit(self, block, cert, now, decided_here)
        now_s = block.header.time_ms // 1000
        for tx, error in self.mempool.block_applied(block.txs, self.ledger.get_domain, now_s):
            self.reject(tx, error, "block_applied")
        return True

    def reject(self, tx: Transaction, error: InvalidUpdate, where: str) -> None:
        self.rejections.setdefault(tx.txid, []).append((where, error))

    # -- inputs --

    def on_message(self, message: Message, now: int) -> None:
        m = self.machine
        if message.height <= m.height:
            # What the machine took (or refused) at its height. A message for a later
            # height may be dropped or not buffered, so gossip must be free to send it
            # again once this validator is there (as the node's stuck-height resend does).
            self.received.add(message_key(message))
        if message.height > m.height + 1:
            self.maybe_sync(now)
        known: Vote | None = None
        taken = message.height == m.height and m.step != Step.COMMITTING
        if taken and isinstance(message, Vote):
            index = m.validators.index_of(message.validator)
            if index is not None:
                known = m.votes.get((message.round, message.vtype), {}).get(index)
            if known is not None and known.block_hash == message.block_hash:
                known = None
        try:
            if isinstance(message, Proposal):
                effects = m.on_proposal(message, self.sim.ms(now))
            else:
                effects = m.on_vote(message, self.sim.ms(now))
        except InvalidUpdate:
            self.sim.faults_seen["refused message"] += 1
            return
        if known is not None and isinstance(message, Vote) and not self.byzantine:
            self.sim.expect_evidence(self, known, message)
        if taken and isinstance(message, Vote) and not self.byzantine:
            self.sim.changes.check_vote_taken(self, message)
        if m.height <= message.height <= m.height + 1:
            self.relay.setdefault(message.height, {})[message_key(message)] = message
        self.execute(effects, now)
        self.sim.observe(self)

    def on_timeout(self, timeout: ScheduleTimeout, now: int) -> None:
        m = self.machine
        self.execute(m.on_timeout(timeout.kind, timeout.height, timeout.round, self.sim.ms(now)), now)
        self.sim.observe(self)

    def on_tx(self, tx: Transaction, now: int) -> None:
        if tx.txid in self.finalized or tx.txid in self.mempool:
            return
        was_empty = len(self.mempool) == 0
        try:
            self.mempool.add(tx, self.ledger.get_domain, self.sim.ms(now) // 1000)
        except InvalidUpdate as exc:
            self.reject(tx, exc, "add")
            return
        if was_empty:
            self.execute(self.machine.on_txs_available(self.sim.ms(now)), now)

    def on_tick(self, now: int) -> None:
        if not self.byzantine:
            self.gossip()
        self.maybe_sync(now)
        self.sim.schedule(now + self.sim.gossip_ms, Event.TICK, self, None)

    # -- gossip and sync --

    def gossip(self) -> None:
        """Send each reachable peer what it lacks of this height's messages and of the mempool."""
        sim, m = self.sim, self.machine
        for h in [h for h in self.relay if h < m.height]:
            del self.relay[h]
        held = self.relay.get(m.height, {})
        messages = [x for x in held.values() if x.round >= m.round - 1]
        pol = {x.pol_round for x in messages if isinstance(x, Proposal) and x.pol_round >= 0}
        if pol:  # the prevotes that justify a re-proposal (Tendermint gossips them too)
            messages += [
                x for x in held.values()
                if x.round in pol and x.round < m.round - 1 and isinstance(x, Vote)
                and x.vtype == VoteType.PREVOTE
            ]  # fmt: skip
        txs = self.mempool.snapshot()
        for peer in sim.nodes:
            if peer is self or not peer.up or not sim.reachable(self.index, peer.index):
                continue
            if peer.machine.height == m.height:
                for message in messages:
                    if message_key(message) not in peer.received:
                        sim.transmit(self.index, peer.index, Event.MSG, message)
            for tx in txs:
                if tx.txid not in peer.mempool and tx.txid not in peer.finalized:
                    sim.transmit(self.index, peer.index, Event.TX, tx)

    def maybe_sync(self, now: int) -> None:
        """Ask a reachable honest peer with a longer chain for the missing blocks."""
        sim = self.sim
        if now < self.sync_idle_at:
            return
        height = self.ledger.height
        ahead = [
            p for p in sim.honest
            if p is not self and p.up and p.ledger.height > height
            and sim.reachable(self.index, p.index)
        ]  # fmt: skip
        if ahead:
            self.sync_idle_at = now + sim.gossip_ms
            sim.request_sync(self, sim.rng.choice(ahead))

    def on_sync(self, peer: SimNode, now: int) -> None:
        """The response arrived: apply the peer's blocks after our head."""
        if not peer.up:
            return
        while self.up and self.ledger.height < peer.ledger.height:
            height = self.ledger.height + 1
            block = peer.ledger.get_block(height)
            cert = peer.ledger.get_certificate(height)
            m = self.machine
            m.on_synced(block, cert, self.sim.ms(now))
            if not self.commit(block, cert, now, decided_here=False):
                return
            self.sim.faults_seen["blocks synced"] += 1
            self.advance(now)


class ByzantineNode(SimNode):
    """A faulty validator running the honest machine but lying about what it sends.

    - ``equivocate``: every proposal and vote goes out in two conflicting signed
      versions (guard bypassed): one to group A, the other to group B, both to
      one "witness" validator. Colluding equivocators vote version A of an
      equivocating proposal to group A and version B to group B.
    - ``invalid``: its proposals carry an invalid block (wrong state root, or a
      transaction with a broken signature), correctly signed; every invalid
      validator prevotes and precommits such a block in its round.
    - ``silent``: never starts.
    - ``flood``: sends its honest messages, and on every gossip tick until the
      heal (for the whole run with `Scenario.flood_after_heal`)
      `Scenario.flood_bursts` bursts of junk, all validly signed (`flood`).
    """

    def __init__(self, sim: Simulation, index: int, mode: str) -> None:
        super().__init__(sim, index)
        self.byzantine = mode
        self._flood_blocks: dict[int, Block] = {}  # ledger height -> the empty block after it

    def broadcast(self, message: Message, now: int) -> None:
        sim = self.sim
        slot = (message.height, message.round)
        if self.byzantine == "equivocate":
            if isinstance(message, Proposal):
                alt = self._alternative(message.block)
                other: Message = Proposal.create(
                    self.key, chain_id=sim.genesis.chain_id, genesis_hash=sim.genesis.hash(),
                    round_=message.round, block=alt, pol_round=-1,
                )  # fmt: skip
                sim.split_proposals[slot] = (message.block.hash, alt.hash)
            else:
                pair = sim.split_proposals.get(slot)
                a, b = pair if pair else (message.block_hash, self._other_hash(message))
                message, other = self._vote(message, a), self._vote(message, b)
            sim.faults["equivocation"] += 1
            for peer in sim.nodes:
                if peer is self:
                    continue
                if peer.index == sim.witness:
                    sim.transmit(self.index, peer.index, Event.MSG, message)
                    sim.transmit(self.index, peer.index, Event.MSG, other)
                else:
                    out = message if peer.index in sim.group_a else other
                    sim.transmit(self.index, peer.index, Event.MSG, out)
            return
        if self.byzantine == "invalid":
            if isinstance(message, Proposal):
                bad = self._corrupt(message.block)
                sim.invalid_blocks[slot] = bad.hash
                message = Proposal.create(
                    self.key, chain_id=sim.genesis.chain_id, genesis_hash=sim.genesis.hash(),
                    round_=message.round, block=bad, pol_round=-1,
                )  # fmt: skip
                sim.faults["invalid proposal"] += 1
            elif slot in sim.invalid_blocks:
                message = self._vote(message, sim.invalid_blocks[slot])
                sim.faults["vote for invalid block"] += 1
        for peer in sim.nodes:
            if peer is not self:
                sim.transmit(self.index, peer.index, Event.MSG, message)

    # -- flood --

    def on_tick(self, now: int) -> None:
        if self.byzantine == "flood" and (self.sim.sc.flood_after_heal or not self.sim.healed):
            for _ in range(self.sim.sc.flood_bursts):
                self.flood(now)
        super().on_tick(now)

    def flood(self, now: int) -> None:
        """One burst of what the machine must not keep (issue 13, defect 3), to every peer.

        Votes for rounds far ahead (up to `MAX_ROUND`) and just past the window;
        `FLOOD_HASHES` votes for fresh random block hashes in one slot of this height
        (more than the machine counts per slot) and one in the next height's; a
        proposal for a round it does not lead, this height or the next; and a proposal
        for a round it leads past the window. Junk for this height goes out only while
        the height is under way: any message of a waiting height starts it, so junk
        would only make the others build empty blocks (and the runs long).
        """
        sim, m, rng = self.sim, self.machine, self.sim.rng
        h, r = m.height, m.round
        me = self.key.public_key
        now_set, next_set = m.validators, self.ledger.validators_at(h + 1)
        vtypes = (VoteType.PREVOTE, VoteType.PRECOMMIT)
        out: list[Message] = [
            self._junk_vote(rng.choice(vtypes), h + 1, rng.randint(0, ROUND_WINDOW))
        ]
        others = [x for x in range(ROUND_WINDOW + 1) if next_set.proposer(h + 1, x) != me]
        if others:
            out.append(self._junk_proposal(h + 1, rng.choice(others), now))
        if m.step not in (Step.WAITING, Step.COMMITTING):
            out += [
                self._junk_vote(
                    rng.choice(vtypes), h, rng.choice((MAX_ROUND, rng.randint(r, MAX_ROUND)))
                ),
                self._junk_vote(rng.choice(vtypes), h, r + ROUND_WINDOW + rng.randint(1, 2)),
            ]
            vtype, round_ = rng.choice(vtypes), rng.randint(r, r + ROUND_WINDOW)
            out += [self._junk_vote(vtype, h, round_) for _ in range(FLOOD_HASHES)]
            others = [x for x in range(r, r + ROUND_WINDOW + 1) if now_set.proposer(h, x) != me]
            if others:
                out.append(self._junk_proposal(h, rng.choice(others), now))
            ahead = r + ROUND_WINDOW + 1
            mine = now_set.index_of(me)
            if mine is not None:  # a round it leads past the window (a member only leads)
                out.append(self._junk_proposal(h, ahead + (mine - h - ahead) % now_set.n, now))
        sim.faults["flooded message"] += len(out)
        for message in out:
            for peer in sim.nodes:
                if peer is not self:
                    sim.transmit(self.index, peer.index, Event.MSG, message)

    def _junk_vote(self, vtype: VoteType, height: int, round_: int) -> Vote:
        """A vote for a fresh random block hash (guard bypassed)."""
        return Vote.create(
            self.key, chain_id=self.sim.genesis.chain_id, genesis_hash=self.sim.genesis.hash(),
            vtype=vtype, height=height, round_=round_, block_hash=self.sim.rng.randbytes(32),
        )  # fmt: skip

    def _junk_proposal(self, height: int, round_: int, now: int) -> Proposal:
        """A signed proposal of an empty block (the next height's: a copy with its height)."""
        block = self._flood_blocks.get(self.ledger.height)
        if block is None:
            block, _ = self.ledger.build_block(
                [], time_ms=self.sim.ms(now), proposer=self.key.public_key
            )
            self._flood_blocks = {self.ledger.height: block}
        if block.height != height:
            block = Block(header=replace(block.header, height=height), txs=block.txs)
        return Proposal.create(
            self.key, chain_id=self.sim.genesis.chain_id, genesis_hash=self.sim.genesis.hash(),
            round_=round_, block=block, pol_round=-1,
        )  # fmt: skip

    # -- a Byzantine validator's ledger --

    def commit(self, block: Block, cert: CommitCertificate, now: int, *, decided_here: bool) -> bool:
        try:
            self.ledger.apply_block(block, cert)
        except InvalidUpdate:
            return False
        self.app.checked.clear()
        self.finalized.update(tx.txid for tx in block.txs)
        self.mempool.block_applied(block.txs, self.ledger.get_domain, block.header.time_ms // 1000)
        return True

    def _vote(self, vote: Vote, block_hash: bytes) -> Vote:
        if vote.block_hash == block_hash:
            return vote
        return Vote.create(
            self.key, chain_id=vote.chain_id, genesis_hash=self.sim.genesis.hash(),
            vtype=vote.vtype, height=vote.height, round_=vote.round, block_hash=block_hash,
        )  # fmt: skip

    def _other_hash(self, vote: Vote) -> bytes:
        if vote.block_hash != NIL:
            return NIL
        proposal = self.machine.proposals.get(vote.round)
        if proposal is not None:
            return proposal.block.hash
        return sha256(b"phantom" + vote.height.to_bytes(8, "big") + vote.round.to_bytes(4, "big"))

    def _alternative(self, block: Block) -> Block:
        """A second valid block for the same height (same transactions, 1 ms later)."""
        alt, _ = self.ledger.build_block(
            block.txs, time_ms=block.header.time_ms + 1, proposer=self.key.public_key
        )
        return alt

    def _corrupt(self, block: Block) -> Block:
        rng = self.sim.rng
        if block.txs and rng.random() < 0.5:
            tx = block.txs[0]
            bad_sig = bytes([tx.signature[0] ^ 0x01]) + tx.signature[1:]
            bad = Transaction(body=tx.body, body_bytes=tx.body_bytes, signature=bad_sig)
            txs = (bad,) + block.txs[1:]  # same txid and state root, a broken signature
            return Block(header=replace(block.header, tx_root=tx_root(txs)), txs=txs)
        root = sha256(b"wrong state root" + block.hash)
        return Block(header=replace(block.header, state_root=root), txs=block.txs)
