"""Equivocation evidence in the store, for operators (RPC and explorer read it from here)."""

from __future__ import annotations

from chain import keys
from chain.consensus_messages import Evidence
from chain.store import KVStore, WriteBatch


def put_evidence(batch: WriteBatch, evidence: Evidence) -> None:
    """Add `evidence` to `batch` under its height, round and validator (idempotent)."""
    vote = evidence.first
    batch.put(keys.make_evidence_key(vote.height, vote.round, vote.validator), evidence.to_bytes())


def list_evidence(store: KVStore, *, limit: int = 1000) -> list[Evidence]:
    """Recorded evidence, newest height first."""
    out = []
    for _, value in store.iterate(keys.EVIDENCE, reverse=True):
        out.append(Evidence.from_bytes(value))
        if len(out) >= limit:
            break
    return out
