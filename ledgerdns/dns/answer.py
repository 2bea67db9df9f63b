"""The reply to one query: a `Resolution` written as a DNS message. Pure: no sockets, no cache.

`AnswerBuilder.build` takes and returns dnslib messages (the whole reply,
never truncated); `AnswerBuilder.respond` works on a `wire.Query` and returns
the encoded `Reply` with its truncated form, for the cache and the server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dnslib

from chain.errors import ConfigError
from ledgerdns.dns.resolve import Resolver, ZoneSource
from ledgerdns.dns.result import RR, Labels, Outcome, Resolution
from ledgerdns.dns.wire import (
    FLAG_TC,
    Query,
    Rcode,
    Rejection,
    bare_reply,
    parse_query,
    reply_flags,
)
from ledgerdns.dns.zone import ZoneConfig

EDNS_PAYLOAD = 1232  # the DNS Flag Day 2020 size: no IP fragmentation on common paths

_RCODES = {Outcome.NXDOMAIN: Rcode.NXDOMAIN, Outcome.REFUSED: Rcode.REFUSED}


@dataclass(frozen=True, slots=True)
class Reply:
    """An encoded reply, whole and truncated.

    Attributes:
        full: the whole reply.
        truncated: the same header with TC=1, the question only (and OPT if the
            query had one): what goes over UDP when `full` does not fit.
        resolution: the lookup it came from (None for a BADVERS reply), which
            tells the cache when the reply goes stale.
    """

    full: bytes
    truncated: bytes
    resolution: Resolution | None

    def fitting(self, limit: int) -> bytes:
        """`full` if it fits in `limit` bytes, else `truncated`."""
        return self.full if len(self.full) <= limit else self.truncated


def _label(name: Labels) -> dnslib.DNSLabel:
    return dnslib.DNSLabel(name)  # from label bytes: never through dnslib's IDNA codec


def _pack(message: dnslib.DNSRecord) -> bytes:
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


def _to_dnslib(rr: RR, name: Labels) -> dnslib.RR:
    """`rr` under owner `name`, its rdata parsed so that names in it compress."""
    rd_class = dnslib.RDMAP.get(dnslib.QTYPE.get(rr.rtype), dnslib.RD)
    rdata = rd_class.parse(dnslib.DNSBuffer(rr.rdata), len(rr.rdata))
    return dnslib.RR(rname=_label(name), rtype=rr.rtype, rclass=1, ttl=rr.ttl, rdata=rdata)


class AnswerBuilder:
    """Builds replies from the finalized ledger.

    Args:
        source: the ledger (`chain.ledger.Ledger` or anything with its reading API).
        config: what the synthesized SOA and NS say.
        edns_payload: the UDP payload size we advertise and the most we send.
    """

    __slots__ = ("_payload", "_resolver", "_source")

    def __init__(
        self,
        source: ZoneSource,
        config: ZoneConfig | None = None,
        *,
        edns_payload: int = EDNS_PAYLOAD,
    ) -> None:
        if not 512 <= edns_payload <= 65535:
            raise ConfigError(f"must be in 512..65535, not {edns_payload}", key="edns_payload")
        self._source = source
        self._resolver = Resolver(source, config or ZoneConfig())
        self._payload = edns_payload

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
            return dnslib.DNSRecord.parse(bare_reply(parsed))
        return self._message(parsed)[0]

    def respond(self, query: Query) -> Reply:
        """The encoded reply to `query`, whole and truncated."""
        message, resolution = self._message(query)
        truncated = dnslib.DNSRecord(
            dnslib.DNSHeader(id=query.id, bitmap=message.header.bitmap | FLAG_TC),
            questions=message.questions,
            ar=[rr for rr in message.ar if rr.rtype == dnslib.QTYPE.OPT],
        )
        return Reply(_pack(message), _pack(truncated), resolution)

    # -- composing --

    def _message(self, query: Query) -> tuple[dnslib.DNSRecord, Resolution | None]:
        if query.edns is not None and query.edns.version != 0:
            return self._compose(query, Rcode.BADVERS, authoritative=False), None
        qname = tuple(label.lower() for label in query.qname)
        res = self._resolver.resolve(qname, query.qtype, query.qclass)
        message = self._compose(
            query,
            _RCODES.get(res.outcome, Rcode.NOERROR),
            authoritative=res.authoritative,
            sections=(res.answer, res.authority, res.additional),
        )
        return message, res

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
            additional.append(dnslib.EDNS0(udp_len=self._payload, ext_rcode=rcode >> 4))
        header = dnslib.DNSHeader(
            id=query.id, bitmap=reply_flags(query.flags, rcode, authoritative=authoritative)
        )
        question = dnslib.DNSQuestion(_label(query.qname), query.qtype, query.qclass)
        return dnslib.DNSRecord(header, questions=[question], rr=answer, auth=authority, ar=additional)
