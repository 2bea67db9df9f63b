"""Misbehaviour records in every `KVStore` back-end: the key layout of `chain.keys` and its order."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain import keys
from chain.block import Block, BlockHeader, tx_root
from chain.consensus_messages import Evidence, InvalidProposal, Proposal
from chain.evidence_store import (
    list_evidence,
    list_invalid_proposals,
    put_evidence,
    put_invalid_proposal,
)
from chain.quorum import Vote, VoteType
from chain.store import KVStore, MemoryStore, WriteBatch
from ledgerdns.storage import LevelDBStore
from tools.devchain import dev_key

KEY = dev_key("validator", 0)
GH = b"\x47" * 32  # the genesis hash the signatures cover


@pytest.fixture(params=["memory", "leveldb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KVStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    db = LevelDBStore.open(tmp_path / "db")
    yield db
    db.close()


def record(height: int, round_: int) -> InvalidProposal:
    header = BlockHeader(
        chain_id="t", height=height, prev_block=b"\x00" * 32, time_ms=1000, proposer=KEY.public_key,
        tx_root=tx_root([]), state_root=b"\x09" * 32, validators_hash=b"\x01" * 32,
        next_validators_hash=b"\x01" * 32,
    )  # fmt: skip
    block = Block(header=header, txs=())
    proposal = Proposal.create(
        KEY, chain_id="t", genesis_hash=GH, round_=round_, block=block, pol_round=-1
    )
    return InvalidProposal(proposal=proposal, reason="bad-state-root: block: state_root")


def test_prefixes_are_distinct_single_bytes() -> None:
    prefixes = [v for k, v in vars(keys).items() if k.isupper() and not k.startswith("META_")]
    prefixes = [p for p in prefixes if isinstance(p, bytes)]
    assert all(len(p) == 1 for p in prefixes) and len(set(prefixes)) == len(prefixes)
    assert keys.INVALID_PROPOSAL == b"I"


def test_invalid_proposal_key_layout() -> None:
    key = keys.make_invalid_proposal_key(2**40 + 5, 7, bytes(KEY.public_key))
    assert key == b"I" + struct.pack(">QI", 2**40 + 5, 7) + bytes(KEY.public_key)
    assert len(key) == 1 + 8 + 4 + 33


def test_newest_first_idempotent_and_apart_from_equivocations(store: KVStore) -> None:
    batch = WriteBatch()
    records = [record(h, r) for h, r in [(3, 1), (300, 0), (3, 0), (256, 2)]]
    for r in records + records[:2]:  # recording one fault twice stores it once
        put_invalid_proposal(batch, r)
    votes = [
        Vote.create(
            KEY, chain_id="t", genesis_hash=GH, vtype=VoteType.PREVOTE, height=3, round_=1,
            block_hash=h,
        )  # fmt: skip
        for h in (b"", b"\x02" * 32)
    ]
    put_evidence(batch, Evidence.of(*votes))
    store.write(batch)
    listed = list_invalid_proposals(store)
    assert [(r.proposal.height, r.proposal.round) for r in listed] == [
        (300, 0),
        (256, 2),
        (3, 1),
        (3, 0),
    ]
    assert listed[0] == records[1]
    assert list_invalid_proposals(store, limit=2) == listed[:2]
    assert list_evidence(store) == [Evidence.of(*votes)]


def test_evidence_key_holds_the_vote_type(store: KVStore) -> None:
    """Prevote and precommit equivocations of one round are two records, not one overwritten."""
    def conflicting(vtype: VoteType) -> Evidence:
        a, b = (
            Vote.create(
                KEY, chain_id="t", genesis_hash=GH, vtype=vtype, height=9, round_=2,
                block_hash=bytes([i]) * 32,
            )  # fmt: skip
            for i in (1, 2)
        )
        return Evidence.of(a, b)

    batch = WriteBatch()
    put_evidence(batch, conflicting(VoteType.PREVOTE))
    put_evidence(batch, conflicting(VoteType.PRECOMMIT))
    store.write(batch)
    kinds = sorted(e.first.vtype for e in list_evidence(store))
    assert kinds == [VoteType.PREVOTE, VoteType.PRECOMMIT]
    key = keys.make_evidence_key(9, 2, int(VoteType.PRECOMMIT), bytes(KEY.public_key))
    assert key == b"E" + struct.pack(">QIB", 9, 2, 2) + bytes(KEY.public_key)
