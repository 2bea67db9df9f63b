"""One height's votes, as the consensus machine counts them (`chain.consensus.Tendermint`).

One vote per validator per (round, type) slot; an equivocator's further votes in a
slot are kept too, each counting for its own block (Algorithm 1 counts messages:
keeping only the first let an equivocator hide a polka others locked on), at most
`MAX_CONFLICTING_PER_SLOT` per validator and slot and `FUTURE_BUFFER` in all. Past
those caps only a vote for a block this height was proposed still counts. The
first conflicting pair of each slot is evidence.
"""

from __future__ import annotations

from collections.abc import Callable

from chain.consensus_buffer import FUTURE_BUFFER
from chain.consensus_messages import Evidence
from chain.quorum import Vote, VoteType

# At most this many distinct block hashes are counted per equivocating validator and slot.
MAX_CONFLICTING_PER_SLOT = 4

Slot = tuple[int, VoteType]  # (round, vote type)


class VoteBook:
    """The votes of one height, with conflicting ones and the evidence they make."""

    def __init__(self) -> None:
        self.votes: dict[Slot, dict[int, Vote]] = {}  # validator index -> its first vote
        # an equivocator's votes after its first, per slot, validator and block hash
        self.conflicting: dict[Slot, dict[int, dict[bytes, Vote]]] = {}
        self.conflicting_count = 0
        # (validator index, round, vote type) -> the first evidence found there
        self.evidence: dict[tuple[int, int, VoteType], Evidence] = {}

    def add(
        self, index: int, vote: Vote, was_proposed: Callable[[bytes], bool]
    ) -> tuple[bool, Evidence | None]:
        """Record validator `index`'s `vote`: whether it now counts, and new evidence if any."""
        slot = self.votes.setdefault((vote.round, vote.vtype), {})
        known = slot.get(index)
        if known is None:
            slot[index] = vote
            return True, None
        if known.block_hash == vote.block_hash:
            return False, None
        where = (index, vote.round, vote.vtype)
        found = None
        if where not in self.evidence:  # one piece of evidence per slot is proof enough
            found = self.evidence[where] = Evidence.of(known, vote)
        extra = self.conflicting.setdefault((vote.round, vote.vtype), {}).setdefault(index, {})
        if vote.block_hash in extra:
            return False, found
        full = len(extra) >= MAX_CONFLICTING_PER_SLOT or self.conflicting_count >= FUTURE_BUFFER
        # Past the cap only a vote for a block we were proposed still counts: junk hashes
        # must not push out the one vote that completes a polka (a lock elsewhere would
        # then wait forever for a re-proposal this validator can never accept).
        if full and not was_proposed(vote.block_hash):
            return False, found
        extra[vote.block_hash] = vote
        self.conflicting_count += 1
        return True, found

    def count(self, round_: int, vtype: VoteType, block_hash: bytes | None) -> int:
        """Validators voting in one round and type for `block_hash` (None: for anything)."""
        if block_hash is None:
            return len(self.votes.get((round_, vtype), ()))
        return len(self.votes_for(round_, vtype, block_hash))

    def votes_for(self, round_: int, vtype: VoteType, block_hash: bytes) -> list[Vote]:
        """One vote per validator for `block_hash`, conflicting ones included."""
        slot = self.votes.get((round_, vtype))
        if not slot:
            return []
        votes = [v for v in slot.values() if v.block_hash == block_hash]
        for extra in self.conflicting.get((round_, vtype), {}).values():
            vote = extra.get(block_hash)
            if vote is not None:
                votes.append(vote)
        return votes
