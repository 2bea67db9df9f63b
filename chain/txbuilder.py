"""The next transaction of a domain: what the wallet and DNS UPDATE both build.

A domain's latest state is its last pending transaction if it has one (a new
update chains on it: ``seq + 1``, ``prev`` = its txid), else its finalized
state. Everything here is pure: the caller passes the domain's view, the time
(`valid_until` takes ``now_s``) and the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chain.crypto import PrivateKey, PublicKey
from chain.records import Record, RecordLimits, canonical_record_set, validate_record_set
from chain.tx import ZERO_HASH, Op, Transaction, TxBody

DEFAULT_TX_LIFETIME_S = 3600
# The node checks the network's real limits; a builder checks only the shape rules.
_NO_LIMITS = RecordLimits(max_records=1 << 30, max_bytes=1 << 40)


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainView:
    """A domain as its writer sees it: finalized state with pending updates applied.

    Attributes:
        domain: canonical name.
        status: ``free`` (never registered), ``active``, ``released`` or ``expired``.
        owner: the owner key (the last owner for a released or expired name).
        seq: seq of the latest transaction (-1 when free).
        head: txid of the latest transaction (zeroes when free).
        records: the latest record set.
        expires_at: unix seconds when the name lapses (0: never).
        pending: how many updates are not finalized yet.
    """

    domain: str
    status: str
    owner: PublicKey | None
    seq: int
    head: bytes
    records: tuple[Record, ...]
    expires_at: int
    pending: int

    @classmethod
    def free(cls, domain: str) -> DomainView:
        """A name that was never registered."""
        return cls(
            domain=domain,
            status="free",
            owner=None,
            seq=-1,
            head=ZERO_HASH,
            records=(),
            expires_at=0,
            pending=0,
        )


def check_record_set(records: Iterable[Record]) -> tuple[Record, ...]:
    """The set in canonical order, checked (CNAME alone, one TTL per RRset, delegations).

    Raises:
        InvalidUpdate: the set breaks a rule.
    """
    return validate_record_set(canonical_record_set(records), _NO_LIMITS)


def valid_until(head_time_ms: int, now_s: int, max_tx_lifetime_s: int | None) -> int:
    """A deadline for inclusion: an hour (at most the network's limit) from now.

    The base is the later of the node's head time and the local clock, so an
    idle chain (old head) does not make the transaction expire on arrival.
    """
    lifetime = DEFAULT_TX_LIFETIME_S
    if max_tx_lifetime_s is not None:
        lifetime = max(1, min(lifetime, max_tx_lifetime_s // 2))
    return max(head_time_ms // 1000, now_s) + lifetime


def build_tx(
    view: DomainView,
    *,
    op: Op,
    key: PrivateKey,
    chain_id: str,
    genesis_hash: bytes,
    deadline: int,
    records: tuple[Record, ...] | None = None,
    new_owner: PublicKey | None = None,
) -> Transaction:
    """Sign the domain's next transaction.

    Args:
        view: the domain's latest state.
        op: what to do.
        key: the signer: the owner, or the registrant for `Op.REGISTER`.
        chain_id: the network.
        genesis_hash: the network's genesis hash (the signature covers it).
        deadline: the transaction's ``valid_until``.
        records: the new record set (default: unchanged; a release carries none).
        new_owner: the receiver of a transfer.
    """
    if op is Op.RELEASE:
        records = ()
    elif records is None:
        records = () if op is Op.REGISTER else view.records
    if op is Op.REGISTER:
        owner = key.public_key
    elif op is Op.TRANSFER:
        assert new_owner is not None, "a transfer needs a receiver"
        owner = new_owner
    else:
        assert view.owner is not None, "only a registered name has updates"
        owner = view.owner
    body = TxBody(
        chain_id=chain_id,
        domain=view.domain,
        seq=view.seq + 1,
        prev=view.head,
        op=op,
        records=records,
        owner=owner,
        valid_until=deadline,
    )
    return Transaction.sign(body, key, genesis_hash)


def build_validator_tx(
    *, op: Op, change: bytes, key: PrivateKey, chain_id: str, genesis_hash: bytes, deadline: int
) -> Transaction:
    """Sign a validator-set proposal or approval (chain/validators.py).

    Args:
        op: `Op.VALIDATOR_PROPOSE` or `Op.VALIDATOR_APPROVE`.
        change: a proposal's framed `ValidatorChange`, or the 32-byte id of the
            proposal an approval approves.
        key: a current validator's key.
        chain_id: the network.
        genesis_hash: the network's genesis hash (the signature covers it).
        deadline: the transaction's ``valid_until``.
    """
    body = TxBody(
        chain_id=chain_id, domain="", seq=0, prev=ZERO_HASH, op=op, records=(),
        owner=key.public_key, valid_until=deadline, change=change,
    )  # fmt: skip
    return Transaction.sign(body, key, genesis_hash)
