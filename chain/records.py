"""DNS records as the ledger stores them, and the rules for a domain's record set.

A `Record` is an owner name relative to its domain (``@``, ``www``), a type, a
TTL and the rdata in DNS wire format, in canonical form: names uncompressed,
lower-case and absolute. The canonical bytes are the identity of a record, so a
record set has exactly one encoding and one order.

The parts live in their own modules and are re-exported here: record types and
wire rdata in `chain.rdata`, zone-file lines in `chain.zonetext`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chain.encoding import CborValue, Reader, encode
from chain.errors import ConfigError, InvalidUpdate, RejectReason
from chain.names import APEX, MAX_NAME_BYTES, validate_relative_name
from chain.rdata import (
    GLUE_TYPES,
    MAX_CAA_TAG,
    MAX_RDATA_BYTES,
    MAX_TTL,
    MAX_TXT_STRING,
    RType,
    as_rtype,
    bad_record,
    brief_repr,
    rdata_text,
    validate_rdata,
)
from chain.zonetext import format_line, parse_line

__all__ = [
    "GLUE_TYPES",
    "MAX_CAA_TAG",
    "MAX_RDATA_BYTES",
    "MAX_TTL",
    "MAX_TXT_STRING",
    "RType",
    "Record",
    "RecordLimits",
    "canonical_record_set",
    "check_record_limits",
    "records_from_cbor",
    "records_to_cbor",
    "validate_record_set",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One DNS resource record of a domain, validated on construction.

    Attributes:
        name: the owner name relative to the domain (``@``, ``www``, ``_sip._tcp``).
        rtype: the record type.
        ttl: seconds, 0..2**31-1.
        rdata: the canonical DNS wire format of the rdata.
    """

    name: str
    rtype: RType
    ttl: int
    rdata: bytes

    def __post_init__(self) -> None:
        validate_relative_name(self.name)
        object.__setattr__(self, "rtype", as_rtype(self.rtype, self.name))
        if type(self.ttl) is not int or not 0 <= self.ttl <= MAX_TTL:
            raise bad_record(
                f"{self.name}: TTL {brief_repr(self.ttl)} is not an integer in 0..{MAX_TTL}"
            )
        if type(self.rdata) is not bytes:
            raise bad_record(f"{self.name}: rdata must be bytes, not {type(self.rdata).__name__}")
        if len(self.rdata) > MAX_RDATA_BYTES:
            raise bad_record(
                f"{self.name}: rdata is {len(self.rdata)} bytes, over {MAX_RDATA_BYTES}"
            )
        validate_rdata(self.rtype, self.rdata, self.name)

    # -- canonical encoding --

    def to_cbor(self) -> CborValue:
        """``[name, rtype, ttl, rdata]``."""
        return [self.name, int(self.rtype), self.ttl, self.rdata]

    @classmethod
    def from_cbor(cls, value: CborValue) -> Record:
        """Read a record from its decoded CBOR array.

        Raises:
            InvalidUpdate: the shape is wrong or the record is invalid.
        """
        reader = Reader(value, "record", fields=4)
        name = reader.text("name", maximum=MAX_NAME_BYTES)
        rtype = reader.uint("rtype", maximum=65535)
        ttl = reader.uint("ttl")
        rdata = reader.bytes("rdata", maximum=MAX_RDATA_BYTES)
        reader.done()
        validate_relative_name(name)
        return cls(name=name, rtype=as_rtype(rtype, name), ttl=ttl, rdata=rdata)

    # -- zone-file text --

    @classmethod
    def from_text(cls, line: str, *, origin: str, default_ttl: int = 300) -> Record:
        """Parse one zone-file line as users type it.

        ``"www 300 IN A 10.0.0.1"``, ``"@ MX 10 mail"``, ``'@ TXT "a b" "c"'``. TTL
        and class are optional; owners ending in a dot are absolute and made
        relative to `origin`; rdata names without a trailing dot are relative to
        `origin`.

        Args:
            line: the line.
            origin: the domain the record belongs to (canonical).
            default_ttl: the TTL when the line has none.

        Raises:
            InvalidUpdate: `BAD_RECORD` (or `BAD_NAME` for the owner name), with a
                message for the user.
        """
        parts = parse_line(line, origin=origin, default_ttl=default_ttl)
        return cls(name=parts.name, rtype=parts.rtype, ttl=parts.ttl, rdata=parts.rdata)

    def to_text(self, origin: str) -> str:
        """A zone-file line (``"www 300 IN A 10.0.0.1"``) that `from_text` reads back.

        Raises:
            InvalidUpdate: `BAD_NAME` if the owner does not fit under `origin`.
        """
        return format_line(
            name=self.name, rtype=self.rtype, ttl=self.ttl, rdata=self.rdata, origin=origin
        )

    def rdata_text(self) -> str:
        """The rdata in zone-file form; names absolute with a trailing dot."""
        return rdata_text(self.rtype, self.rdata, self.name)


# -- record sets --


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordLimits:
    """How big one domain's record set may be (network parameters).

    Attributes:
        max_records: the most records.
        max_bytes: the most total bytes of ``encode(record.to_cbor())``.
    """

    max_records: int
    max_bytes: int

    def __post_init__(self) -> None:
        for key in ("max_records", "max_bytes"):
            value = getattr(self, key)
            if type(value) is not int or value < 0:
                raise ConfigError(
                    f"must be a non-negative integer, not {brief_repr(value)}", key=key
                )


def _sort_key(record: Record) -> tuple[str, int, bytes]:
    return (record.name, int(record.rtype), record.rdata)


def _describe(record: Record) -> str:
    text = f"{record.name} {record.rtype.name} {record.rdata_text()}"
    return text if len(text) <= 80 else text[:77] + "..."


def canonical_record_set(records: Iterable[Record]) -> tuple[Record, ...]:
    """Sort records canonically and drop duplicates (for wallets building a set).

    Records equal but for their TTL are duplicates too; the last one given wins.
    """
    latest = {_sort_key(record): record for record in records}
    return tuple(latest[key] for key in sorted(latest))


def _check_order(records: Sequence[Record]) -> None:
    for before, after in itertools.pairwise(records):
        if _sort_key(before) == _sort_key(after):
            raise InvalidUpdate(RejectReason.NON_CANONICAL, f"duplicate record: {_describe(after)}")
        if _sort_key(before) > _sort_key(after):
            raise InvalidUpdate(
                RejectReason.NON_CANONICAL,
                f"records are not in canonical order (name, type, rdata): "
                f"{_describe(after)} must come before {_describe(before)}",
            )


def _check_name(name: str, group: Sequence[Record]) -> None:
    """TTL agreement and CNAME exclusivity for the records of one owner name."""
    ttls: dict[RType, int] = {}
    for record in group:
        first = ttls.setdefault(record.rtype, record.ttl)
        if record.ttl != first:
            raise bad_record(
                f"{name}: all {record.rtype.name} records must have one TTL "
                f"(RFC 2181 5.2), found {first} and {record.ttl}"
            )
    if RType.CNAME in ttls:
        if name == APEX:
            raise InvalidUpdate(
                RejectReason.CNAME_CONFLICT,
                "@: no CNAME at the apex (an SOA record is synthesized there)",
            )
        if len(group) > 1:
            others = ", ".join(sorted({r.rtype.name for r in group}))
            raise InvalidUpdate(
                RejectReason.CNAME_CONFLICT,
                f"{name}: a CNAME must be the only record at its name (found {others})",
            )


def _enclosing_cut(name: str, cuts: set[str]) -> str | None:
    """The delegation (zone cut) strictly above `name`, if any."""
    labels = name.split(".")
    for start in range(1, len(labels)):
        parent = ".".join(labels[start:])
        if parent in cuts:
            return parent
    return None


_CUT_TYPES = frozenset({RType.NS, RType.DS})


def _check_delegations(by_name: dict[str, list[Record]]) -> None:
    """NS at a name delegates it: only NS (and its DS) there, only A/AAAA glue below it."""
    has_ns = {r.name for group in by_name.values() for r in group if r.rtype is RType.NS}
    for name, group in by_name.items():
        if name not in has_ns and any(r.rtype is RType.DS for r in group):
            raise bad_record(
                f"{name}: a DS record belongs to a delegation: it needs NS records at "
                f"{brief_repr(name)} too (RFC 4035 2.4)"
            )
    if not has_ns:
        return  # no zone cut: nothing below can break a rule (the common case)
    for name, group in by_name.items():
        types = {r.rtype for r in group}
        not_glue = ", ".join(sorted(t.name for t in types - GLUE_TYPES))
        not_cut = ", ".join(sorted(t.name for t in types - _CUT_TYPES))
        if name == APEX:
            if APEX in has_ns and not_cut:
                raise bad_record(
                    f"@: the domain is delegated (NS at @), so @ may hold only NS and DS, "
                    f"not {not_cut}"
                )
            continue
        if APEX in has_ns:
            if not_glue:
                raise bad_record(
                    f"{name}: the domain is delegated (NS at @), so other names may hold only "
                    f"A/AAAA glue, not {not_glue}"
                )
            continue
        cut = _enclosing_cut(name, has_ns)
        if cut is not None and not_glue:
            raise bad_record(
                f"{name}: below the delegation at {brief_repr(cut)} only A/AAAA glue is allowed, "
                f"not {not_glue}"
            )
        if cut is None and name in has_ns and not_cut:
            raise bad_record(
                f"{name}: a delegation (NS) may hold only NS and DS records, not {not_cut}"
            )


# The most bytes ``encode(record.to_cbor())`` adds to a record's name and rdata:
# array head 1, name head <= 2 (at most 253 bytes), rtype <= 3, TTL <= 5 (below
# 2**31), rdata head <= 3 (at most 65535 bytes).
_RECORD_OVERHEAD = 14


def _size_bound(records: Sequence[Record]) -> int:
    """An upper bound of the encoded size (names are checked ASCII, so chars = bytes)."""
    return sum(len(record.name) + len(record.rdata) for record in records) + (
        _RECORD_OVERHEAD * len(records)
    )


def _check_size(records: Sequence[Record], limits: RecordLimits) -> None:
    size = sum(len(encode(record.to_cbor())) for record in records)
    if size > limits.max_bytes:
        raise InvalidUpdate(
            RejectReason.RECORDS_TOO_LARGE,
            f"records take {size} bytes, the limit is {limits.max_bytes}",
        )


def validate_record_set(records: Sequence[Record], limits: RecordLimits) -> tuple[Record, ...]:
    """Check a domain's whole record set against the canonical-set rules.

    Sorted strictly by (name, type, rdata); at most `limits`; one TTL per name
    and type; a CNAME alone at its name and never at ``@``; a name with NS is a
    zone cut holding only NS and DS, with only A/AAAA glue below it; NS at ``@``
    delegates the whole domain; DS only where NS is.

    Returns:
        The records as a tuple.

    Raises:
        InvalidUpdate: `TOO_MANY_RECORDS`, `NON_CANONICAL`, `RECORDS_TOO_LARGE`,
            `BAD_RECORD` or `CNAME_CONFLICT`.
    """
    if len(records) > limits.max_records:
        raise InvalidUpdate(
            RejectReason.TOO_MANY_RECORDS,
            f"{len(records)} records, the limit is {limits.max_records}",
        )
    _check_order(records)
    if _size_bound(records) > limits.max_bytes:
        _check_size(records, limits)
    by_name: dict[str, list[Record]] = {}
    for record in records:
        by_name.setdefault(record.name, []).append(record)
    for name, group in by_name.items():
        _check_name(name, group)
    _check_delegations(by_name)
    return tuple(records)


def records_to_cbor(records: Iterable[Record]) -> list[CborValue]:
    """The CBOR array of a record set."""
    return [record.to_cbor() for record in records]


def check_record_limits(records: Sequence[Record], limits: RecordLimits) -> None:
    """Only the count and size rules of `validate_record_set`, for a decoder's cache.

    Raises:
        InvalidUpdate: `TOO_MANY_RECORDS` or `RECORDS_TOO_LARGE`.
    """
    if len(records) > limits.max_records:
        raise InvalidUpdate(
            RejectReason.TOO_MANY_RECORDS,
            f"{len(records)} records, the limit is {limits.max_records}",
        )
    if _size_bound(records) > limits.max_bytes:
        _check_size(records, limits)


def records_from_cbor(
    value: CborValue, *, max_records: int, max_bytes: int | None = None
) -> tuple[Record, ...]:
    """Read a record set's CBOR array (each record checked; the set rules are not).

    The count and, when `max_bytes` is given, the size (measured as
    `validate_record_set` does) are checked on the CBOR items before any
    `Record` is built: building and validating records is what decoding costs,
    and a set over the genesis limits can never be valid (issue 13).

    Raises:
        InvalidUpdate: not an array, more than `max_records` items, over
            `max_bytes`, or a bad record.
    """
    if type(value) is not list:
        raise InvalidUpdate(RejectReason.MALFORMED, "records: expected an array")
    assert isinstance(value, list)
    if len(value) > max_records:
        raise InvalidUpdate(
            RejectReason.TOO_MANY_RECORDS, f"{len(value)} records, the limit is {max_records}"
        )
    if max_bytes is not None:
        size = sum(len(encode(item)) for item in value)  # = the encoded records, once built
        if size > max_bytes:
            raise InvalidUpdate(
                RejectReason.RECORDS_TOO_LARGE,
                f"records take {size} bytes, the limit is {max_bytes}",
            )
    return tuple(Record.from_cbor(item) for item in value)
