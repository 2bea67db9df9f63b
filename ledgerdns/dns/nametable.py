"""The UDP worker's complete name table: every registered name's answers, encoded, compact.

The worker answers a repeat question from its reply table (`udpworker.ReplyTable`,
keyed by the query's bytes). A question it has not seen yet would go up to the
node's event loop and dnslib, 20-45x slower than an authoritative server (issue
17). This table holds, for every name of every active domain, the answers the
node's own lookup gives (built by `ledgerdns.dns.nametable_build` from
`Zone.lookup` and sent down per block), so any question about a registered name
is answered here, with no parsing beyond the question.

One entry per name in an `Arena`, keyed by the lower-cased wire name, valued by
a `blob` (about 150 bytes for a name with one A record, 160 with the key and
index: issue 21)::

    expires_at  u32   unix seconds of block time the domain lapses at, 0 never
    k           u8    number of directory entries
    k x (qtype u16, offset u16)   a type answered its own way; offset 0: not here
    default     u16   offset of the answer to any other plain type; 0: not here
    bodies      at their offsets: length u16, then flags u16 (AA and rcode),
                ancount, nscount, arcount (u16 each), then the records

Records are written as the node's lookup gives them: owner names equal to the
question as a pointer to it (offset 12), everything else uncompressed.
"Not here" (offset 0) marks answers the node must give itself: those holding a
TLD's SOA (its serial is the head height) and the like. A question this module
cannot answer exactly as the node would (another opcode or class, a meta type,
a TSIG or proof option, a reply too big for the client) returns None and goes
up to the node.

Stdlib only (and `ledgerdns.dns.wire`, which is): it runs inside the worker process.
"""

from __future__ import annotations

import struct

from ledgerdns.dns.arena import Arena
from ledgerdns.dns.wire import COPIED_FLAGS as _COPIED
from ledgerdns.dns.wire import FLAG_QR as _FLAG_QR
from ledgerdns.dns.wire import MAX_NAME_WIRE, PROOF_OPTION_CODE, Rcode, opt_record

_COOKIE_OPTION = 10
_QD_ONLY = b"\x00\x01\x00\x00\x00\x00"  # qdcount 1, ancount 0, nscount 0
_CLASS_IN = b"\x00\x01"
_OPT_TYPE = b"\x00\x29"
_DO = 0x80  # the DO bit, in the OPT TTL's third byte

EXPIRES = struct.Struct("!I")
DIRECTORY = struct.Struct("!HH")  # qtype, offset
OFFSET = struct.Struct("!H")
BODY_HEAD = struct.Struct("!5H")  # length, flags, ancount, nscount, arcount
_REPLY_HEAD = struct.Struct("!5H")  # flags, qdcount, ancount, nscount, arcount
_OPTION = struct.Struct("!HH")

NEVER = 0
MAX_EXPIRES = 2**32 - 1
# Replies built from the table and kept by the query's bytes, so a repeat costs one dict
# lookup: about 220 bytes each, so some 11 MiB full. Dropped whole at every change, and
# when full.
RECENT_ENTRIES = 50_000


def default_applies(qtype: int) -> bool:
    """Whether a question of `qtype` may take a name's default answer.

    Not 0 or the meta types (OPT, 128-255: TSIG, transfers, ANY...), which the
    node rejects or answers its own way; every data type is alike to a lookup
    unless the name holds it (those are in the directory).
    """
    return 0 < qtype < 128 and qtype != 41 or qtype > 255



class NameTable:
    """Lower-case wire name -> blob, with the domain index that lets a block replace a domain.

    Names are written by the worker's control thread only (`replace`, `clear`,
    `set_now`); the serving thread (`answer`) reads them, and keeps the replies it
    builds in `recent` by the query's bytes. The control thread replaces `recent`
    with an empty dict after every change (`forget_recent`), and the serving
    thread takes `recent` before it reads a name: a reply built from a name
    replaced meanwhile lands in the dict already dropped, never in the new one.

    Args:
        payload: the UDP payload size the node advertises (its EDNS payload).
        recent_entries: the bound of `recent`.
    """

    def __init__(self, payload: int = 1232, recent_entries: int = RECENT_ENTRIES) -> None:
        self.names = Arena()
        self.recent: dict[bytes, bytes] = {}
        self._recent_max = max(1, recent_entries)
        # apex -> its other names, only for domains with more than their apex
        self._others: dict[bytes, tuple[bytes, ...]] = {}
        self.now_s = 0
        self._payload = payload
        self._opt = (
            opt_record(payload, Rcode.NOERROR, do=False),
            opt_record(payload, Rcode.NOERROR, do=True),
        )

    def __len__(self) -> int:
        return len(self.names)

    def replace(
        self, apex: bytes, entries: list[tuple[bytes, bytes]], *, extend: bool = False
    ) -> None:
        """Put a domain's entries in place of what it had (none: the domain is gone).

        With `extend`, add them to what the domain has: the rest of a domain too
        large for one message, after its first part (`split_names`).
        """
        names = self.names
        had = self._others.pop(apex, ())
        keep = {name for name, _ in entries}
        if extend:
            keep.update(had)
        else:
            for name in had:
                names.pop(name, None)
            if apex not in keep:
                names.pop(apex, None)
        for name, blob in entries:
            names[name] = blob
        others = tuple(name for name in keep if name != apex)
        if others:
            self._others[apex] = others

    def clear(self) -> None:
        """Forget every name."""
        self.names.clear()
        self._others.clear()
        self.forget_recent()

    def set_now(self, now_s: int) -> None:
        """Judge expiry at block time `now_s` from now on (the head's time)."""
        if now_s != self.now_s:
            self.now_s = now_s
            self.forget_recent()

    def forget_recent(self) -> None:
        """Drop every kept reply (after names changed, or the head's time moved)."""
        self.recent = {}

    def answer(self, tail: bytes) -> bytes | None:
        """The reply (after its ID) to a query (after its ID), or None when it must go up."""
        recent = self.recent  # before reading any name: see the class doc
        reply = recent.get(tail)
        if reply is not None:
            return reply
        reply = self._build(tail)
        if reply is not None:
            if len(recent) >= self._recent_max:
                # All at once: dropping the oldest one by one costs a scan over every
                # slot dropped before it (CPython's dict), 20 us a query at 50,000.
                recent.clear()
            recent[tail] = reply
        return reply

    def _build(self, tail: bytes) -> bytes | None:
        n = len(tail)
        if n < 15 or tail[0] & 0xFA or tail[2:8] != _QD_ONLY:  # QR, opcode, TC; the counts
            return None
        pos = 10
        while True:  # the question name: uncompressed labels
            length = tail[pos]
            if length == 0:
                break
            if length > 63:
                return None
            pos += 1 + length
            if pos >= n:
                return None
        end = pos + 1
        qend = end + 4
        if end - 10 > MAX_NAME_WIRE or qend > n or tail[end + 2 : qend] != _CLASS_IN:
            return None
        opt = b""
        limit = 512
        ar = tail[8:10]
        if ar == b"\x00\x01":
            opt_at = qend
            rdata = opt_at + 11
            if (
                n < rdata
                or tail[opt_at] != 0
                or tail[opt_at + 1 : opt_at + 3] != _OPT_TYPE
                or tail[opt_at + 6]  # EDNS version: only 0 is answered here
                or rdata + (tail[rdata - 2] << 8 | tail[rdata - 1]) != n
                or (rdata != n and not _plain_options(tail, rdata, n))
            ):
                return None
            payload = tail[opt_at + 3] << 8 | tail[opt_at + 4]
            limit = min(max(512, payload), self._payload)
            opt = self._opt[1 if tail[opt_at + 7] & _DO else 0]
        elif ar != b"\x00\x00" or qend != n:
            return None
        blob = self.names.get(tail[10:end].lower())
        if blob is None:
            return None
        expires_at = EXPIRES.unpack_from(blob)[0]
        if expires_at and self.now_s >= expires_at:
            return None  # lapsed: the node answers (NXDOMAIN) and the next block drops it
        qtype = tail[end : end + 2]
        d = 5
        stop = 5 + 4 * blob[4]
        while d < stop:
            if blob[d : d + 2] == qtype:
                offset = blob[d + 2] << 8 | blob[d + 3]
                break
            d += 4
        else:
            if not default_applies(tail[end] << 8 | tail[end + 1]):
                return None
            offset = blob[stop] << 8 | blob[stop + 1]
        if not offset:
            return None
        length, flags, ancount, nscount, arcount = BODY_HEAD.unpack_from(blob, offset)
        flags |= _FLAG_QR | ((tail[0] << 8 | tail[1]) & _COPIED)
        reply = (
            _REPLY_HEAD.pack(flags, 1, ancount, nscount, arcount + (1 if opt else 0))
            + tail[10:qend]
            + blob[offset + 10 : offset + 2 + length]
            + opt
        )
        if len(reply) + 2 > limit:
            return None  # the node sends the truncated form
        return reply


Names = list[tuple[bytes, bytes]]
MESSAGE_BUDGET = 96 * 1024  # bytes of entries per message down to a worker (SEQPACKET's limit)


def split_names(
    domains: list[tuple[bytes, Names]], budget: int = MESSAGE_BUDGET
) -> list[list[tuple[bytes, Names, bool]]]:
    """`domains` cut into messages of about `budget` bytes: ``[(apex, entries, extend), ...]``.

    A unix datagram socket refuses a message larger than its send buffer
    (``EMSGSIZE``; ~200 KiB by default), and a block may change thousands of
    domains. A domain larger than the budget goes as its first part (replacing)
    and the rest (``extend``), in order, so the worker ends with all of them.
    """
    messages: list[list[tuple[bytes, Names, bool]]] = []
    current: list[tuple[bytes, Names, bool]] = []
    size = 0
    for apex, entries in domains:
        part: Names = []
        part_size = 0
        extend = False
        for name, blob in entries:
            weight = len(name) + len(blob) + 16
            if part and (size + part_size + weight > budget):
                current.append((apex, part, extend))
                messages.append(current)
                current, size, part, part_size, extend = [], 0, [], 0, True
            part.append((name, blob))
            part_size += weight
        current.append((apex, part, extend))
        size += part_size + len(apex) + 16
        if size >= budget:
            messages.append(current)
            current, size = [], 0
    if current or not messages:
        messages.append(current)
    return messages


def _plain_options(tail: bytes, pos: int, end: int) -> bool:
    """Whether the OPT options are well formed and ask for nothing the node answers itself.

    A proof request goes up (`ledgerdns.dns.proof_reply`), and so does anything the
    node's reader would refuse (`wire._check_options`): a cut option, a bad COOKIE.
    Other options (a COOKIE, padding, ...) are ignored here as the node ignores them.
    """
    while pos < end:
        if pos + 4 > end:
            return False
        code, length = _OPTION.unpack_from(tail, pos)
        pos += 4 + length
        if pos > end or code == PROOF_OPTION_CODE:
            return False
        if code == _COOKIE_OPTION and not (length == 8 or 16 <= length <= 40):
            return False
    return True
