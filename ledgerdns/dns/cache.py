"""The hot path: wire query in, wire reply out, with encoded replies cached.

A reply is cached per (question name lower-cased, type, class, EDNS or not),
whole and truncated, as bytes and scalars only (one is kept per name asked);
serving a hit copies it and patches in the ID, the RD and CD bits and the
question name as the client spelled it (`wire.patch_reply`).
The UDP size limit is not part of the key: the size decides at serve time
whether the whole or the truncated form goes out.

Invalidation after a block (see docs/dns.md): a reply goes stale if it holds
a TLD's SOA (serial_bound: that serial is the head height), if its domain
changed in the block (a domain zone's own SOA serial moves only then), or if
its domain expired by the new block time. Everything else (positive answers of
unchanged domains, refusals) survives. As a safety net, if the ledger's height
moves without `invalidate` being called, the whole cache is cleared.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Collection

from ledgerdns.dns.answer import AnswerBuilder, Reply
from ledgerdns.dns.result import Labels
from ledgerdns.dns.wire import Query, Rejection, bare_reply, parse_query, patch_reply

log = logging.getLogger(__name__)

MAX_TCP_MESSAGE = 65535
# Bound of the reply cache: entries, each about 330 bytes for a one-record
# answer (key, `Reply`, its bytes, the ordered-dict slot), so 16 MiB or so full.
DEFAULT_MAX_ENTRIES = 50_000
# The bound when UDP workers front the node (`DnsServer` picks it): each worker keeps
# its own table of every reply it sent (`udpworker.ReplyTable`), so the node sees a
# question again only over TCP, from another worker, or after a worker lost its table;
# 50,000 here was one more copy of each name asked (~330 B per name, issue 21).
# 1,024 entries: about 330 KiB full.
WORKER_FRONTED_ENTRIES = 1_024


def _is_stale(reply: Reply, changed: Collection[str], now_s: int) -> bool:
    if not reply.cacheable or reply.serial_bound:
        return True
    if reply.zone is not None and reply.zone in changed:
        return True
    return reply.expires_at != 0 and reply.expires_at <= now_s


def _key(query: Query) -> bytes:
    """The cache key: the question name lower-cased, then type, class and EDNS or not.

    One bytes object rather than a tuple: a key is kept per name asked.
    """
    # bytes.lower() is DNS case folding; length bytes (<= 63) are below b"A".
    tail = (query.qtype << 17) | (query.qclass << 1) | (query.edns is not None)
    return query.qname_wire.lower() + tail.to_bytes(5, "big")


class AnswerCache:
    """Answers DNS messages from the ledger, keeping encoded replies for repeat questions.

    Args:
        builder: builds replies on a miss.
        max_entries: the most cached replies (least recently used go first).
    """

    __slots__ = ("_builder", "_entries", "_height", "_max", "_negatives", "hits", "misses")

    def __init__(self, builder: AnswerBuilder, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._builder = builder
        self._entries: OrderedDict[bytes, Reply] = OrderedDict()
        # NXDOMAIN for names under a TLD whose domain is not registered, per (TLD, type, EDNS,
        # name length):
        # they hold the TLD's SOA, so every block makes them stale.
        self._negatives: dict[tuple[Labels, int, bool, int], Reply] = {}
        self._max = max_entries
        self._height = builder.source.head.height
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    # -- public API --

    def answer(self, data: bytes, *, tcp: bool) -> bytes | None:
        """The reply to one DNS message, or None if none is due.

        Never raises for any input: malformed messages get FORMERR (or are
        dropped when not even the header is there), responses are dropped.

        Args:
            data: the message (over TCP, without its length prefix).
            tcp: whether it came over TCP (no size limit but 65535).
        """
        return self.lookup(parse_query(data), tcp=tcp)[0]

    def lookup(
        self, query: Query | Rejection | None, *, tcp: bool
    ) -> tuple[bytes | None, Reply | None]:
        """The reply to a parsed message (as `answer`), and the cached `Reply` it came from.

        The `Reply` is None when the reply is not one the cache keeps (a
        rejection, an unusual message shape): then it must not be reused for
        another message with the same bytes either.
        """
        if query is None:
            return None, None
        if isinstance(query, Rejection):
            log.debug("rejected query id=%d rcode=%s", query.id, query.rcode.name)
            return bare_reply(query, payload=self._builder.edns_payload), None
        limit = MAX_TCP_MESSAGE if tcp else query.udp_limit(self._builder.edns_payload)
        reply, cached = self._reply(query)
        return patch_reply(reply.fitting(limit), query), (reply if cached else None)

    def invalidate(self, changed_domains: Collection[str]) -> None:
        """Drop what a new block made stale (call after each block is applied).

        Args:
            changed_domains: the domains the block's transactions touched.
        """
        head = self._builder.source.head
        now_s = head.time_ms // 1000
        before = len(self._entries)
        self._entries = OrderedDict(
            (key, reply)
            for key, reply in self._entries.items()
            if not _is_stale(reply, changed_domains, now_s)
        )
        self._height = head.height
        self._negatives.clear()
        log.debug(
            "dns cache invalidated height=%d dropped=%d kept=%d",
            head.height,
            before - len(self._entries),
            len(self._entries),
        )

    def clear(self) -> None:
        """Drop every cached reply."""
        self._entries.clear()
        self._negatives.clear()
        self._height = self._builder.source.head.height

    # -- internals --

    def _unregistered(self, query: Query, tld: Labels) -> Reply:
        """NXDOMAIN under `tld`: one encoded reply per (TLD, type, EDNS, name length).

        `patch_reply` writes the client's question name over the shared copy's.
        Names after the question may be compression pointers to offsets past it,
        so a reply is only reused for a question name of the same length. Made-up
        types and lengths are many: the table is bounded like the entries.
        """
        key = (tld, query.qtype, query.edns is not None, len(query.qname_wire))
        base = self._negatives.get(key)
        if base is None:
            if len(self._negatives) >= self._max:
                self._negatives.clear()
            base = self._negatives[key] = self._builder.respond(query)
        return base

    def _reply(self, query: Query) -> tuple[Reply, bool]:
        if not query.plain or (query.edns is not None and query.edns.version != 0):
            return self._builder.respond(query), False  # unusual shapes are not worth a slot
        if self._builder.source.head.height != self._height:
            self.clear()  # the ledger moved and nobody told us what changed
        key = _key(query)
        entries = self._entries
        reply = entries.get(key)
        if reply is not None:
            entries.move_to_end(key)
            self.hits += 1
            return reply, True
        self.misses += 1
        tld = self._builder.unregistered_tld(query)
        if tld is not None:
            # Not kept per name (nor by the UDP workers): a flood of made-up names must
            # not push out the answers people ask for again and again.
            return self._unregistered(query, tld), False
        reply = self._builder.respond(query)
        entries[key] = reply
        if len(entries) > self._max:
            entries.popitem(last=False)
        return reply, True
