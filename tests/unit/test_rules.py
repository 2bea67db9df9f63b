"""The per-domain hash-chain rules, one rejection per row."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from chain.crypto import PrivateKey
from chain.errors import InvalidUpdate, RejectReason
from chain.genesis import make_single_validator_genesis
from chain.records import Record
from chain.rules import apply_tx, check_tx_static
from chain.state import DomainState, DomainStatus
from chain.tx import ZERO_HASH, Op, Transaction, TxBody

ALICE = PrivateKey.generate(b"alice" * 7)
BOB = PrivateKey.generate(b"bob" * 11)
VALIDATOR = PrivateKey.generate(b"validator" * 4)
PARAMS = dataclasses.replace(
    make_single_validator_genesis(VALIDATOR.public_key, genesis_time_ms=0).params,
    name_lifetime_s=1000,
)
NOW = 10_000
HEAD = bytes(range(32))
A_REC = Record.from_text("www 300 A 10.0.0.1", origin="alice.p2p")


def body(**changes: object) -> TxBody:
    base: dict[str, object] = {
        "chain_id": PARAMS.chain_id, "domain": "alice.p2p", "seq": 4, "prev": HEAD,
        "op": Op.UPDATE, "records": (A_REC,), "owner": ALICE.public_key, "valid_until": NOW + 60,
    }
    base.update(changes)
    return TxBody(**base)  # type: ignore[arg-type]


def state(**changes: object) -> DomainState:
    base: dict[str, object] = {
        "domain": "alice.p2p", "owner": ALICE.public_key, "seq": 3, "head": HEAD, "records": (),
        "expires_at": NOW + 500, "status": DomainStatus.ACTIVE,
    }
    base.update(changes)
    return DomainState(**base)  # type: ignore[arg-type]


def signed(key: PrivateKey = ALICE, **changes: object) -> Transaction:
    return Transaction.sign(body(**changes), key, PARAMS.genesis_hash)


def test_update_by_owner_changes_records_and_head() -> None:
    tx = signed()
    after = apply_tx(state(), tx, PARAMS, NOW)
    assert (after.seq, after.head, after.records, after.owner) == (4, tx.txid, (A_REC,), ALICE.public_key)
    assert after.expires_at == NOW + 500  # an update does not renew


def test_register_free_name() -> None:
    tx = signed(seq=0, prev=ZERO_HASH, op=Op.REGISTER)
    after = apply_tx(None, tx, PARAMS, NOW)
    assert (after.seq, after.expires_at, after.status) == (0, NOW + 1000, DomainStatus.ACTIVE)


@pytest.mark.parametrize("before", [
    state(expires_at=NOW - 1),
    state(expires_at=NOW),
    state(status=DomainStatus.RELEASED),
], ids=["expired", "expires-now", "released"])
def test_reregistration_continues_the_chain_and_may_change_owner(before: DomainState) -> None:
    tx = signed(BOB, op=Op.REGISTER, owner=BOB.public_key)
    after = apply_tx(before, tx, PARAMS, NOW)
    assert (after.seq, after.owner, after.status) == (4, BOB.public_key, DomainStatus.ACTIVE)


def test_transfer_then_renew_then_release() -> None:
    t = signed(op=Op.TRANSFER, owner=BOB.public_key)
    s1 = apply_tx(state(), t, PARAMS, NOW)
    assert s1.owner == BOB.public_key
    r = signed(BOB, seq=5, prev=t.txid, op=Op.RENEW, owner=BOB.public_key)
    s2 = apply_tx(s1, r, PARAMS, NOW + 7)
    assert s2.expires_at == NOW + 7 + 1000
    rel = signed(BOB, seq=6, prev=r.txid, op=Op.RELEASE, owner=BOB.public_key, records=())
    s3 = apply_tx(s2, rel, PARAMS, NOW + 8)
    assert s3.status == DomainStatus.RELEASED and not s3.is_active(NOW + 8)


Case = tuple[Callable[[], Transaction], DomainState | None, RejectReason]
CASES: dict[str, Case] = {
    "stale-seq": (lambda: signed(seq=3), state(), RejectReason.BAD_SEQUENCE),
    "gap-seq": (lambda: signed(seq=6), state(), RejectReason.BAD_SEQUENCE),
    "wrong-prev": (lambda: signed(prev=b"\x07" * 32), state(), RejectReason.BAD_PREV),
    "not-owner": (lambda: signed(BOB), state(), RejectReason.NOT_OWNER),
    "owner-change-by-update": (lambda: signed(owner=BOB.public_key), state(), RejectReason.BAD_OP),
    "transfer-to-self": (lambda: signed(op=Op.TRANSFER), state(), RejectReason.BAD_OP),
    "register-taken": (lambda: signed(BOB, op=Op.REGISTER, owner=BOB.public_key), state(), RejectReason.NAME_TAKEN),
    "register-signed-by-other": (lambda: signed(BOB, seq=0, prev=ZERO_HASH, op=Op.REGISTER), None, RejectReason.BAD_SIGNATURE),
    "update-unregistered": (lambda: signed(seq=0, prev=ZERO_HASH), None, RejectReason.NAME_NOT_ACTIVE),
    "update-expired": (lambda: signed(), state(expires_at=NOW - 5), RejectReason.NAME_NOT_ACTIVE),
    "update-released": (lambda: signed(), state(status=DomainStatus.RELEASED), RejectReason.NAME_NOT_ACTIVE),
    "tx-expired": (lambda: signed(valid_until=NOW - 1), state(), RejectReason.TX_EXPIRED),
    "tx-too-far": (lambda: signed(valid_until=NOW + 86401), state(), RejectReason.TX_TOO_FAR),
}


@pytest.mark.parametrize("name", list(CASES))
def test_rejections(name: str) -> None:
    make, before, reason = CASES[name]
    with pytest.raises(InvalidUpdate) as info:
        apply_tx(before, make(), PARAMS, NOW)
    assert info.value.reason == reason
    assert "alice.p2p" in str(info.value)


STATIC: dict[str, tuple[dict[str, object], RejectReason]] = {
    "wrong-chain": ({"chain_id": "other"}, RejectReason.WRONG_CHAIN),
    "not-under-tld": ({"domain": "alice.com"}, RejectReason.BAD_NAME),
    "two-labels": ({"domain": "www.alice.p2p"}, RejectReason.BAD_NAME),
    "upper-case": ({"domain": "Alice.p2p"}, RejectReason.BAD_NAME),
    "bad-owner-key": ({"owner": b"\x02" + b"\xff" * 32}, RejectReason.BAD_KEY),
    "release-with-records": ({"op": Op.RELEASE}, RejectReason.BAD_OP),
    "unsorted-records": (
        {"records": (Record.from_text("www 300 A 10.0.0.2", origin="alice.p2p"), A_REC)},
        RejectReason.NON_CANONICAL,
    ),
}


@pytest.mark.parametrize("name", list(STATIC))
def test_static_rejections(name: str) -> None:
    changes, reason = STATIC[name]
    tx = Transaction(body=body(**changes), body_bytes=body(**changes).to_bytes(), signature=b"\x01" * 64)
    with pytest.raises(InvalidUpdate) as info:
        check_tx_static(tx, PARAMS)
    assert info.value.reason == reason


def test_record_limits_apply() -> None:
    many = tuple(Record.from_text(f"h{i:03} 300 A 10.0.0.{i % 250}", origin="alice.p2p") for i in range(65))
    tx = Transaction(body=body(records=many), body_bytes=body(records=many).to_bytes(), signature=b"\x01" * 64)
    with pytest.raises(InvalidUpdate) as info:
        check_tx_static(tx, PARAMS)
    assert info.value.reason == RejectReason.TOO_MANY_RECORDS


def test_tx_round_trip_and_txid() -> None:
    tx = signed()
    again = Transaction.from_bytes(tx.to_bytes())
    assert again == tx and again.txid == tx.txid
    assert again.is_signed_by(ALICE.public_key, PARAMS.genesis_hash)
    assert not again.is_signed_by(BOB.public_key, PARAMS.genesis_hash)
    assert not again.is_signed_by(ALICE.public_key, b"\x01" * 32)  # another network's


def test_remembered_owner_keys_do_not_let_a_bad_key_through() -> None:
    bad = b"\x02" + b"\xff" * 32  # 33 bytes, compressed prefix, not on the curve
    for _ in range(2):
        check_tx_static(signed(), PARAMS)  # ALICE's key is now remembered as valid
        with pytest.raises(InvalidUpdate) as info:
            check_tx_static(signed(owner=bad), PARAMS)
        assert info.value.reason == RejectReason.BAD_KEY


def test_renewing_a_permanent_name_keeps_it_permanent() -> None:
    tx = signed(op=Op.RENEW)
    assert apply_tx(state(expires_at=0), tx, PARAMS, NOW).expires_at == 0
    assert apply_tx(state(), tx, PARAMS, NOW).expires_at == NOW + 1000
