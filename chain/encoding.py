"""The one canonical encoding for everything signed or stored.

Deterministic CBOR (RFC 8949 §4.2.1) restricted to four data types: unsigned
and negative integers that fit 64 bits, byte strings, text strings and arrays.
No maps, floats, tags, booleans, null or indefinite lengths.

Every top-level object is an array ``[kind, version, field...]``: `kind` says
what the bytes are (so a signature over one kind can never be replayed as
another) and `version` lets the format evolve. Decoding is strict: the bytes
must re-encode to themselves exactly, which rejects trailing bytes,
non-shortest integer and length forms, indefinite lengths and tags.
"""

from __future__ import annotations

from enum import IntEnum, unique
from typing import TypeAlias

import cbor2

from chain.errors import InvalidUpdate, RejectReason

CborValue: TypeAlias = int | bytes | str | list["CborValue"]

VERSION = 1  # of every kind not in _VERSIONS
MAX_DEPTH = 8
UINT64_MAX = 2**64 - 1


@unique
class Kind(IntEnum):
    """The first element of every top-level encoded object."""

    TX_BODY = 1
    TX = 2
    HEADER = 3
    BLOCK = 4
    VOTE = 5
    CERTIFICATE = 6
    DOMAIN_STATE = 7
    PROOF = 8
    SIGN_GUARD = 9
    TREE_NODE = 10
    VALIDATOR_SET = 11
    GENESIS = 12
    EVIDENCE = 13
    CHAIN_META = 14
    PROPOSAL = 15
    TX_BATCH = 16
    COMMIT_NOTICE = 17
    STATUS_REQUEST = 18
    STATUS = 19
    BLOCKS_REQUEST = 20
    BLOCKS_PAGE = 21
    RESENT = 22
    INVALID_PROPOSAL = 23
    LOCK_RECORD = 24
    TX_SIGNING = 25
    VALIDATOR_HELLO = 26
    HELLO_SIGNING = 27
    NAME_COMMIT_BODY = 28
    NAME_REVEAL_BODY = 29
    NAME_COMMITMENT = 30
    STAMP_INPUT = 31
    NAME_COMMIT = 32
    NAME_CLAIM = 33
    RELAYED_VOTES = 34  # issue 20: a round's proposer passes on the votes it was sent
    NAME_RENEW_BODY = 35
    RENEWAL_STAMP_INPUT = 36
    VALIDATOR_TX_BODY = 37  # issue 15: validator-set changes (chain/validators.py)
    VALIDATOR_CHANGE = 38
    ROSTER = 39
    VALIDATOR_PROPOSAL = 40
    VALIDATOR_SCHEDULE = 41
    DNS_PROOF_REQUEST = 42  # issue 16: proofs over DNS (chain/dns_proof.py)
    DNS_PROOF_ANSWER = 43
    SNAPSHOT_MANIFEST_REQUEST = 44  # issue 17: state sync (chain/snapshot.py)
    SNAPSHOT_MANIFEST = 45
    SNAPSHOT_CHUNK_REQUEST = 46
    SNAPSHOT_CHUNK = 47


# Version 2 (issue 13): the signatures these objects carry cover the genesis
# hash, so bytes signed under version 1 are refused by their version instead of
# failing later as bad signatures.
# Version 2 of the header (issue 15) adds `next_validators_hash`.
_VERSIONS: dict[Kind, int] = {
    Kind.TX: 2, Kind.VOTE: 2, Kind.CERTIFICATE: 2, Kind.PROPOSAL: 2, Kind.HEADER: 2,
}  # fmt: skip


def version_of(kind: Kind) -> int:
    """The version every object of `kind` is framed with (and the only one decoded)."""
    return _VERSIONS.get(kind, VERSION)


def encode(value: CborValue) -> bytes:
    """Encode a value canonically."""
    return cbor2.dumps(value, canonical=True)


def frame(kind: Kind, *fields: CborValue) -> bytes:
    """Encode ``[kind, version_of(kind), *fields]``."""
    return cbor2.dumps([int(kind), version_of(kind), *fields], canonical=True)


def _check_shape(value: object, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidUpdate(RejectReason.MALFORMED, "nesting too deep")
    kind = type(value)
    if kind is list:
        assert isinstance(value, list)
        for item in value:
            _check_shape(item, depth + 1)
    elif kind is int:
        assert isinstance(value, int)
        if not -(2**64) <= value <= UINT64_MAX:
            raise InvalidUpdate(RejectReason.NON_CANONICAL, "integer out of 64-bit range")
    elif kind not in (bytes, str):
        raise InvalidUpdate(RejectReason.MALFORMED, f"unsupported CBOR item {kind.__name__}")


def decode(data: bytes, *, max_size: int) -> CborValue:
    """Decode canonical bytes.

    Raises:
        InvalidUpdate: the bytes are too long, malformed or not canonical.
    """
    if not isinstance(data, bytes):
        raise InvalidUpdate(RejectReason.MALFORMED, "expected bytes")
    if len(data) > max_size:
        raise InvalidUpdate(RejectReason.OVERSIZE, f"{len(data)} bytes, limit {max_size}")
    try:
        value = cbor2.loads(data, allow_indefinite=False, max_depth=MAX_DEPTH + 1)
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InvalidUpdate(RejectReason.MALFORMED, f"undecodable CBOR: {exc}") from None
    _check_shape(value, 0)
    if cbor2.dumps(value, canonical=True) != data:
        raise InvalidUpdate(RejectReason.NON_CANONICAL, "bytes are not in canonical form")
    return value  # type: ignore[no-any-return]


class Reader:
    """Reads the fields of one decoded array in order, checking each one.

    Error messages name the object and field (``tx.seq: ...``).
    """

    __slots__ = ("_items", "_pos", "_what")

    def __init__(self, value: CborValue, what: str, *, fields: int) -> None:
        if type(value) is not list:
            raise InvalidUpdate(RejectReason.MALFORMED, f"{what}: expected an array")
        assert isinstance(value, list)
        if len(value) != fields:
            raise InvalidUpdate(
                RejectReason.MALFORMED, f"{what}: expected {fields} fields, got {len(value)}"
            )
        self._items = value
        self._pos = 0
        self._what = what

    @classmethod
    def open(cls, data: bytes, kind: Kind, what: str, *, fields: int, max_size: int) -> Reader:
        """Decode a framed object ``[kind, version, *fields]`` and skip its header."""
        value = decode(data, max_size=max_size)
        if type(value) is not list or len(value) < 2:
            raise InvalidUpdate(RejectReason.MALFORMED, f"{what}: expected a framed array")
        assert isinstance(value, list)
        if value[0] != int(kind) or type(value[0]) is not int:
            raise InvalidUpdate(RejectReason.MALFORMED, f"{what}: wrong object kind {value[0]!r}")
        if value[1] != version_of(kind) or type(value[1]) is not int:
            raise InvalidUpdate(
                RejectReason.UNKNOWN_VERSION, f"{what}: unknown version {value[1]!r}"
            )
        reader = cls(value, what, fields=fields + 2)
        reader._pos = 2
        return reader

    def _next(self, field: str) -> CborValue:
        if self._pos >= len(self._items):
            raise InvalidUpdate(RejectReason.MALFORMED, f"{self._what}.{field}: missing")
        item = self._items[self._pos]
        self._pos += 1
        return item

    def _fail(self, field: str, message: str, reason: RejectReason = RejectReason.MALFORMED) -> None:
        raise InvalidUpdate(reason, f"{self._what}.{field}: {message}")

    def uint(self, field: str, *, maximum: int = UINT64_MAX) -> int:
        """Read an unsigned integer no larger than `maximum`."""
        item = self._next(field)
        if type(item) is not int:
            self._fail(field, "expected an unsigned integer")
        assert isinstance(item, int)
        if item < 0 or item > maximum:
            self._fail(field, f"{item} out of range 0..{maximum}", RejectReason.OVERSIZE)
        return item

    def bytes(self, field: str, *, size: int | None = None, maximum: int | None = None) -> bytes:
        """Read a byte string of exactly `size` or at most `maximum` bytes."""
        item = self._next(field)
        if type(item) is not bytes:
            self._fail(field, "expected a byte string")
        assert isinstance(item, bytes)
        if size is not None and len(item) != size:
            self._fail(field, f"expected {size} bytes, got {len(item)}")
        if maximum is not None and len(item) > maximum:
            self._fail(field, f"{len(item)} bytes, limit {maximum}", RejectReason.OVERSIZE)
        return item

    def text(self, field: str, *, maximum: int) -> str:
        """Read a text string of at most `maximum` UTF-8 bytes."""
        item = self._next(field)
        if type(item) is not str:
            self._fail(field, "expected a text string")
        assert isinstance(item, str)
        if len(item.encode()) > maximum:
            self._fail(field, f"longer than {maximum} bytes", RejectReason.OVERSIZE)
        return item

    def array(self, field: str, *, maximum: int) -> list[CborValue]:
        """Read an array of at most `maximum` items (the items are not checked)."""
        item = self._next(field)
        if type(item) is not list:
            self._fail(field, "expected an array")
        assert isinstance(item, list)
        if len(item) > maximum:
            self._fail(field, f"{len(item)} items, limit {maximum}", RejectReason.OVERSIZE)
        return item

    def raw(self, field: str) -> CborValue:
        """Read any item, for a nested structure with its own reader."""
        return self._next(field)

    def done(self) -> None:
        """Assert every field was read (an internal invariant: the count was checked)."""
        assert self._pos == len(self._items), (self._what, self._pos, len(self._items))
