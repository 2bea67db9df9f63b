"""The rules of validator proposals and approvals (chain/validators.py holds the data).

A proposal or approval is signed by a validator of the set at the block's
height (`body.owner`); a proposal must apply to the latest scheduled roster
when it is made; an approval names a pending proposal its signer has not
approved yet. The transaction that brings a proposal's approvals by members
of the current set to a quorum of it schedules the change (`Schedule.with_change`)
and removes the proposal; a change that no longer applies by then refuses
that transaction, and the proposal lapses at the end of its window.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from chain.crypto import PublicKey
from chain.errors import InvalidUpdate, RejectReason
from chain.params import ChainParams
from chain.rules import check_tx_window, decode_change
from chain.tx import Op, Transaction
from chain.validators import (
    PROPOSAL_WINDOW,
    SCHEDULE_TREE_KEY,
    Proposal,
    Roster,
    Schedule,
    genesis_schedule,
    proposal_tree_key,
)


class ValidatorState(Protocol):
    """What the rules read and change: a block's work in progress (`chain.blockwork.BlockWork`)."""

    params: ChainParams
    height: int
    now_s: int
    scheduled: list[tuple[int, Roster]]

    def entry(self, tree_key: bytes) -> object | None:
        """A state entry as of the block's changes so far."""
        ...

    def set_entry(self, tree_key: bytes, entry: Proposal | Schedule | None) -> None:
        """Change (or remove, with None) a state entry."""
        ...


def schedule_of(state: ValidatorState) -> Schedule:
    """The validator schedule as of the block's changes so far."""
    found = state.entry(SCHEDULE_TREE_KEY)
    return found if isinstance(found, Schedule) else genesis_schedule(state.params)


def trim_schedule(state: ValidatorState) -> None:
    """At the start of a block: drop the rosters a later one replaced by this height."""
    found = state.entry(SCHEDULE_TREE_KEY)
    if isinstance(found, Schedule):
        trimmed = found.trimmed(state.height)
        if trimmed is not found:
            state.set_entry(SCHEDULE_TREE_KEY, trimmed)


def apply_validator_tx(state: ValidatorState, tx: Transaction) -> None:
    """Apply a proposal or approval to the block's state; nothing changes if it fails.

    Raises:
        InvalidUpdate: the first rule broken.
    """
    check_tx_window(tx, state.params, state.now_s)
    schedule = schedule_of(state)
    current = schedule.at(state.height).validators
    signer = tx.body.owner
    if current.index_of(signer) is None:
        raise InvalidUpdate(
            RejectReason.NOT_VALIDATOR,
            f"key {bytes(signer).hex()[:16]}… is not a validator at height {state.height}",
        )
    if tx.body.op == Op.VALIDATOR_PROPOSE:
        change = decode_change(tx)
        key = proposal_tree_key(tx.txid)
        if state.entry(key) is not None:
            raise InvalidUpdate(RejectReason.DUPLICATE, "this proposal is pending already")
        schedule.latest[1].applied(change)  # refused now if it could never take effect
        proposal = Proposal(
            proposal=tx.txid,
            change=change,
            proposer=signer,
            approvals=(signer,),
            height=state.height,
            leaves=state.height + PROPOSAL_WINDOW + 1,
        )
    else:
        key = proposal_tree_key(tx.body.change)
        found = state.entry(key)
        if not isinstance(found, Proposal):
            raise InvalidUpdate(
                RejectReason.PROPOSAL_NOT_FOUND,
                f"no pending proposal {tx.body.change.hex()[:16]} (approved already, lapsed, "
                "or not yet in a finalized block)",
            )
        if signer in found.approvals:
            raise InvalidUpdate(RejectReason.DUPLICATE, "this validator approved it already")
        proposal = replace(found, approvals=(*found.approvals, PublicKey(signer)))
    if proposal.approved_by(current) < current.quorum:
        state.set_entry(key, proposal)
        return
    updated, start = schedule.with_change(state.height, proposal.change)
    state.set_entry(SCHEDULE_TREE_KEY, updated)
    state.set_entry(key, None)
    state.scheduled.append((start, updated.latest[1]))
