"""The changes one block makes, built up transaction by transaction.

`BlockWork` is what `Ledger.check_block` and `Ledger.build_update` share: the
domain states and naming entries (commits and claims) a block has changed so
far, the per-block registration counts, and the rules applied in block order
against them, falling back to the finalized chain through a `ChainReader`.
Nothing here writes: the ledger turns the result into one batch.
"""

from __future__ import annotations

from typing import Protocol

from chain.commits import (
    Claim,
    CommitEntry,
    NameContext,
    check_commit,
    claim_after,
    claim_tree_key,
    commit_tree_key,
    entry_from_bytes,
    reveal_commit_key,
)
from chain.encoding import Kind
from chain.errors import InvalidUpdate, RejectReason
from chain.params import ChainParams
from chain.rules import apply_tx, check_tx_static
from chain.state import DomainState
from chain.tx import VALIDATOR_OPS, Op, Transaction
from chain.validator_rules import apply_validator_tx, trim_schedule
from chain.validators import Proposal, Roster, Schedule

# The state-tree entries besides domains: naming's commits and claims, and the
# validator proposals and schedule (chain/validators.py).
NamingEntry = CommitEntry | Claim | Proposal | Schedule


def state_entry_from_bytes(data: bytes) -> NamingEntry:
    """Decode a stored state entry of any kind but a domain's."""
    kind = data[1:3]
    if kind == bytes([0x18, Kind.VALIDATOR_PROPOSAL]):
        return Proposal.from_bytes(data)
    if kind == bytes([0x18, Kind.VALIDATOR_SCHEDULE]):
        return Schedule.from_bytes(data)
    return entry_from_bytes(data)


class ChainReader(Protocol):
    """The finalized state a block builds on."""

    def get_domain(self, domain: str) -> DomainState | None:
        """A domain's state, None if never registered."""
        ...

    def get_naming_entry(self, tree_key: bytes) -> NamingEntry | None:
        """A commit or claim by state-tree key, None if not in the state."""
        ...

    def naming_leaving(self, height: int) -> list[bytes]:
        """The state-tree keys marked to leave the state at the start of `height`."""
        ...


class BlockWork:
    """The state changes of the block at `height`, in the making."""

    def __init__(self, chain: ChainReader, params: ChainParams, height: int, now_s: int) -> None:
        self.chain = chain
        self.params = params
        self.height = height
        self.now_s = now_s
        self.states: dict[str, DomainState] = {}
        self.naming: dict[bytes, NamingEntry | None] = {}
        self.leaving: list[bytes] = []  # the expiry marks read for this height
        self.commits = 0
        self.registrations = 0
        self.scheduled: list[tuple[int, Roster]] = []  # validator rosters this block scheduled
        self.proposals_touched: set[bytes] = set()  # tree keys of validator proposals set or removed

    # -- reading through the block's own changes --

    def domain(self, name: str) -> DomainState | None:
        """A domain's state as of the changes so far."""
        return self.states[name] if name in self.states else self.chain.get_domain(name)

    def entry(self, tree_key: bytes) -> NamingEntry | None:
        """A naming entry as of the changes so far."""
        if tree_key in self.naming:
            return self.naming[tree_key]
        return self.chain.get_naming_entry(tree_key)

    def set_entry(self, tree_key: bytes, entry: NamingEntry | None) -> None:
        """Change (or remove, with None) a state entry."""
        self.naming[tree_key] = entry
        if isinstance(entry, Proposal) or (entry is None and isinstance(self.entry(tree_key), Proposal)):
            self.proposals_touched.add(tree_key)

    def context(self, tx: Transaction) -> NameContext:
        """What the naming rules read for `tx` at this height."""
        body = self.params.naming
        if not body.commit_reveal:
            return NameContext(height=self.height)
        claim = self.entry(claim_tree_key(tx.body.domain))
        commit = None
        if tx.body.is_reveal:
            found = self.entry(reveal_commit_key(tx, self.params.genesis_hash))
            commit = found if isinstance(found, CommitEntry) else None
        return NameContext(
            height=self.height, commit=commit, claim=claim if isinstance(claim, Claim) else None
        )

    # -- changing --

    def expire(self) -> None:
        """Drop the entries whose time ends at this height (before any transaction).

        Commits, claims and validator proposals leave by their expiry marks; the
        validator schedule forgets the rosters a later one replaced.
        """
        naming = self.params.naming
        self.leaving = self.chain.naming_leaving(self.height)
        for key in self.leaving:
            found = self.entry(key)
            if found is None or isinstance(found, Schedule):
                continue  # revealed, or replaced by an entry that leaves later
            leaves = (
                found.leaves_at(naming) if isinstance(found, CommitEntry) else found.leaves_at()
            )
            if leaves == self.height:
                if isinstance(found, Proposal):
                    self.proposals_touched.add(key)
                self.naming[key] = None
        trim_schedule(self)

    def fits(self, tx: Transaction) -> bool:
        """Whether the block's registration and commit limits leave room for `tx`."""
        naming = self.params.naming
        if tx.body.op == Op.COMMIT:
            return not naming.max_block_commits or self.commits < naming.max_block_commits
        if tx.body.op == Op.REGISTER:
            limit = naming.max_block_registrations
            return not limit or self.registrations < limit
        return True

    def apply(self, tx: Transaction, index: int) -> None:
        """Apply `tx` as the block's transaction number `index`; nothing changes if it fails.

        Raises:
            InvalidUpdate: the first rule broken, or `TOO_MANY_REGISTRATIONS`.
        """
        if not self.fits(tx):
            raise InvalidUpdate(
                RejectReason.TOO_MANY_REGISTRATIONS,
                "over the network's per-block limit of "
                + ("commits" if tx.body.op == Op.COMMIT else "registrations"),
            )
        check_tx_static(tx, self.params)
        body = tx.body
        if body.op in VALIDATOR_OPS:
            apply_validator_tx(self, tx)
            return
        if body.op == Op.COMMIT:
            key = commit_tree_key(body.commitment, body.owner)
            existing = self.entry(key)
            entry = check_commit(
                tx, existing if isinstance(existing, CommitEntry) else None, self.height, index
            )
            self.naming[key] = entry
            self.commits += 1
            return
        ctx = self.context(tx)
        state = apply_tx(self.domain(body.domain), tx, self.params, self.now_s, ctx)
        if body.is_reveal:
            assert ctx.commit is not None  # apply_tx checked it
            self.naming[ctx.commit.tree_key] = None  # a commit is revealed once
            claim = claim_after(body.domain, ctx.commit, self.params.naming)
            self.naming[claim.tree_key] = claim
        if body.op == Op.REGISTER:
            self.registrations += 1
        self.states[body.domain] = state
