"""Verified replies kept for their TTL, never past the freshness bound of their proof.

An entry is the encoded reply to one question (name lower-cased, type, class,
whether the query had EDNS) as built from proven state, with the offsets of
its TTL fields. A hit costs a copy and a few patches: the client's ID, RD/CD,
the question spelled as the client sent it (0x20), the DO bit, and every TTL
counted down by the seconds the entry has been kept.

Over UDP a second, cheaper map answers a query whose bytes (all but the ID)
are exactly those of one answered from the cache before: the same flags, name
spelling, type and OPT record, hence the same reply but for ID and TTLs. A
stub resolver or a load generator asking the same name again hits it without
the query being parsed.

An entry lives for the smallest TTL in the reply, but never past the moment
its certified header becomes older than ``--max-staleness``: after that the
state it was built from is no longer known to be current, and the next query
fetches a fresh proof.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass

from ledgerdns.dns.result import Labels, QType
from ledgerdns.dns.wire import HEADER, HEADER_SIZE, Query, patch_reply

_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_TTL = struct.Struct("!I")
_Key = tuple[Labels, int, int, bool]  # name lower-cased, type, class, EDNS present

DEFAULT_ENTRIES = 10_000


def cache_key(query: Query) -> _Key:
    """The key of the reply to `query`."""
    return (
        tuple(label.lower() for label in query.qname),
        query.qtype,
        query.qclass,
        query.edns is not None,
    )


def ttl_fields(message: bytes) -> tuple[tuple[int, int], ...]:
    """``(offset, ttl)`` of every record's TTL field in a well-formed reply, OPT's excepted.

    Raises:
        ValueError: the message is cut short (our own replies never are).
    """
    qdcount, ancount, nscount, arcount = HEADER.unpack_from(message)[2:]
    pos = HEADER_SIZE
    for _ in range(qdcount):
        pos = _skip_name(message, pos) + 4
    out = []
    for _ in range(ancount + nscount + arcount):
        pos = _skip_name(message, pos)
        rtype, _class, ttl, rdlength = _RR_FIXED.unpack_from(message, pos)
        if rtype != QType.OPT:  # its "TTL" holds the extended rcode and flags
            out.append((pos + 4, ttl))
        pos += _RR_FIXED.size + rdlength
    if pos != len(message):
        raise ValueError("reply has bytes after its records")
    return tuple(out)


def _skip_name(message: bytes, pos: int) -> int:
    while True:
        if pos >= len(message):
            raise ValueError("name runs past the end of the reply")
        length = message[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length == 0:
            return pos + 1
        pos += 1 + length


@dataclass(frozen=True, slots=True)
class _Entry:
    full: bytes
    truncated: bytes | None
    ttls: tuple[tuple[int, int], ...]
    stored_at: float  # monotonic seconds
    expires_at: float  # monotonic seconds


@dataclass(frozen=True, slots=True)
class _Exact:
    reply: bytes  # the reply made for exactly these query bytes (ID and TTLs to patch)
    ttls: tuple[tuple[int, int], ...]  # its TTL fields: offset, TTL when first stored
    stored_at: float
    expires_at: float


class VerifiedCache:
    """Verified replies by question, least recently used out first.

    Args:
        entries: the most replies kept.
    """

    def __init__(self, entries: int = DEFAULT_ENTRIES) -> None:
        self._max = entries
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._exact: dict[bytes, _Exact] = {}  # UDP query bytes after the ID -> reply
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def store(
        self, query: Query, full: bytes, truncated: bytes | None, *, now: float, fresh_until: float
    ) -> float:
        """Keep the reply to `query` for its smallest TTL, at most until `fresh_until`.

        Args:
            now: the monotonic clock now, in seconds.
            fresh_until: when (same clock) the proof behind the reply stops being fresh.

        Returns:
            How many seconds it is kept (0: not kept).
        """
        ttls = ttl_fields(full)
        lifetime = min([fresh_until - now, *(ttl for _, ttl in ttls)])
        if lifetime <= 0 or self._max <= 0:
            return 0.0
        key = cache_key(query)
        self._entries[key] = _Entry(full, truncated, ttls, now, now + lifetime)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return lifetime

    def lookup_exact(self, data: bytes, *, now: float) -> bytes | None:
        """The reply to the UDP query `data` if the same bytes (but the ID) were answered before.

        Args:
            data: the query as received.
            now: the monotonic clock now, in seconds.
        """
        hot = self._exact.get(data[2:])
        if hot is None:
            return None
        if now >= hot.expires_at:
            del self._exact[data[2:]]
            return None
        self.hits += 1
        out = bytearray(hot.reply)
        out[:2] = data[:2]
        age = int(now - hot.stored_at)
        for offset, ttl in hot.ttls:
            _TTL.pack_into(out, offset, max(0, ttl - age))
        return bytes(out)

    def lookup(
        self, query: Query, *, now: float, limit: int, udp_bytes: bytes | None = None
    ) -> bytes | None:
        """The kept reply to `query` made its own (ID, case, DO, TTLs aged), or None.

        Args:
            now: the monotonic clock now, in seconds.
            limit: the most bytes the reply may take (over UDP; the truncated
                form goes out when the whole one does not fit).
            udp_bytes: the query as received over UDP: the reply is then also
                kept for `lookup_exact`.
        """
        key = cache_key(query)
        entry = self._entries.get(key)
        if entry is None or now >= entry.expires_at:
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        ttls: tuple[tuple[int, int], ...] = ()
        if len(entry.full) > limit and entry.truncated is not None:
            reply = patch_reply(entry.truncated, query)
        else:
            out = bytearray(entry.full)
            age = int(now - entry.stored_at)
            for offset, ttl in entry.ttls if age else ():
                _TTL.pack_into(out, offset, max(0, ttl - age))
            reply, ttls = patch_reply(bytes(out), query), entry.ttls
        if udp_bytes is not None:
            if len(self._exact) >= self._max:
                self._exact.clear()  # rare: a flood of distinct spellings; start over
            self._exact[udp_bytes[2:]] = _Exact(reply, ttls, entry.stored_at, entry.expires_at)
        return reply

    def clear(self) -> None:
        """Forget every reply."""
        self._entries.clear()
        self._exact.clear()
