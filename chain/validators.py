"""Validator-set changes on chain (issue 15; docs/consensus.md, "Changing the validator set").

A current validator proposes a change (add a validator, remove one, rotate one's
key) in a transaction; the other validators approve it in theirs. Once the
approvals of validators in the set at that height reach a quorum of it, the
change is scheduled: it takes effect at height ``H + CHANGE_DELAY`` after the
block ``H`` that completed the approvals, or one height after the last change
already scheduled, whichever is later (one change per height). Header ``h``
commits to the set of ``h`` (`validators_hash`) and of ``h + 1``
(`next_validators_hash`), both known before block ``h`` is built, so a change
never lands in the middle of a height and a light client learns each new set
from a header its predecessor certified.

State-tree leaves (each under its own key, like the naming entries):

- `Proposal` ``[40, 1, id, change, proposer, [approver...], height, leaves]``
  under ``SHA-256("ledgerdns-validator-proposal" 0x00 id)``, where ``id`` is the
  proposing transaction's txid. It leaves the state when scheduled, or at the
  start of height ``leaves`` (``height + PROPOSAL_WINDOW + 1``).
- `Schedule` ``[41, 1, [[from_height, roster]...]]`` under
  ``SHA-256("ledgerdns-validators" 0x00)``: the roster in force and those
  scheduled, oldest first. Absent until the first change: the genesis roster.

A roster is ``[39, 1, [name...], [public_key...]]``; its keys hash to
`ValidatorSet.hash`, so names are labels a header does not commit to.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from chain.crypto import PUBLIC_KEY_SIZE, PublicKey, sha256, validate_public_key
from chain.encoding import CborValue, Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.params import ChainParams
from chain.quorum import MAX_VALIDATORS, ValidatorSet, max_faulty, quorum_size

CHANGE_DELAY = 2  # a change approved in block H takes effect at height H + 2, as in CometBFT
PROPOSAL_WINDOW = 100_000  # heights a proposal waits for approvals before it lapses
MAX_CHANGE_BYTES = 128
MAX_NAME = 64
MAX_ROSTER_BYTES = MAX_VALIDATORS * (PUBLIC_KEY_SIZE + MAX_NAME + 8) + 64
MAX_SCHEDULE_ENTRIES = 64
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SCHEDULE_TREE_KEY = sha256(b"ledgerdns-validators\x00")


def _bad(message: str) -> InvalidUpdate:
    return InvalidUpdate(RejectReason.BAD_VALIDATOR_CHANGE, message)


class ChangeAction(IntEnum):
    """What a change does to the set."""

    ADD = 0
    REMOVE = 1
    ROTATE = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidatorChange:
    """One change: ``[38, 1, action, name, key]`` (no key for a removal)."""

    action: ChangeAction
    name: str
    key: bytes = b""

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise _bad(
                f"a validator name is 1 to {MAX_NAME} of A-Z a-z 0-9 . _ - (got {self.name!r})"
            )
        if self.action == ChangeAction.REMOVE:
            if self.key:
                raise _bad("a removal names the validator only")
        else:
            try:
                validate_public_key(self.key)
            except InvalidUpdate as exc:
                raise _bad(f"the new key of {self.name}: {exc.args[0]}") from None

    def to_bytes(self) -> bytes:
        """Canonical framed bytes (what a proposing transaction carries)."""
        return frame(Kind.VALIDATOR_CHANGE, int(self.action), self.name, self.key)

    @classmethod
    def from_bytes(cls, data: bytes) -> ValidatorChange:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed input, or a change no set could take.
        """
        r = Reader.open(data, Kind.VALIDATOR_CHANGE, "change", fields=3, max_size=MAX_CHANGE_BYTES)
        action = ChangeAction(r.uint("action", maximum=ChangeAction.ROTATE))
        change = cls(
            action=action,
            name=r.text("name", maximum=MAX_NAME),
            key=r.bytes("key", maximum=PUBLIC_KEY_SIZE),
        )
        r.done()
        return change

    def describe(self) -> str:
        """``add NAME KEY``, ``remove NAME`` or ``rotate NAME KEY`` (the CLI's words)."""
        key = f" {self.key.hex()}" if self.key else ""
        return f"{self.action.name.lower()} {self.name}{key}"


@dataclass(frozen=True, slots=True)
class Roster:
    """A validator set with a name per validator, in proposer-rotation order."""

    names: tuple[str, ...]
    validators: ValidatorSet

    def __post_init__(self) -> None:
        if len(self.names) != self.validators.n or len(set(self.names)) != len(self.names):
            raise _bad("a roster names each validator once")

    def name_of(self, key: bytes) -> str | None:
        """The name of the validator with `key`, None if it is not one."""
        index = self.validators.index_of(key)
        return None if index is None else self.names[index]

    def key_of(self, name: str) -> PublicKey | None:
        """The key of the validator called `name`, None if there is none."""
        return self.validators.keys[self.names.index(name)] if name in self.names else None

    def applied(self, change: ValidatorChange) -> Roster:
        """The roster after `change` (an addition goes last, a rotation keeps the place).

        Raises:
            InvalidUpdate: BAD_VALIDATOR_CHANGE, the change does not apply to this
                roster, or it breaks the step rule (`check_step`).
        """
        names, keys = list(self.names), list(self.validators.keys)
        if change.action == ChangeAction.ADD:
            if change.name in names:
                raise _bad(f"a validator is already called {change.name}")
            if self.validators.index_of(change.key) is not None:
                raise _bad(f"key {change.key.hex()[:16]}… is already {self.name_of(change.key)}'s")
            if len(keys) >= MAX_VALIDATORS:
                raise _bad(f"the set already has the most validators, {MAX_VALIDATORS}")
            names.append(change.name)
            keys.append(PublicKey(change.key))
        else:
            if change.name not in names:
                raise _bad(f"no validator is called {change.name}")
            at = names.index(change.name)
            if change.action == ChangeAction.REMOVE:
                if len(keys) == 1:
                    raise _bad("the only validator cannot be removed")
                del names[at], keys[at]
            else:
                if self.validators.index_of(change.key) is not None:
                    raise _bad(
                        f"key {change.key.hex()[:16]}… is already {self.name_of(change.key)}'s"
                    )
                keys[at] = PublicKey(change.key)
        after = Roster(tuple(names), ValidatorSet(tuple(keys)))
        check_step(self.validators, after.validators)
        return after

    def to_bytes(self) -> bytes:
        """Canonical framed bytes."""
        return frame(Kind.ROSTER, list(self.names), [bytes(k) for k in self.validators.keys])

    def to_cbor(self) -> list[CborValue]:
        """The roster as a CBOR value (inside a `Schedule`)."""
        names: list[CborValue] = list(self.names)
        return [names, [bytes(k) for k in self.validators.keys]]

    @classmethod
    def from_bytes(cls, data: bytes) -> Roster:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed input.
        """
        r = Reader.open(data, Kind.ROSTER, "roster", fields=2, max_size=MAX_ROSTER_BYTES)
        roster = cls._from_lists(
            r.array("names", maximum=MAX_VALIDATORS), r.array("keys", maximum=MAX_VALIDATORS)
        )
        r.done()
        return roster

    @classmethod
    def _from_lists(cls, names: Sequence[object], keys: Sequence[object]) -> Roster:
        if not all(isinstance(n, str) and 0 < len(n) <= MAX_NAME for n in names):
            raise _bad("a roster's names are text of 1 to 64 characters")
        if not all(isinstance(k, bytes) and len(k) == PUBLIC_KEY_SIZE for k in keys):
            raise _bad("a roster's keys are 33 bytes each")
        return cls(tuple(names), ValidatorSet(tuple(PublicKey(k) for k in keys)))  # type: ignore[arg-type]


def genesis_roster(params: ChainParams) -> Roster:
    """The roster genesis starts with (names default to ``validator-N``)."""
    keys = params.validators.keys
    names = params.validator_names or tuple(f"validator-{i}" for i in range(len(keys)))
    return Roster(tuple(names), params.validators)


def genesis_schedule(params: ChainParams) -> Schedule:
    """The schedule before any change: the genesis roster from height 1."""
    return Schedule(((1, genesis_roster(params)),))


def check_step(old: ValidatorSet, new: ValidatorSet) -> None:
    """The rule for one step of the set: every quorum of `new` holds more than a third of `old`.

    A quorum of the new set less the keys new to it must exceed the old set's
    faulty bound, so any certificate the new set makes carries at least one
    honest signer of the old set: a light client that trusts the old set and
    skips the header announcing the change can still tell a real certificate
    from a forged one (CometBFT's skipping verification, trust level 1/3).
    Each step is one change; the only single change it refuses is rotating the
    key of a network's only validator (add the new key, then remove the old).

    Raises:
        InvalidUpdate: BAD_VALIDATOR_CHANGE.
    """
    added = len(set(new.keys) - set(old.keys))
    if quorum_size(new.n) - added <= max_faulty(old.n):
        raise _bad(
            f"a step from {old.n} to {new.n} validators with {added} new ones leaves a quorum "
            f"of the new set without a third of the old; change fewer at a time"
        )


def proposal_tree_key(proposal_id: bytes) -> bytes:
    """The state-tree key of a pending proposal."""
    return sha256(b"ledgerdns-validator-proposal\x00" + proposal_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    """A change waiting for approvals.

    Attributes:
        proposal: its id, the proposing transaction's txid.
        change: the change.
        proposer: the validator that proposed it (its approval counts).
        approvals: the keys that approved it, in the order their approvals came.
        height: the height of the block that holds the proposal.
        leaves: the height at whose start it lapses unapproved.
    """

    proposal: bytes
    change: ValidatorChange
    proposer: PublicKey
    approvals: tuple[PublicKey, ...]
    height: int
    leaves: int

    @property
    def tree_key(self) -> bytes:
        """Where the state tree holds it."""
        return proposal_tree_key(self.proposal)

    def leaves_at(self) -> int:
        """The height at whose start it leaves the state."""
        return self.leaves

    def approved_by(self, validators: ValidatorSet) -> int:
        """How many of its approvals come from members of `validators`."""
        return sum(1 for key in self.approvals if validators.index_of(key) is not None)

    def to_bytes(self) -> bytes:
        """Canonical framed bytes (the tree stores their SHA-256)."""
        return frame(
            Kind.VALIDATOR_PROPOSAL,
            self.proposal,
            self.change.to_bytes(),
            bytes(self.proposer),
            [bytes(k) for k in self.approvals],
            self.height,
            self.leaves,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Proposal:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed input.
        """
        r = Reader.open(
            data, Kind.VALIDATOR_PROPOSAL, "proposal", fields=6, max_size=MAX_ROSTER_BYTES
        )
        proposal_id = r.bytes("proposal", size=32)
        change = ValidatorChange.from_bytes(r.bytes("change", maximum=MAX_CHANGE_BYTES))
        proposer = PublicKey(r.bytes("proposer", size=PUBLIC_KEY_SIZE))
        approvals = r.array("approvals", maximum=MAX_VALIDATORS)
        if not all(isinstance(k, bytes) and len(k) == PUBLIC_KEY_SIZE for k in approvals):
            raise _bad("a proposal's approvals are 33-byte keys")
        entry = cls(
            proposal=proposal_id,
            change=change,
            proposer=proposer,
            approvals=tuple(PublicKey(k) for k in approvals),  # type: ignore[arg-type]
            height=r.uint("height", maximum=2**63 - 1),
            leaves=r.uint("leaves", maximum=2**63 - 1),
        )
        r.done()
        return entry


@dataclass(frozen=True, slots=True)
class Schedule:
    """The roster in force and the rosters scheduled, as ``(from_height, roster)``, oldest first."""

    entries: tuple[tuple[int, Roster], ...]

    def __post_init__(self) -> None:
        heights = [h for h, _ in self.entries]
        if (
            not self.entries
            or heights != sorted(set(heights))
            or len(heights) > MAX_SCHEDULE_ENTRIES
        ):
            raise _bad("a schedule lists 1 to 64 rosters by rising height")

    tree_key = SCHEDULE_TREE_KEY

    @staticmethod
    def leaves_at() -> None:
        """A schedule never leaves the state."""
        return None

    def at(self, height: int) -> Roster:
        """The roster in force at `height` (the first one for any earlier height)."""
        found = self.entries[0][1]
        for start, roster in self.entries:
            if start > height:
                break
            found = roster
        return found

    @property
    def latest(self) -> tuple[int, Roster]:
        """The last roster scheduled, with the height it starts at."""
        return self.entries[-1]

    def with_change(self, approved_at: int, change: ValidatorChange) -> tuple[Schedule, int]:
        """This schedule with `change` applied to its latest roster, and the height it starts at.

        Raises:
            InvalidUpdate: the change does not apply to the latest roster, or too
                many changes are waiting (`MAX_SCHEDULE_ENTRIES`).
        """
        last_start, last = self.latest
        start = max(approved_at + CHANGE_DELAY, last_start + 1)
        if len(self.entries) >= MAX_SCHEDULE_ENTRIES:
            raise _bad(f"{MAX_SCHEDULE_ENTRIES - 1} changes already wait to take effect")
        return Schedule((*self.entries, (start, last.applied(change)))), start

    def trimmed(self, height: int) -> Schedule:
        """Without the rosters that a later one replaced by `height`."""
        keep = [i for i, (start, _) in enumerate(self.entries) if start <= height]
        first = keep[-1] if keep else 0
        return self if first == 0 else Schedule(self.entries[first:])

    def to_bytes(self) -> bytes:
        """Canonical framed bytes (the tree stores their SHA-256)."""
        return frame(Kind.VALIDATOR_SCHEDULE, [[h, *r.to_cbor()] for h, r in self.entries])

    @classmethod
    def from_bytes(cls, data: bytes) -> Schedule:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed input.
        """
        r = Reader.open(
            data, Kind.VALIDATOR_SCHEDULE, "schedule", fields=1,
            max_size=MAX_SCHEDULE_ENTRIES * MAX_ROSTER_BYTES,
        )  # fmt: skip
        entries = []
        for item in r.array("entries", maximum=MAX_SCHEDULE_ENTRIES):
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], int)):
                raise _bad("a schedule entry is [from_height, names, keys]")
            if not (isinstance(item[1], list) and isinstance(item[2], list)):
                raise _bad("a schedule entry is [from_height, names, keys]")
            entries.append((item[0], Roster._from_lists(item[1], item[2])))
        r.done()
        return cls(tuple(entries))
