"""Misbehaviour evidence in the store, for operators (RPC and explorer read it from here).

Two kinds, each under its own prefix of `chain.keys`: equivocations (`E`) and
invalid proposals (`I`), keyed by height, round (and, for votes, the vote type) and the signer's key, so
recording the same fault again overwrites it with the same bytes.
"""

from __future__ import annotations

from chain import keys
from chain.consensus_messages import Evidence, InvalidProposal
from chain.store import KVStore, WriteBatch


def put_evidence(batch: WriteBatch, evidence: Evidence) -> None:
    """Add `evidence` to `batch` under its height, round, vote type and validator (idempotent).

    The type is in the key: a validator that equivocates on both prevotes and
    precommits of one round leaves two pieces of evidence, not one overwriting the other.
    """
    vote = evidence.first
    batch.put(keys.make_evidence_key(vote.height, vote.round, int(vote.vtype), vote.validator), evidence.to_bytes())


def list_evidence(store: KVStore, *, limit: int = 1000) -> list[Evidence]:
    """Recorded evidence, newest height first."""
    out = []
    with store.iterate(keys.EVIDENCE, reverse=True) as pairs:
        for _, value in pairs:
            out.append(Evidence.from_bytes(value))
            if len(out) >= limit:
                break
    return out


def put_invalid_proposal(batch: WriteBatch, record: InvalidProposal) -> None:
    """Add `record` to `batch` under its height, round and proposer (idempotent)."""
    p = record.proposal
    batch.put(keys.make_invalid_proposal_key(p.height, p.round, p.proposer), record.to_bytes())


def list_invalid_proposals(store: KVStore, *, limit: int = 100) -> list[InvalidProposal]:
    """Recorded invalid proposals, newest height (then round) first."""
    out = []
    with store.iterate(keys.INVALID_PROPOSAL, reverse=True) as pairs:
        for _, value in pairs:
            out.append(InvalidProposal.from_bytes(value))
            if len(out) >= limit:
                break
    return out
