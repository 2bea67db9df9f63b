"""Checking a domain's history against its proven state (issue 16: the wallet verifies).

A domain's transactions form a hash chain: each carries the txid of the one
before (`TxBody.prev`), and the domain's state names the txid of the newest
(`DomainState.head`). Once `chain.lightclient` has proven the state against a
certified header, the whole history a node lists is proven with it by hashing
alone: walking back from the proven head, each transaction's bytes must hash to
the txid the next one names, down to seq 0 (a registration, whose `prev` is
zeroes, or a genesis domain's anchor). A node can then neither add, drop,
reorder nor alter a step without the walk failing. What the walk does not
prove is what the node says around the transactions (the block height of each
step): those stay the node's word.

A chain continues across expiry and re-registration (the next registration has
the next seq), so one walk covers a name's whole life.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chain.errors import InvalidUpdate, RejectReason
from chain.ledger import genesis_anchor
from chain.state import DomainState
from chain.tx import ZERO_HASH, Transaction


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryStep:
    """One step as a node lists it: its seq, its txid, and the transaction (None: genesis anchor)."""

    seq: int
    txid: bytes
    tx: Transaction | None


def verify_history(
    domain: str, chain_id: str, state: DomainState | None, steps: Sequence[HistoryStep]
) -> None:
    """Check that `steps` (oldest first) are exactly the chain ending at the proven `state`.

    Args:
        domain: the domain the history is of.
        chain_id: the trusted network's chain_id.
        state: the domain's proven state (None: proven absent, so no history).
        steps: the node's listing, oldest first.

    Raises:
        InvalidUpdate: BAD_PROOF naming the first step that does not fit.
    """
    if state is None:
        if steps:
            _refuse(f"{domain} is proven absent but the node lists {len(steps)} steps")
        return
    if len(steps) != state.seq + 1:
        _refuse(f"the proven head is seq {state.seq} but the node lists {len(steps)} steps")
    expected = state.head
    for position, step in reversed(list(enumerate(steps))):
        if step.seq != position:
            _refuse(f"the node lists seq {step.seq} in position {position}")
        if step.txid != expected:
            _refuse(f"step {step.seq}: txid {step.txid.hex()[:16]} is not the one its successor "
                    f"names ({expected.hex()[:16]})")  # fmt: skip
        expected = _check_step(domain, chain_id, step)
    if expected != ZERO_HASH:  # unreachable for finalized transactions (seq 0 <=> prev zero)
        _refuse("the oldest step does not start the chain")


def _check_step(domain: str, chain_id: str, step: HistoryStep) -> bytes:
    """`step`'s own checks; returns the txid the step before it must have."""
    if step.tx is None:
        if step.seq != 0 or step.txid != genesis_anchor(chain_id, domain):
            _refuse(f"step {step.seq}: no transaction, and not {domain}'s genesis anchor")
        return ZERO_HASH
    body = step.tx.body
    if step.tx.txid != step.txid:
        _refuse(f"step {step.seq}: the transaction does not hash to its txid")
    if body.chain_id != chain_id:
        _refuse(f"step {step.seq}: a transaction of chain {body.chain_id!r}, not {chain_id!r}")
    if body.domain != domain or body.seq != step.seq:
        _refuse(f"step {step.seq}: the transaction is seq {body.seq} of {body.domain!r}")
    return body.prev


def _refuse(why: str) -> None:
    raise InvalidUpdate(RejectReason.BAD_PROOF, f"history: {why}")
