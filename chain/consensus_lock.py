"""The validator's lock, kept on disk so a restart mid-height can finish the height.

A validator that precommits a block locks on it (Tendermint Algorithm 1, L36):
from then on it prevotes only that block, or a later round's block backed by a
quorum of prevotes. The `SignGuard` keeps the lock's round and hash, which is
enough for safety, but not for liveness: if more than a third of the
validators restart while locked on a block nobody has stored, they can prevote
nothing else and nobody can re-propose the block (the block and the prevotes
that justify it lived in memory only). The chain would halt for good.

So before it signs the precommit that locks it, a validator writes a
`LockRecord`: the proposal it locked on and the quorum of prevotes behind it
(the "proof of lock"). After a restart it re-proposes that block with the lock
round as its proof-of-lock round and relays the prevotes, which is exactly
what Algorithm 1 does with `validValue` and `validRound` while running.

Wire form: ``[Kind.LOCK_RECORD, proposal bytes, [prevote bytes, ...]]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.block import MAX_BLOCK_BYTES_HARD
from chain.consensus_messages import Proposal
from chain.encoding import Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.quorum import MAX_VALIDATORS, VOTE_MAX_BYTES, Vote, VoteType


@dataclass(frozen=True, slots=True, kw_only=True)
class LockRecord:
    """The proposal a validator locked on and the prevotes of its round for its block."""

    proposal: Proposal
    prevotes: tuple[Vote, ...]

    def __post_init__(self) -> None:
        p = self.proposal
        for vote in self.prevotes:
            if (vote.vtype, vote.height, vote.round, vote.block_hash) != (
                VoteType.PREVOTE, p.height, p.round, p.block.hash,
            ):  # fmt: skip
                raise InvalidUpdate(RejectReason.BAD_VOTE, "lock record: a prevote for another block")

    @property
    def height(self) -> int:
        """The height of the lock."""
        return self.proposal.height

    @property
    def round(self) -> int:
        """The lock round."""
        return self.proposal.round

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        return frame(Kind.LOCK_RECORD, self.proposal.to_bytes(), [v.to_bytes() for v in self.prevotes])

    @classmethod
    def from_bytes(cls, data: bytes) -> LockRecord:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed input.
        """
        r = Reader.open(
            data, Kind.LOCK_RECORD, "lock record", fields=2,
            max_size=MAX_BLOCK_BYTES_HARD + 1024 + MAX_VALIDATORS * (VOTE_MAX_BYTES + 8),
        )  # fmt: skip
        proposal = Proposal.from_bytes(r.bytes("proposal", maximum=MAX_BLOCK_BYTES_HARD + 512))
        items = r.array("prevotes", maximum=MAX_VALIDATORS)
        r.done()
        votes = []
        for i, item in enumerate(items):
            if type(item) is not bytes:
                raise InvalidUpdate(RejectReason.MALFORMED, f"lock record.prevotes[{i}]: expected bytes")
            votes.append(Vote.from_bytes(item))
        return cls(proposal=proposal, prevotes=tuple(votes))
