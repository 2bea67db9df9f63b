"""The transaction rules: is this step of a domain's chain valid, and what follows.

All pure: state, parameters and block time come in as arguments.
"""

from __future__ import annotations

from chain.crypto import validate_public_key
from chain.errors import DEFAULT_PENALTY, InvalidUpdate, RejectReason
from chain.names import validate_domain
from chain.params import ChainParams
from chain.records import validate_record_set
from chain.state import DomainState, DomainStatus
from chain.tx import ZERO_HASH, Op, Transaction

# Owner keys already found to be points on the curve. Most transactions reuse a
# key, and parsing a point costs about a sixth of a signature check. Only keys
# that passed get in, and the set is bounded, so it changes no outcome.
_valid_keys: set[bytes] = set()
_VALID_KEYS_MAX = 4096


def _validate_owner_key(key: bytes) -> None:
    if type(key) is bytes and key in _valid_keys:
        return
    validate_public_key(key)
    if len(_valid_keys) >= _VALID_KEYS_MAX:
        _valid_keys.clear()
    _valid_keys.add(bytes(key))


def check_tx_static(tx: Transaction, params: ChainParams) -> None:
    """Checks that need no state: network, name, owner key, record set, op shape, signature.

    A transaction that fails one can never be valid, whatever the chain holds
    or the clock says, so every rejection here carries a penalty (the gossip
    filter drops and blames a batch holding one). The signature is checkable
    here for every op but a transfer: all others keep the owner, so the key
    that must have signed is `body.owner` (a transfer is signed by the
    previous owner, known only from the state). Cheap checks come first.

    Raises:
        InvalidUpdate: the first rule broken.
    """
    body = tx.body
    if body.chain_id != params.chain_id:
        raise InvalidUpdate(
            RejectReason.WRONG_CHAIN,
            f"transaction is for network {body.chain_id!r}, this is {params.chain_id!r}",
        )
    validate_domain(body.domain, params.tlds)
    _validate_owner_key(body.owner)
    validate_record_set(body.records, params.record_limits)
    if body.op == Op.RELEASE and body.records:
        raise InvalidUpdate(RejectReason.BAD_OP, f"{body.domain}: a release carries no records")
    if body.op != Op.TRANSFER and not tx.is_signed_by(body.owner, params.genesis_hash):
        if body.op == Op.REGISTER:
            raise InvalidUpdate(
                RejectReason.BAD_SIGNATURE,
                f"{body.domain}: registration not signed by its owner key for this network",
            )
        raise InvalidUpdate(
            RejectReason.NOT_OWNER,
            f"{body.domain}: not signed by the owner's key for this network",
            penalty=DEFAULT_PENALTY,  # unlike `apply_tx`'s NOT_OWNER, no state can make it valid
        )


def check_tx_window(tx: Transaction, params: ChainParams, now_s: int) -> None:
    """Whether block time `now_s` lies in the transaction's inclusion window.

    Raises:
        InvalidUpdate: TX_EXPIRED or TX_TOO_FAR.
    """
    valid_until = tx.body.valid_until
    if now_s > valid_until:
        raise InvalidUpdate(
            RejectReason.TX_EXPIRED,
            f"{tx.body.domain}: transaction expired at {valid_until}, block time is {now_s}",
        )
    if valid_until > now_s + params.max_tx_lifetime_s:
        raise InvalidUpdate(
            RejectReason.TX_TOO_FAR,
            f"{tx.body.domain}: valid_until is more than {params.max_tx_lifetime_s} s ahead",
        )


def _expiry(params: ChainParams, now_s: int) -> int:
    return now_s + params.name_lifetime_s if params.name_lifetime_s else 0


def apply_tx(
    current: DomainState | None, tx: Transaction, params: ChainParams, now_s: int
) -> DomainState:
    """The domain's state after `tx`, given its state before and the block time.

    Call `check_tx_static` first (blocks and the mempool do).

    Raises:
        InvalidUpdate: the first rule broken, with a message naming the domain.
    """
    body = tx.body
    name = body.domain
    check_tx_window(tx, params, now_s)
    expected_seq = 0 if current is None else current.seq + 1
    if body.seq != expected_seq:
        raise InvalidUpdate(
            RejectReason.BAD_SEQUENCE,
            f"{name}: seq {body.seq} but the chain expects {expected_seq}"
            + (" (another update got there first)" if body.seq < expected_seq else ""),
        )
    expected_prev = ZERO_HASH if current is None else current.head
    if body.prev != expected_prev:
        raise InvalidUpdate(
            RejectReason.BAD_PREV,
            f"{name}: prev {body.prev.hex()[:16]} is not the head {expected_prev.hex()[:16]}",
        )
    active = current is not None and current.is_active(now_s)
    if body.op == Op.REGISTER:
        if active:
            raise InvalidUpdate(RejectReason.NAME_TAKEN, f"{name} is already registered")
        if not tx.is_signed_by(body.owner, params.genesis_hash):
            raise InvalidUpdate(
                RejectReason.BAD_SIGNATURE,
                f"{name}: registration not signed by its owner key for this network",
            )
        expires_at = _expiry(params, now_s)
    else:
        if current is None or not active:
            raise InvalidUpdate(
                RejectReason.NAME_NOT_ACTIVE,
                f"{name} is not registered (free, expired or released); register it first",
            )
        # Both depend on the current owner, so a peer ahead of us may send them honestly.
        if body.op == Op.TRANSFER:
            if body.owner == current.owner:
                raise InvalidUpdate(
                    RejectReason.BAD_OP, f"{name}: transfer to the same owner", penalty=0
                )
        elif body.owner != current.owner:
            raise InvalidUpdate(
                RejectReason.BAD_OP, f"{name}: only a transfer may change the owner", penalty=0
            )
        if not tx.is_signed_by(current.owner, params.genesis_hash):
            raise InvalidUpdate(
                RejectReason.NOT_OWNER,
                f"{name}: not signed by the current owner's key for this network",
            )
        expires_at = current.expires_at
        if body.op == Op.RENEW and current.expires_at:
            # A renewal extends a lease; a name that never expires (a genesis name, or
            # one registered while lifetimes were off) stays permanent.
            expires_at = _expiry(params, now_s)
    status = DomainStatus.RELEASED if body.op == Op.RELEASE else DomainStatus.ACTIVE
    return DomainState(
        domain=name,
        owner=body.owner,
        seq=body.seq,
        head=tx.txid,
        records=body.records,
        expires_at=expires_at,
        status=status,
    )
