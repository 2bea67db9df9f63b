"""What the consensus machine asks of its driver, and what it needs from the ledger.

`chain.consensus.Tendermint` takes inputs as method calls and returns lists of
these effects, which the driver (the node's `ledgerdns.consensus.driver`, or the
simulator's validators) executes in order. `ConsensusApp` and `BlockJudge` are
what the machine needs from the ledger: proposals to sign and validity.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from chain.block import Block
from chain.consensus_lock import LockRecord
from chain.consensus_messages import Evidence, Proposal
from chain.quorum import CommitCertificate, Vote


class TimeoutKind(IntEnum):
    """The timers the machine asks for."""

    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3
    HEARTBEAT = 4


@dataclass(frozen=True, slots=True)
class PersistGuard:
    """Write these guard bytes durably before executing any later effect."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PersistLock:
    """Write this `LockRecord` durably (with the guard effect that follows it) before sending."""

    record: LockRecord


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send a signed proposal or vote to every validator."""

    message: Proposal | Vote


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Call `on_timeout(kind, height, round)` after `delay_ms`."""

    kind: TimeoutKind
    height: int
    round: int
    delay_ms: int


@dataclass(frozen=True, slots=True)
class Decide:
    """`block` is final; store it with `certificate`, then call `advance()`."""

    block: Block
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class EvidenceFound:
    """A validator signed two conflicting votes."""

    evidence: Evidence


@dataclass(frozen=True, slots=True)
class InvalidProposalFound:
    """The round's proposer signed a proposal whose block can never be valid (`BlockJudge`).

    Emitted at most once per height and round: the machine keeps one proposal per round.
    """

    proposal: Proposal
    reason: str


Effect = (
    PersistGuard | PersistLock | Broadcast | ScheduleTimeout | Decide | EvidenceFound
    | InvalidProposalFound
)


class ConsensusApp(Protocol):
    """What consensus needs from the ledger (the driver passes an adapter)."""

    def build_proposal(self, height: int, time_ms: int) -> Block:
        """A block for `height` from the mempool (may be empty)."""

    def is_valid(self, block: Block) -> bool:
        """Whether `block` is a valid next block (the ledger's `check_block`)."""


class BlockJudge(Protocol):
    """The clock-independent part of the app's validity check, for blaming proposers.

    `ConsensusApp.is_valid` may also refuse a block for reasons that depend on
    the local clock (a block time too far in the future), which an honest
    proposer with a fast clock can trigger and another node cannot reproduce.
    Only what `block_fault` reports is treated as provable misbehaviour.
    """

    def block_fault(self, block: Block) -> str | None:
        """Why `block` can never be the valid next block, whatever the clock; None if it may be."""
