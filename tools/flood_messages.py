"""What a flooding validator publishes: the messages of `tools/byzantine.py`'s flood modes.

Each mode is a stream of consensus-topic messages, every one signed with the
validator's real key for the current network (genesis hash included), built from
where its own state machine is (height ``h``, round ``r``) at the moment it is sent:

- ``flood-votes``: nil votes nobody can blame, in turn (a) just past the round
  window (rounds ``r+3``, ``r+4``, … in order), (b) far ahead (random rounds up to
  2**31-1), (c) for the next height (its six in-window slots, then rounds 3, 4, …).
  Never two votes for one slot, so no equivocation; and the validator's own machine
  votes nil in a slot the flood already filled (`Flood.flooded`), so it does not
  equivocate by accident either.
- ``flood-proposals``: proposals for rounds it does not lead (``r`` to ``r+2`` and
  far ahead at ``h``, rounds 0-2 at ``h+1``), each carrying a large block.
- ``flood-lead-proposals``: proposals for rounds it *does* lead at ``h``, past the
  round window, each carrying the same large block of valid registrations: correctly
  signed and named, so nobody can blame it, but each one's body is decoded.
- ``flood-equivocate``: prevotes and precommits for ``h``, rounds ``r`` to ``r+2``,
  each for a fresh random block hash.
- ``flood-resent``: the same equivocations, each wrapped in a ``Resent``.

With several modes the messages alternate between them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from chain.block import Block, BlockHeader, tx_root
from chain.consensus import NIL, ROUND_WINDOW
from chain.consensus_messages import Proposal
from chain.crypto import PrivateKey, sha256
from chain.quorum import ValidatorSet, Vote, VoteType
from chain.records import Record
from chain.tx import ZERO_HASH, Op, Transaction, TxBody
from chain.wire import Resent

FLOOD_MODES = (
    "flood-votes", "flood-proposals", "flood-lead-proposals", "flood-equivocate", "flood-resent",
)  # fmt: skip
MAX_ROUND = 2**31 - 1
TYPES = (VoteType.PREVOTE, VoteType.PRECOMMIT)
REGISTRATION_BYTES = 180  # about one dev registration with one A record, for sizing a body


@dataclass(slots=True)
class Signer:
    """Who signs, for which network: read from the validator's own state machine."""

    key: PrivateKey
    chain_id: str
    genesis_hash: bytes
    validators: ValidatorSet

    def vote(self, vtype: VoteType, height: int, round_: int, block_hash: bytes) -> Vote:
        return Vote.create(
            self.key, chain_id=self.chain_id, genesis_hash=self.genesis_hash,
            vtype=vtype, height=height, round_=round_, block_hash=block_hash,
        )  # fmt: skip

    def proposal(self, block: Block, round_: int) -> Proposal:
        return Proposal.create(
            self.key, chain_id=self.chain_id, genesis_hash=self.genesis_hash,
            round_=round_, block=block, pol_round=-1,
        )  # fmt: skip

    def leads(self, height: int, round_: int) -> bool:
        return self.validators.proposer(height, round_) == self.key.public_key


@dataclass(slots=True)
class Flood:
    """The message streams of the chosen flood modes, and the slots they filled."""

    modes: tuple[str, ...]
    signer: Signer
    rng: random.Random
    body_bytes: int = 256 * 1024
    # (height, round, type) of every nil vote flooded: the own machine must agree there
    flooded: set[tuple[int, int, int]] = field(default_factory=set)
    sent_by_mode: dict[str, int] = field(default_factory=dict)
    _height: int = -1
    _counters: dict[str, int] = field(default_factory=dict)
    _txs: tuple[Transaction, ...] = ()
    _blocks: dict[int, Block] = field(default_factory=dict)
    _turn: int = 0

    def next_message(self, height: int, round_: int) -> bytes:
        """The next message to publish while the machine is at `height`, `round_`."""
        if height != self._height:  # a new height: counters restart, old slots are moot
            self._height = height
            self._counters.clear()
            self._blocks = {h: b for h, b in self._blocks.items() if h >= height}
            self.flooded = {s for s in self.flooded if s[0] >= height}
        mode = self.modes[self._turn % len(self.modes)]
        self._turn += 1
        self.sent_by_mode[mode] = self.sent_by_mode.get(mode, 0) + 1
        if mode == "flood-votes":
            return self._nil_vote(height, round_).to_bytes()
        if mode == "flood-proposals":
            return self._foreign_proposal(height, round_).to_bytes()
        if mode == "flood-lead-proposals":
            return self._lead_proposal(height, round_).to_bytes()
        vote = self._equivocation(height, round_)
        if mode == "flood-resent":
            return Resent(nonce=time.time_ns(), payload=vote.to_bytes()).to_bytes()
        return vote.to_bytes()

    # -- the streams --

    def _count(self, name: str) -> int:
        n = self._counters.get(name, 0)
        self._counters[name] = n + 1
        return n

    def _nil_vote(self, height: int, round_: int) -> Vote:
        turn = self._count("votes")
        if turn % 3 == 0:  # just past the window, in order
            k = self._count("past")
            h, r, vtype = height, round_ + ROUND_WINDOW + 1 + k // 2, TYPES[k % 2]
        elif turn % 3 == 1:  # far ahead
            h, vtype = height, TYPES[self.rng.randrange(2)]
            r = self.rng.randint(round_ + ROUND_WINDOW + 1, MAX_ROUND)
        else:  # the next height: its buffer's slots, then past them
            k = self._count("next")
            h, r, vtype = height + 1, k // 2, TYPES[k % 2]
        r = min(r, MAX_ROUND)
        self.flooded.add((h, r, int(vtype)))
        return self.signer.vote(vtype, h, r, NIL)

    def _foreign_proposal(self, height: int, round_: int) -> Proposal:
        k = self._count("foreign")
        if k % 3 == 2:
            h, r = height + 1, self.rng.randint(0, ROUND_WINDOW)
        elif k % 3 == 1:
            h, r = height, self.rng.randint(round_ + ROUND_WINDOW + 1, MAX_ROUND - 8)
        else:
            h, r = height, round_ + self.rng.randint(0, ROUND_WINDOW)
        while self.signer.leads(h, r):
            r += 1
        return self.signer.proposal(self._block(h), r)

    def _lead_proposal(self, height: int, round_: int) -> Proposal:
        r = self.rng.randint(round_ + ROUND_WINDOW + 1, MAX_ROUND - 8)
        while not self.signer.leads(height, r):
            r += 1
        return self.signer.proposal(self._block(height), r)

    def _equivocation(self, height: int, round_: int) -> Vote:
        k = self._count("equivocate")
        r, vtype = round_ + (k // 2) % (ROUND_WINDOW + 1), TYPES[k % 2]
        return self.signer.vote(vtype, height, r, self.rng.randbytes(32))

    # -- the large body --

    def _block(self, height: int) -> Block:
        block = self._blocks.get(height)
        if block is None:
            if not self._txs:
                self._txs = tuple(self._registrations())
            header = BlockHeader(
                chain_id=self.signer.chain_id, height=height, prev_block=sha256(b"flood prev"),
                time_ms=time.time_ns() // 1_000_000, proposer=self.signer.key.public_key,
                tx_root=tx_root(self._txs), state_root=sha256(b"flood state"),
                validators_hash=self.signer.validators.hash(),
                next_validators_hash=self.signer.validators.hash(),
            )  # fmt: skip
            block = self._blocks[height] = Block(header=header, txs=self._txs)
        return block

    def _registrations(self) -> Iterator[Transaction]:
        owner = PrivateKey.generate(b"flood owner")
        valid_until = int(time.time()) + 3600
        for i in range(max(1, self.body_bytes // REGISTRATION_BYTES)):
            name = f"flood{i}.p2p"
            body = TxBody(
                chain_id=self.signer.chain_id, domain=name, seq=0, prev=ZERO_HASH,
                op=Op.REGISTER, records=(Record.from_text("@ 300 A 10.9.0.1", origin=name),),
                owner=owner.public_key, valid_until=valid_until,
            )  # fmt: skip
            yield Transaction.sign(body, owner, self.signer.genesis_hash)
