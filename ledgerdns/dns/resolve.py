"""The pure lookup: a question against the finalized ledger, answered as a `Resolution`.

Names under a ledger TLD are answered authoritatively from finalized state
only; anything else is refused (this is not a recursive resolver). The TLD
itself is answered as a zone of its own (SOA and NS synthesized, everything
else NODATA), and a name under it whose domain is not registered, expired or
released is NXDOMAIN with the TLD's SOA. See docs/dns.md.
"""

from __future__ import annotations

from typing import Protocol

from chain.block import BlockHeader
from chain.errors import InvalidUpdate, NotFound
from chain.names import validate_domain
from chain.params import ChainParams
from chain.state import DomainState
from ledgerdns.dns.result import (
    CLASS_IN,
    REFUSED,
    RR,
    Labels,
    Outcome,
    QType,
    Resolution,
    labels_of,
)
from ledgerdns.dns.zone import Zone, ZoneConfig, make_ns, make_soa

# Zone transfers are answered by `ledgerdns.dns.xfr` (with access control), never here.
_REFUSED_TYPES = frozenset({QType.AXFR, QType.IXFR})


class ZoneSource(Protocol):
    """The finalized ledger as the DNS face reads it (`chain.ledger.Ledger` is one)."""

    params: ChainParams

    @property
    def head(self) -> BlockHeader:
        """The header of the last finalized block."""

    def get_domain(self, domain: str) -> DomainState | None:
        """A domain's finalized state, or None if it was never registered."""

    def get_tx_location(self, txid: bytes) -> tuple[int, int]:
        """A finalized transaction's ``(height, index)``; raises `NotFound` if unknown."""


def zone_serial(source: ZoneSource, state: DomainState) -> int:
    """A domain zone's SOA serial: the height of the block holding its latest transaction.

    It follows the finalized height but moves only when the domain changes, so
    a secondary refreshes (and is sent NOTIFY) only for zones that changed. A
    genesis domain never updated has serial 0. Heights stay below 2**31 in any
    real chain (68 years at a block a second), so serials compare as plain
    integers and RFC 1982 serial arithmetic never has to wrap.
    """
    try:
        return source.get_tx_location(state.head)[0]
    except NotFound:
        if state.seq == 0:
            return 0  # a genesis domain: its head is the genesis anchor, not a transaction
        raise


class Resolver:
    """Answers questions from a `ZoneSource`. Pure: reads the ledger, no I/O of its own."""

    __slots__ = ("_config", "_last_soa", "_source", "_tlds")

    def __init__(self, source: ZoneSource, config: ZoneConfig) -> None:
        self._source = source
        self._config = config
        self._last_soa: tuple[Labels, int, RR] | None = None
        # Longest first: with TLDs "p2p" and "co.p2p", "x.co.p2p" is under "co.p2p".
        self._tlds = sorted((labels_of(t) for t in source.params.tlds), key=len, reverse=True)

    @property
    def config(self) -> ZoneConfig:
        """What the synthesized SOA and NS say."""
        return self._config

    def resolve(
        self, qname: Labels, qtype: int, qclass: int, zone: Zone | None = None
    ) -> Resolution:
        """Answer one question.

        Args:
            qname: the question name, lower-cased (see `ledgerdns.dns.result`).
            qtype: the question type (any number).
            qclass: the question class; only IN is answered.
            zone: the active zone of `qname`'s domain, when the caller holds it
                (from `zone_for`, at this head): saves reading and indexing it again.
        """
        if qclass != CLASS_IN or qtype in _REFUSED_TYPES:
            return REFUSED
        tld = self.tld_of(qname)
        if tld is None:
            return REFUSED
        head = self._source.head
        if qname == tld:
            return self._tld_apex(tld, qtype, head.height)
        domain_labels = qname[len(qname) - len(tld) - 1 :]
        tld_soa = self._tld_soa(tld, head.height)
        if zone is not None and zone.apex == domain_labels:
            return zone.lookup(qname, qtype, tld_soa)
        state = self._active_state(domain_labels, head.time_ms // 1000)
        if state is None:
            return Resolution(
                outcome=Outcome.NXDOMAIN,
                authoritative=True,
                authority=(tld_soa,),
                serial_bound=True,
            )
        return Zone(state, zone_serial(self._source, state), self._config).lookup(
            qname, qtype, tld_soa
        )

    def _tld_soa(self, tld: Labels, height: int) -> RR:
        """A TLD's negative SOA at `height` (the last one is kept: lookups in a row share it)."""
        last = self._last_soa
        if last is not None and last[0] == tld and last[1] == height:
            return last[2]
        soa = make_soa(tld, height, self._config, negative=True)
        self._last_soa = (tld, height, soa)
        return soa

    def unregistered_tld(self, qname: Labels) -> Labels | None:
        """The TLD `qname` (lower-case) lies under if its domain is not an active one, else None.

        For such a name every question of one type gets the same NXDOMAIN
        (the TLD's SOA in authority), whatever the name: the answer cache keeps
        one encoded copy per TLD and type instead of one per name.
        """
        tld = self.tld_of(qname)
        if tld is None or len(qname) == len(tld):
            return None
        domain = qname[len(qname) - len(tld) - 1 :]
        if self._active_state(domain, self._source.head.time_ms // 1000) is not None:
            return None
        return tld

    def zone_at(self, apex: Labels) -> Zone | None:
        """The active domain zone whose apex is exactly `apex` (lower-case), or None."""
        tld = self.tld_of(apex)
        if tld is None or len(apex) != len(tld) + 1:
            return None
        state = self._active_state(apex, self._source.head.time_ms // 1000)
        if state is None:
            return None
        return Zone(state, zone_serial(self._source, state), self._config)

    def zone_for(self, state: DomainState) -> Zone | None:
        """`state` as a zone if it is active at the head's time, else None."""
        if not state.is_active(self._source.head.time_ms // 1000):
            return None
        return Zone(state, zone_serial(self._source, state), self._config)

    def is_tld(self, name: Labels) -> bool:
        """Whether `name` (lower-case) is one of the ledger's TLDs."""
        return name in self._tlds

    def tld_of(self, qname: Labels) -> Labels | None:
        """The ledger TLD `qname` (lower-case) lies under, or None if it is outside the ledger."""
        for tld in self._tlds:
            if len(qname) >= len(tld) and qname[len(qname) - len(tld) :] == tld:
                return tld
        return None

    def _active_state(self, domain: Labels, now_s: int) -> DomainState | None:
        try:
            name = b".".join(domain).decode("ascii")
            validate_domain(name, self._source.params.tlds)
        except (UnicodeDecodeError, InvalidUpdate):
            return None  # not a name the ledger could hold (e.g. "a.b" in one label)
        state = self._source.get_domain(name)
        if state is None or not state.is_active(now_s):
            return None
        return state

    def _tld_apex(self, tld: Labels, qtype: int, serial: int) -> Resolution:
        """A TLD answered as a zone that holds only its SOA and NS."""
        rrsets: dict[int, tuple[RR, ...]] = {
            QType.SOA: (make_soa(tld, serial, self._config),),
            QType.NS: make_ns(tld, self._config),
        }
        if qtype == QType.ANY:
            answer: tuple[RR, ...] = tuple(rr for t in sorted(rrsets) for rr in rrsets[t])
        elif qtype in rrsets:
            answer = rrsets[qtype]
        else:
            return Resolution(
                outcome=Outcome.NODATA,
                authoritative=True,
                authority=(make_soa(tld, serial, self._config, negative=True),),
                serial_bound=True,
            )
        return Resolution(
            outcome=Outcome.ANSWER, authoritative=True, answer=answer, serial_bound=True
        )
