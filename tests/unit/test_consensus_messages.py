"""Proposals, evidence and the signing guard."""

from __future__ import annotations

import dataclasses

import pytest

from chain.block import Block, BlockHeader, tx_root
from chain.consensus_messages import Evidence, Proposal, SignGuard, SignStep
from chain.errors import InvalidUpdate, RejectReason
from chain.quorum import Vote, VoteType
from tools.devchain import dev_key

KEY = dev_key("validator", 0)
GH = b"\x47" * 32  # the genesis hash every signature here covers


def block(height: int = 3, salt: int = 0) -> Block:
    header = BlockHeader(
        chain_id="t", height=height, prev_block=bytes([salt]) * 32, time_ms=1000 + salt,
        proposer=KEY.public_key, tx_root=tx_root([]), state_root=b"\x00" * 32,
        validators_hash=b"\x01" * 32,
        next_validators_hash=b"\x01" * 32,
    )
    return Block(header=header, txs=())


def vote(block_hash: bytes, vtype: VoteType = VoteType.PREVOTE, round_: int = 1) -> Vote:
    return Vote.create(
        KEY, chain_id="t", genesis_hash=GH, vtype=vtype, height=3, round_=round_,
        block_hash=block_hash,
    )  # fmt: skip


def test_proposal_round_trip_and_signature() -> None:
    p = Proposal.create(KEY, chain_id="t", genesis_hash=GH, round_=2, block=block(), pol_round=1)
    again = Proposal.from_bytes(p.to_bytes())
    assert again == p and again.is_valid_signature(GH)
    other = Proposal.create(
        dev_key("validator", 1), chain_id="t", genesis_hash=GH, round_=2, block=block(), pol_round=1
    )
    forged = Proposal(chain_id="t", height=3, round=2, block=block(), pol_round=1,
                      proposer=KEY.public_key, signature=other.signature)
    assert not forged.is_valid_signature(GH)


@pytest.mark.parametrize("pol_round", [-2, 2, 5])
def test_proposal_pol_round_must_precede_round(pol_round: int) -> None:
    with pytest.raises(InvalidUpdate):
        Proposal.create(KEY, chain_id="t", genesis_hash=GH, round_=2, block=block(), pol_round=pol_round)


def test_evidence_needs_two_conflicting_votes() -> None:
    a, b = vote(b"\x01" * 32), vote(b"\x02" * 32)
    ev = Evidence.of(b, a)
    assert ev == Evidence.of(a, b)
    ev.verify(GH)
    assert Evidence.from_bytes(ev.to_bytes()) == ev
    with pytest.raises(InvalidUpdate):
        Evidence.of(a, a)
    with pytest.raises(InvalidUpdate):
        Evidence.of(a, vote(b"\x02" * 32, round_=2))  # different rounds do not conflict
    with pytest.raises(InvalidUpdate):
        Evidence.of(a, vote(b"\x02" * 32, vtype=VoteType.PRECOMMIT))
    swapped = ev.to_bytes().replace(ev.first.to_bytes(), b"X" * len(ev.first.to_bytes()))
    with pytest.raises(InvalidUpdate):
        Evidence.from_bytes(swapped)


def test_evidence_with_forged_vote_fails_verification() -> None:
    a = vote(b"\x01" * 32)
    b = vote(b"\x02" * 32)
    bad = Vote(chain_id="t", vtype=VoteType.PREVOTE, height=3, round=1, block_hash=b"\x02" * 32,
               validator=KEY.public_key, signature=a.signature)
    with pytest.raises(InvalidUpdate) as info:
        Evidence.of(a, bad).verify(GH)
    assert info.value.reason == RejectReason.BAD_SIGNATURE
    Evidence.of(a, b).verify(GH)
    with pytest.raises(InvalidUpdate):
        Evidence.of(a, b).verify(b"\x48" * 32)  # signed on another network


H = b"\xaa" * 32
G = b"\xbb" * 32
GUARD_CASES = [
    # (last signed, new request, allowed)
    ((5, 1, SignStep.PREVOTE, H), (5, 1, SignStep.PREVOTE, H), True),   # the same again
    ((5, 1, SignStep.PREVOTE, H), (5, 1, SignStep.PREVOTE, G), False),  # conflicting prevote
    ((5, 1, SignStep.PREVOTE, H), (5, 1, SignStep.PREVOTE, b""), False),  # nil after a value
    ((5, 1, SignStep.PREVOTE, H), (5, 1, SignStep.PRECOMMIT, G), True),  # later step
    ((5, 1, SignStep.PRECOMMIT, H), (5, 1, SignStep.PREVOTE, H), False),  # step regression
    ((5, 1, SignStep.PRECOMMIT, H), (5, 0, SignStep.PRECOMMIT, H), False),  # round regression
    ((5, 1, SignStep.PRECOMMIT, H), (5, 2, SignStep.PROPOSAL, G), True),  # later round
    ((5, 1, SignStep.PRECOMMIT, H), (4, 9, SignStep.PROPOSAL, G), False),  # height regression
    ((5, 1, SignStep.PRECOMMIT, H), (6, 0, SignStep.PREVOTE, G), True),  # next height
]


@pytest.mark.parametrize(("last", "new", "allowed"), GUARD_CASES)
def test_guard(last: tuple, new: tuple, allowed: bool) -> None:  # type: ignore[type-arg]
    guard = SignGuard().after(*last)
    assert guard.allows(*new) is allowed
    assert SignGuard.from_bytes(guard.to_bytes()).allows(*new) is allowed


def test_guard_keeps_lock_within_height_only() -> None:
    guard = SignGuard().after(5, 1, SignStep.PRECOMMIT, H).locked(1, H)
    restored = SignGuard.from_bytes(guard.to_bytes())
    assert (restored.lock_round, restored.lock_hash) == (1, H)
    assert restored.after(5, 2, SignStep.PREVOTE, H).lock_round == 1
    assert restored.after(6, 0, SignStep.PREVOTE, H).lock_round == -1
    assert SignGuard().allows(1, 0, SignStep.PROPOSAL, H)


def test_evidence_is_kept_in_the_store() -> None:
    from chain.evidence_store import list_evidence, put_evidence
    from chain.store import MemoryStore, WriteBatch

    store = MemoryStore()
    batch = WriteBatch()
    ev = Evidence.of(vote(b"\x01" * 32), vote(b"\x02" * 32))
    put_evidence(batch, ev)
    put_evidence(batch, ev)
    store.write(batch)
    assert list_evidence(store) == [ev]


def test_a_block_commits_to_its_transactions_signatures() -> None:
    from chain.block import tx_root
    from chain.genesis import make_single_validator_genesis
    from chain.tx import Transaction
    from tools.devchain import register_tx

    genesis = make_single_validator_genesis(KEY.public_key, genesis_time_ms=0)
    tx = register_tx(genesis, KEY, "alice.p2p", valid_until=100)
    good = Block(header=dataclasses.replace(block().header, tx_root=tx_root([tx])), txs=(tx,))
    assert good.body_matches_header()
    flipped = Transaction(body=tx.body, body_bytes=tx.body_bytes, signature=bytes([tx.signature[0] ^ 1]) + tx.signature[1:])
    assert flipped.txid == tx.txid  # the txid does not cover the signature...
    relayed = Block(header=good.header, txs=(flipped,))
    assert relayed.hash == good.hash and not relayed.body_matches_header()  # ...the tx_root does
