"""DNS messages on the wire: a strict, bounded query reader and the header bits we patch.

The reader checks the whole message the way BIND, Knot and NSD do before
answering: the question name must be uncompressed (a pointer there can only
point at itself); names in the other sections may be compressed, but every
pointer must point strictly backwards (so there are no loops) and a name must
fit in 255 bytes; the counts must match the bytes, with nothing left over; at
most one OPT, owned by the root, in the additional section, with well-formed
options. Hostile input costs at most one pass over its bytes: each offset a
pointer leads to is checked once and remembered.

It returns a `Query`, a `Rejection` (FORMERR or NOTIMP) or None (not even a
header, or a response: dropped).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from ledgerdns.dns.result import Labels, QType

HEADER = struct.Struct("!6H")
HEADER_SIZE = HEADER.size
MAX_NAME_WIRE = 255
EDNS_PAYLOAD = 1232  # the DNS Flag Day 2020 size: no IP fragmentation on common paths

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_CD = 0x0010
OPCODE_MASK = 0x7800
OPCODE_QUERY = 0
OPCODE_UPDATE = 5
# Bits a reply copies from its query (RFC 1035 4.1.1; CD: RFC 4035 3.1.6).
COPIED_FLAGS = FLAG_RD | FLAG_CD
EDNS_FLAG_DO = 0x8000  # in the OPT TTL's low 16 bits; copied into the reply (RFC 3225 3)

_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_OPTION = struct.Struct("!HH")  # option code, option length
_OPT_RR = struct.Struct("!BHHBBHH")  # root owner, type, payload, ext rcode, version, flags, rdlen
_OPTION_COOKIE = 10
# chain.dns_proof.PROOF_OPTION_CODE, repeated so that the UDP worker's imports stay
# stdlib-only (tests/unit/test_dns_proof_reply.py checks they agree).
PROOF_OPTION_CODE = 65353
# Types that only ever appear as records in other sections, never as a question.
_META_QTYPES = frozenset({QType.OPT, QType.TSIG})
_META_QCLASSES = frozenset({254, 255})  # NONE and ANY: never a zone's class


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
    """The client's OPT record (RFC 6891).

    Attributes:
        payload: the UDP size it can receive (as sent; see `Query.udp_limit`).
        version: the EDNS version (only 0 is answered; others get BADVERS).
        do: the DNSSEC OK bit (RFC 3225), copied into the reply's OPT.
        proof: the data of each proof option (`chain.dns_proof.PROOF_OPTION_CODE`)
            it carries, undecoded: empty for a query that asks for no proof.
    """

    payload: int
    version: int
    do: bool = False
    proof: tuple[bytes, ...] = ()


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
        plain: exactly one question and at most one OPT asking for no proof,
            nothing else: the shape whose reply is cached.
        tsig_at: where the TSIG record starts when the query is signed (it is
            the last record, RFC 8945 5.1); 0 for an unsigned query.
    """

    id: int
    flags: int
    qname: Labels
    qname_wire: bytes
    qtype: int
    qclass: int
    edns: Edns | None
    plain: bool
    tsig_at: int = 0

    @property
    def signed(self) -> bool:
        """Whether the query carries a TSIG record (its reply is signed, or refused)."""
        return self.tsig_at > 0

    def without_tsig(self, data: bytes) -> bytes:
        """`data` (this query's bytes) with the TSIG record removed."""
        if not self.tsig_at:
            return data
        arcount = struct.unpack_from("!H", data, 10)[0]
        return data[:10] + struct.pack("!H", arcount - 1) + data[12 : self.tsig_at]

    def udp_limit(self, our_payload: int) -> int:
        """The most bytes a UDP reply may take: 512 without EDNS, else the
        client's payload size, at least 512 and at most ours."""
        if self.edns is None:
            return 512
        return max(512, min(self.edns.payload, our_payload))


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message answered with an error `rcode` and no records.

    Attributes:
        id, flags: from the message's header.
        rcode: the error.
        question: the question's wire bytes, echoed in the reply; empty for a
            bare header (the message could not be read far enough).
        edns: the message's OPT record: the reply then carries one too
            (RFC 6891 section 7).
    """

    id: int
    flags: int
    rcode: Rcode
    question: bytes = b""
    edns: Edns | None = None


class _Malformed(Exception):
    """Internal: the message does not parse (turned into FORMERR)."""


class _Body(NamedTuple):
    """Internal: what the reader took from the sections after the header."""

    qname: Labels
    qname_end: int
    qtype: int
    qclass: int
    edns: Edns | None
    tsig_at: int


def _read_qname(data: bytes, pos: int) -> tuple[Labels, int]:
    """The uncompressed name at `pos` and the offset after it."""
    labels: list[bytes] = []
    start = pos
    while True:
        if pos >= len(data) or pos - start >= MAX_NAME_WIRE:
            raise _Malformed
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length > 63:
            raise _Malformed  # a pointer (which could only point at itself) or a reserved type
        labels.append(data[pos + 1 : pos + 1 + length])
        pos += 1 + length
    if pos - start > MAX_NAME_WIRE or pos > len(data):
        raise _Malformed
    return tuple(labels), pos


def _skip_name(data: bytes, pos: int, checked: dict[int, int]) -> int:
    """The offset after the (possibly compressed) name at `pos`, which must be well-formed.

    Each pointer must point strictly below the previous one (the first below
    `pos`), as dnspython and BIND require, so following them always ends. The
    name, uncompressed, must fit in 255 bytes.

    Args:
        data: the message.
        pos: where the name starts.
        checked: offsets already known to start a well-formed name, with that
            name's uncompressed length; extended with every offset walked here,
            so that no byte is walked twice however many pointers lead to it.
    """
    walked: list[tuple[int, int]] = []  # (offset, uncompressed length before it)
    size = 0
    end = 0
    below = pos
    cursor = pos
    while True:
        # Only after a pointer: the bytes from `pos` on are new, and `end` is known.
        known = checked.get(cursor) if end else None
        if known is not None:
            size += known
            break
        if cursor >= len(data):
            raise _Malformed
        walked.append((cursor, size))
        length = data[cursor]
        if length == 0:
            size += 1
            end = end or cursor + 1
            break
        if length & 0xC0 == 0xC0:
            if cursor + 2 > len(data):
                raise _Malformed
            target = ((length & 0x3F) << 8) | data[cursor + 1]
            end = end or cursor + 2
            if target >= below:
                raise _Malformed  # forward, to itself, or round in a loop
            below = cursor = target
            continue
        if length > 63:
            raise _Malformed  # the reserved label types 0x40 and 0x80
        size += 1 + length
        if size > MAX_NAME_WIRE:
            raise _Malformed
        cursor += 1 + length
    if size > MAX_NAME_WIRE:
        raise _Malformed
    for offset, before in walked:
        checked[offset] = size - before
    return end or cursor


def _check_options(data: bytes, pos: int, end: int) -> tuple[bytes, ...]:
    """The OPT rdata between `pos` and `end` must be whole options (RFC 6891 6.1.2).

    Returns:
        The data of the proof options, if any (read by `ledgerdns.dns.proof_reply`).
    """
    proof: tuple[bytes, ...] = ()
    while pos < end:
        if pos + _OPTION.size > end:
            raise _Malformed
        code, length = _OPTION.unpack_from(data, pos)
        start = pos + _OPTION.size
        pos = start + length
        if pos > end:
            raise _Malformed
        if code == _OPTION_COOKIE and not (length == 8 or 16 <= length <= 40):
            raise _Malformed  # RFC 7873 5.2.2: a malformed COOKIE is FORMERR
        if code == PROOF_OPTION_CODE:
            proof += (data[start:pos],)
    return proof


def _read_records(
    data: bytes, pos: int, count: int, checked: dict[int, int], *, additional: bool
) -> tuple[int, Edns | None, int]:
    """Skip `count` records; in the additional section, read the one OPT and find a TSIG."""
    edns: Edns | None = None
    tsig_at = 0
    for index in range(count):
        name_start = pos
        pos = _skip_name(data, pos, checked)
        if pos + _RR_FIXED.size > len(data):
            raise _Malformed
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, pos)
        rdata_start = pos + _RR_FIXED.size
        pos = rdata_start + rdlength
        if pos > len(data):
            raise _Malformed
        if rtype == QType.OPT:
            # One OPT, owned by the root, in the additional section only (RFC 6891 6.1.1).
            if not additional or edns is not None or data[name_start] != 0:
                raise _Malformed
            proof = _check_options(data, rdata_start, pos)
            edns = Edns(
                payload=rclass, version=(ttl >> 16) & 0xFF, do=bool(ttl & EDNS_FLAG_DO), proof=proof
            )
        elif rtype == QType.TSIG:
            # The last record of the additional section, nowhere else (RFC 8945 5.1).
            if not additional or index != count - 1:
                raise _Malformed
            tsig_at = name_start
    return pos, edns, tsig_at


def _read_body(data: bytes, counts: tuple[int, int, int, int]) -> _Body:
    """The one question and the OPT of a message with these section counts."""
    qdcount, ancount, nscount, arcount = counts
    if qdcount != 1:
        raise _Malformed
    qname, qname_end = _read_qname(data, HEADER_SIZE)
    if qname_end + 4 > len(data):
        raise _Malformed
    qtype, qclass = struct.unpack_from("!HH", data, qname_end)
    checked: dict[int, int] = {}
    pos, _, _ = _read_records(data, qname_end + 4, ancount + nscount, checked, additional=False)
    pos, edns, tsig_at = _read_records(data, pos, arcount, checked, additional=True)
    if pos != len(data):
        raise _Malformed  # trailing bytes: the counts are wrong
    return _Body(qname, qname_end, qtype, qclass, edns, tsig_at)


def parse_query(data: bytes) -> Query | Rejection | None:
    """Read a query message.

    Returns:
        A `Query`; a `Rejection` (FORMERR for a malformed message, not exactly
        one question or a meta type as the question; NOTIMP for an opcode other
        than QUERY, with the question and OPT echoed when they could be read);
        or None for something not to answer at all (shorter than a header, or
        a response).
    """
    if len(data) < HEADER_SIZE:
        return None
    msg_id, flags, *counts = HEADER.unpack_from(data)
    if flags & FLAG_QR:
        return None
    try:
        body = _read_body(data, (counts[0], counts[1], counts[2], counts[3]))
    except _Malformed:
        body = None
    opcode = (flags & OPCODE_MASK) >> 11
    if opcode != OPCODE_QUERY:
        if body is None:
            return Rejection(msg_id, flags, Rcode.NOTIMP)
        # An UPDATE's first section names the zone: type SOA, the zone's own class, not
        # ANY or NONE (RFC 2136 3.1.1); anything else echoed back would make the reply
        # unreadable to the client (dnspython refuses it: found by tools/fuzz.py).
        echo = opcode != OPCODE_UPDATE or (
            body.qtype == QType.SOA and body.qclass not in _META_QCLASSES
        )
        question = data[HEADER_SIZE : body.qname_end + 4] if echo else b""
        return Rejection(msg_id, flags, Rcode.NOTIMP, question, body.edns)
    if body is None or body.qtype in _META_QTYPES:
        return Rejection(msg_id, flags, Rcode.FORMERR)
    ancount, nscount, arcount = counts[1:]
    return Query(
        id=msg_id,
        flags=flags,
        qname=body.qname,
        qname_wire=data[HEADER_SIZE : body.qname_end],
        qtype=body.qtype,
        qclass=body.qclass,
        edns=body.edns,
        plain=ancount == 0
        and nscount == 0
        and arcount == (0 if body.edns is None else 1)
        and not (body.edns is not None and body.edns.proof),
        tsig_at=body.tsig_at,
    )


def reply_flags(query_flags: int, rcode: int, *, authoritative: bool = False) -> int:
    """The flags word of a reply: QR, the query's opcode, RD and CD copied, RA never.

    RD and CD are copied only for a standard query: other opcodes do not define
    them (RFC 1996 and 2136 make them zero), so a NOTIMP reply to an opcode we do
    not know sets no bit the client's opcode does not define, as BIND and Knot do.
    """
    opcode = query_flags & OPCODE_MASK
    copied = COPIED_FLAGS if opcode == OPCODE_QUERY else 0
    flags = FLAG_QR | opcode | (query_flags & copied) | (rcode & 0x0F)
    return (flags | FLAG_AA) if authoritative else flags


def opt_record(payload: int, rcode: int, *, do: bool) -> bytes:
    """Our OPT record: version 0, no options, the upper bits of `rcode`, DO as asked."""
    return _OPT_RR.pack(0, QType.OPT, payload, rcode >> 4, 0, EDNS_FLAG_DO if do else 0, 0)


def bare_reply(rejection: Rejection, *, payload: int = EDNS_PAYLOAD) -> bytes:
    """The reply to a rejected message: a header with the error, no records.

    The question is echoed when the rejection carries it, and an OPT record
    (advertising `payload`) is added when the message had one.
    """
    flags = reply_flags(rejection.flags, rejection.rcode)
    qdcount = 1 if rejection.question else 0
    if rejection.edns is None:
        return HEADER.pack(rejection.id, flags, qdcount, 0, 0, 0) + rejection.question
    opt = opt_record(payload, rejection.rcode, do=rejection.edns.do)
    return HEADER.pack(rejection.id, flags, qdcount, 0, 0, 1) + rejection.question + opt


def servfail_for(data: bytes) -> bytes | None:
    """A bare SERVFAIL for a message whose answering failed; None for a reply or a runt."""
    if len(data) < HEADER_SIZE:
        return None
    msg_id, flags = HEADER.unpack_from(data)[:2]
    if flags & FLAG_QR:
        return None
    return bare_reply(Rejection(msg_id, flags, Rcode.SERVFAIL))


def patch_reply(template: bytes, query: Query) -> bytes:
    """`template` (a cached reply to the same question) made the reply to `query`.

    Sets the ID, copies RD and CD, writes the question name back exactly as
    the client spelled it (0x20 case randomization; owner names that equal the
    question name are compression pointers to it, so they follow), and copies
    the DO bit into the OPT record, which our replies always carry last and
    without options.
    """
    out = bytearray(template)
    flags = (int.from_bytes(template[2:4]) & ~COPIED_FLAGS) | (query.flags & COPIED_FLAGS)
    struct.pack_into("!HH", out, 0, query.id, flags)
    out[HEADER_SIZE : HEADER_SIZE + len(query.qname_wire)] = query.qname_wire
    if query.edns is not None and _ends_with_opt(out):
        do_byte = len(out) - 4  # the high byte of the OPT's flags
        out[do_byte] = (out[do_byte] & 0x7F) | (0x80 if query.edns.do else 0)
    return bytes(out)


def _ends_with_opt(message: bytearray) -> bool:
    tail = len(message) - _OPT_RR.size
    return (
        tail >= HEADER_SIZE
        and message[tail : tail + 3] == b"\x00\x00\x29"
        and message[-2:] == b"\x00\x00"
    )
