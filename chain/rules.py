"""The transaction rules: is this step of a domain's chain valid, and what follows.

All pure: state, parameters and block time come in as arguments.
"""

from __future__ import annotations

from chain.commits import NameContext, check_reveal, takes_over
from chain.crypto import validate_public_key
from chain.errors import DEFAULT_PENALTY, InvalidUpdate, RejectReason
from chain.names import validate_domain
from chain.params import ChainParams
from chain.records import validate_record_set
from chain.stamp import renewal_seed, stamp_seed, verify_stamp
from chain.state import DomainState, DomainStatus
from chain.tx import VALIDATOR_OPS, ZERO_HASH, Op, Transaction
from chain.validators import ValidatorChange

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


# Stamps already verified, by genesis hash + txid (the stamp is part of the body): a
# node checks a commit when it is gossiped, again when it proposes or checks the
# block. Bounded like `_valid_keys`; only stamps that passed get in.
_valid_stamps: set[bytes] = set()
_VALID_STAMPS_MAX = 4096


def _check_commit_static(tx: Transaction, params: ChainParams) -> None:
    body = tx.body
    naming = params.naming
    if body.stamp_work < naming.stamp_work:
        raise InvalidUpdate(
            RejectReason.BAD_STAMP,
            f"commit {body.commitment.hex()[:16]}: stamp work {body.stamp_work}, "
            f"the network asks at least {naming.stamp_work}",
        )
    memo = params.genesis_hash + tx.txid
    if memo in _valid_stamps:
        return
    seed = stamp_seed(params.genesis_hash, body.commitment, body.owner, body.stamp_work)
    verify_stamp(body.stamp, seed, body.stamp_work, naming)
    if len(_valid_stamps) >= _VALID_STAMPS_MAX:
        _valid_stamps.clear()
    _valid_stamps.add(memo)


def _check_renewal_stamp(tx: Transaction, params: ChainParams) -> None:
    """On a network with stamps a renewal pays one, as a registration did (docs/naming.md §4)."""
    body = tx.body
    need = params.naming.required_work(body.domain)
    if body.stamp_work < need:
        raise InvalidUpdate(
            RejectReason.BAD_STAMP,
            f"{body.domain}: a renewal here carries a stamp of work {need} or more "
            f"(got {body.stamp_work}; `ledgerdns wallet renew` makes one)",
        )
    memo = params.genesis_hash + tx.txid
    if memo in _valid_stamps:
        return
    seed = renewal_seed(params.genesis_hash, body.domain, body.owner, body.prev, body.stamp_work)
    verify_stamp(body.stamp, seed, body.stamp_work, params.naming)
    if len(_valid_stamps) >= _VALID_STAMPS_MAX:
        _valid_stamps.clear()
    _valid_stamps.add(memo)


def _check_registration_form(tx: Transaction, params: ChainParams) -> None:
    """A network uses commit-reveal or direct registration, never both."""
    body = tx.body
    if params.naming.commit_reveal:
        if body.op == Op.REGISTER and not body.is_reveal:
            raise InvalidUpdate(
                RejectReason.COMMIT_REQUIRED,
                f"{body.domain}: this network registers names by commit and reveal "
                "(ledgerdns wallet register does both)",
            )
    elif body.op == Op.COMMIT or body.is_reveal:
        raise InvalidUpdate(
            RejectReason.COMMIT_REVEAL_OFF,
            "this network registers names directly; it takes no commits or reveals",
        )


def check_tx_static(tx: Transaction, params: ChainParams) -> None:
    """Checks that need no state: network, name, owner key, record set, op shape, signature.

    A transaction that fails one can never be valid, whatever the chain holds
    or the clock says, so every rejection here carries a penalty (the gossip
    filter drops and blames a batch holding one). The signature is checkable
    here for every op but a transfer: all others keep the owner, so the key
    that must have signed is `body.owner` (a transfer is signed by the
    previous owner, known only from the state). A commit's stamp is checked
    here too (docs/naming.md). Cheap checks come first.

    Raises:
        InvalidUpdate: the first rule broken.
    """
    body = tx.body
    if body.chain_id != params.chain_id:
        raise InvalidUpdate(
            RejectReason.WRONG_CHAIN,
            f"transaction is for network {body.chain_id!r}, this is {params.chain_id!r}",
        )
    if body.op in VALIDATOR_OPS:
        _validate_owner_key(body.owner)
        check_validator_static(tx, params)
        return
    _check_registration_form(tx, params)
    if body.op == Op.COMMIT:
        _validate_owner_key(body.owner)
        if not tx.is_signed_by(body.owner, params.genesis_hash):
            raise InvalidUpdate(RejectReason.BAD_SIGNATURE, "commit not signed by its owner key")
        _check_commit_static(tx, params)  # last: the costly check
        return
    validate_domain(body.domain, params.tlds)
    _validate_owner_key(body.owner)
    validate_record_set(body.records, params.record_limits)
    if body.op == Op.RENEW and params.naming.stamp_work:
        _check_renewal_stamp(tx, params)
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
    current: DomainState | None,
    tx: Transaction,
    params: ChainParams,
    now_s: int,
    naming: NameContext | None = None,
) -> DomainState:
    """The domain's state after `tx`, given its state before and the block time.

    Call `check_tx_static` first (blocks and the mempool do). A commit changes
    no domain: `chain.commits.check_commit` takes it.

    Args:
        current: the domain's state before (None: never registered).
        tx: the transaction.
        params: the network.
        now_s: the block time.
        naming: the block height and the commit and claim state the naming
            rules read. Blocks always pass it; without it (a mempool that
            cannot see the chain) a reveal's commit is taken on trust, to be
            checked when a block is built.

    Raises:
        InvalidUpdate: the first rule broken, with a message naming the domain.
    """
    body = tx.body
    name = body.domain
    if not body.has_domain:
        raise InvalidUpdate(
            RejectReason.BAD_OP, "a commit or validator op changes no domain's chain"
        )
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
        if body.is_reveal and naming is not None:
            commit = check_reveal(tx, params.naming, naming)
            if active and not takes_over(commit, naming.claim, naming.height):
                raise InvalidUpdate(RejectReason.NAME_TAKEN, f"{name} is already registered")
        elif active:
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
        if naming is not None and naming.claim is not None and naming.claim.is_live(naming.height):
            # An earlier commit may still take the name: its holder must not move the
            # chain's head under that reveal (a stale `prev` would make it fail).
            raise InvalidUpdate(
                RejectReason.NAME_PROVISIONAL,
                f"{name} is provisional until height {naming.claim.until} "
                "(an earlier commit may still reveal it)",
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


def decode_change(tx: Transaction) -> ValidatorChange:
    """The change a proposal carries.

    Raises:
        InvalidUpdate: MALFORMED, it is no change at all.
    """
    try:
        return ValidatorChange.from_bytes(tx.body.change)
    except InvalidUpdate as exc:  # no state makes it valid: the default penalty
        raise InvalidUpdate(RejectReason.MALFORMED, f"validator change: {exc.args[0]}") from None


def check_validator_static(tx: Transaction, params: ChainParams) -> None:
    """The checks that need no state: the change decodes and `owner` signed.

    Raises:
        InvalidUpdate: MALFORMED or BAD_SIGNATURE.
    """
    if tx.body.op == Op.VALIDATOR_PROPOSE:
        decode_change(tx)
    if not tx.is_signed_by(tx.body.owner, params.genesis_hash):
        raise InvalidUpdate(
            RejectReason.BAD_SIGNATURE,
            "validator op not signed by its validator key for this network",
        )
