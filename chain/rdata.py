"""Record types and their rdata in DNS wire format: checking, packing, presenting.

Canonical rdata has names uncompressed, lower-case and absolute, so one rdata
has exactly one encoding. dnslib is the wire codec: rdata must parse with it for
its type, consume exactly its length and pack back to the same bytes with
compression off. This module is the only one in the core that touches dnslib.
The types dnslib lacks or does not check (PTR, NAPTR, DS, SSHFP, TLSA, SVCB,
HTTPS) go through dnspython in `chain.rdtypes`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import dnslib

from chain import rdtypes
from chain.errors import InvalidUpdate, RejectReason
from chain.names import validate_absolute_name

MAX_TTL = 2**31 - 1
MAX_RDATA_BYTES = 65535
MAX_TXT_STRING = 255
MAX_CAA_TAG = 15


class RType(IntEnum):
    """The record types the ledger accepts (their DNS type numbers)."""

    A = 1
    NS = 2
    CNAME = 5
    PTR = 12
    MX = 15
    TXT = 16
    AAAA = 28
    SRV = 33
    NAPTR = 35
    DS = 43
    SSHFP = 44
    TLSA = 52
    SVCB = 64
    HTTPS = 65
    CAA = 257


GLUE_TYPES = frozenset({RType.A, RType.AAAA})
_SUPPORTED = ", ".join(t.name for t in RType)
_RTYPE_NUMBERS = frozenset(int(t) for t in RType)
_FIXED_SIZE = {RType.A: 4, RType.AAAA: 16}
_CAA_TAG = re.compile(rf"[a-z0-9]{{1,{MAX_CAA_TAG}}}")


# -- messages (shared by the record modules) --


def brief_repr(value: object) -> str:
    """`value` quoted for a message, shortened if long (it may come from outside)."""
    text = repr(value)
    if len(text) <= 66:
        return text
    return repr(value[:58] + "...") if isinstance(value, str) else text[:62] + "..."


def bad_record(message: str) -> InvalidUpdate:
    """A `BAD_RECORD` rejection with `message` (for the caller to raise)."""
    return InvalidUpdate(RejectReason.BAD_RECORD, message)


def unsupported_type(value: object, owner: str) -> InvalidUpdate:
    """A `BAD_RECORD` rejection of a record type the ledger does not accept."""
    return bad_record(
        f"{owner}: unsupported record type {brief_repr(value)} (supported: {_SUPPORTED})"
    )


def as_rtype(value: object, owner: str) -> RType:
    """`value` as an `RType`: a member, or the int of one (as read from CBOR).

    Raises:
        InvalidUpdate: `BAD_RECORD`.
    """
    if isinstance(value, RType):
        return value
    if type(value) is int and value in _RTYPE_NUMBERS:
        return RType(value)
    raise unsupported_type(value, owner)


def is_caa_tag(tag: str) -> bool:
    """Whether `tag` is a CAA property tag as the ledger stores it (lower-case)."""
    return _CAA_TAG.fullmatch(tag) is not None


# -- wire codec (dnslib) --


class _FlatBuffer(dnslib.DNSBuffer):  # type: ignore[misc]  # dnslib is untyped
    """A dnslib buffer that never compresses names: canonical rdata is uncompressed."""

    def encode_name(self, name: object) -> None:
        self.encode_name_nocompress(name)


class _Packable(Protocol):
    def pack(self, buffer: _FlatBuffer) -> None: ...


def _pack(rd: _Packable) -> bytes:
    buffer = _FlatBuffer()
    rd.pack(buffer)
    return bytes(buffer.data)


def _dns_label(name: str) -> object:
    """A dnslib label from labels we checked (never through dnslib's IDNA 2003 codec)."""
    return dnslib.DNSLabel(
        tuple(label.encode("ascii") for label in name.split(".")) if name else ()
    )


# What dnslib raises on bad wire data. (Its name decoder follows compression
# pointers recursively, but within one rdata a chain is at most a few links:
# pointers must point backwards and the name starts at offset 0, 2 or 6.)
_WIRE_ERRORS = (
    dnslib.DNSError,
    dnslib.BufferError,
    dnslib.DNSLabelError,
    dnslib.BimapError,
    UnicodeError,
    ValueError,
)


@dataclass(frozen=True, slots=True)
class _Fields:
    """The parsed fields of rdata, typed (dnslib's objects are not)."""

    numbers: tuple[int, ...] = ()  # MX preference; SRV priority, weight, port; CAA flags
    target: str | None = None  # NS, CNAME, MX, SRV: absolute, no trailing dot; "" is the root
    strings: tuple[bytes, ...] = ()  # TXT strings; CAA tag and value


_NO_FIELDS = _Fields()


def _name_from_wire(labels: Iterable[bytes], what: str) -> str:
    parts: list[str] = []
    for label in labels:
        if not label.isascii() or b"." in label:
            raise bad_record(
                f"{what}: target has a label that is not a host name label: {brief_repr(label)}"
            )
        parts.append(label.decode("ascii"))
    return ".".join(parts)


def _parse_wire(rtype: RType, rdata: bytes, what: str) -> _Fields:
    """Parse rdata with dnslib, requiring it to be exactly its canonical packing."""
    buffer = _FlatBuffer(rdata)
    try:
        rd = dnslib.RDMAP[rtype.name].parse(buffer, len(rdata))
        repacked = _pack(rd)
    except _WIRE_ERRORS as exc:
        raise bad_record(f"{what} does not parse: {exc}") from None
    if buffer.offset != len(rdata):
        raise bad_record(f"{what} does not end where its length says ({len(rdata)} bytes)")
    if repacked != rdata:
        raise bad_record(f"{what} is not in canonical form (names must be uncompressed)")
    if rtype in (RType.NS, RType.CNAME):
        return _Fields(target=_name_from_wire(rd.label.label, what))
    if rtype is RType.MX:
        return _Fields(numbers=(int(rd.preference),), target=_name_from_wire(rd.label.label, what))
    if rtype is RType.SRV:
        numbers = (int(rd.priority), int(rd.weight), int(rd.port))
        return _Fields(numbers=numbers, target=_name_from_wire(rd.target.label, what))
    if rtype is RType.TXT:
        return _Fields(strings=tuple(bytes(item) for item in rd.data))
    if rtype is RType.CAA:
        strings = (str(rd.tag).encode(), str(rd.value).encode())
        return _Fields(numbers=(int(rd.flags),), strings=strings)
    return _Fields()


def _check_target(rtype: RType, target: str | None, what: str) -> None:
    if target is None:
        return
    if not target:
        if rtype in (RType.MX, RType.SRV):
            return  # "." : null MX (RFC 7505), service not available (RFC 2782)
        raise bad_record(f"{what}: the target cannot be the root '.'")
    try:
        validate_absolute_name(target, allow_underscore=rtype is RType.CNAME)
    except InvalidUpdate as exc:
        raise bad_record(f"{what}: target {exc.args[0]}") from None


def _decode_rdata(rtype: RType, rdata: bytes, owner: str) -> _Fields:
    """Check rdata completely and return its fields.

    Raises:
        InvalidUpdate: `BAD_RECORD`.
    """
    size = _FIXED_SIZE.get(rtype)
    if size is not None:
        if len(rdata) != size:
            raise bad_record(f"{owner}: {rtype.name} rdata must be {size} bytes, got {len(rdata)}")
        # Any 4 (16) bytes are an address, and dnslib's A (AAAA) parse and pack
        # are the identity on them, so the parse below could not fail (a test checks).
        return _NO_FIELDS
    what = f"{owner}: {rtype.name} rdata"
    if rtype in rdtypes.DNSPYTHON_TYPES:
        rdtypes.check_wire(rtype, rdata, what=what)
        return _NO_FIELDS
    fields = _parse_wire(rtype, rdata, what)
    _check_target(rtype, fields.target, what)
    if rtype is RType.TXT and not fields.strings:
        raise bad_record(f"{what} must hold at least one string")
    if rtype is RType.CAA and not is_caa_tag(fields.strings[0].decode()):
        raise bad_record(
            f"{what}: tag {brief_repr(fields.strings[0])} must be 1..15 lower-case letters/digits"
        )
    return fields


def validate_rdata(rtype: RType, rdata: bytes, owner: str) -> None:
    """Check that `rdata` is valid, canonical wire rdata for `rtype`.

    Args:
        rtype: the record type.
        rdata: the wire bytes.
        owner: the owner name, for messages only.

    Raises:
        InvalidUpdate: `BAD_RECORD`.
    """
    _decode_rdata(rtype, rdata, owner)


# -- packing rdata from checked fields (for zone-text parsing) --


def pack_name_rdata(rtype: RType, target: str, what: str) -> bytes:
    """NS or CNAME rdata for an absolute `target` (no trailing dot; "" is the root).

    Raises:
        InvalidUpdate: `BAD_RECORD` if the target is not allowed for `rtype`.
    """
    _check_target(rtype, target, what)
    return _pack(dnslib.RDMAP[rtype.name](_dns_label(target)))


def pack_mx(preference: int, target: str) -> bytes:
    """MX rdata (not yet checked: the `Record` built from it is)."""
    return _pack(dnslib.MX(_dns_label(target), preference))


def pack_srv(numbers: Sequence[int], target: str) -> bytes:
    """SRV rdata from priority, weight and port (not yet checked: the `Record` is)."""
    return _pack(dnslib.SRV(*numbers, _dns_label(target)))


def pack_txt(strings: Sequence[bytes]) -> bytes:
    """TXT rdata from its character-strings."""
    return _pack(dnslib.TXT(list(strings)))


def pack_caa(flags: int, tag: str, value: str) -> bytes:
    """CAA rdata."""
    return _pack(dnslib.CAA(flags, tag, value))


# -- presentation format --


def _escape_char(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if char.isprintable():
        return char
    return "".join(f"\\{byte:03d}" for byte in char.encode())


def _quote(data: bytes) -> str:
    """A zone-file character-string: printable text as is, other bytes as ``\\DDD``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        body = "".join(_escape_char(chr(b)) if b < 0x80 else f"\\{b:03d}" for b in data)
    else:
        body = "".join(_escape_char(char) for char in text)
    return f'"{body}"'


def _format_rdata(rtype: RType, rdata: bytes, fields: _Fields) -> str:
    if rtype is RType.A:
        return str(ipaddress.IPv4Address(rdata))
    if rtype is RType.AAAA:
        return str(ipaddress.IPv6Address(rdata))
    if rtype is RType.TXT:
        return " ".join(_quote(item) for item in fields.strings)
    if rtype is RType.CAA:
        tag, value = fields.strings
        return f"{fields.numbers[0]} {tag.decode()} {_quote(value)}"
    assert fields.target is not None  # NS, CNAME, MX, SRV all have one
    target = f"{fields.target}." if fields.target else "."
    return " ".join([*(str(n) for n in fields.numbers), target])


def rdata_text(rtype: RType, rdata: bytes, owner: str) -> str:
    """The rdata in zone-file form; names absolute with a trailing dot.

    Raises:
        InvalidUpdate: `BAD_RECORD` if the rdata is not valid for `rtype`.
    """
    fields = _decode_rdata(rtype, rdata, owner)
    if rtype in rdtypes.DNSPYTHON_TYPES:
        return rdtypes.to_text(rtype, rdata, what=f"{owner}: {rtype.name} rdata")
    return _format_rdata(rtype, rdata, fields)
