"""The reply to one query: a `Resolution` written as a DNS message. Pure: no sockets, no cache.

`AnswerBuilder.build` takes and returns dnslib messages (the whole reply,
never truncated); `AnswerBuilder.respond` works on a `wire.Query` and returns
the encoded `Reply` with its truncated form, for the cache and the server.

Reply policy lives here, apart from the lookup: ANY gets one RRset (RFC 8482),
EDNS version 0 only (BADVERS otherwise), the DO bit is copied (RFC 3225), and
class CH is answered from `ChaosSettings` (`ledgerdns.dns.chaos`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import dnslib

from chain.errors import ConfigError
from ledgerdns.dns.chaos import chaos_lookup
from ledgerdns.dns.resolve import Resolver, ZoneSource
from ledgerdns.dns.result import (
    CLASS_CH,
    CLASS_IN,
    RR,
    Labels,
    Outcome,
    QType,
    Resolution,
)
from ledgerdns.dns.settings import ChaosSettings
from ledgerdns.dns.wire import (
    EDNS_PAYLOAD,
    FLAG_TC,
    Query,
    Rcode,
    Rejection,
    bare_reply,
    parse_query,
    reply_flags,
)
from ledgerdns.dns.zone import Zone, ZoneConfig

__all__ = ["EDNS_PAYLOAD", "AnswerBuilder", "Reply"]

# No UDP reply is limited below 512 bytes (`Query.udp_limit`).
_MIN_UDP_LIMIT = 512

_RCODES = {Outcome.NXDOMAIN: Rcode.NXDOMAIN, Outcome.REFUSED: Rcode.REFUSED}


@dataclass(frozen=True, slots=True)
class Reply:
    """An encoded reply, whole and truncated, and when a kept copy of it goes stale.

    Only bytes and a few scalars, never the `Resolution` behind it: caches keep
    one per name asked (issue 21: per-name memory), so nothing here may hold an
    object graph.

    Attributes:
        full: the whole reply.
        truncated: what goes over UDP when `full` does not fit: the answer
            without its additional A/AAAA records when that fits in 512 bytes,
            else the same header with TC=1, the question only (and OPT if the
            query had one). None when `full` fits in 512 bytes, the smallest
            UDP limit: never needed.
        cacheable: whether a cache may keep it (False for a BADVERS reply,
            which comes from no lookup).
        zone: `Resolution.zone` of the lookup it came from.
        serial_bound: `Resolution.serial_bound`.
        expires_at: `Resolution.expires_at`.
    """

    full: bytes
    truncated: bytes | None
    cacheable: bool = True
    zone: str | None = None
    serial_bound: bool = False
    expires_at: int = 0

    def fitting(self, limit: int) -> bytes:
        """`full` if it fits in `limit` bytes (at least 512), else `truncated`."""
        if len(self.full) <= limit or self.truncated is None:
            return self.full
        return self.truncated


def _label(name: Labels) -> dnslib.DNSLabel:
    return dnslib.DNSLabel(name)  # from label bytes: never through dnslib's IDNA codec


def pack_message(message: dnslib.DNSRecord) -> bytes:
    """`message` on the wire, with names compressed against the whole question name only.

    The question's bytes are rewritten for each client (0x20 case), so only
    names equal to the question may point at them; a pointer to a suffix of it
    would hand that client's spelling to an unrelated name.
    """
    message.set_header_qa()
    buffer = dnslib.DNSBuffer()
    message.header.pack(buffer)
    for question in message.questions:
        question.pack(buffer)
    whole = {tuple(q.qname.label) for q in message.questions}
    buffer.names = {name: offset for name, offset in buffer.names.items() if name in whole}
    for rr in (*message.rr, *message.auth, *message.ar):
        rr.pack(buffer)
    return bytes(buffer.data)


def truncated_of(message: dnslib.DNSRecord) -> dnslib.DNSRecord:
    """What goes over UDP when `message` does not fit: its header with TC=1, the
    question, and its OPT record without options."""
    opts = [
        dnslib.RR(rname=rr.rname, rtype=rr.rtype, rclass=rr.rclass, ttl=rr.ttl, rdata=[])
        for rr in message.ar
        if rr.rtype == dnslib.QTYPE.OPT
    ]
    return dnslib.DNSRecord(
        dnslib.DNSHeader(id=message.header.id, bitmap=message.header.bitmap | FLAG_TC),
        questions=message.questions,
        ar=opts,
    )


def _fallback(message: dnslib.DNSRecord, res: Resolution | None) -> bytes:
    """What goes over UDP when the whole reply does not fit.

    An answer without its additional A/AAAA records if that fits in 512 bytes:
    they only save the client a query, and dropping them needs no TC (RFC 2181
    9). Otherwise (and always for a referral, whose glue may be needed to
    follow it) `truncated_of`.
    """
    if res is not None and res.outcome is Outcome.ANSWER and res.additional:
        lean = dnslib.DNSRecord(
            message.header,
            questions=message.questions,
            rr=message.rr,
            auth=message.auth,
            ar=[rr for rr in message.ar if rr.rtype == dnslib.QTYPE.OPT],
        )
        packed = pack_message(lean)
        if len(packed) <= _MIN_UDP_LIMIT:
            return packed
    return pack_message(truncated_of(message))


# Types with names in their rdata that must go out uncompressed (RFC 3597 4:
# only RFC 1035's types may be compressed; RFC 2782, RFC 3403 4.1, RFC 9460
# 2.2): sent as stored. Other types are parsed with dnslib's class, so that
# NS, CNAME, SOA, PTR and MX names compress and a `build` caller sees typed rdata.
_UNCOMPRESSED = frozenset({QType.SRV, QType.NAPTR, QType.SVCB, QType.HTTPS})


def _to_dnslib(rr: RR, name: Labels) -> dnslib.RR:
    """`rr` under owner `name`, names in its rdata compressed where RFC 3597 allows."""
    if rr.rtype in _UNCOMPRESSED:
        rdata = dnslib.RD(rr.rdata)
    else:
        rd_class = dnslib.RDMAP.get(dnslib.QTYPE.get(rr.rtype), dnslib.RD)
        rdata = rd_class.parse(dnslib.DNSBuffer(rr.rdata), len(rr.rdata))
    return dnslib.RR(rname=_label(name), rtype=rr.rtype, rclass=rr.rclass, ttl=rr.ttl, rdata=rdata)


def _minimal_any(res: Resolution) -> Resolution:
    """An ANY answer cut to one RRset, the lowest type number at the name (RFC 8482 4.1).

    Deterministic, so the cache and every node give the same reply; at an apex
    that is A if the owner set one, else NS: never the SOA (at a TLD its serial
    is the head height, which would make the reply stale after every block).
    """
    if res.outcome is not Outcome.ANSWER or not res.answer:
        return res
    first = min(rr.rtype for rr in res.answer)
    answer = tuple(rr for rr in res.answer if rr.rtype == first)
    holds_soa = any(rr.rtype == QType.SOA for rr in (*answer, *res.authority))
    return dataclasses.replace(res, answer=answer, serial_bound=res.serial_bound and holds_soa)


class AnswerBuilder:
    """Builds replies from the finalized ledger.

    Args:
        source: the ledger (`chain.ledger.Ledger` or anything with its reading API).
        config: what the synthesized SOA and NS say.
        edns_payload: the UDP payload size we advertise and the most we send.
        chaos: the CH-class TXT answers (``version.bind``, ``id.server``, ...).
    """

    __slots__ = ("_chaos", "_payload", "_resolver", "_source")

    def __init__(
        self,
        source: ZoneSource,
        config: ZoneConfig | None = None,
        *,
        edns_payload: int = EDNS_PAYLOAD,
        chaos: ChaosSettings | None = None,
    ) -> None:
        if not 512 <= edns_payload <= 65535:
            raise ConfigError(f"must be in 512..65535, not {edns_payload}", key="edns_payload")
        self._source = source
        self._resolver = Resolver(source, config or ZoneConfig())
        self._payload = edns_payload
        self._chaos = chaos if chaos is not None else ChaosSettings()

    @property
    def resolver(self) -> Resolver:
        """The pure lookup behind the answers."""
        return self._resolver

    @property
    def source(self) -> ZoneSource:
        """The ledger answers are read from."""
        return self._source

    @property
    def edns_payload(self) -> int:
        """The UDP payload size we advertise."""
        return self._payload

    # -- public API --

    def build(self, query: dnslib.DNSRecord) -> dnslib.DNSRecord | None:
        """The whole reply to a parsed query, or None when none is due (a response).

        The query goes through the same strict reader as packets from the
        network, so a malformed one gets the same FORMERR.
        """
        parsed = parse_query(bytes(query.pack()))
        if parsed is None:
            return None
        if isinstance(parsed, Rejection):
            return dnslib.DNSRecord.parse(bare_reply(parsed, payload=self._payload))
        return self._message(parsed)[0]

    def unregistered_tld(self, query: Query) -> Labels | None:
        """The TLD of a class-IN question whose domain is not registered (see `Resolver.unregistered_tld`)."""
        if query.qclass != CLASS_IN or query.qtype in (QType.DS, QType.ANY):
            return None  # answered by position (parent side, minimal ANY): not one shape per TLD
        return self._resolver.unregistered_tld(tuple(label.lower() for label in query.qname))

    def respond(self, query: Query) -> Reply:
        """The encoded reply to `query`, whole and truncated."""
        message, res = self._message(query)
        full = pack_message(message)
        truncated = None
        if len(full) > _MIN_UDP_LIMIT:
            truncated = _fallback(message, res)
        if res is None:
            return Reply(full, truncated, cacheable=False)
        return Reply(full, truncated, True, res.zone, res.serial_bound, res.expires_at)

    def message(self, query: Query) -> tuple[dnslib.DNSRecord, Resolution | None]:
        """The whole reply to `query` as a dnslib message (to add options to), and its lookup.

        The `Resolution` is None when no lookup was made (BADVERS).
        """
        return self._message(query)

    def error(self, query: Query, rcode: Rcode, options: Iterable[dnslib.EDNSOption] = ()) -> bytes:
        """A reply with `rcode` and no records, `options` in its OPT (the query must have one)."""
        message = self._compose(query, rcode, authoritative=False)
        for rr in message.ar:
            if rr.rtype == dnslib.QTYPE.OPT:
                rr.rdata.extend(options)
        return pack_message(message)

    # -- composing --

    def _message(self, query: Query) -> tuple[dnslib.DNSRecord, Resolution | None]:
        if query.edns is not None and query.edns.version != 0:
            return self._compose(query, Rcode.BADVERS, authoritative=False), None
        res = self.lookup(tuple(label.lower() for label in query.qname), query.qtype, query.qclass)
        message = self._compose(
            query,
            _RCODES.get(res.outcome, Rcode.NOERROR),
            authoritative=res.authoritative,
            sections=(res.answer, res.authority, res.additional),
        )
        return message, res

    def lookup(
        self, qname: Labels, qtype: int, qclass: int, zone: Zone | None = None
    ) -> Resolution:
        """The lookup behind a reply, with this module's policy (minimal ANY, CH).

        Args:
            qname: the question name, lower-cased.
            qtype, qclass: the question's type and class.
            zone: `qname`'s active zone, if the caller holds it (`Resolver.resolve`).
        """
        if qclass == CLASS_CH:
            return chaos_lookup(qname, qtype, self._chaos)
        res = self._resolver.resolve(qname, qtype, qclass, zone)
        if qtype == QType.ANY:
            return _minimal_any(res)
        return res

    def _compose(
        self,
        query: Query,
        rcode: Rcode,
        *,
        authoritative: bool,
        sections: tuple[Iterable[RR], Iterable[RR], Iterable[RR]] = ((), (), ()),
    ) -> dnslib.DNSRecord:
        qname = tuple(label.lower() for label in query.qname)

        def owner(rr: RR) -> Labels:
            # The question's own spelling, so the owner compresses to a pointer at
            # the question and takes the client's 0x20 case with it.
            return query.qname if rr.name == qname else rr.name

        answer, authority, additional = (
            [_to_dnslib(rr, owner(rr)) for rr in section] for section in sections
        )
        if query.edns is not None:
            flags = "do" if query.edns.do else ""  # RFC 3225 3: DO is copied
            additional.append(
                dnslib.EDNS0(udp_len=self._payload, ext_rcode=rcode >> 4, flags=flags)
            )
        header = dnslib.DNSHeader(
            id=query.id, bitmap=reply_flags(query.flags, rcode, authoritative=authoritative)
        )
        question = dnslib.DNSQuestion(_label(query.qname), query.qtype, query.qclass)
        return dnslib.DNSRecord(
            header, questions=[question], rr=answer, auth=authority, ar=additional
        )
