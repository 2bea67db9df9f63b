"""RFC 1035 master files for one domain: reading them into records, writing records out.

Each entry is read by `chain.records.Record.from_text` (the zone-line tokenizer
of `chain.zonetext`), so a record means the same here as on the command line.
This module only does what spans lines: directives (``$ORIGIN``, ``$TTL``),
comments, parentheses that continue an entry over several lines, and a blank
owner field repeating the previous owner. SOA records are skipped: the node
synthesizes the SOA of every domain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from chain.errors import InvalidUpdate
from chain.names import APEX, absolute_name, normalize_name, normalize_relative_name, relative_name
from chain.records import Record
from ledgerdns.wallet.errors import BadInput

DEFAULT_TTL = 300


@dataclass(frozen=True, slots=True)
class ZoneEntry:
    """One logical entry of a zone file: parentheses joined, comments removed."""

    line: int  # where it starts, 1-based
    text: str
    blank_owner: bool  # it started with white space: the previous owner applies


@dataclass(frozen=True, slots=True)
class ZoneImport:
    """What a zone file held for a domain."""

    records: tuple[Record, ...]
    skipped: tuple[str, ...]  # messages about entries left out (SOA)


def _strip(text: str, lineno: int, depth: int) -> tuple[str, int]:
    """`text` without its comment, parentheses outside quotes made spaces; the new depth.

    Only quotes and backslash escapes are followed here, to find the comment and
    the parentheses; the characters themselves are read by `chain.zonetext`.
    """
    out: list[str] = []
    quoted = False
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char == "\\":
            out.append(text[pos : pos + 2])
            pos += 2
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted and char == ";":
            break
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
            if depth < 0:
                raise BadInput(f"line {lineno}: ')' without a matching '('")
            char = " "
        out.append(char)
        pos += 1
    if quoted:
        raise BadInput(f"line {lineno}: a quoted string is not closed on its line")
    return "".join(out), depth


def zone_entries(text: str) -> Iterator[ZoneEntry]:
    """The logical entries of a zone file, in order (blank lines and comments dropped).

    Raises:
        BadInput: unbalanced parentheses or an unclosed quote.
    """
    parts: list[str] = []
    depth = 0
    start = 0
    blank_owner = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if depth == 0:
            start = lineno
            blank_owner = raw[:1] in (" ", "\t")
        stripped, depth = _strip(raw, lineno, depth)
        parts.append(stripped)
        if depth == 0:
            joined = " ".join(part.strip() for part in parts if part.strip())
            parts = []
            if joined:
                yield ZoneEntry(line=start, text=joined, blank_owner=blank_owner)
    if depth:
        raise BadInput(f"line {start}: '(' is never closed")


_TTL_WORD = re.compile(r"[0-9]+|(?:[0-9]+[smhdw])+", re.IGNORECASE)
_CLASS_WORD = re.compile(r"IN|CH|CS|HS|CLASS[0-9]+", re.IGNORECASE)


def _origin(entry: ZoneEntry, args: list[str], origin: str) -> str:
    if len(args) != 1:
        raise BadInput(f"line {entry.line}: $ORIGIN takes one name")
    name = args[0]
    try:
        if name.endswith("."):
            return normalize_name(name)
        return normalize_name(f"{name}.{origin}")  # relative to the current origin
    except InvalidUpdate as exc:
        raise BadInput(f"line {entry.line}: $ORIGIN {name}: {exc.args[0]}") from None


def _ttl(entry: ZoneEntry, args: list[str], domain: str) -> int:
    if len(args) != 1 or _TTL_WORD.fullmatch(args[0]) is None:
        raise BadInput(f"line {entry.line}: $TTL takes one TTL (3600, 1h30m)")
    try:  # the line reader knows the units and the range
        return Record.from_text(f"@ {args[0]} TXT x", origin=domain).ttl
    except InvalidUpdate as exc:
        raise BadInput(f"line {entry.line}: $TTL {args[0]}: {exc.args[0]}") from None


def _owner(entry: ZoneEntry, owner: str, origin: str) -> str:
    """The absolute owner name with a trailing dot (so a later $ORIGIN does not move it)."""
    try:
        if owner == APEX:
            return origin + "."
        if owner.endswith("."):
            return normalize_relative_name(owner[:-1]) + "."
        return absolute_name(normalize_relative_name(owner), origin) + "."
    except InvalidUpdate as exc:
        raise BadInput(f"line {entry.line}: owner {owner!r}: {exc.args[0]}") from None


def _is_soa(fields: list[str]) -> bool:
    """Whether the type field (after the owner, TTL and class) is SOA."""
    for word in fields[1:3]:
        if _TTL_WORD.fullmatch(word) is None and _CLASS_WORD.fullmatch(word) is None:
            return word.upper() == "SOA"
    return len(fields) > 3 and fields[3].upper() == "SOA"


def _record(entry: ZoneEntry, owner: str, rest: str, origin: str, domain: str, ttl: int) -> Record:
    """Read the entry's TTL, type and rdata (names in rdata are relative to `origin`).

    The line is read with ``@`` for its owner (the owner may lie outside a later
    ``$ORIGIN``), so a message the reader starts with ``@:`` names the real owner.
    """
    try:
        name = relative_name(owner, domain)
    except InvalidUpdate as exc:
        raise BadInput(f"line {entry.line}: {entry.text!r}: {exc.args[0]}") from None
    try:
        parsed = Record.from_text(f"@ {rest}", origin=origin, default_ttl=ttl)
        return Record(name=name, rtype=parsed.rtype, ttl=parsed.ttl, rdata=parsed.rdata)
    except InvalidUpdate as exc:
        message = str(exc.args[0])
        if message.startswith(f"{APEX}: "):
            message = f"{name}{message[len(APEX) :]}"
        raise BadInput(f"line {entry.line}: {entry.text!r}: {message}") from None


def read_zone(text: str, domain: str, *, default_ttl: int = DEFAULT_TTL) -> ZoneImport:
    """The records of `domain` in a zone file.

    The origin starts as `domain`; ``$ORIGIN`` changes it and ``$TTL`` sets the TTL
    of entries without one. Every owner name must be at or under `domain`.

    Raises:
        BadInput: the file has a syntax error or a record outside `domain`; the
            message names the line.
    """
    origin, ttl = domain, default_ttl
    owner: str | None = None
    records: list[Record] = []
    skipped: list[str] = []
    for entry in zone_entries(text):
        fields = entry.text.split()
        if entry.blank_owner:
            if owner is None:
                raise BadInput(f"line {entry.line}: the first record has no owner name")
            fields.insert(0, owner)
        elif fields[0].upper() == "$ORIGIN":
            origin = _origin(entry, fields[1:], origin)
            continue
        elif fields[0].upper() == "$TTL":
            ttl = _ttl(entry, fields[1:], domain)
            continue
        elif fields[0].startswith("$"):
            raise BadInput(f"line {entry.line}: {fields[0]} is not supported")
        else:
            owner = _owner(entry, fields[0], origin)
        if _is_soa(fields):
            skipped.append(f"line {entry.line}: SOA skipped (the node makes the SOA)")
            continue
        rest = entry.text if entry.blank_owner else entry.text[len(fields[0]) :].lstrip()
        records.append(_record(entry, owner, rest, origin, domain, ttl))
    return ZoneImport(records=tuple(records), skipped=tuple(skipped))


def write_zone(domain: str, records: Iterable[Record], *, header: Iterable[str] = ()) -> str:
    """A zone file for `domain` that `read_zone` reads back to the same records.

    Args:
        domain: the origin.
        records: the records, in the order to write them.
        header: comment lines to put first (without the ``;``).
    """
    lines = [f"; {text}" for text in header]
    lines.append(f"$ORIGIN {domain}.")
    lines.extend(record.to_text(domain) for record in records)
    return "\n".join(lines) + "\n"
