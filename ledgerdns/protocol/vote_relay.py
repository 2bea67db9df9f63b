"""A round's proposer passes on the votes sent to it, in batches (issue 20).

Sent straight to every validator, each vote of a height costs each validator one
message to read, so a height costs every node two messages per validator: at 31
validators on one machine the reading (Noise, Yamux, trio) was most of the CPU
and the network made blocks slower than once a second. Here a validator sends
its vote of round 0 for a block only to that round's proposer, which passes on
the votes it is sent (`RelayedVotes`, each vote with its own signature, checked
by every receiver as if its signer had sent it) as soon as it holds a quorum of
them for the step, and what comes later in a second batch. A height then costs
a validator about half a dozen messages whatever the size of the set; the
proposer reads two per validator, and takes its turn once every n heights.

What the relay cannot make worse: a vote is still signed by its validator, so a
relay can only withhold. A nil vote, any vote of a later round (round 0 went
wrong), and any vote while the proposer is not linked go to every validator as
before; a proposer that withholds is a stuck height, which the re-sends of stuck
heights (`ConsensusGossip`, to every validator) get past.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from chain.consensus_messages import MAX_RELAYED_VOTES, RelayedVotes
from chain.quorum import Vote

if TYPE_CHECKING:
    from trio_typing import TaskStatus

RELAY_WAIT_S = 0.25  # a batch short of a quorum goes out this long after its first vote
RELAY_LATE_S = 0.05  # votes after the quorum's batch, batched this long
STEPS_KEPT = 16  # (height, round, type) steps whose signers are remembered

Step = tuple[int, int, int]


def relayed_by_proposer(vote: Vote) -> bool:
    """Whether a vote goes to its round's proposer alone (a vote for a block in round 0)."""
    return vote.round == 0 and bool(vote.block_hash)


class VoteRelay:
    """The proposer's side: who voted in each step of its rounds, and the votes not yet passed on."""

    def __init__(self, *, quorum: Callable[[], int], send: Callable[[bytes], object]) -> None:
        self._quorum = quorum
        self._send = send
        # step -> signers seen; bound: STEPS_KEPT steps, each at most the validator set
        self._signers: dict[Step, set[bytes]] = {}
        # votes to pass on; bound: MAX_RELAYED_VOTES (a full batch goes out at once)
        self._pending: list[bytes] = []
        self._deadline = float("inf")
        self._wake = trio.Event()
        self.batches_sent = 0
        self.votes_relayed = 0

    def own(self, vote: Vote) -> None:
        """Our own vote (sent to everyone directly) counts towards the step's quorum."""
        signers = self._seen(vote)
        if signers is not None and len(signers) == self._quorum():
            self.flush()

    def add(self, vote: Vote, data: bytes) -> None:
        """A validator sent us its vote of our round: pass it on (once per signer and step).

        The vote that completes the step's quorum sends the batch at once; votes before
        it wait up to `RELAY_WAIT_S` for it, votes after it `RELAY_LATE_S`.
        """
        signers = self._seen(vote)
        if signers is None:
            return  # this signer's vote of this step was passed on already
        self._pending.append(data)
        quorum = self._quorum()
        if len(signers) == quorum or len(self._pending) >= MAX_RELAYED_VOTES:
            self.flush()
            return
        wait = RELAY_WAIT_S if len(signers) < quorum else RELAY_LATE_S
        self._deadline = min(self._deadline, trio.current_time() + wait)
        self._wake.set()

    def _seen(self, vote: Vote) -> set[bytes] | None:
        """Note `vote`'s signer in its step; None if it was noted before."""
        step = (vote.height, vote.round, int(vote.vtype))
        signers = self._signers.get(step)
        if signers is None:
            if len(self._signers) >= STEPS_KEPT:
                del self._signers[min(self._signers)]
            signers = self._signers[step] = set()
        signer = bytes(vote.validator)
        if signer in signers:
            return None
        signers.add(signer)
        return signers

    def flush(self) -> None:
        """Pass on every pending vote now, in one message."""
        if self._pending:
            self._send(RelayedVotes(tuple(self._pending)).to_bytes())
            self.batches_sent += 1
            self.votes_relayed += len(self._pending)
            self._pending = []
        self._deadline = float("inf")

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send each batch at its deadline."""
        task_status.started()
        while True:
            if self._deadline == float("inf"):
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            with trio.move_on_at(self._deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            if trio.current_time() >= self._deadline:
                self.flush()
