"""One ledger domain as a DNS zone: its records indexed for lookup, SOA and NS synthesized.

Every active domain (``label.tld``) is its own zone. Its apex gets a
synthesized SOA (serial = the height of the block holding the domain's latest
transaction, see `resolve.zone_serial`) and, unless the owner set NS
records at ``@`` (which delegates the whole domain away), a synthesized NS
naming this server. Lookups follow RFC 1034 4.3.2 with RFC 4592 wildcards and
RFC 2308 negative answers; see docs/dns.md.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from chain.errors import ConfigError, InvalidUpdate
from chain.names import validate_absolute_name
from chain.state import DomainState
from ledgerdns.dns.result import (
    RR,
    Labels,
    Outcome,
    QType,
    Resolution,
    is_subdomain,
    labels_of,
    name_to_wire,
)

MAX_CNAME_CHAIN = 8
DEFAULT_SERVER_NAME = "ns.ledgerdns.invalid"
_WILDCARD = b"*"
# Where the target name starts in each type's rdata whose target gets
# additional A/AAAA records (an empty SVCB/HTTPS target is the owner itself).
_TARGET_OFFSET: dict[int, int] = {
    QType.NS: 0,
    QType.MX: 2,
    QType.SRV: 6,
    QType.SVCB: 2,
    QType.HTTPS: 2,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneConfig:
    """What the synthesized SOA and NS records say.

    Raises:
        ConfigError: a TTL or timer out of range, or a server name that is not a host name.

    Attributes:
        server_name: this server's host name: the synthesized NS target and the
            SOA MNAME when the network has no nameserver set. The default is
            under ``.invalid`` (RFC 6761) on purpose: set it to the node's public name.
        nameservers: the network's public nameserver set from genesis
            (`chain.params.ChainParams.nameservers`): when given, the NS RRset
            synthesized at every apex, its first name the SOA MNAME, so every
            node answers the same NS and SOA whatever its own name.
        soa_ttl: TTL of the SOA in positive answers.
        negative_ttl: the SOA MINIMUM field; negative answers carry
            ``min(soa_ttl, negative_ttl)`` (RFC 2308 section 3).
        ns_ttl: TTL of the synthesized apex NS.
        refresh, retry, expire: SOA timers, what a secondary transferring the
            zone (`ledgerdns.dns.xfr`) follows between NOTIFYs.
    """

    server_name: str = DEFAULT_SERVER_NAME
    nameservers: tuple[str, ...] = ()
    soa_ttl: int = 300
    negative_ttl: int = 60
    ns_ttl: int = 3600
    refresh: int = 3600
    retry: int = 600
    expire: int = 604800

    def __post_init__(self) -> None:
        for key in ("soa_ttl", "negative_ttl", "ns_ttl", "refresh", "retry", "expire"):
            value = getattr(self, key)
            if type(value) is not int or not 0 <= value <= 2**31 - 1:
                raise ConfigError(f"must be an integer in 0..2**31-1, not {value!r}", key=key)
        name = self.server_name.removesuffix(".").lower()
        try:
            validate_absolute_name(name)
        except InvalidUpdate as exc:
            raise ConfigError(f"not a host name: {exc.args[0]}", key="server_name") from None
        object.__setattr__(self, "server_name", name)
        for i, ns in enumerate(self.nameservers):
            try:
                validate_absolute_name(ns)
            except InvalidUpdate as exc:
                raise ConfigError(
                    f"not a host name: {exc.args[0]}", key=f"nameservers[{i}]"
                ) from None

    @property
    def ns_names(self) -> tuple[str, ...]:
        """The synthesized NS targets: the network's set, or this server's name."""
        return self.nameservers or (self.server_name,)


@functools.lru_cache(maxsize=16)
def _host_wire(name: str) -> bytes:
    return name_to_wire(labels_of(name))


def make_soa(apex: Labels, serial: int, config: ZoneConfig, *, negative: bool = False) -> RR:
    """The synthesized SOA of `apex` (TTL lowered for negative answers, RFC 2308)."""
    rdata = (
        _host_wire(config.ns_names[0])
        + name_to_wire((b"hostmaster", *apex))
        + struct.pack(
            "!5I",
            serial % 2**32,
            config.refresh,
            config.retry,
            config.expire,
            config.negative_ttl,
        )
    )
    ttl = min(config.soa_ttl, config.negative_ttl) if negative else config.soa_ttl
    return RR(apex, QType.SOA, ttl, rdata)


def make_ns(apex: Labels, config: ZoneConfig) -> tuple[RR, ...]:
    """The synthesized NS RRset of `apex`: the network's nameservers, or this server."""
    return tuple(RR(apex, QType.NS, config.ns_ttl, _host_wire(name)) for name in config.ns_names)


def target_of(rdata: bytes, offset: int) -> Labels:
    """The uncompressed name at `offset` in canonical rdata (NS, CNAME, MX, SRV, SVCB)."""
    labels: list[bytes] = []
    while rdata[offset]:
        length = rdata[offset]
        labels.append(rdata[offset + 1 : offset + 1 + length])
        offset += 1 + length
    return tuple(labels)


def _glue_targets(ns_set: Iterable[RR]) -> list[Labels]:
    out: list[Labels] = []
    for rr in ns_set:
        target = target_of(rr.rdata, 0)
        if target not in out:
            out.append(target)
    return out


class Zone:
    """One active domain's records, indexed by owner name, answering lookups.

    Built per lookup from a `DomainState` (at most a few dozen records); the
    answer cache in front of it is what keeps repeated questions cheap.
    """

    __slots__ = (
        "_apex",
        "_config",
        "_cuts",
        "_delegated",
        "_names",
        "_rrsets",
        "_serial",
        "_state",
    )

    def __init__(self, state: DomainState, serial: int, config: ZoneConfig) -> None:
        apex = labels_of(state.domain)
        rrsets: dict[Labels, dict[int, list[RR]]] = {}
        for record in state.records:
            owner = apex if record.name == "@" else labels_of(record.name) + apex
            rr = RR(owner, int(record.rtype), record.ttl, record.rdata)
            rrsets.setdefault(owner, {}).setdefault(rr.rtype, []).append(rr)
        self._delegated = QType.NS in rrsets.get(apex, {})
        apex_sets = rrsets.setdefault(apex, {})
        apex_sets[QType.SOA] = [make_soa(apex, serial, config)]
        apex_sets.setdefault(QType.NS, list(make_ns(apex, config)))
        names: set[Labels] = set()
        for owner in rrsets:
            for depth in range(len(apex), len(owner) + 1):
                names.add(owner[len(owner) - depth :])
        self._apex = apex
        self._config = config
        self._serial = serial
        self._state = state
        self._rrsets = {
            name: {t: tuple(s) for t, s in sets.items()} for name, sets in rrsets.items()
        }
        self._names = frozenset(names)
        self._cuts = frozenset(
            name for name, sets in rrsets.items() if QType.NS in sets and name != apex
        )

    # -- public API --

    @property
    def apex(self) -> Labels:
        """The zone's apex name."""
        return self._apex

    @property
    def serial(self) -> int:
        """The SOA serial."""
        return self._serial

    @property
    def state(self) -> DomainState:
        """The domain state the zone was built from."""
        return self._state

    @property
    def names(self) -> frozenset[Labels]:
        """Every name that exists in the zone: owners, the apex and empty non-terminals."""
        return self._names

    def types_at(self, name: Labels) -> frozenset[int]:
        """The types of the RRsets owned by `name` (empty for a name that owns none)."""
        return frozenset(self._rrsets.get(name, ()))

    def rrs(self) -> list[RR]:
        """Every record of the zone, SOA first: what a transfer sends (RFC 5936).

        The owner's records (those below a cut or under the whole-domain NS too:
        a secondary holds them as the primary does) plus the synthesized SOA and,
        unless the owner set NS at the apex, the synthesized NS.
        """
        out = list(self._rrsets[self._apex][QType.SOA])
        for sets in self._rrsets.values():
            for rtype, rrs in sets.items():
                if rtype != QType.SOA:
                    out.extend(rrs)
        return out

    def lookup(self, qname: Labels, qtype: int, parent_soa: RR) -> Resolution:
        """Answer `qtype` at `qname` (lower-case, at or below the apex).

        A pure function of the zone's state and the question.

        Args:
            qname: the question name.
            qtype: the question type.
            parent_soa: the TLD's negative SOA, for a DS question at the apex,
                which the TLD zone answers (RFC 4035 3.1.4.1).
        """
        if qtype == QType.DS and qname == self._apex:
            return self._apex_ds(parent_soa)
        cut = self._cut_above(qname)
        if cut is not None:
            if cut == qname and qtype == QType.DS:  # the parent side of the cut: ours
                ds = self._rrsets[cut].get(QType.DS)
                if ds:
                    return self._positive(list(ds))
                return self._result(Outcome.NODATA, (), (self._negative_soa(),))
            return self._referral(cut)
        answer: list[RR] = []
        name = qname
        seen = {name}
        for _ in range(MAX_CNAME_CHAIN):
            rrsets = self._find(name)
            if rrsets is None:
                return self._negative(Outcome.NXDOMAIN, answer)
            if qtype == QType.ANY and rrsets:
                answer.extend(rr for rtype in sorted(rrsets) for rr in rrsets[rtype])
                return self._positive(answer, qtype)
            if qtype in rrsets:
                answer.extend(rrsets[qtype])
                return self._positive(answer, qtype)
            cname = rrsets.get(QType.CNAME)
            if cname is None or qtype == QType.CNAME:
                return self._negative(Outcome.NODATA, answer)
            answer.extend(cname)
            target = target_of(cname[0].rdata, 0)
            # Chase only inside this zone, never into a delegation, never in a loop:
            # the resolver follows the rest (RFC 1034 4.3.2 step 3a).
            if not is_subdomain(target, self._apex) or target in seen:
                break
            if self._cut_above(target) is not None:
                break
            seen.add(target)
            name = target
        return self._positive(answer)

    def _apex_ds(self, parent_soa: RR) -> Resolution:
        """DS at the apex: the TLD zone's data, which this server serves too.

        An owner who delegated the domain (NS at ``@``) to their own
        DNSSEC-signed servers puts its DS records at ``@``: they are answered
        here, with AA, as the TLD's authoritative servers answer a child's DS.
        Without DS, NODATA with the TLD's SOA (whose serial is the finalized
        height: stale after any block).
        """
        ds = self._rrsets[self._apex].get(QType.DS)
        if ds:
            return self._positive(list(ds))
        return self._result(Outcome.NODATA, (), (parent_soa,), serial_bound=True)

    # -- finding names --

    def _cut_above(self, name: Labels) -> Labels | None:
        """The highest delegation at or above `name` (the apex itself if delegated)."""
        if self._delegated:
            return self._apex
        if not self._cuts:
            return None
        for depth in range(len(self._apex) + 1, len(name) + 1):
            ancestor = name[len(name) - depth :]
            if ancestor in self._cuts:
                return ancestor
        return None

    def _find(self, name: Labels) -> dict[int, tuple[RR, ...]] | None:
        """The RRsets at `name`: its own, ``{}`` for an empty non-terminal,
        synthesized from a wildcard (RFC 4592), or None if it does not exist."""
        found = self._rrsets.get(name)
        if found is not None:
            return found
        if name in self._names:
            return {}  # an empty non-terminal: NODATA, not NXDOMAIN
        encloser = name[1:]
        while encloser not in self._names:
            encloser = encloser[1:]  # ends at the apex, which is always in _names
        source = self._rrsets.get((_WILDCARD, *encloser))
        if source is None:
            return None
        return {
            rtype: tuple(RR(name, rr.rtype, rr.ttl, rr.rdata) for rr in rrs)
            for rtype, rrs in source.items()
        }

    # -- building results --

    def _negative_soa(self) -> RR:
        return make_soa(self._apex, self._serial, self._config, negative=True)

    def _result(
        self,
        outcome: Outcome,
        answer: Iterable[RR] = (),
        authority: Iterable[RR] = (),
        additional: Iterable[RR] = (),
        *,
        serial_bound: bool = False,
    ) -> Resolution:
        return Resolution(
            outcome=outcome,
            authoritative=outcome is not Outcome.REFERRAL,
            answer=tuple(answer),
            authority=tuple(authority),
            additional=tuple(additional),
            zone=self._state.domain,
            serial_bound=serial_bound,
            expires_at=self._state.expires_at,
        )

    # The zone's own SOA moves only when the domain changes, which stales the
    # reply through `zone` (cache._is_stale): no serial_bound for it.

    def _positive(self, answer: list[RR], qtype: int = 0) -> Resolution:
        additional = () if qtype == QType.ANY else self._additional(answer)
        return self._result(Outcome.ANSWER, answer, (), additional)

    def _additional(self, answer: list[RR]) -> list[RR]:
        """The in-zone A/AAAA of the MX, SRV, NS, SVCB and HTTPS targets in `answer`.

        As BIND adds them (RFC 1034 4.3.2 step 6; RFC 9460 4.3 for SVCB): only
        names this zone answers for with authority, never below a zone cut
        (glue is not data), never a record already in the answer.
        """
        out: list[RR] = []
        seen: set[Labels] = set()
        for rr in answer:
            offset = _TARGET_OFFSET.get(rr.rtype)
            if offset is None:
                continue
            target = target_of(rr.rdata, offset) or (
                rr.name if rr.rtype in (QType.SVCB, QType.HTTPS) else ()
            )
            if target in seen or not is_subdomain(target, self._apex):
                continue
            seen.add(target)
            if self._cut_above(target) is not None:
                continue
            sets = self._find(target) or {}
            for rtype in (QType.A, QType.AAAA):
                out.extend(rr for rr in sets.get(rtype, ()) if rr not in answer)
        return out

    def _negative(self, outcome: Outcome, answer: list[RR]) -> Resolution:
        return self._result(outcome, answer, (self._negative_soa(),))

    def _referral(self, cut: Labels) -> Resolution:
        ns_set = self._rrsets[cut][QType.NS]
        glue: list[RR] = []
        for target in _glue_targets(ns_set):
            sets = self._rrsets.get(target, {})
            glue.extend(sets.get(QType.A, ()))
            glue.extend(sets.get(QType.AAAA, ()))
        return self._result(Outcome.REFERRAL, (), ns_set, glue)
