"""Unit tests for chain.mempool: admission, chaining, caps, batching and removal."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chain.crypto import PrivateKey
from chain.errors import InvalidUpdate, RejectReason
from chain.genesis import make_single_validator_genesis
from chain.mempool import Mempool
from chain.rules import apply_tx
from chain.state import DomainState
from chain.tx import ZERO_HASH, Op, Transaction, TxBody

NOW = 1_700_000_000
ALICE = PrivateKey.generate(b"mempool-test-alice-entropy-000000")
BOB = PrivateKey.generate(b"mempool-test-bob-entropy-00000000")
VALIDATOR = PrivateKey.generate(b"mempool-test-validator-entropy-00")
PARAMS = make_single_validator_genesis(VALIDATOR.public_key, genesis_time_ms=NOW * 1000).params


def make_tx(
    domain: str = "alice.p2p",
    *,
    seq: int = 0,
    prev: bytes = ZERO_HASH,
    op: Op = Op.REGISTER,
    owner: PrivateKey = ALICE,
    signer: PrivateKey | None = None,
    valid_until: int = NOW + 3600,
    chain_id: str = PARAMS.chain_id,
) -> Transaction:
    body = TxBody(
        chain_id=chain_id,
        domain=domain,
        seq=seq,
        prev=prev,
        op=op,
        records=(),
        owner=owner.public_key,
        valid_until=valid_until,
    )
    return Transaction.sign(body, signer or owner, PARAMS.genesis_hash)


def after(
    prev: Transaction,
    *,
    op: Op = Op.UPDATE,
    owner: PrivateKey = ALICE,
    signer: PrivateKey | None = None,
    valid_until: int = NOW + 3600,
) -> Transaction:
    """The next transaction of `prev`'s domain."""
    return make_tx(
        prev.body.domain,
        seq=prev.body.seq + 1,
        prev=prev.txid,
        op=op,
        owner=owner,
        signer=signer,
        valid_until=valid_until,
    )


def lookup(*txs: Transaction) -> Callable[[str], DomainState | None]:
    """A finalized-state lookup where `txs` (in order) are final."""
    states: dict[str, DomainState] = {}
    for tx in txs:
        states[tx.body.domain] = apply_tx(states.get(tx.body.domain), tx, PARAMS, NOW)
    return states.get


NOTHING = lookup()

# Signed once: signing costs ~0.6 ms a transaction.
REG_A = make_tx()
UPD_A1 = after(REG_A)
UPD_A2 = after(UPD_A1)
ALT_A1 = after(REG_A, valid_until=NOW + 1800)  # same seq as UPD_A1, another txid
REG_B = make_tx("bob.p2p", owner=BOB)
UPD_B1 = after(REG_B, owner=BOB)
REG_C = make_tx("carol.p2p")
BOB_REG_A = make_tx(owner=BOB)  # competes with REG_A for alice.p2p


def pool_with(
    *txs: Transaction, finalized: Callable[[str], DomainState | None] = NOTHING, **limits: int
) -> Mempool:
    pool = Mempool(PARAMS, **limits)
    for tx in txs:
        pool.add(tx, finalized, NOW)
    return pool


# -- admission --


@pytest.mark.parametrize(
    ("pending", "final", "tx", "reason"),
    [
        pytest.param([REG_A], (), REG_A, RejectReason.DUPLICATE, id="duplicate"),
        pytest.param(
            [], (), make_tx(chain_id="other-net"), RejectReason.WRONG_CHAIN, id="wrong-chain"
        ),
        pytest.param([REG_A], (), BOB_REG_A, RejectReason.BAD_SEQUENCE, id="second-registration"),
        pytest.param([REG_A, UPD_A1], (), ALT_A1, RejectReason.BAD_SEQUENCE, id="conflicting-seq1"),
        pytest.param([], (REG_A,), after(UPD_A1), RejectReason.BAD_SEQUENCE, id="gap"),
        pytest.param(
            [],
            (REG_A,),
            make_tx(seq=1, prev=bytes(31) + b"\x01", op=Op.UPDATE),
            RejectReason.BAD_PREV,
            id="wrong-prev",
        ),
        pytest.param(
            [], (REG_A,), after(REG_A, signer=BOB), RejectReason.NOT_OWNER, id="not-owner"
        ),
        pytest.param([], (), make_tx(valid_until=NOW - 1), RejectReason.TX_EXPIRED, id="expired"),
        pytest.param(
            [], (), make_tx(op=Op.UPDATE), RejectReason.NAME_NOT_ACTIVE, id="update-unregistered"
        ),
        pytest.param([], (REG_A,), UPD_A1, None, id="extends-finalized"),
        pytest.param([REG_A], (), UPD_A1, None, id="extends-pending"),
    ],
)
def test_add(
    pending: list[Transaction],
    final: tuple[Transaction, ...],
    tx: Transaction,
    reason: RejectReason | None,
) -> None:
    finalized = lookup(*final)
    pool = pool_with(*pending, finalized=finalized)
    if reason is None:
        pool.add(tx, finalized, NOW)
        assert tx.txid in pool and pool.get(tx.txid) == tx
        return
    with pytest.raises(InvalidUpdate) as info:
        pool.add(tx, finalized, NOW)
    assert info.value.reason == reason
    assert pool.snapshot() == pending  # a refusal changes nothing


def test_chained_pending_txs_are_batched_in_seq_order() -> None:
    pool = pool_with(REG_A, UPD_A1, UPD_A2)
    assert pool.pending_for("alice.p2p") == [REG_A, UPD_A1, UPD_A2]
    assert pool.batch(10, 1 << 20) == [REG_A, UPD_A1, UPD_A2]
    assert len(pool) == 3  # batching removes nothing


def test_update_after_pending_transfer_is_signed_by_the_new_owner() -> None:
    transfer = after(REG_A, op=Op.TRANSFER, owner=BOB, signer=ALICE)
    pool = pool_with(REG_A, transfer)
    with pytest.raises(InvalidUpdate) as info:
        pool.add(after(transfer, owner=BOB, signer=ALICE), NOTHING, NOW)  # old owner
    assert info.value.reason == RejectReason.NOT_OWNER
    update = after(transfer, owner=BOB)
    pool.add(update, NOTHING, NOW)
    assert pool.pending_for("alice.p2p") == [REG_A, transfer, update]


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        pytest.param({"max_per_domain": 2}, RejectReason.DOMAIN_QUEUE_FULL, id="per-domain"),
        pytest.param({"max_txs": 2}, RejectReason.MEMPOOL_FULL, id="count"),
        pytest.param(
            {"max_bytes": REG_A.size + UPD_A1.size + UPD_A2.size - 1},
            RejectReason.MEMPOOL_FULL,
            id="bytes",
        ),
    ],
)
def test_caps(limits: dict[str, int], reason: RejectReason) -> None:
    pool = Mempool(PARAMS, **limits)
    pool.add(REG_A, NOTHING, NOW)
    pool.add(UPD_A1, NOTHING, NOW)
    with pytest.raises(InvalidUpdate) as info:
        pool.add(UPD_A2, NOTHING, NOW)
    assert info.value.reason == reason
    assert pool.snapshot() == [REG_A, UPD_A1]
    assert pool.size_bytes == REG_A.size + UPD_A1.size


def test_per_domain_cap_leaves_other_domains_open() -> None:
    pool = pool_with(REG_A, UPD_A1, max_per_domain=2)
    pool.add(REG_B, NOTHING, NOW)
    assert len(pool) == 3


@pytest.mark.parametrize("limit", [0, -1])
def test_limits_must_be_positive(limit: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        Mempool(PARAMS, max_txs=limit)


# -- reading --


def test_arrival_order_across_domains() -> None:
    order = [REG_A, REG_B, UPD_A1, REG_C, UPD_B1, UPD_A2]
    pool = pool_with(*order)
    assert pool.snapshot() == order
    assert pool.batch(10, 1 << 20) == order
    assert pool.batch(2, 1 << 20) == order[:2]
    three = sum(tx.size for tx in order[:3])
    assert pool.batch(10, three) == order[:3]
    assert pool.batch(10, three - 1) == order[:2]
    assert pool.batch(0, 1 << 20) == []


def test_lookups() -> None:
    pool = pool_with(REG_A, REG_B)
    assert len(pool) == 2
    assert REG_A.txid in pool and UPD_A1.txid not in pool
    assert pool.get(REG_B.txid) == REG_B and pool.get(UPD_A1.txid) is None
    assert pool.size_bytes == REG_A.size + REG_B.size
    assert pool.pending_for("bob.p2p") == [REG_B] and pool.pending_for("x.p2p") == []


# -- removal --


def test_remove_expired_drops_the_tx_and_later_ones_of_its_domain() -> None:
    short = after(REG_A, valid_until=NOW + 10)
    later = after(short)
    pool = pool_with(REG_A, short, later, REG_B)
    assert pool.remove_expired(NOW + 10) == []  # valid_until is inclusive
    assert pool.remove_expired(NOW + 11) == [short, later]
    assert pool.snapshot() == [REG_A, REG_B]
    assert pool.size_bytes == REG_A.size + REG_B.size


def test_block_applied_removes_included_and_keeps_the_rest_chained() -> None:
    pool = pool_with(REG_A, UPD_A1, REG_B)
    assert pool.block_applied([REG_A], lookup(REG_A), NOW + 5) == []
    assert pool.snapshot() == [UPD_A1, REG_B]
    assert pool.size_bytes == UPD_A1.size + REG_B.size
    # The chain still extends from the new finalized state.
    pool.add(UPD_A2, lookup(REG_A), NOW + 5)
    assert pool.pending_for("alice.p2p") == [UPD_A1, UPD_A2]


@pytest.mark.parametrize(
    ("pending", "admitted_on", "block", "final", "reasons"),
    [
        pytest.param(
            [ALT_A1],
            (REG_A,),
            [UPD_A1],
            (REG_A, UPD_A1),
            [RejectReason.BAD_SEQUENCE],
            id="other-seq1-won",
        ),
        pytest.param(
            [REG_A, UPD_A1, UPD_A2],
            (),
            [BOB_REG_A],
            (BOB_REG_A,),
            [RejectReason.BAD_SEQUENCE] * 3,
            id="other-registration-won",
        ),
        pytest.param(
            # Only an inconsistent lookup moves the head without moving seq.
            [UPD_A1],
            (REG_A,),
            [BOB_REG_A],
            (BOB_REG_A,),
            [RejectReason.BAD_PREV],
            id="head-replaced",
        ),
    ],
)
def test_block_applied_drops_conflict_losers(
    pending: list[Transaction],
    admitted_on: tuple[Transaction, ...],
    block: list[Transaction],
    final: tuple[Transaction, ...],
    reasons: list[RejectReason],
) -> None:
    pool = pool_with(*pending, REG_B, finalized=lookup(*admitted_on))
    dropped = pool.block_applied(block, lookup(*final), NOW + 5)
    assert [tx for tx, _ in dropped] == pending
    assert [err.reason for _, err in dropped] == reasons
    assert pool.snapshot() == [REG_B]
    assert pool.pending_for("alice.p2p") == []


def test_block_applied_drops_expired_in_untouched_domains() -> None:
    short = make_tx("bob.p2p", owner=BOB, valid_until=NOW + 10)
    pool = pool_with(REG_A, short, REG_C)
    dropped = pool.block_applied([REG_A], lookup(REG_A), NOW + 11)
    assert [(tx, err.reason) for tx, err in dropped] == [(short, RejectReason.TX_EXPIRED)]
    assert pool.snapshot() == [REG_C]


def test_discard_drops_the_tx_and_later_ones() -> None:
    pool = pool_with(REG_A, UPD_A1, UPD_A2, REG_B)
    error = InvalidUpdate(RejectReason.NAME_TAKEN)
    dropped = pool.discard(UPD_A1.txid, error)
    assert [tx for tx, _ in dropped] == [UPD_A1, UPD_A2]
    assert all(err.reason == RejectReason.NAME_TAKEN for _, err in dropped)
    assert pool.snapshot() == [REG_A, REG_B]
    assert pool.discard(UPD_A1.txid, error) == []


def test_readding_after_removal_and_heap_compaction() -> None:
    pool = pool_with(REG_A)
    for _ in range(100):  # each round leaves a stale heap entry behind
        pool.block_applied([REG_A], NOTHING, NOW)
        pool.add(REG_A, NOTHING, NOW)
    assert len(pool._expiry) <= 2 * len(pool) + 64 + 1  # compacted
    assert pool.snapshot() == [REG_A]
    assert pool.remove_expired(REG_A.body.valid_until + 1) == [REG_A]
    assert len(pool) == 0 and pool.size_bytes == 0
