"""A domain's chain as the explorer shows it: each step with its records before and after.

The RPC's history endpoint lists the transactions of a domain; the records a step
replaced are the records of the step before it, so the whole diff is computed
here, client-side, without asking the node for more. Pure: no I/O, no UI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.genesis import Genesis

Json = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One step of a domain's hash chain."""

    seq: int
    txid: str
    height: int
    index: int | None
    genesis: bool  # the genesis anchor, not a transaction
    op: str
    owner: str | None  # owner key (hex) after the step
    signer: str | None  # key (hex) that signed the step (None for the anchor)
    prev: str | None  # txid of the previous step (None for the first)
    records_before: tuple[str, ...]
    records_after: tuple[str, ...]
    tx: Json | None


def _genesis_domain(genesis: Genesis | None, domain: str) -> tuple[str | None, tuple[str, ...]]:
    if genesis is not None:
        for initial in genesis.domains:
            if initial.domain == domain:
                records = tuple(r.to_text(origin=domain) for r in initial.records)
                return bytes(initial.owner).hex(), records
    return None, ()


def steps_from_history(domain: str, history: list[Json], genesis: Genesis | None) -> list[Step]:
    """The steps of `history` (oldest first, as the RPC returns it) with their diffs.

    Args:
        domain: the domain's name.
        history: the entries of ``GET /v1/domains/{name}/history``.
        genesis: the trusted genesis (for a genesis domain's first records), if known.
    """
    steps: list[Step] = []
    owner: str | None = None
    records: tuple[str, ...] = ()
    prev: str | None = None
    for entry in history:
        tx = entry.get("tx")
        if entry.get("genesis") or tx is None:
            owner, after = _genesis_domain(genesis, domain)
            step = Step(
                seq=int(entry["seq"]), txid=str(entry["txid"]), height=int(entry["height"]),
                index=None, genesis=True, op="genesis", owner=owner, signer=None, prev=prev,
                records_before=records, records_after=after, tx=None,
            )  # fmt: skip
        else:
            op = str(tx["op"])
            after = tuple(str(r) for r in tx["records"])
            signer = str(tx["owner"]) if op == "register" or owner is None else owner
            step = Step(
                seq=int(entry["seq"]), txid=str(entry["txid"]), height=int(entry["height"]),
                index=entry.get("index"), genesis=False, op=op, owner=str(tx["owner"]),
                signer=signer, prev=prev, records_before=records, records_after=after, tx=tx,
            )  # fmt: skip
        steps.append(step)
        owner, records, prev = step.owner, step.records_after, step.txid
    return steps


def record_diff(before: tuple[str, ...], after: tuple[str, ...]) -> list[tuple[str, str]]:
    """``("-", record)`` for each removed, ``("+", record)`` added, ``(" ", record)`` kept.

    Kept and removed records come in their old order, then the added ones.
    """
    kept = set(after)
    diff = [(" " if r in kept else "-", r) for r in before]
    old = set(before)
    diff += [("+", r) for r in after if r not in old]
    return diff
