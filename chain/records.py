"""DNS records as the ledger stores them, and the rules for a domain's record set.

A `Record` is an owner name relative to its domain (``@``, ``www``), a type, a
TTL and the rdata in DNS wire format, in canonical form: names uncompressed,
lower-case and absolute. The canonical bytes are the identity of a record, so a
record set has exactly one encoding and one order.

dnslib is the wire codec: rdata must parse with it for its type, consume
exactly its length and pack back to the same bytes with compression off.
Zone-file lines are tokenized here (RFC 1035 quoting, decimal ``\\DDD``
escapes) because dnslib's zone lexer reads octal escapes, re-encodes TXT
bytes as UTF-8 text and accepts addresses like ``1.2.3``; the rdata objects
built from the tokens are still dnslib's.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import dnslib

from chain.encoding import CborValue, Reader, encode
from chain.errors import ConfigError, InvalidUpdate, RejectReason
from chain.names import (
    APEX,
    MAX_NAME_BYTES,
    absolute_name,
    normalize_name,
    normalize_relative_name,
    relative_name,
    validate_absolute_name,
    validate_relative_name,
)

MAX_TTL = 2**31 - 1
MAX_RDATA_BYTES = 65535
MAX_TXT_STRING = 255
MAX_CAA_TAG = 15


class RType(IntEnum):
    """The record types the ledger accepts (their DNS type numbers)."""

    A = 1
    NS = 2
    CNAME = 5
    MX = 15
    TXT = 16
    AAAA = 28
    SRV = 33
    CAA = 257


GLUE_TYPES = frozenset({RType.A, RType.AAAA})
_SUPPORTED = ", ".join(t.name for t in RType)
_FIXED_SIZE = {RType.A: 4, RType.AAAA: 16}
_CAA_TAG = re.compile(rf"[a-z0-9]{{1,{MAX_CAA_TAG}}}")


def _q(value: object) -> str:
    """`value` quoted for a message, shortened if long (it may come from outside)."""
    text = repr(value)
    return text if len(text) <= 66 else text[:62] + "..."


def _bad(message: str) -> InvalidUpdate:
    return InvalidUpdate(RejectReason.BAD_RECORD, message)


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


def _name_from_wire(labels: Iterable[bytes], what: str) -> str:
    parts: list[str] = []
    for label in labels:
        if not label.isascii() or b"." in label:
            raise _bad(f"{what}: target has a label that is not a host name label: {_q(label)}")
        parts.append(label.decode("ascii"))
    return ".".join(parts)


def _parse_wire(rtype: RType, rdata: bytes, what: str) -> _Fields:
    """Parse rdata with dnslib, requiring it to be exactly its canonical packing."""
    buffer = _FlatBuffer(rdata)
    try:
        rd = dnslib.RDMAP[rtype.name].parse(buffer, len(rdata))
        repacked = _pack(rd)
    except _WIRE_ERRORS as exc:
        raise _bad(f"{what} does not parse: {exc}") from None
    if buffer.offset != len(rdata):
        raise _bad(f"{what} does not end where its length says ({len(rdata)} bytes)")
    if repacked != rdata:
        raise _bad(f"{what} is not in canonical form (names must be uncompressed)")
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
        raise _bad(f"{what}: the target cannot be the root '.'")
    try:
        validate_absolute_name(target, allow_underscore=rtype is RType.CNAME)
    except InvalidUpdate as exc:
        raise _bad(f"{what}: target {exc.args[0]}") from None


def _decode_rdata(rtype: RType, rdata: bytes, owner: str) -> _Fields:
    """Check rdata completely and return its fields.

    Raises:
        InvalidUpdate: `BAD_RECORD`.
    """
    what = f"{owner}: {rtype.name} rdata"
    size = _FIXED_SIZE.get(rtype)
    if size is not None and len(rdata) != size:
        raise _bad(f"{what} must be {size} bytes, got {len(rdata)}")
    fields = _parse_wire(rtype, rdata, what)
    _check_target(rtype, fields.target, what)
    if rtype is RType.TXT and not fields.strings:
        raise _bad(f"{what} must hold at least one string")
    if rtype is RType.CAA and _CAA_TAG.fullmatch(fields.strings[0].decode()) is None:
        raise _bad(f"{what}: tag {_q(fields.strings[0])} must be 1..15 lower-case letters/digits")
    return fields


# -- zone-file text --


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


@dataclass(frozen=True, slots=True)
class _Token:
    text: str  # as typed, escapes and quotes included
    data: bytes  # the bytes it stands for
    quoted: bool


def _read_chars(line: str, pos: int, *, quoted: bool) -> tuple[bytes, int]:
    out = bytearray()
    while pos < len(line):
        char = line[pos]
        if quoted and char == '"':
            return bytes(out), pos + 1
        if not quoted and char in ' \t;"()':
            return bytes(out), pos
        if char == "\\":
            digits = line[pos + 1 : pos + 4]
            if len(digits) == 3 and digits.isascii() and digits.isdigit():
                if int(digits) > 255:
                    raise _bad(f"escape \\{digits} is not a byte value (0..255)")
                out.append(int(digits))
                pos += 4
                continue
            if pos + 1 == len(line):
                raise _bad("the line ends with a lone backslash")
            pos += 1
            char = line[pos]
        out += char.encode()
        pos += 1
    if quoted:
        raise _bad("a quoted string is not closed")
    return bytes(out), pos


def _tokenize(line: str) -> list[_Token]:
    """Split one zone-file line into tokens; ``;`` starts a comment."""
    line = line.rstrip("\r\n")
    if "\n" in line or "\r" in line:
        raise _bad("a record must be on one line")
    try:
        line.encode()
    except UnicodeEncodeError:
        raise _bad("the line is not valid text (lone surrogate)") from None
    tokens: list[_Token] = []
    pos = 0
    while pos < len(line):
        char = line[pos]
        if char in " \t()":  # parentheses only group lines in zone files
            pos += 1
        elif char == ";":
            break
        else:
            quoted = char == '"'
            data, end = _read_chars(line, pos + 1 if quoted else pos, quoted=quoted)
            tokens.append(_Token(text=line[pos:end], data=data, quoted=quoted))
            pos = end
    return tokens


_UINT = re.compile(r"[0-9]{1,10}")
_TTL = re.compile(r"[0-9]+|(?:[0-9]+[smhdwSMHDW])+")
_TTL_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_CLASS = re.compile(r"IN|CH|CS|HS|NONE|ANY|CLASS[0-9]+", re.IGNORECASE)


def _parse_ttl(text: str, owner: str) -> int:
    parts = re.findall(r"([0-9]+)([smhdwSMHDW]?)", text)
    # Bound the digits before int(): Python refuses very long digit strings.
    too_long = any(len(number) > 10 for number, _ in parts)
    ttl = 0 if too_long else sum(int(n) * _TTL_UNIT[unit.lower()] for n, unit in parts)
    if too_long or ttl > MAX_TTL:
        raise _bad(f"{owner}: TTL {_q(text)} is over the maximum {MAX_TTL}")
    return ttl


def _split_header(
    tokens: Sequence[_Token], owner: str, default_ttl: int
) -> tuple[int, RType, list[_Token]]:
    """Read ``[ttl] [class] type`` (TTL and class in either order)."""
    ttl: int | None = None
    seen_class = False
    rest = list(tokens)
    while rest and not rest[0].quoted:
        text = rest[0].text
        if ttl is None and _TTL.fullmatch(text):
            ttl = _parse_ttl(text, owner)
        elif not seen_class and _CLASS.fullmatch(text):
            if text.upper() != "IN":
                raise _bad(f"{owner}: class {text} is not supported; records are class IN")
            seen_class = True
        else:
            break
        rest.pop(0)
    if not rest:
        raise _bad(f"{owner}: the record type is missing")
    token = rest.pop(0)
    rtype = None if token.quoted else RType.__members__.get(token.text.upper())
    if rtype is None:
        raise _bad(f"{owner}: unsupported record type {_q(token.text)} (supported: {_SUPPORTED})")
    return (default_ttl if ttl is None else ttl), rtype, rest


def _owner_from_text(token: _Token, origin: str) -> str:
    if token.quoted:
        raise InvalidUpdate(RejectReason.BAD_NAME, f"owner name {token.text} must not be quoted")
    if token.text == APEX:
        return APEX
    if token.text.endswith("."):
        return relative_name(normalize_relative_name(token.text[:-1]), origin)
    owner = normalize_relative_name(token.text)
    absolute_name(owner, origin)  # it must fit under the origin
    return owner


@dataclass(frozen=True, slots=True)
class _Context:
    """Where a line's rdata is being read: for names relative to the origin and messages."""

    rtype: RType
    origin: str
    what: str  # "www: MX"

    def expect(self, tokens: Sequence[_Token], count: int, usage: str) -> None:
        if len(tokens) != count:
            raise _bad(f"{self.what} takes {usage}, got {len(tokens)} value(s)")

    def uint(self, token: _Token, field: str, maximum: int) -> int:
        if token.quoted or _UINT.fullmatch(token.text) is None:
            raise _bad(f"{self.what} {field} {_q(token.text)} is not a number")
        value = int(token.text)
        if value > maximum:
            raise _bad(f"{self.what} {field} {value} is out of range 0..{maximum}")
        return value

    def target(self, token: _Token) -> str:
        """An rdata name: relative names are under the origin; ``.`` is the root."""
        text = token.text
        if text == "." and not token.quoted:
            return ""
        if token.quoted or not text or text.endswith(".."):
            raise _bad(f"{self.what} target {_q(text)} is not a name")
        if text == APEX:
            full = self.origin
        elif text.endswith("."):
            full = text[:-1]
        else:
            full = f"{text}.{self.origin}"
        try:
            if self.rtype is RType.CNAME:
                return validate_absolute_name(normalize_relative_name(full), allow_underscore=True)
            return normalize_name(full)
        except InvalidUpdate as exc:
            raise _bad(f"{self.what} target {_q(text)}: {exc.args[0]}") from None


def _address_text(tokens: Sequence[_Token], ctx: _Context) -> str:
    ctx.expect(tokens, 1, "one address")
    text = tokens[0].text
    if tokens[0].quoted or "%" in text:  # no zone index (fe80::1%eth0)
        raise _bad(f"{ctx.what} address {_q(text)} is not valid")
    return text


def _rdata_a(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    text = _address_text(tokens, ctx)
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise _bad(f"{ctx.what} address {_q(text)} is not an IPv4 address") from None


def _rdata_aaaa(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    text = _address_text(tokens, ctx)
    try:
        return ipaddress.IPv6Address(text).packed
    except ValueError:
        raise _bad(f"{ctx.what} address {_q(text)} is not an IPv6 address") from None


def _rdata_name(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    ctx.expect(tokens, 1, "one target name")
    target = ctx.target(tokens[0])
    _check_target(ctx.rtype, target, ctx.what)
    return _pack(dnslib.RDMAP[ctx.rtype.name](_dns_label(target)))


def _rdata_mx(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    ctx.expect(tokens, 2, "a preference and a mail server name (10 mail)")
    preference = ctx.uint(tokens[0], "preference", 65535)
    return _pack(dnslib.MX(_dns_label(ctx.target(tokens[1])), preference))


def _rdata_srv(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    ctx.expect(tokens, 4, "priority, weight, port and target (10 5 5060 sip)")
    numbers = [
        ctx.uint(token, field, 65535)
        for token, field in zip(tokens, ("priority", "weight", "port"))
    ]
    return _pack(dnslib.SRV(*numbers, _dns_label(ctx.target(tokens[3]))))


def _rdata_txt(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    if not tokens:
        raise _bad(f'{ctx.what} takes one or more strings ("hello world")')
    for token in tokens:
        if len(token.data) > MAX_TXT_STRING:
            raise _bad(
                f"{ctx.what} string of {len(token.data)} bytes is over {MAX_TXT_STRING}; "
                "split it into several quoted strings"
            )
    return _pack(dnslib.TXT([token.data for token in tokens]))


def _rdata_caa(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    ctx.expect(tokens, 3, 'flags, tag and value (0 issue "letsencrypt.org")')
    flags = ctx.uint(tokens[0], "flags", 255)
    tag = tokens[1].text.lower()
    if tokens[1].quoted or _CAA_TAG.fullmatch(tag) is None:
        raise _bad(f"{ctx.what} tag {_q(tokens[1].text)} must be 1..15 letters/digits")
    try:
        value = tokens[2].data.decode()
    except UnicodeDecodeError:
        raise _bad(f"{ctx.what} value must be UTF-8 text") from None
    return _pack(dnslib.CAA(flags, tag, value))


_RDATA_FROM_TEXT: dict[RType, Callable[[Sequence[_Token], _Context], bytes]] = {
    RType.A: _rdata_a,
    RType.NS: _rdata_name,
    RType.CNAME: _rdata_name,
    RType.MX: _rdata_mx,
    RType.TXT: _rdata_txt,
    RType.AAAA: _rdata_aaaa,
    RType.SRV: _rdata_srv,
    RType.CAA: _rdata_caa,
}


# -- the record --


_RTYPE_NUMBERS = frozenset(int(t) for t in RType)


def _as_rtype(value: object, owner: str) -> RType:
    """`value` as an `RType`: a member, or the int of one (as read from CBOR)."""
    if isinstance(value, RType):
        return value
    if type(value) is int and value in _RTYPE_NUMBERS:
        return RType(value)
    raise _bad(f"{owner}: unsupported record type {_q(value)} (supported: {_SUPPORTED})")


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
        object.__setattr__(self, "rtype", _as_rtype(self.rtype, self.name))
        if type(self.ttl) is not int or not 0 <= self.ttl <= MAX_TTL:
            raise _bad(f"{self.name}: TTL {_q(self.ttl)} is not an integer in 0..{MAX_TTL}")
        if type(self.rdata) is not bytes:
            raise _bad(f"{self.name}: rdata must be bytes, not {type(self.rdata).__name__}")
        if len(self.rdata) > MAX_RDATA_BYTES:
            raise _bad(f"{self.name}: rdata is {len(self.rdata)} bytes, over {MAX_RDATA_BYTES}")
        _decode_rdata(self.rtype, self.rdata, self.name)

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
        return cls(name=name, rtype=_as_rtype(rtype, name), ttl=ttl, rdata=rdata)

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
        if not isinstance(line, str):
            raise _bad("a record line must be text")
        if normalize_name(origin) != origin:
            raise InvalidUpdate(RejectReason.BAD_NAME, f"origin {_q(origin)} is not canonical")
        tokens = _tokenize(line)
        if not tokens:
            raise _bad("the record line is empty")
        owner = _owner_from_text(tokens[0], origin)
        ttl, rtype, rest = _split_header(tokens[1:], owner, default_ttl)
        context = _Context(rtype=rtype, origin=origin, what=f"{owner}: {rtype.name}")
        rdata = _RDATA_FROM_TEXT[rtype](rest, context)
        return cls(name=owner, rtype=rtype, ttl=ttl, rdata=rdata)

    def to_text(self, origin: str) -> str:
        """A zone-file line (``"www 300 IN A 10.0.0.1"``) that `from_text` reads back.

        Raises:
            InvalidUpdate: `BAD_NAME` if the owner does not fit under `origin`.
        """
        absolute_name(self.name, origin)
        return f"{self.name} {self.ttl} IN {self.rtype.name} {self.rdata_text()}"

    def rdata_text(self) -> str:
        """The rdata in zone-file form; names absolute with a trailing dot."""
        return _format_rdata(
            self.rtype, self.rdata, _decode_rdata(self.rtype, self.rdata, self.name)
        )


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
                raise ConfigError(f"must be a non-negative integer, not {_q(value)}", key=key)


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
            raise _bad(
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


def _check_delegations(by_name: dict[str, list[Record]]) -> None:
    """NS at a name delegates it: only NS there, only A/AAAA glue below it."""
    has_ns = {name for name, group in by_name.items() if any(r.rtype is RType.NS for r in group)}
    for name, group in by_name.items():
        types = {r.rtype for r in group}
        not_glue = ", ".join(sorted(t.name for t in types - GLUE_TYPES))
        not_ns = ", ".join(sorted(t.name for t in types - {RType.NS}))
        if name == APEX:
            if APEX in has_ns and not_ns:
                raise _bad(
                    f"@: the domain is delegated (NS at @), so @ may hold only NS, not {not_ns}"
                )
            continue
        if APEX in has_ns:
            if not_glue:
                raise _bad(
                    f"{name}: the domain is delegated (NS at @), so other names may hold only "
                    f"A/AAAA glue, not {not_glue}"
                )
            continue
        cut = _enclosing_cut(name, has_ns)
        if cut is not None and not_glue:
            raise _bad(
                f"{name}: below the delegation at {_q(cut)} only A/AAAA glue is allowed, "
                f"not {not_glue}"
            )
        if cut is None and name in has_ns and not_ns:
            raise _bad(f"{name}: a delegation (NS) may hold only NS records, not {not_ns}")


def validate_record_set(records: Sequence[Record], limits: RecordLimits) -> tuple[Record, ...]:
    """Check a domain's whole record set against the canonical-set rules.

    Sorted strictly by (name, type, rdata); at most `limits`; one TTL per name
    and type; a CNAME alone at its name and never at ``@``; a name with NS is a
    zone cut holding only NS, with only A/AAAA glue below it; NS at ``@``
    delegates the whole domain.

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
    size = sum(len(encode(record.to_cbor())) for record in records)
    if size > limits.max_bytes:
        raise InvalidUpdate(
            RejectReason.RECORDS_TOO_LARGE,
            f"records take {size} bytes, the limit is {limits.max_bytes}",
        )
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


def records_from_cbor(value: CborValue, *, max_records: int) -> tuple[Record, ...]:
    """Read a record set's CBOR array (each record checked; the set rules are not).

    Raises:
        InvalidUpdate: not an array, more than `max_records` items, or a bad record.
    """
    if type(value) is not list:
        raise InvalidUpdate(RejectReason.MALFORMED, "records: expected an array")
    assert isinstance(value, list)
    if len(value) > max_records:
        raise InvalidUpdate(
            RejectReason.TOO_MANY_RECORDS, f"{len(value)} records, the limit is {max_records}"
        )
    return tuple(Record.from_cbor(item) for item in value)
