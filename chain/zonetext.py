"""Zone-file lines: reading one as users type it, and writing one back.

Zone-file lines are tokenized here (RFC 1035 quoting, decimal ``\\DDD``
escapes) because dnslib's zone lexer reads octal escapes, re-encodes TXT
bytes as UTF-8 text and accepts addresses like ``1.2.3``; the rdata built from
the tokens is still packed by dnslib (in `chain.rdata`).

This module returns the parts of a record; `chain.records.Record` builds and
checks the record itself, so this module does not import it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chain import rdtypes
from chain.errors import InvalidUpdate, RejectReason
from chain.names import (
    APEX,
    absolute_name,
    normalize_name,
    normalize_relative_name,
    relative_name,
    validate_absolute_name,
)
from chain.rdata import (
    MAX_TTL,
    MAX_TXT_STRING,
    RType,
    bad_record,
    brief_repr,
    is_caa_tag,
    pack_caa,
    pack_mx,
    pack_name_rdata,
    pack_srv,
    pack_txt,
    rdata_text,
    unsupported_type,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneLine:
    """The parts of a record read from one line (not yet checked as a whole record).

    Attributes:
        name: the owner name relative to the origin.
        rtype: the record type.
        ttl: seconds.
        rdata: the wire rdata built from the line.
    """

    name: str
    rtype: RType
    ttl: int
    rdata: bytes


# -- tokenizer --


@dataclass(frozen=True, slots=True)
class _Token:
    text: str  # as typed, escapes and quotes included
    data: bytes  # the bytes it stands for
    quoted: bool
    start: int = 0  # its offset in the line (the types dnspython reads take the line from here)


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
                    raise bad_record(f"escape \\{digits} is not a byte value (0..255)")
                out.append(int(digits))
                pos += 4
                continue
            if pos + 1 == len(line):
                raise bad_record("the line ends with a lone backslash")
            pos += 1
            char = line[pos]
        out += char.encode()
        pos += 1
    if quoted:
        raise bad_record("a quoted string is not closed")
    return bytes(out), pos


def _tokenize(line: str) -> list[_Token]:
    """Split one zone-file line into tokens; ``;`` starts a comment."""
    line = line.rstrip("\r\n")
    if "\n" in line or "\r" in line:
        raise bad_record("a record must be on one line")
    try:
        line.encode()
    except UnicodeEncodeError:
        raise bad_record("the line is not valid text (lone surrogate)") from None
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
            tokens.append(_Token(text=line[pos:end], data=data, quoted=quoted, start=pos))
            pos = end
    return tokens


# -- owner, TTL, class, type --


_UINT = re.compile(r"[0-9]{1,10}")
_TTL = re.compile(r"[0-9]+|(?:[0-9]+[smhdwSMHDW])+")
_TTL_LIKE = re.compile(r"[+-]?[0-9][0-9a-z.]*", re.IGNORECASE)  # meant as a TTL: no type starts so
_TTL_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_CLASS = re.compile(r"IN|CH|CS|HS|NONE|ANY|CLASS[0-9]+", re.IGNORECASE)


def _parse_ttl(text: str, owner: str) -> int:
    parts = re.findall(r"([0-9]+)([smhdwSMHDW]?)", text)
    # Bound the digits before int(): Python refuses very long digit strings.
    too_long = any(len(number) > 10 for number, _ in parts)
    ttl = 0 if too_long else sum(int(n) * _TTL_UNIT[unit.lower()] for n, unit in parts)
    if too_long or ttl > MAX_TTL:
        raise bad_record(f"{owner}: TTL {brief_repr(text)} is over the maximum {MAX_TTL}")
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
                raise bad_record(f"{owner}: class {text} is not supported; records are class IN")
            seen_class = True
        else:
            break
        rest.pop(0)
    if not rest:
        raise bad_record(f"{owner}: the record type is missing")
    token = rest.pop(0)
    rtype = None if token.quoted else RType.__members__.get(token.text.upper())
    if rtype is None and ttl is None and _TTL_LIKE.fullmatch(token.text):  # "x -5 A ...", "x 5y A"
        raise bad_record(f"{owner}: TTL {brief_repr(token.text)} is not valid "
                         f"(seconds from 0 to {MAX_TTL}, or units such as 1h30m)")  # fmt: skip
    if rtype is None:
        raise unsupported_type(token.text, owner)
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


# -- rdata --


@dataclass(frozen=True, slots=True)
class _Context:
    """Where a line's rdata is being read: for names relative to the origin and messages."""

    rtype: RType
    origin: str
    what: str  # "www: MX"

    def expect(self, tokens: Sequence[_Token], count: int, usage: str) -> None:
        if len(tokens) != count:
            raise bad_record(f"{self.what} takes {usage}, got {len(tokens)} value(s)")

    def uint(self, token: _Token, field: str, maximum: int) -> int:
        if token.quoted or _UINT.fullmatch(token.text) is None:
            raise bad_record(f"{self.what} {field} {brief_repr(token.text)} is not a number")
        value = int(token.text)
        if value > maximum:
            raise bad_record(f"{self.what} {field} {value} is out of range 0..{maximum}")
        return value

    def target(self, token: _Token) -> str:
        """An rdata name: relative names are under the origin; ``.`` is the root."""
        text = token.text
        if text == "." and not token.quoted:
            return ""
        if token.quoted or not text or text.endswith(".."):
            raise bad_record(f"{self.what} target {brief_repr(text)} is not a name")
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
            raise bad_record(f"{self.what} target {brief_repr(text)}: {exc.args[0]}") from None


def _address_text(tokens: Sequence[_Token], ctx: _Context) -> str:
    ctx.expect(tokens, 1, "one address")
    text = tokens[0].text
    if tokens[0].quoted or "%" in text:  # no zone index (fe80::1%eth0)
        raise bad_record(f"{ctx.what} address {brief_repr(text)} is not valid")
    return text


def _rdata_a(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    text = _address_text(tokens, ctx)
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise bad_record(f"{ctx.what} address {brief_repr(text)} is not an IPv4 address") from None


def _rdata_aaaa(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    text = _address_text(tokens, ctx)
    try:
        return ipaddress.IPv6Address(text).packed
    except ValueError:
        raise bad_record(f"{ctx.what} address {brief_repr(text)} is not an IPv6 address") from None


def _rdata_name(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    ctx.expect(tokens, 1, "one target name")
    return pack_name_rdata(ctx.rtype, ctx.target(tokens[0]), ctx.what)


def _rdata_mx(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    ctx.expect(tokens, 2, "a preference and a mail server name (10 mail)")
    preference = ctx.uint(tokens[0], "preference", 65535)
    return pack_mx(preference, ctx.target(tokens[1]))


def _rdata_srv(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    ctx.expect(tokens, 4, "priority, weight, port and target (10 5 5060 sip)")
    numbers = [
        ctx.uint(token, field, 65535)
        for token, field in zip(tokens, ("priority", "weight", "port"), strict=False)
    ]
    return pack_srv(numbers, ctx.target(tokens[3]))


def _rdata_txt(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    if not tokens:
        raise bad_record(f'{ctx.what} takes one or more strings ("hello world")')
    for token in tokens:
        if len(token.data) > MAX_TXT_STRING:
            raise bad_record(
                f"{ctx.what} string of {len(token.data)} bytes is over {MAX_TXT_STRING}; "
                "split it into several quoted strings"
            )
    return pack_txt([token.data for token in tokens])


def _rdata_caa(tokens: Sequence[_Token], ctx: _Context) -> bytes:
    ctx.expect(tokens, 3, 'flags, tag and value (0 issue "letsencrypt.org")')
    flags = ctx.uint(tokens[0], "flags", 255)
    tag = tokens[1].text.lower()
    if tokens[1].quoted or not is_caa_tag(tag):
        raise bad_record(
            f"{ctx.what} tag {brief_repr(tokens[1].text)} must be 1..15 letters/digits"
        )
    try:
        value = tokens[2].data.decode()
    except UnicodeDecodeError:
        raise bad_record(f"{ctx.what} value must be UTF-8 text") from None
    return pack_caa(flags, tag, value)


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


# -- lines --


def parse_line(line: str, *, origin: str, default_ttl: int) -> ZoneLine:
    """Read one zone-file line into the parts of a record (see `Record.from_text`).

    Raises:
        InvalidUpdate: `BAD_RECORD` (or `BAD_NAME` for the owner name or origin).
    """
    if not isinstance(line, str):
        raise bad_record("a record line must be text")
    if normalize_name(origin) != origin:
        raise InvalidUpdate(RejectReason.BAD_NAME, f"origin {brief_repr(origin)} is not canonical")
    tokens = _tokenize(line)
    if not tokens:
        raise bad_record("the record line is empty")
    owner = _owner_from_text(tokens[0], origin)
    ttl, rtype, rest = _split_header(tokens[1:], owner, default_ttl)
    what = f"{owner}: {rtype.name}"
    if rtype in rdtypes.DNSPYTHON_TYPES:
        text = line.rstrip("\r\n")[rest[0].start :] if rest else ""
        rdata = rdtypes.from_text(rtype, text, origin=origin, what=what)
    else:
        rdata = _RDATA_FROM_TEXT[rtype](rest, _Context(rtype=rtype, origin=origin, what=what))
    return ZoneLine(name=owner, rtype=rtype, ttl=ttl, rdata=rdata)


def format_line(*, name: str, rtype: RType, ttl: int, rdata: bytes, origin: str) -> str:
    """A zone-file line (``"www 300 IN A 10.0.0.1"``) that `parse_line` reads back.

    Raises:
        InvalidUpdate: `BAD_NAME` if `name` does not fit under `origin`.
    """
    absolute_name(name, origin)
    return f"{name} {ttl} IN {rtype.name} {rdata_text(rtype, rdata, name)}"
