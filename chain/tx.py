"""Transactions: one signed step of one domain's own hash chain.

Wire form: ``[Kind.TX, 2, body, signature]`` where `body` is the framed
body bytes in one of three forms: `Kind.TX_BODY` (every op but a commit, and a
registration without commit), `Kind.NAME_COMMIT_BODY` (a commit: the name is
hidden in a commitment, so the body has no domain) and `Kind.NAME_REVEAL_BODY`
(a registration that reveals a commit), and `Kind.NAME_RENEW_BODY` (a renewal
carrying a stamp; docs/naming.md). ``txid = sha256(body)``, so hashing never needs a
re-encode. The signature is over ``sha256([Kind.TX_SIGNING, 1, genesis_hash,
txid])``: the genesis hash is not sent, the verifier supplies its own, so a
transaction signed for another network with the same `chain_id` does not
verify here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NewType

from chain.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, PrivateKey, PublicKey, sha256, verify
from chain.encoding import Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.records import (
    Record,
    RecordLimits,
    check_record_limits,
    records_from_cbor,
    records_to_cbor,
)

TxHash = NewType("TxHash", bytes)

ZERO_HASH = bytes(32)
MAX_TX_BYTES = 64 * 1024
MAX_CHAIN_ID = 64
MAX_DOMAIN = 253
MAX_TX_RECORDS = 1024  # a hard decode cap; the genesis limit is checked by the rules
# The most bytes a body holds besides its record items: array head 1, kind 1,
# version 1, chain_id 2+64, domain 2+253, seq 9, prev 2+32, op 1, records array
# head 9, owner 2+33, valid_until 9. A longer body's records are longer than this.
MIN_SALT = 16
MAX_SALT = 32
MAX_STAMP_BYTES = 64 * 8
# The other body forms add at most: a reveal commit_height 9 and salt 2+32; a stamped
# renewal stamp_work 9 and its stamp 3+512 (a commit, with no records, is smaller).
MAX_BODY_OVERHEAD = 421 + 9 + 3 + MAX_STAMP_BYTES


class Op(IntEnum):
    """What a transaction does to its domain."""

    REGISTER = 0
    UPDATE = 1
    TRANSFER = 2
    RENEW = 3
    RELEASE = 4
    COMMIT = 5
    VALIDATOR_PROPOSE = 6  # issue 15: a validator-set change (chain/validators.py)
    VALIDATOR_APPROVE = 7


VALIDATOR_OPS = (Op.VALIDATOR_PROPOSE, Op.VALIDATOR_APPROVE)
MAX_CHANGE_FIELD = 128  # a proposal's framed `ValidatorChange`, or an approval's 32-byte id


@dataclass(frozen=True, slots=True, kw_only=True)
class TxBody:
    """The signed content of a transaction.

    Attributes:
        chain_id: the network this is valid on.
        domain: canonical domain name (``alice.p2p``).
        seq: position in the domain's chain; 0 for the first registration.
        prev: txid of the domain's previous transaction; zeroes for seq 0.
        op: what the step does.
        records: the full, canonical record set after the step.
        owner: the owner's public key after the step.
        valid_until: last block time (unix seconds) at which it may be included.
        commitment: a commit's ``SHA-256([30, 1, genesis_hash, domain, owner,
            salt])`` (empty otherwise).
        stamp_work: a commit's or a renewal's declared stamp work (docs/naming.md).
        stamp: a commit's or a renewal's proof-of-work nonces (`chain.stamp`).
        commit_height: a reveal's commit's block height.
        salt: a reveal's salt (empty for every other op: a registration
            without salt is a direct one).
        change: a validator proposal's framed `chain.validators.ValidatorChange`,
            or an approval's proposal id (empty otherwise).

    A commit and a validator proposal or approval have no domain: `domain` is
    "" (what indexes and messages show), `seq` 0, `prev` zeroes and no records;
    `owner` is the signing key (for a validator op, a current validator's).
    """

    chain_id: str
    domain: str
    seq: int
    prev: bytes
    op: Op
    records: tuple[Record, ...]
    owner: PublicKey
    valid_until: int
    commitment: bytes = b""
    stamp_work: int = 0
    stamp: bytes = b""
    commit_height: int = 0
    salt: bytes = b""
    change: bytes = b""

    def __post_init__(self) -> None:
        if len(self.prev) != 32:
            raise InvalidUpdate(RejectReason.MALFORMED, "tx.prev must be 32 bytes")
        if len(self.owner) != PUBLIC_KEY_SIZE:
            raise InvalidUpdate(RejectReason.BAD_KEY, "tx.owner must be a 33-byte key")
        if not 0 <= self.seq < 2**63 or not 0 <= self.valid_until < 2**63:
            raise InvalidUpdate(RejectReason.MALFORMED, "tx.seq or tx.valid_until out of range")
        if (self.seq == 0) != (self.prev == ZERO_HASH):
            raise InvalidUpdate(RejectReason.BAD_PREV, "tx.prev is zero exactly when seq is 0")
        self._check_form()

    def _check_form(self) -> None:
        """The fields a commit, a reveal, a validator op and every other op may carry."""
        if self.op in VALIDATOR_OPS:
            size = 32 if self.op == Op.VALIDATOR_APPROVE else None
            if (
                self.domain
                or self.seq
                or self.records
                or self.commitment
                or self.stamp
                or self.salt
            ):
                raise InvalidUpdate(
                    RejectReason.MALFORMED, "a validator op carries no domain, records or stamp"
                )
            if self.stamp_work or self.commit_height:
                raise InvalidUpdate(
                    RejectReason.MALFORMED, "a validator op carries no domain, records or stamp"
                )
            if not 0 < len(self.change) <= MAX_CHANGE_FIELD or (size and len(self.change) != size):
                raise InvalidUpdate(RejectReason.MALFORMED, "a validator op's change field size")
            return
        if self.change:
            raise InvalidUpdate(RejectReason.MALFORMED, "only a validator op carries a change")
        if self.op == Op.COMMIT:
            if len(self.commitment) != 32 or self.domain or self.seq or self.records:
                raise InvalidUpdate(
                    RejectReason.MALFORMED,
                    "a commit carries a 32-byte commitment and no domain, seq or records",
                )
            if len(self.stamp) > MAX_STAMP_BYTES or not 0 <= self.stamp_work < 2**63:
                raise InvalidUpdate(RejectReason.MALFORMED, "tx.stamp out of range")
            if self.salt or self.commit_height:
                raise InvalidUpdate(RejectReason.MALFORMED, "a commit carries no salt")
            return
        if self.commitment:
            raise InvalidUpdate(RejectReason.MALFORMED, "only a commit carries a commitment")
        if (self.stamp or self.stamp_work) and self.op != Op.RENEW:
            raise InvalidUpdate(
                RejectReason.MALFORMED, "only a commit or a renewal carries a stamp"
            )
        if len(self.stamp) > MAX_STAMP_BYTES or not 0 <= self.stamp_work < 2**63:
            raise InvalidUpdate(RejectReason.MALFORMED, "tx.stamp out of range")
        if self.salt and (self.op != Op.REGISTER or not MIN_SALT <= len(self.salt) <= MAX_SALT):
            raise InvalidUpdate(
                RejectReason.MALFORMED,
                f"only a registration reveals a salt, of {MIN_SALT} to {MAX_SALT} bytes",
            )
        if not 0 <= self.commit_height < 2**63 or (self.commit_height and not self.salt):
            raise InvalidUpdate(RejectReason.MALFORMED, "tx.commit_height belongs to a reveal")

    @property
    def has_domain(self) -> bool:
        """Whether this is a step of a domain's chain (not a commit or a validator op)."""
        return self.op != Op.COMMIT and self.op not in VALIDATOR_OPS

    @property
    def is_stamped_renewal(self) -> bool:
        """Whether this is a renewal in the stamped form (`Kind.NAME_RENEW_BODY`)."""
        return self.op == Op.RENEW and self.stamp_work > 0

    @property
    def is_reveal(self) -> bool:
        """Whether this registers a name by revealing an earlier commit."""
        return bool(self.salt)

    def to_bytes(self) -> bytes:
        """Canonical framed bytes (what is hashed and signed)."""
        if self.op in VALIDATOR_OPS:
            return frame(
                Kind.VALIDATOR_TX_BODY,
                self.chain_id,
                int(self.op),
                self.change,
                bytes(self.owner),
                self.valid_until,
            )
        if self.op == Op.COMMIT:
            return frame(
                Kind.NAME_COMMIT_BODY,
                self.chain_id,
                self.commitment,
                bytes(self.owner),
                self.valid_until,
                self.stamp_work,
                self.stamp,
            )
        if self.is_stamped_renewal:
            return frame(
                Kind.NAME_RENEW_BODY,
                self.chain_id,
                self.domain,
                self.seq,
                self.prev,
                records_to_cbor(self.records),
                bytes(self.owner),
                self.valid_until,
                self.stamp_work,
                self.stamp,
            )
        if self.salt:
            return frame(
                Kind.NAME_REVEAL_BODY,
                self.chain_id,
                self.domain,
                self.seq,
                self.prev,
                records_to_cbor(self.records),
                bytes(self.owner),
                self.valid_until,
                self.commit_height,
                self.salt,
            )
        return frame(
            Kind.TX_BODY,
            self.chain_id,
            self.domain,
            self.seq,
            self.prev,
            int(self.op),
            records_to_cbor(self.records),
            bytes(self.owner),
            self.valid_until,
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, limits: RecordLimits | None = None) -> TxBody:
        """Decode strictly.

        Args:
            data: the framed body.
            limits: the genesis record limits, when known: a record set over
                them is refused before its records are built (by the byte
                length first, then by the CBOR items), as it could never be valid.

        Raises:
            InvalidUpdate: malformed, non-canonical or out-of-range input;
                `TOO_MANY_RECORDS` or `RECORDS_TOO_LARGE` over `limits`.
        """
        max_records, max_bytes = MAX_TX_RECORDS, None
        if limits is not None:
            max_records, max_bytes = min(max_records, limits.max_records), limits.max_bytes
            if len(data) > max_bytes + MAX_BODY_OVERHEAD:
                raise InvalidUpdate(
                    RejectReason.RECORDS_TOO_LARGE,
                    f"a {len(data)}-byte body, records are limited to {max_bytes} bytes",
                )
        # Kinds 24 and up follow the array head as a one-byte CBOR integer (0x18 kind).
        if data[1:3] == bytes([0x18, Kind.NAME_COMMIT_BODY]):
            return cls._commit_from_bytes(data)
        if data[1:3] == bytes([0x18, Kind.NAME_REVEAL_BODY]):
            return cls._reveal_from_bytes(data, max_records, max_bytes)
        if data[1:3] == bytes([0x18, Kind.NAME_RENEW_BODY]):
            return cls._renewal_from_bytes(data, max_records, max_bytes)
        if data[1:3] == bytes([0x18, Kind.VALIDATOR_TX_BODY]):
            return cls._validator_from_bytes(data)
        r = Reader.open(data, Kind.TX_BODY, "tx", fields=8, max_size=MAX_TX_BYTES)
        chain_id = r.text("chain_id", maximum=MAX_CHAIN_ID)
        domain = r.text("domain", maximum=MAX_DOMAIN)
        seq = r.uint("seq", maximum=2**63 - 1)
        prev = r.bytes("prev", size=32)
        op_value = r.uint("op", maximum=Op.RELEASE)  # a commit has its own form
        records = records_from_cbor(r.raw("records"), max_records=max_records, max_bytes=max_bytes)
        owner = r.bytes("owner", size=PUBLIC_KEY_SIZE)
        valid_until = r.uint("valid_until", maximum=2**63 - 1)
        r.done()
        return cls(
            chain_id=chain_id,
            domain=domain,
            seq=seq,
            prev=prev,
            op=Op(op_value),
            records=records,
            owner=PublicKey(owner),
            valid_until=valid_until,
        )

    @classmethod
    def _commit_from_bytes(cls, data: bytes) -> TxBody:
        r = Reader.open(data, Kind.NAME_COMMIT_BODY, "commit", fields=6, max_size=MAX_TX_BYTES)
        body = cls(
            chain_id=r.text("chain_id", maximum=MAX_CHAIN_ID),
            domain="",
            seq=0,
            prev=ZERO_HASH,
            op=Op.COMMIT,
            records=(),
            commitment=r.bytes("commitment", size=32),
            owner=PublicKey(r.bytes("owner", size=PUBLIC_KEY_SIZE)),
            valid_until=r.uint("valid_until", maximum=2**63 - 1),
            stamp_work=r.uint("stamp_work", maximum=2**63 - 1),
            stamp=r.bytes("stamp", maximum=MAX_STAMP_BYTES),
        )
        r.done()
        return body

    @classmethod
    def _reveal_from_bytes(cls, data: bytes, max_records: int, max_bytes: int | None) -> TxBody:
        r = Reader.open(data, Kind.NAME_REVEAL_BODY, "reveal", fields=9, max_size=MAX_TX_BYTES)
        body = cls(
            chain_id=r.text("chain_id", maximum=MAX_CHAIN_ID),
            domain=r.text("domain", maximum=MAX_DOMAIN),
            seq=r.uint("seq", maximum=2**63 - 1),
            prev=r.bytes("prev", size=32),
            op=Op.REGISTER,
            records=records_from_cbor(
                r.raw("records"), max_records=max_records, max_bytes=max_bytes
            ),
            owner=PublicKey(r.bytes("owner", size=PUBLIC_KEY_SIZE)),
            valid_until=r.uint("valid_until", maximum=2**63 - 1),
            commit_height=r.uint("commit_height", maximum=2**63 - 1),
            salt=r.bytes("salt", maximum=MAX_SALT),
        )
        r.done()
        if not body.salt:
            raise InvalidUpdate(RejectReason.MALFORMED, "reveal.salt: empty")
        return body

    @classmethod
    def _validator_from_bytes(cls, data: bytes) -> TxBody:
        r = Reader.open(
            data, Kind.VALIDATOR_TX_BODY, "validator op", fields=5, max_size=MAX_TX_BYTES
        )
        chain_id = r.text("chain_id", maximum=MAX_CHAIN_ID)
        op = r.uint("op", maximum=Op.VALIDATOR_APPROVE)
        if op not in VALIDATOR_OPS:
            raise InvalidUpdate(RejectReason.MALFORMED, f"validator op: {op} is not one")
        body = cls(
            chain_id=chain_id,
            domain="",
            seq=0,
            prev=ZERO_HASH,
            op=Op(op),
            records=(),
            change=r.bytes("change", maximum=MAX_CHANGE_FIELD),
            owner=PublicKey(r.bytes("owner", size=PUBLIC_KEY_SIZE)),
            valid_until=r.uint("valid_until", maximum=2**63 - 1),
        )
        r.done()
        return body

    @classmethod
    def _renewal_from_bytes(cls, data: bytes, max_records: int, max_bytes: int | None) -> TxBody:
        r = Reader.open(data, Kind.NAME_RENEW_BODY, "renewal", fields=9, max_size=MAX_TX_BYTES)
        body = cls(
            chain_id=r.text("chain_id", maximum=MAX_CHAIN_ID),
            domain=r.text("domain", maximum=MAX_DOMAIN),
            seq=r.uint("seq", maximum=2**63 - 1),
            prev=r.bytes("prev", size=32),
            op=Op.RENEW,
            records=records_from_cbor(
                r.raw("records"), max_records=max_records, max_bytes=max_bytes
            ),
            owner=PublicKey(r.bytes("owner", size=PUBLIC_KEY_SIZE)),
            valid_until=r.uint("valid_until", maximum=2**63 - 1),
            stamp_work=r.uint("stamp_work", maximum=2**63 - 1),
            stamp=r.bytes("stamp", maximum=MAX_STAMP_BYTES),
        )
        r.done()
        if not body.stamp_work:
            raise InvalidUpdate(
                RejectReason.MALFORMED, "renewal.stamp_work: 0 (use the plain form)"
            )
        return body


def tx_signing_digest(genesis_hash: bytes, txid: TxHash) -> bytes:
    """What a transaction's signature covers: its txid on one network."""
    assert len(genesis_hash) == 32, "a genesis hash is 32 bytes"  # local, never from a peer
    return sha256(frame(Kind.TX_SIGNING, genesis_hash, txid))


# Recent decodes by wire bytes, oldest forgotten first past either bound, and each dropped
# once final (`forget_decoded`): the entries cover a full mempool's wait between a
# transaction's gossip and the proposal that carries it (a 15,000-tx burst: 537 -> 799 tx/s),
# so the count is the mempool's own bound (`chain.mempool.DEFAULT_MAX_TXS`); the bytes keep
# them from holding a gigabyte of large transactions. A ~190-byte transaction costs ~1.6 KiB
# of Python objects (8x its wire bytes, measured in the soak, issue 21): ~16 MiB when full.
DECODED_CACHE_SIZE = 10_000
DECODED_CACHE_BYTES = 16 * 1024 * 1024  # of wire bytes
_decoded: dict[bytes, Transaction] = {}  # wire bytes -> decoded, insertion-ordered
_decoded_bytes = [0]  # the keys' total length (a list: updated in place)


def decoded_cached() -> tuple[int, int]:
    """(entries, wire bytes) of the decode memo of `Transaction.from_bytes`."""
    return len(_decoded), _decoded_bytes[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Transaction:
    """A signed transaction. Build with `sign` or `from_bytes`."""

    body: TxBody
    signature: bytes
    body_bytes: bytes = field(repr=False)
    txid: TxHash = field(init=False)
    wire_hash: bytes = field(init=False, repr=False)
    _wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.signature) != SIGNATURE_SIZE:
            raise InvalidUpdate(RejectReason.BAD_SIGNATURE, "a signature is 64 bytes")
        object.__setattr__(self, "txid", TxHash(sha256(self.body_bytes)))
        # The hash of the whole wire form, signature included: what a block commits
        # to, so no byte of a block's transactions can change without its hash.
        wire = frame(Kind.TX, self.body_bytes, self.signature)
        object.__setattr__(self, "_wire", wire)  # encoded once: blocks re-send it as is
        object.__setattr__(self, "wire_hash", sha256(wire))

    @classmethod
    def sign(cls, body: TxBody, key: PrivateKey, genesis_hash: bytes) -> Transaction:
        """Sign `body` with `key` (the current owner, or the new owner for a registration).

        Args:
            body: what to sign.
            key: the signer.
            genesis_hash: the hash of the genesis of the network it is for.
        """
        body_bytes = body.to_bytes()
        digest = tx_signing_digest(genesis_hash, TxHash(sha256(body_bytes)))
        return cls(body=body, body_bytes=body_bytes, signature=key.sign_digest(digest))

    def to_bytes(self) -> bytes:
        """Canonical wire bytes."""
        return self._wire

    @classmethod
    def from_bytes(cls, data: bytes, *, limits: RecordLimits | None = None) -> Transaction:
        """Decode strictly (the signature is not checked here: that needs the state).

        Recently decoded transactions are remembered by their exact bytes (a
        bounded set): a node decodes each transaction when it is gossiped and
        again inside the proposal that carries it.

        Args:
            data: the wire bytes.
            limits: the genesis record limits, when known (see `TxBody.from_bytes`).

        Raises:
            InvalidUpdate: malformed, non-canonical or out-of-range input;
                `TOO_MANY_RECORDS` or `RECORDS_TOO_LARGE` over `limits`.
        """
        known = _decoded.get(data)
        if known is not None:
            if limits is not None:
                check_record_limits(known.body.records, limits)
            return known
        r = Reader.open(data, Kind.TX, "tx", fields=2, max_size=MAX_TX_BYTES + 128)
        body_bytes = r.bytes("body", maximum=MAX_TX_BYTES)
        signature = r.bytes("signature", size=SIGNATURE_SIZE)
        r.done()
        body = TxBody.from_bytes(body_bytes, limits=limits)
        tx = cls(body=body, body_bytes=body_bytes, signature=signature)
        _remember_decoded(bytes(data), tx)
        return tx

    def is_signed_by(self, key: bytes, genesis_hash: bytes) -> bool:
        """Whether the signature verifies under `key` on the network of `genesis_hash`."""
        return verify(key, self.signature, tx_signing_digest(genesis_hash, self.txid))

    @property
    def size(self) -> int:
        """Encoded size in bytes (for block and mempool limits)."""
        return len(self._wire)


def forget_decoded(txs: Iterable[Transaction]) -> None:
    """Drop finalized transactions from the decode memo: nothing will carry them again.

    Called after each stored block, this keeps the memo about as large as the
    mempool instead of full of transactions final long ago (issue 21).
    """
    for tx in txs:
        data = tx.to_bytes()
        if _decoded.pop(data, None) is not None:
            _decoded_bytes[0] -= len(data)


def _remember_decoded(data: bytes, tx: Transaction) -> None:
    if data in _decoded:
        return
    _decoded[data] = tx
    _decoded_bytes[0] += len(data)
    while len(_decoded) > DECODED_CACHE_SIZE or _decoded_bytes[0] > DECODED_CACHE_BYTES:
        try:  # a client decoding in worker threads (the explorer) may evict concurrently
            oldest = next(iter(_decoded))
        except (RuntimeError, StopIteration):
            return
        if _decoded.pop(oldest, None) is not None:
            _decoded_bytes[0] -= len(oldest)
