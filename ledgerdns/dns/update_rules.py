"""RFC 2136 UPDATE against one ledger domain: prerequisites, the prescan, and the update.

Pure: a parsed message and a domain's records in, an RCODE or the new record
set out. `ledgerdns.dns.update` does TSIG, ownership, signing and waiting.

Names in the ledger are relative to the domain (``@``, ``www``); the zone as a
client sees it also holds the synthesized apex SOA and, unless the owner set
NS at ``@``, the synthesized apex NS, so prerequisites see those too.

What differs from a classic zone (docs/dns.md has the table):

- SOA additions and deletions are ignored: the SOA is synthesized (serial =
  finalized height), as RFC 2136 3.4.2.2 ignores an SOA whose serial is not newer.
- The apex NS RRset is never deleted as a whole (3.4.2.3), and its last RR is
  never deleted (3.4.2.4); adding NS at ``@`` delegates the whole domain (the
  ledger's meaning of NS at the apex), which the record-set rules then check.
- An added RR takes the TTL of its RRset with it: the ledger keeps one TTL per
  RRset (RFC 2181 5.2), and the newest one wins, as BIND does.
- A type the ledger does not hold cannot be added (`InvalidUpdate`, answered
  REFUSED); deleting one is a no-op, since none exists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.svcbbase
import dns.rrset
import dns.wire

from chain.names import APEX
from chain.rdata import RType, unsupported_type
from chain.records import Record

_ANY = dns.rdataclass.ANY
_NONE = dns.rdataclass.NONE
_SOA = int(dns.rdatatype.SOA)
_NS = int(dns.rdatatype.NS)
_CNAME = int(dns.rdatatype.CNAME)
_TYPE_ANY = int(dns.rdatatype.ANY)
_NEVER_IN_UPDATE = frozenset({dns.rdatatype.AXFR, dns.rdatatype.MAILA, dns.rdatatype.MAILB})
_LEDGER_TYPES = frozenset(int(t) for t in RType)


@dataclass(frozen=True, slots=True)
class UpdateRR:
    """One RR of the prerequisite or update section, as it came on the wire.

    Attributes:
        name: the owner, absolute.
        rdclass: the wire class: the zone's class, ANY or NONE.
        rdtype: the type (may be ANY).
        ttl: the wire TTL (dnspython does not keep it for empty RRs).
        rdata: the rdata, None when RDLENGTH was 0 with class ANY (or NONE in prerequisites).
    """

    name: dns.name.Name
    rdclass: int
    rdtype: int
    ttl: int
    rdata: dns.rdata.Rdata | None


@dataclass(frozen=True, slots=True)
class Applied:
    """The result of the update section: the new records, and what was ignored and why."""

    records: tuple[Record, ...]
    ignored: tuple[str, ...]


def _wire_ttls(wire: bytes) -> tuple[list[int], list[int]]:
    """The TTL of every prerequisite and update RR, in order (the message parsed already)."""
    parser = dns.wire.Parser(wire)
    _, _, zocount, prcount, upcount, _ = parser.get_struct("!6H")
    for _ in range(zocount):
        parser.get_name(decompress=True)
        parser.get_struct("!HH")
    sections: list[list[int]] = []
    for count in (prcount, upcount):
        ttls = []
        for _ in range(count):
            parser.get_name(decompress=True)
            _, _, ttl, rdlen = parser.get_struct("!HHIH")
            parser.get_bytes(rdlen)
            ttls.append(ttl)
        sections.append(ttls)
    return sections[0], sections[1]


def _rrs(rrsets: Sequence[dns.rrset.RRset], ttls: Sequence[int]) -> list[UpdateRR]:
    # Parsed with one_rr_per_rrset: one RRset per wire RR, in wire order.
    assert len(rrsets) == len(ttls), "one RRset per RR"
    return [
        UpdateRR(
            name=rrset.name,
            rdclass=int(rrset.deleting if rrset.deleting is not None else rrset.rdclass),
            rdtype=int(rrset.rdtype),
            ttl=ttl,
            rdata=rrset[0] if len(rrset) else None,
        )
        for rrset, ttl in zip(rrsets, ttls, strict=True)
    ]


def read_sections(
    wire: bytes,
    prerequisite: Sequence[dns.rrset.RRset],
    update: Sequence[dns.rrset.RRset],
) -> tuple[list[UpdateRR], list[UpdateRR]]:
    """The prerequisite and update RRs of a message parsed with ``one_rr_per_rrset=True``."""
    prerequisite_ttls, update_ttls = _wire_ttls(wire)
    return _rrs(prerequisite, prerequisite_ttls), _rrs(update, update_ttls)


def owner_of(name: dns.name.Name, apex: dns.name.Name) -> str | None:
    """`name` relative to `apex` as the ledger writes owners (``@``, ``www``); None if outside."""
    if not name.is_subdomain(apex):
        return None
    relative = name.canonicalize().relativize(apex.canonicalize())
    return APEX if relative == dns.name.empty else relative.to_text()


def canonical_rdata(rdata: dns.rdata.Rdata) -> bytes:
    """Wire rdata with names uncompressed and lower-cased (the ledger's canonical form)."""
    if isinstance(rdata, dns.rdtypes.svcbbase.SVCBBase):  # not in RFC 4034 6.2's list
        rdata = rdata.replace(target=rdata.target.canonicalize())
    return rdata.to_digestable()


@dataclass(frozen=True, slots=True)
class ZoneView:
    """A domain's RRsets as a client sees them: stored records plus the synthesized apex."""

    apex: dns.name.Name
    rrsets: Mapping[tuple[str, int], frozenset[bytes]]
    names: frozenset[str]

    @classmethod
    def of(
        cls, apex: dns.name.Name, records: Iterable[Record], soa: bytes, ns: Iterable[bytes]
    ) -> ZoneView:
        """The zone of `records` with `soa` and (unless NS is set at ``@``) the `ns` set at the apex."""
        sets: dict[tuple[str, int], set[bytes]] = {}
        for record in records:
            sets.setdefault((record.name, int(record.rtype)), set()).add(record.rdata)
        sets[(APEX, _SOA)] = {soa}
        sets.setdefault((APEX, _NS), set(ns))
        frozen = {key: frozenset(value) for key, value in sets.items()}
        return cls(apex=apex, rrsets=frozen, names=frozenset(owner for owner, _ in frozen))


def check_prerequisites(rrs: Sequence[UpdateRR], zone: ZoneView, zclass: int) -> dns.rcode.Rcode:
    """RFC 2136 3.2: NOERROR if every prerequisite holds, else the RCODE to answer."""
    wanted: dict[tuple[str, int], set[bytes]] = {}
    for rr in rrs:
        if rr.ttl != 0:
            return dns.rcode.FORMERR
        owner = owner_of(rr.name, zone.apex)
        if owner is None:
            return dns.rcode.NOTZONE
        if rr.rdclass in (_ANY, _NONE):
            if rr.rdata is not None:
                return dns.rcode.FORMERR
            exists = (
                owner in zone.names if rr.rdtype == _TYPE_ANY else (owner, rr.rdtype) in zone.rrsets
            )
            if rr.rdclass == _ANY and not exists:
                return dns.rcode.NXDOMAIN if rr.rdtype == _TYPE_ANY else dns.rcode.NXRRSET
            if rr.rdclass == _NONE and exists:
                return dns.rcode.YXDOMAIN if rr.rdtype == _TYPE_ANY else dns.rcode.YXRRSET
        elif rr.rdclass == zclass and rr.rdata is not None:
            wanted.setdefault((owner, rr.rdtype), set()).add(canonical_rdata(rr.rdata))
        else:
            return dns.rcode.FORMERR
    for key, rdatas in wanted.items():
        if zone.rrsets.get(key) != frozenset(rdatas):
            return dns.rcode.NXRRSET
    return dns.rcode.NOERROR


def prescan(rrs: Sequence[UpdateRR], apex: dns.name.Name, zclass: int) -> dns.rcode.Rcode:
    """RFC 2136 3.4.1: NOERROR if the update section is well formed, else the RCODE."""
    for rr in rrs:
        if owner_of(rr.name, apex) is None:
            return dns.rcode.NOTZONE
        if rr.rdclass == zclass:
            bad = dns.rdatatype.is_metatype(dns.rdatatype.RdataType.make(rr.rdtype))
        elif rr.rdclass == _ANY:
            bad = rr.ttl != 0 or rr.rdata is not None or rr.rdtype in _NEVER_IN_UPDATE
        elif rr.rdclass == _NONE:
            bad = rr.ttl != 0 or rr.rdtype == _TYPE_ANY or rr.rdtype in _NEVER_IN_UPDATE
        else:
            bad = True
        if bad:
            return dns.rcode.FORMERR
    return dns.rcode.NOERROR


def apply_updates(
    rrs: Sequence[UpdateRR], records: Sequence[Record], apex: dns.name.Name
) -> Applied:
    """RFC 2136 3.4.2, in order, on a copy of `records` (call `prescan` first).

    Raises:
        InvalidUpdate: an added RR has a type the ledger does not hold, or is not
            a valid ledger record (owner name, rdata).
    """
    current = list(records)
    ignored: list[str] = []
    for rr in rrs:
        owner = owner_of(rr.name, apex)
        assert owner is not None, "prescan refuses names outside the zone"
        what = f"{owner} {dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rr.rdtype))}"
        if rr.rdclass == _ANY:
            reason = _delete_rrsets(current, owner, rr.rdtype)
        elif rr.rdclass == _NONE:
            assert rr.rdata is not None, "class NONE in an update carries rdata"
            reason = _delete_rr(current, owner, rr.rdtype, canonical_rdata(rr.rdata))
        else:
            reason = _add(current, owner, rr)
        if reason is not None:
            ignored.append(f"{what}: {reason}")
    return Applied(records=tuple(current), ignored=tuple(ignored))


def _delete_rrsets(current: list[Record], owner: str, rdtype: int) -> str | None:
    if owner == APEX and rdtype in (_SOA, _NS):
        return "the apex SOA and NS RRsets are not deleted (RFC 2136 3.4.2.3)"
    keep_apex_ns = owner == APEX and rdtype == _TYPE_ANY
    current[:] = [
        r
        for r in current
        if r.name != owner
        or (rdtype != _TYPE_ANY and r.rtype != rdtype)
        or (keep_apex_ns and r.rtype is RType.NS)
    ]
    return None


def _delete_rr(current: list[Record], owner: str, rdtype: int, rdata: bytes) -> str | None:
    if rdtype == _SOA:
        return "the SOA is synthesized"
    if owner == APEX and rdtype == _NS:
        apex_ns = [r for r in current if r.name == APEX and r.rtype is RType.NS]
        if len(apex_ns) == 1 and apex_ns[0].rdata == rdata:
            return "the last apex NS is not deleted (RFC 2136 3.4.2.4)"
    current[:] = [r for r in current if (r.name, r.rtype, r.rdata) != (owner, rdtype, rdata)]
    return None


def _add(current: list[Record], owner: str, rr: UpdateRR) -> str | None:
    if rr.rdtype == _SOA:
        return "the SOA is synthesized"
    if rr.rdtype not in _LEDGER_TYPES:
        raise unsupported_type(
            dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rr.rdtype)), owner
        )
    assert rr.rdata is not None, "an RR of the zone's class carries rdata"
    record = Record(name=owner, rtype=RType(rr.rdtype), ttl=rr.ttl, rdata=canonical_rdata(rr.rdata))
    here = {r.rtype for r in current if r.name == owner}
    if record.rtype is RType.CNAME:
        if owner == APEX or here - {RType.CNAME}:
            return "a CNAME cannot join other data at its name (RFC 2136 3.4.2.2)"
        current[:] = [r for r in current if (r.name, r.rtype) != (owner, RType.CNAME)]
    elif RType.CNAME in here:
        return "the name holds a CNAME (RFC 2136 3.4.2.2)"
    same_rrset = (owner, record.rtype)
    current[:] = [
        dataclasses.replace(r, ttl=record.ttl) if (r.name, r.rtype) == same_rrset else r
        for r in current
        if (r.name, r.rtype, r.rdata) != (owner, record.rtype, record.rdata)
    ]
    current.append(record)
    return None
