"""The node's side of the workers' name table: each active domain's answers, encoded as the worker reads them.

See `ledgerdns.dns.nametable` for the format and why. Every entry is what the
node's own lookup (`AnswerBuilder.lookup`, over `Zone.lookup`) answers, never a
second implementation of it: for each name of a zone, one lookup per type the
name answers its own way, and one for every other type (the default). A lookup
depends on the question type only through the types the name (or, along a
CNAME, the zone) holds, DS and ANY (see `Zone.lookup`), so a probe type the zone
does not hold stands for all the others.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from chain.state import DomainState
from ledgerdns.dns.answer import AnswerBuilder
from ledgerdns.dns.nametable import (
    DIRECTORY,
    EXPIRES,
    MAX_EXPIRES,
    OFFSET,
    default_applies,
)
from ledgerdns.dns.result import (
    CLASS_IN,
    RR,
    Labels,
    Outcome,
    QType,
    Resolution,
    labels_of,
    name_to_wire,
)
from ledgerdns.dns.wire import FLAG_AA, Rcode
from ledgerdns.dns.zone import Zone

log = logging.getLogger(__name__)

Entries = list[tuple[bytes, bytes]]  # (lower-case wire name, blob)
DomainEntries = tuple[bytes, Entries]  # (apex wire name, its entries; none: gone)

_RR_FIXED = struct.Struct("!HHIH")
_POINTER_TO_QUESTION = b"\xc0\x0c"
# Answered apart from the default even where the name holds none: DS (the parent's at an
# apex or a cut) and ANY (the lowest type held, RFC 8482).
_ALWAYS_OWN = (QType.DS, QType.ANY)
# Left to the node (offset 0) without a lookup: an apex's SOA, the one answer per domain that
# repeats its serial at full size; the node answers it from its cache, and the worker then
# keeps that reply. (NODATA answers carry the same SOA with the negative TTL, and are kept.)
_LEFT_TO_THE_NODE = frozenset({QType.SOA})
_PROBES = range(65280, 65535)  # private-use types: one the zone does not hold is the probe
PAGE = 200
MAX_BLOB = 65_535  # domains read per batch when filling a worker


@runtime_checkable
class DomainLister(Protocol):
    """A ledger that lists its domains (`chain.ledger.Ledger` does)."""

    def domains(self, *, start: str = "", limit: int = 100) -> list[DomainState]:
        """Domain states in name order, from `start` (every state, active or not)."""


def encode(res: Resolution, qname: Labels) -> bytes:
    """A lookup's reply after the question: flags, counts and records (see the module doc)."""
    flags = FLAG_AA if res.authoritative else 0
    if res.outcome is Outcome.NXDOMAIN:
        flags |= Rcode.NXDOMAIN
    records = b"".join(
        _record(rr, qname)
        for section in (res.answer, res.authority, res.additional)
        for rr in section
    )
    head = struct.pack("!4H", flags, len(res.answer), len(res.authority), len(res.additional))
    return head + records


def _record(rr: RR, qname: Labels) -> bytes:
    owner = _POINTER_TO_QUESTION if rr.name == qname else name_to_wire(rr.name)
    return owner + _RR_FIXED.pack(rr.rtype, rr.rclass, rr.ttl, len(rr.rdata)) + rr.rdata


def _kept(res: Resolution) -> bool:
    """Whether a worker may hold this answer until the domain changes or lapses."""
    return res.outcome is not Outcome.REFUSED and not res.serial_bound


class NameTableSource:
    """Builds name-table entries from the finalized ledger.

    Args:
        builder: the node's answer builder (its lookup and its ledger).
        listing: the same ledger, listing its domains.
    """

    def __init__(self, builder: AnswerBuilder, listing: DomainLister) -> None:
        self._builder = builder
        self._listing = listing
        self._resolver = builder.resolver

    def now_s(self) -> int:
        """The head's block time in seconds: what "lapsed" is measured against."""
        return self._builder.source.head.time_ms // 1000

    def changed(self, domains: Iterable[str]) -> list[DomainEntries]:
        """The entries of each named domain as they are now (none for one gone or lapsed)."""
        out: list[DomainEntries] = []
        source = self._builder.source
        for domain in sorted(domains):
            state = source.get_domain(domain)
            out.append((name_to_wire(labels_of(domain)), self._safe_entries(state)))
        return out

    def batches(self, page: int = PAGE) -> Iterator[list[DomainEntries]]:
        """Every active domain's entries, `page` domains at a time, in name order.

        Each batch is read when asked for: a consumer that sends one before
        asking for the next sends nothing older than the blocks applied meanwhile
        (and those blocks send their own domains' entries after it).
        """
        start = ""
        skip = False
        while True:
            states = self._listing.domains(start=start, limit=page + skip)
            if skip:
                states = states[1:]
            if not states:
                return
            batch = []
            for state in states:
                entries = self._safe_entries(state)
                if entries:
                    batch.append((name_to_wire(labels_of(state.domain)), entries))
            yield batch
            start, skip = states[-1].domain, True

    def _safe_entries(self, state: DomainState | None) -> Entries:
        """`entries`, or none when building them fails: the node then answers the domain.

        A bug here must neither stop a block's delivery nor leave a worker with
        the domain's old answers, so it is logged and the domain left out.
        """
        if state is None:
            return []
        try:
            return self.entries(state)
        except Exception:
            log.error("name table entries failed domain=%s", state.domain, exc_info=True)
            return []

    def entries(self, state: DomainState) -> Entries:
        """One domain's entries: one per name of its zone; none when it is not active."""
        zone = self._resolver.zone_for(state)
        if zone is None:
            return []
        expires_at = min(state.expires_at, 2**32 - 1) if state.expires_at else 0
        held = set().union(*(zone.types_at(name) for name in zone.names))
        probe = next(t for t in _PROBES if t not in held)
        out = []
        for name in sorted(zone.names):
            blob = self._blob(zone, name, held, probe, expires_at)
            if len(blob) <= MAX_BLOB:  # offsets are 16 bits; a larger name's answers go up
                out.append((name_to_wire(name), blob))
        return out

    def _blob(self, zone: Zone, name: Labels, held: set[int], probe: int, expires_at: int) -> bytes:
        here = zone.types_at(name)
        own = set(here) | set(_ALWAYS_OWN)
        if QType.CNAME in here:
            own |= held  # the chain's answer depends on the types at its targets
        # An apex's DS is left to the node without a lookup: NODATA with the TLD's SOA (its
        # serial the head height), or the owner's DS beside a delegation: rare either way.
        left = _LEFT_TO_THE_NODE | {QType.DS} if name == zone.apex else _LEFT_TO_THE_NODE
        answers = {t: self._builder.lookup(name, t, CLASS_IN, zone) for t in own - left}
        answers[probe] = self._builder.lookup(name, probe, CLASS_IN, zone)
        # A type the default would wrongly answer stays in the directory (offset 0: the
        # node answers it); one the default never takes needs no entry when left to the node.
        listed = sorted(
            t for t in own if default_applies(t) or (t in answers and _kept(answers[t]))
        )
        bodies: dict[bytes, int] = {}
        chunks: list[bytes] = []
        directory_size = 5 + DIRECTORY.size * len(listed) + OFFSET.size

        def place(qtype: int) -> int:
            res = answers.get(qtype)
            if res is None or not _kept(res):
                return 0
            body = encode(res, name)
            offset = bodies.get(body)
            if offset is None:
                offset = directory_size + sum(len(c) for c in chunks)
                bodies[body] = offset
                chunks.append(struct.pack("!H", len(body)) + body)
            return offset

        directory = b"".join(DIRECTORY.pack(t, place(t)) for t in listed)
        default = place(probe)
        blob = (
            EXPIRES.pack(min(expires_at, MAX_EXPIRES))
            + bytes((len(listed),))
            + directory
            + OFFSET.pack(default)
            + b"".join(chunks)
        )
        return blob
