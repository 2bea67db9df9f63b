"""`check_tx_static` refuses, with a penalty, what no state can make valid; state and clock cost nothing.

Issue 13, defect 2: the gossip filter drops and blames a batch holding a
transaction that fails `check_tx_static`, so that check must never refuse what
an honest peer could send (a transaction valid against a state or clock it
sees), and what depends on state or the clock must carry penalty 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from chain.crypto import PrivateKey
from chain.errors import DEFAULT_PENALTY, InvalidUpdate, RejectReason
from chain.genesis import make_single_validator_genesis
from chain.records import Record, RType
from chain.rules import apply_tx, check_tx_static
from chain.state import DomainState, DomainStatus
from chain.tx import ZERO_HASH, Op, Transaction, TxBody

ALICE = PrivateKey.generate(b"static alice")
BOB = PrivateKey.generate(b"static bob")
PARAMS = dataclasses.replace(
    make_single_validator_genesis(
        PrivateKey.generate(b"static v").public_key, genesis_time_ms=0
    ).params,
    name_lifetime_s=1000,
)
NOW = 10_000
HEAD = bytes(range(32))
ORIGIN = "alice.p2p"
A_REC = Record.from_text("www 300 A 10.0.0.1", origin=ORIGIN)
# One more record than the genesis allows (64), and fewer records over its 8192 bytes.
MANY = tuple(Record.from_text(f"h{i:03} 300 A 10.0.0.1", origin=ORIGIN) for i in range(65))
BIG = tuple(
    Record(name=f"t{i:02}", rtype=RType.TXT, ttl=300, rdata=b"\xff" + b"x" * 255) for i in range(40)
)


def body(**changes: object) -> TxBody:
    base: dict[str, object] = {
        "chain_id": PARAMS.chain_id, "domain": ORIGIN, "seq": 4, "prev": HEAD,
        "op": Op.UPDATE, "records": (A_REC,), "owner": ALICE.public_key, "valid_until": NOW + 60,
    }  # fmt: skip
    base.update(changes)
    return TxBody(**base)  # type: ignore[arg-type]


def signed(key: PrivateKey = ALICE, **changes: object) -> Transaction:
    return Transaction.sign(body(**changes), key, PARAMS.genesis_hash)


def garbage_signed(**changes: object) -> Transaction:
    b = body(**changes)
    return Transaction(body=b, body_bytes=b.to_bytes(), signature=b"\x01" * 64)


def state(**changes: object) -> DomainState:
    base: dict[str, object] = {
        "domain": ORIGIN, "owner": ALICE.public_key, "seq": 3, "head": HEAD, "records": (),
        "expires_at": NOW + 500, "status": DomainStatus.ACTIVE,
    }  # fmt: skip
    base.update(changes)
    return DomainState(**base)  # type: ignore[arg-type]


REGISTER = {"seq": 0, "prev": ZERO_HASH, "op": Op.REGISTER}

STATIC: dict[str, tuple[Callable[[], Transaction], RejectReason]] = {
    "wrong-chain": (lambda: signed(chain_id="other"), RejectReason.WRONG_CHAIN),
    "not-under-a-tld": (lambda: signed(domain="alice.com"), RejectReason.BAD_NAME),
    "subdomain": (lambda: signed(domain="www.alice.p2p"), RejectReason.BAD_NAME),
    "bad-owner-key": (lambda: garbage_signed(owner=b"\x02" + b"\xff" * 32), RejectReason.BAD_KEY),
    "too-many-records": (lambda: signed(records=MANY), RejectReason.TOO_MANY_RECORDS),
    "records-too-large": (lambda: signed(records=BIG), RejectReason.RECORDS_TOO_LARGE),
    "unsorted-records": (lambda: signed(records=(MANY[1], MANY[0])), RejectReason.NON_CANONICAL),
    "cname-at-apex": (
        lambda: signed(records=(Record.from_text("@ 300 CNAME x.example.", origin=ORIGIN),)),
        RejectReason.CNAME_CONFLICT,
    ),
    "release-with-records": (lambda: signed(op=Op.RELEASE), RejectReason.BAD_OP),
    "register-signed-by-another": (lambda: signed(BOB, **REGISTER), RejectReason.BAD_SIGNATURE),
    "register-garbage-signature": (lambda: garbage_signed(**REGISTER), RejectReason.BAD_SIGNATURE),
    "update-signed-by-another": (lambda: signed(BOB), RejectReason.NOT_OWNER),
    "renew-signed-by-another": (lambda: signed(BOB, op=Op.RENEW), RejectReason.NOT_OWNER),
    "release-signed-by-another": (
        lambda: signed(BOB, op=Op.RELEASE, records=()),
        RejectReason.NOT_OWNER,
    ),
    "signed-for-another-network": (
        lambda: Transaction.sign(body(), ALICE, b"\x01" * 32),
        RejectReason.NOT_OWNER,
    ),
}


@pytest.mark.parametrize("name", list(STATIC))
def test_a_tx_no_state_can_make_valid_is_refused_with_a_penalty(name: str) -> None:
    make, reason = STATIC[name]
    with pytest.raises(InvalidUpdate) as info:
        check_tx_static(make(), PARAMS)
    assert info.value.reason == reason
    assert info.value.penalty == DEFAULT_PENALTY


StateCase = tuple[Callable[[], Transaction], DomainState | None, RejectReason]
STATEFUL: dict[str, StateCase] = {
    "stale-seq": (lambda: signed(seq=3), state(), RejectReason.BAD_SEQUENCE),
    "gap-seq": (lambda: signed(seq=6), state(), RejectReason.BAD_SEQUENCE),
    "wrong-prev": (lambda: signed(prev=b"\x07" * 32), state(), RejectReason.BAD_PREV),
    "register-taken": (
        lambda: signed(BOB, op=Op.REGISTER, owner=BOB.public_key),
        state(),
        RejectReason.NAME_TAKEN,
    ),
    "update-unregistered": (
        lambda: signed(seq=0, prev=ZERO_HASH),
        None,
        RejectReason.NAME_NOT_ACTIVE,
    ),
    "update-expired": (lambda: signed(), state(expires_at=NOW - 5), RejectReason.NAME_NOT_ACTIVE),
    "update-released": (
        lambda: signed(),
        state(status=DomainStatus.RELEASED),
        RejectReason.NAME_NOT_ACTIVE,
    ),
    # What the owner is, is state: a peer that saw a transfer we did not sends these honestly.
    "update-by-another-key": (
        lambda: signed(BOB, owner=BOB.public_key),
        state(),
        RejectReason.BAD_OP,
    ),
    "transfer-to-self": (lambda: signed(op=Op.TRANSFER), state(), RejectReason.BAD_OP),
    "transfer-by-another": (
        lambda: signed(BOB, op=Op.TRANSFER, owner=BOB.public_key),
        state(),
        RejectReason.NOT_OWNER,
    ),
    "expired-by-clock": (lambda: signed(valid_until=NOW - 1), state(), RejectReason.TX_EXPIRED),
    "too-far-by-clock": (lambda: signed(valid_until=NOW + 86401), state(), RejectReason.TX_TOO_FAR),
}


@pytest.mark.parametrize("name", list(STATEFUL))
def test_what_depends_on_state_or_clock_passes_the_static_check_and_costs_nothing(
    name: str,
) -> None:
    make, before, reason = STATEFUL[name]
    tx = make()
    check_tx_static(tx, PARAMS)
    with pytest.raises(InvalidUpdate) as info:
        apply_tx(before, tx, PARAMS, NOW)
    assert info.value.reason == reason
    assert info.value.penalty == 0


@pytest.mark.parametrize(
    "reason", [RejectReason.DUPLICATE, RejectReason.MEMPOOL_FULL, RejectReason.DOMAIN_QUEUE_FULL]
)
def test_mempool_admission_refusals_cost_nothing(reason: RejectReason) -> None:
    assert InvalidUpdate(reason).penalty == 0


def test_a_transfer_signature_is_left_to_the_state() -> None:
    """Signed by the previous owner, known only from the state: not a static rejection."""
    check_tx_static(garbage_signed(op=Op.TRANSFER, owner=BOB.public_key), PARAMS)
