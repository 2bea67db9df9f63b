"""DNS messages on the wire: a strict, bounded query reader and the header bits we patch.

The reader never follows compression pointers (a question name must be
uncompressed; names in other sections are skipped, which needs no pointer
chasing), so hostile input costs at most one pass over its bytes. It returns a
`Query`, a `Rejection` (FORMERR or NOTIMP, answered with a bare header) or None
(not even a header, or a response: dropped).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from ledgerdns.dns.result import Labels, QType

HEADER = struct.Struct("!6H")
HEADER_SIZE = HEADER.size
MAX_NAME_WIRE = 255

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_CD = 0x0010
OPCODE_MASK = 0x7800
OPCODE_QUERY = 0
# Bits a reply copies from its query (RFC 1035 4.1.1; CD: RFC 4035 3.1.6).
COPIED_FLAGS = FLAG_RD | FLAG_CD

_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength


class Rcode(IntEnum):
    """Response codes (BADVERS is extended: its upper bits go in the OPT record)."""

    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
    BADVERS = 16


@dataclass(frozen=True, slots=True)
class Edns:
    """The client's OPT record (RFC 6891)."""

    payload: int  # the UDP size it can receive
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """One well-formed standard query.

    Attributes:
        id: the message ID.
        flags: the query's header flags word.
        qname: the question name as sent (case preserved).
        qname_wire: its wire bytes as sent (uncompressed).
        qtype, qclass: the question's type and class.
        edns: the OPT record, if any.
        plain: exactly one question and at most one OPT, nothing else: the
            shape whose reply is cached.
    """

    id: int
    flags: int
    qname: Labels
    qname_wire: bytes
    qtype: int
    qclass: int
    edns: Edns | None
    plain: bool

    def udp_limit(self, our_payload: int) -> int:
        """The most bytes a UDP reply may take: 512 without EDNS, else the
        client's payload size, at least 512 and at most ours."""
        if self.edns is None:
            return 512
        return max(512, min(self.edns.payload, our_payload))


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message answered with a bare header carrying `rcode`."""

    id: int
    flags: int
    rcode: Rcode


class _Malformed(Exception):
    """Internal: the message does not parse (turned into FORMERR)."""


def _read_qname(data: bytes, pos: int) -> tuple[Labels, int]:
    """The uncompressed name at `pos` and the offset after it."""
    labels: list[bytes] = []
    start = pos
    while True:
        if pos >= len(data):
            raise _Malformed
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length > 63:
            raise _Malformed  # a pointer (nowhere to point back to) or a reserved label type
        labels.append(data[pos + 1 : pos + 1 + length])
        pos += 1 + length
    if pos - start > MAX_NAME_WIRE or pos > len(data):
        raise _Malformed
    return tuple(labels), pos


def _skip_name(data: bytes, pos: int) -> int:
    """The offset after the (possibly compressed) name at `pos`."""
    start = pos
    while True:
        if pos >= len(data):
            raise _Malformed
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length > 63 or pos - start > MAX_NAME_WIRE:
            raise _Malformed
        pos += 1 + length


def _read_records(data: bytes, pos: int, count: int, *, additional: bool) -> tuple[int, Edns | None]:
    """Skip `count` records; in the additional section, read the one OPT."""
    edns: Edns | None = None
    for _ in range(count):
        name_start = pos
        pos = _skip_name(data, pos)
        if pos + _RR_FIXED.size > len(data):
            raise _Malformed
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, pos)
        pos += _RR_FIXED.size + rdlength
        if pos > len(data):
            raise _Malformed
        if rtype == QType.OPT:
            # One OPT, owned by the root, in the additional section only (RFC 6891 6.1.1).
            if not additional or edns is not None or data[name_start] != 0:
                raise _Malformed
            edns = Edns(payload=rclass, version=(ttl >> 16) & 0xFF)
    return pos, edns


def parse_query(data: bytes) -> Query | Rejection | None:
    """Read a query message.

    Returns:
        A `Query`; a `Rejection` (FORMERR for a malformed message or not exactly
        one question, NOTIMP for an opcode other than QUERY); or None for
        something not to answer at all (shorter than a header, or a response).
    """
    if len(data) < HEADER_SIZE:
        return None
    msg_id, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if flags & FLAG_QR:
        return None
    if (flags & OPCODE_MASK) >> 11 != OPCODE_QUERY:
        return Rejection(msg_id, flags, Rcode.NOTIMP)
    if qdcount != 1:
        return Rejection(msg_id, flags, Rcode.FORMERR)
    try:
        qname, qname_end = _read_qname(data, HEADER_SIZE)
        pos = qname_end
        if pos + 4 > len(data):
            raise _Malformed
        qtype, qclass = struct.unpack_from("!HH", data, pos)
        pos, _ = _read_records(data, pos + 4, ancount + nscount, additional=False)
        pos, edns = _read_records(data, pos, arcount, additional=True)
    except _Malformed:
        return Rejection(msg_id, flags, Rcode.FORMERR)
    if pos != len(data) or qtype == QType.OPT:
        return Rejection(msg_id, flags, Rcode.FORMERR)
    return Query(
        id=msg_id,
        flags=flags,
        qname=qname,
        qname_wire=data[HEADER_SIZE:qname_end],
        qtype=qtype,
        qclass=qclass,
        edns=edns,
        plain=ancount == 0 and nscount == 0 and arcount == (0 if edns is None else 1),
    )


def reply_flags(query_flags: int, rcode: int, *, authoritative: bool = False) -> int:
    """The flags word of a reply: QR, the query's opcode, RD and CD copied, RA never."""
    flags = FLAG_QR | (query_flags & (OPCODE_MASK | COPIED_FLAGS)) | (rcode & 0x0F)
    return (flags | FLAG_AA) if authoritative else flags


def bare_reply(rejection: Rejection) -> bytes:
    """A header-only reply (no sections) for a rejected message."""
    return HEADER.pack(rejection.id, reply_flags(rejection.flags, rejection.rcode), 0, 0, 0, 0)


def patch_reply(template: bytes, query: Query) -> bytes:
    """`template` (a cached reply to the same question) made the reply to `query`.

    Sets the ID, copies RD and CD, and writes the question name back exactly as
    the client spelled it (0x20 case randomization); owner names that equal the
    question name are compression pointers to it, so they follow.
    """
    out = bytearray(template)
    flags = (int.from_bytes(template[2:4]) & ~COPIED_FLAGS) | (query.flags & COPIED_FLAGS)
    struct.pack_into("!HH", out, 0, query.id, flags)
    out[HEADER_SIZE : HEADER_SIZE + len(query.qname_wire)] = query.qname_wire
    return bytes(out)
