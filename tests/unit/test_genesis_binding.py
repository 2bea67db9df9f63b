"""Every signature binds the genesis hash: two networks with one `chain_id` cannot replay each other.

Networks A and B come from two genesis files that differ only in
`genesis_time_ms` (what every default devnet looks like): same `chain_id`,
same validators, same genesis domain. Each signed thing made on A is taken
on A and refused on B (issue 13).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from chain.block import Block
from chain.consensus import Tendermint
from chain.consensus_effects import Broadcast
from chain.consensus_messages import Proposal, SignGuard
from chain.errors import InvalidUpdate, RejectReason
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.quorum import Vote, VoteType
from chain.records import Record
from chain.store import MemoryStore
from chain.tx import Op, Transaction, TxBody
from tools.devchain import certify, dev_key, register_tx
from tools.make_dev_genesis import localnet

KEYS = [dev_key("validator", i) for i in range(4)]
OWNER = dev_key("owner", 0)  # owns the genesis domain ledgerdns.p2p on both networks
TEXT_A = localnet(4).to_json()
_TIME = localnet(4).genesis_time_ms
TEXT_B = TEXT_A.replace(f'"genesis_time_ms": {_TIME},', f'"genesis_time_ms": {_TIME + 1},')
A = Genesis.from_json(TEXT_A)
B = Genesis.from_json(TEXT_B)
NOW_MS = _TIME + 10_000


class _App:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def build_proposal(self, height: int, time_ms: int) -> Block:
        proposer = self.ledger.params.validators.proposer(height, 0)
        return self.ledger.build_block([], time_ms=time_ms, proposer=proposer)[0]

    def is_valid(self, block: Block) -> bool:
        try:
            self.ledger.check_block(block)
        except InvalidUpdate:
            return False
        return True


def _ledger(genesis: Genesis) -> Ledger:
    ledger = Ledger(MemoryStore(), genesis)
    ledger.initialize()
    return ledger


def _machine(genesis: Genesis, ledger: Ledger) -> Tendermint:
    return Tendermint(
        chain_id=genesis.chain_id, genesis_hash=genesis.hash(), validators=genesis.params.validators,
        params=genesis.params.consensus, app=_App(ledger), key=KEYS[2], guard=SignGuard(), height=1,
    )  # fmt: skip


@contextmanager
def _refused(reason: RejectReason) -> Iterator[None]:
    with pytest.raises(InvalidUpdate) as info:
        yield
    assert info.value.reason == reason, info.value


def test_the_two_genesis_files_name_one_network_but_hash_apart() -> None:
    assert A.chain_id == B.chain_id and A.params.validators == B.params.validators
    assert A.hash() != B.hash()
    assert A.params.genesis_hash == A.hash() and B.params.genesis_hash == B.hash()
    later = dataclasses.replace(A, genesis_time_ms=B.genesis_time_ms)  # recomputed, not copied
    assert later.hash() == B.hash() and later.params == B.params


def test_a_registration_signed_on_one_network_is_refused_on_the_other() -> None:
    a, b = _ledger(A), _ledger(B)
    tx = register_tx(A, OWNER, "alice.p2p", valid_until=NOW_MS // 1000 + 60)
    assert tx.is_signed_by(OWNER.public_key, A.hash())
    assert not tx.is_signed_by(OWNER.public_key, B.hash())
    _, rejected = a.build_block([tx], time_ms=NOW_MS, proposer=KEYS[1].public_key)
    assert rejected == []
    _, rejected = b.build_block([tx], time_ms=NOW_MS, proposer=KEYS[1].public_key)
    assert [r.error.reason for r in rejected] == [RejectReason.BAD_SIGNATURE]
    with _refused(RejectReason.BAD_SIGNATURE):
        Mempool(B.params).add(tx, b.get_domain, NOW_MS // 1000)


def test_an_update_of_a_shared_genesis_name_is_not_replayed() -> None:
    # The name's first step chains on an anchor made from chain_id and name: the
    # same on both networks, so before the genesis hash was signed it replayed.
    b = _ledger(B)
    state = b.get_domain("ledgerdns.p2p")
    assert state is not None and state.head == _ledger(A).get_domain("ledgerdns.p2p").head  # type: ignore[union-attr]
    body = TxBody(
        chain_id=A.chain_id, domain="ledgerdns.p2p", seq=1, prev=state.head, op=Op.UPDATE,
        records=(Record.from_text("@ 300 A 10.6.6.6", origin="ledgerdns.p2p"),),
        owner=OWNER.public_key, valid_until=NOW_MS // 1000 + 60,
    )  # fmt: skip
    on_a = Transaction.sign(body, OWNER, A.hash())
    _, rejected = b.build_block([on_a], time_ms=NOW_MS, proposer=KEYS[1].public_key)
    assert len(rejected) == 1 and rejected[0].error.reason in (
        RejectReason.BAD_SIGNATURE,  # the static check (every op but a transfer)
        RejectReason.NOT_OWNER,  # the state check
    )
    on_b = Transaction.sign(body, OWNER, B.hash())
    assert b.build_block([on_b], time_ms=NOW_MS, proposer=KEYS[1].public_key)[1] == []


def test_a_vote_signed_on_one_network_is_refused_on_the_other() -> None:
    block = _ledger(B).build_block([], time_ms=NOW_MS, proposer=KEYS[1].public_key)[0]
    vote = Vote.create(
        KEYS[0], chain_id=A.chain_id, genesis_hash=A.hash(), vtype=VoteType.PREVOTE, height=1,
        round_=0, block_hash=block.hash,
    )  # fmt: skip
    assert vote.is_valid_signature(A.hash()) and not vote.is_valid_signature(B.hash())
    _machine(A, _ledger(A)).on_vote(vote, NOW_MS)
    with _refused(RejectReason.BAD_SIGNATURE):
        _machine(B, _ledger(B)).on_vote(vote, NOW_MS)


def test_a_proposal_signed_on_one_network_is_refused_on_the_other() -> None:
    b = _ledger(B)
    block = b.build_block([], time_ms=NOW_MS, proposer=KEYS[1].public_key)[0]  # valid on B
    proposal = Proposal.create(
        KEYS[1], chain_id=A.chain_id, genesis_hash=A.hash(), round_=0, block=block, pol_round=-1
    )
    assert not proposal.is_valid_signature(B.hash())
    with _refused(RejectReason.BAD_SIGNATURE):
        _machine(B, b).on_proposal(proposal, NOW_MS)
    genuine = Proposal.create(
        KEYS[1], chain_id=B.chain_id, genesis_hash=B.hash(), round_=0, block=block, pol_round=-1
    )
    effects = _machine(B, b).on_proposal(genuine, NOW_MS)
    assert [e.message.block_hash for e in effects if isinstance(e, Broadcast)] == [block.hash]  # type: ignore[union-attr]


def test_a_certificate_signed_on_one_network_is_refused_on_the_other() -> None:
    a, b = _ledger(A), _ledger(B)
    block = b.build_block([], time_ms=NOW_MS, proposer=KEYS[1].public_key)[0]
    foreign = certify(a, block.hash, 1, KEYS[:3])  # a quorum's precommits, signed for A
    foreign.verify(A.params.validators, A.chain_id, block.hash, genesis_hash=A.hash())
    with _refused(RejectReason.BAD_SIGNATURE):
        b.apply_block(block, foreign)
    assert b.height == 0
    b.apply_block(block, certify(b, block.hash, 1, KEYS[:3]))
    assert b.height == 1


def test_a_light_client_proof_from_one_network_is_refused_on_the_other() -> None:
    a = _ledger(A)
    tx = register_tx(A, OWNER, "alice.p2p", valid_until=NOW_MS // 1000 + 60)
    block = a.build_block([tx], time_ms=NOW_MS, proposer=KEYS[1].public_key)[0]
    a.apply_block(block, certify(a, block.hash, 1, KEYS[:3]))
    proof = a.prove_domain("alice.p2p")
    assert proof.verify(A.params) == a.get_domain("alice.p2p")
    with _refused(RejectReason.BAD_SIGNATURE):
        proof.verify(B.params)  # same chain_id and validators: only the signatures differ
