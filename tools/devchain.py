"""Deterministic development chains: well-known keys, signed transactions, certified blocks.

Used by the crash test, the core benchmark and the genesis generator. The keys
here are PUBLIC test keys (derived from fixed strings): never use them on a
network that matters.
"""

from __future__ import annotations

from collections.abc import Iterable

from chain.crypto import PrivateKey, PublicKey
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.quorum import CommitCertificate, Vote, VoteType
from chain.records import Record
from chain.tx import ZERO_HASH, Op, Transaction, TxBody


def soon(ledger: Ledger, seconds: int = 3600) -> int:
    """A valid_until `seconds` after the head's block time."""
    return ledger.head.time_ms // 1000 + seconds


def dev_key(role: str, index: int) -> PrivateKey:
    """A well-known key, e.g. ``dev_key("validator", 0)``."""
    return PrivateKey.generate(f"ledgerdns dev {role} {index}".encode())


def certify(ledger: Ledger, block_hash: bytes, height: int, signers: Iterable[PrivateKey]) -> CommitCertificate:
    """A round-0 commit certificate signed by `signers`."""
    votes = [
        Vote.create(
            key,
            chain_id=ledger.params.chain_id,
            genesis_hash=ledger.params.genesis_hash,
            vtype=VoteType.PRECOMMIT,
            height=height,
            round_=0,
            block_hash=block_hash,
        )
        for key in signers
    ]
    return CommitCertificate.from_votes(votes, ledger.validators_at(height))


def register_tx(
    genesis: Genesis, owner: PrivateKey, domain: str, records: tuple[Record, ...] = (), *,
    valid_until: int,
) -> Transaction:
    """A seq-0 registration of a never-registered name."""
    body = TxBody(
        chain_id=genesis.chain_id, domain=domain, seq=0, prev=ZERO_HASH, op=Op.REGISTER,
        records=records, owner=owner.public_key, valid_until=valid_until,
    )
    return Transaction.sign(body, owner, genesis.hash())


def next_tx(
    genesis: Genesis, ledger: Ledger, owner: PrivateKey, domain: str, records: tuple[Record, ...],
    *, op: Op = Op.UPDATE, valid_until: int, new_owner: PublicKey | None = None,
) -> Transaction:
    """The next step of an existing domain's chain, from its finalized state."""
    state = ledger.get_domain(domain)
    assert state is not None, domain
    body = TxBody(
        chain_id=genesis.chain_id, domain=domain, seq=state.seq + 1, prev=state.head, op=op,
        records=records, owner=new_owner or owner.public_key, valid_until=valid_until,
    )
    return Transaction.sign(body, owner, genesis.hash())
