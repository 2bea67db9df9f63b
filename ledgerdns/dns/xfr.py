"""Zone transfers for secondaries: AXFR (RFC 5936) and IXFR (RFC 1995), with access control.

A zone is one active ledger domain (or a TLD, which holds only its SOA and NS).
What a transfer sends is what the resolver serves: the domain's records plus
the synthesized SOA and, unless the owner set NS at the apex, the synthesized
NS. A domain zone's serial is the height of the block holding its latest
transaction (`resolve.zone_serial`), so an IXFR can rebuild the zone as it was
at the client's serial from the domain's hash chain (every transaction carries
the whole record set) and send one condensed difference.

Access: the client's address must be in ``[dns.transfer] allow``, and if
``tsig`` is set the request must be signed with one of those keys (replies to
a signed request are signed, every message of a multi-message transfer too).
Otherwise the reply is REFUSED. A TSIG that does not verify gets the RFC 8945
error (NOTAUTH with BADKEY or BADSIG unsigned, BADTIME signed), as UPDATE does
(`ledgerdns.dns.tsig`). A name that is not a zone we serve is NOTAUTH (RFC
5936 2.2.1).

Transport: AXFR over UDP is not defined (RFC 5936 4.2): FORMERR, as BIND
answers it. IXFR over UDP always gets the single current SOA (RFC 1995 2: what
does not fit is answered with the SOA; we never try to fit a difference): a
client that is current stops there, one that is behind retries over TCP.

Secondaries refresh with a plain SOA query; if they sign it (a TSIG key set for
the primary), the reply must be signed too, so every TSIG-signed SOA query
is answered here as well (NOTAUTH if the name is not a zone apex).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from chain.errors import NotFound
from chain.genesis import Genesis
from chain.records import Record
from chain.state import DomainState
from chain.tx import Op, Transaction
from ledgerdns.clock import SYSTEM_CLOCK
from ledgerdns.dns.resolve import Resolver, ZoneSource
from ledgerdns.dns.result import CLASS_IN, RR, Labels, QType, name_to_wire
from ledgerdns.dns.settings import DnsSettings, in_networks
from ledgerdns.dns.tsig import Refusal, error_name, make_keyring, verify
from ledgerdns.dns.wire import Query, parse_query, reply_flags
from ledgerdns.dns.zone import Zone, ZoneConfig, make_ns, make_soa

log = logging.getLogger(__name__)

MESSAGE_BUDGET = 16_000  # record bytes per transfer message, counted uncompressed
MAX_IXFR_STEPS = 64  # versions walked back to find the client's; older gets the whole zone


class TransferSource(ZoneSource, Protocol):
    """What transfers read: the `ZoneSource` plus the hash chains (`chain.ledger.Ledger`)."""

    genesis: Genesis

    def history(self, domain: str) -> list[tuple[int, bytes]]:
        """``(seq, txid or genesis anchor)`` of every step of a domain's chain, oldest first."""

    def get_tx(self, txid: bytes) -> tuple[Transaction, int, int]:
        """A finalized transaction with its block height and index."""


def serial_at_least(a: int, b: int) -> bool:
    """``a >= b`` in RFC 1982 serial arithmetic (32 bits)."""
    return (a - b) % 2**32 < 2**31


def to_rrset(rr: RR) -> dns.rrset.RRset:
    """One `RR` as a dnspython RRset of one record."""
    rdclass = dns.rdataclass.RdataClass.make(rr.rclass)
    rdtype = dns.rdatatype.RdataType.make(rr.rtype)
    rrset = dns.rrset.RRset(dns.name.Name((*rr.name, b"")), rdclass, rdtype)
    rrset.add(dns.rdata.from_wire(rdclass, rdtype, rr.rdata, 0, len(rr.rdata)), rr.ttl)
    return rrset


@dataclass(frozen=True, slots=True)
class _Version:
    """A zone at one serial: its records, SOA first."""

    serial: int
    rrs: list[RR]
    state: DomainState | None  # None for a TLD


def _chunks(rrs: list[RR]) -> list[list[RR]]:
    chunks: list[list[RR]] = [[]]
    size = 0
    for rr in rrs:
        cost = len(name_to_wire(rr.name)) + 10 + len(rr.rdata)
        if chunks[-1] and size + cost > MESSAGE_BUDGET:
            chunks.append([])
            size = 0
        chunks[-1].append(rr)
        size += cost
    return chunks


def _bare(query: Query, rcode: int) -> bytes:
    """An unsigned error reply echoing the question, for a request we could not parse."""
    reply = dns.message.Message(id=query.id)
    reply.flags = dns.flags.Flag(reply_flags(query.flags, rcode))
    reply.question = [
        dns.rrset.RRset(
            dns.name.Name((*query.qname, b"")),
            dns.rdataclass.RdataClass.make(query.qclass),
            dns.rdatatype.RdataType.make(query.qtype),
        )
    ]
    return reply.to_wire()


class Transfers:
    """Answers AXFR, IXFR and TSIG-signed SOA queries for ledger zones.

    Args:
        settings: the ``[dns]`` settings (``transfer`` and the TSIG keys).
        source: the finalized chain (`TransferSource`; the node's ledger).
        config: what the synthesized SOA and NS say (the resolver's).
        now_s: the wall clock, unix seconds (the TSIG time cap and BADTIME replies);
            the node hands in its `ledgerdns.clock.Clock`.
    """

    def __init__(
        self,
        settings: DnsSettings,
        source: TransferSource,
        config: ZoneConfig,
        *,
        now_s: Callable[[], int] = SYSTEM_CLOCK.now_s,
    ) -> None:
        self._now_s = now_s
        self._ledger = source
        self._config = config
        self._resolver = Resolver(self._ledger, config)
        self._allow = settings.transfer.allow
        self._required = frozenset(dns.name.from_text(n) for n in settings.transfer.tsig)
        self._keyring = make_keyring(settings.tsig)

    # -- public API --

    def answer(self, message: bytes, peer: tuple[str, int], *, tcp: bool) -> list[bytes] | None:
        """The replies to a transfer request, or None if `message` is not one.

        Not one: anything but a well-formed standard query for AXFR, IXFR or
        (TSIG-signed) SOA; the caller answers those as usual.

        Args:
            message: the DNS message (over TCP, without its length prefix).
            peer: the client's ``(address, port)``.
            tcp: whether it came over TCP.

        Returns:
            The reply messages in order (exactly one over UDP).
        """
        query = parse_query(message)
        if not isinstance(query, Query):
            return None
        signed_soa = query.qtype == QType.SOA and not query.plain
        if query.qtype not in (QType.AXFR, QType.IXFR) and not signed_soa:
            return None
        try:
            request = dns.message.from_wire(message, keyring=False)  # TSIG read, not checked
        except dns.exception.DNSException:
            return [_bare(query, dns.rcode.FORMERR)]
        if signed_soa and not request.had_tsig:
            return None
        if request.had_tsig:
            verified = self._verify(message, query, request, peer)
            if isinstance(verified, bytes):
                return [verified]
            request = verified
        if tcp and not signed_soa:
            return self._answer_tcp(request, query, peer)
        return [self._answer_one(request, query, peer)]

    # -- answering --

    def _verify(
        self, message: bytes, query: Query, request: dns.message.Message, peer: tuple[str, int]
    ) -> dns.message.Message | bytes:
        """`message` parsed with its TSIG verified, or the error reply (RFC 8945 5.2)."""
        try:
            verified = verify(message, request, self._keyring, self._now_s())
        except dns.exception.DNSException:  # e.g. a TSIG error set in a request
            return _bare(query, dns.rcode.FORMERR)
        if isinstance(verified, Refusal):
            reason = error_name(verified.error)
            log.info("xfr refused peer=%s key=%s reason=%s", peer[0], request.keyname, reason)
            return verified.reply
        return verified

    def _answer_one(
        self, request: dns.message.Message, query: Query, peer: tuple[str, int]
    ) -> bytes:
        """Over UDP, and SOA over either: one message."""
        found = self._check(request, query, peer)
        if not isinstance(found, _Version):
            return self._error(request, found)
        if query.qtype == QType.AXFR:
            return self._error(request, dns.rcode.FORMERR)  # RFC 5936 4.2: TCP only
        if query.qtype == QType.IXFR and self._client_serial(request) is None:
            return self._error(request, dns.rcode.FORMERR)
        return self._render(request, [[found.rrs[0]]])[0]

    def _answer_tcp(
        self, request: dns.message.Message, query: Query, peer: tuple[str, int]
    ) -> list[bytes]:
        found = self._check(request, query, peer)
        if not isinstance(found, _Version):
            return [self._error(request, found)]
        soa = found.rrs[0]
        kind = "AXFR"
        rrs = [*found.rrs, soa]
        if query.qtype == QType.IXFR:
            client = self._client_serial(request)
            if client is None:
                return [self._error(request, dns.rcode.FORMERR)]
            if serial_at_least(client, found.serial):
                kind, rrs = "IXFR-current", [soa]
            else:
                old = self._version_at(found, client)
                if old is not None:
                    kind, rrs = "IXFR", _difference(old, found)
                else:
                    kind = "IXFR-as-AXFR"
        replies = self._render(request, _chunks(rrs))
        level = logging.DEBUG if kind == "IXFR-current" else logging.INFO
        name = b".".join(query.qname).decode("ascii", "replace").lower()
        log.log(
            level, "xfr served zone=%s kind=%s serial=%d peer=%s", name, kind, found.serial, peer[0]
        )
        return replies

    def _check(
        self, request: dns.message.Message, query: Query, peer: tuple[str, int]
    ) -> _Version | dns.rcode.Rcode:
        """The zone asked for, or the rcode refusing the request."""
        if not in_networks(peer[0], self._allow):
            log.debug("xfr refused peer=%s reason=address", peer[0])
            return dns.rcode.REFUSED
        if self._required and (not request.had_tsig or request.keyname not in self._required):
            log.debug("xfr refused peer=%s reason=no transfer key", peer[0])
            return dns.rcode.REFUSED
        found = None
        if query.qclass == CLASS_IN:
            found = self._current(tuple(label.lower() for label in query.qname))
        return dns.rcode.NOTAUTH if found is None else found

    def _error(self, request: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
        reply = dns.message.make_response(request)
        reply.set_rcode(rcode)
        return reply.to_wire()

    def _render(self, request: dns.message.Message, chunks: list[list[RR]]) -> list[bytes]:
        """The messages of a reply, each TSIG-signed in sequence if the request was."""
        out: list[bytes] = []
        context = None
        multi = len(chunks) > 1
        for chunk in chunks:
            reply = dns.message.make_response(request)
            reply.flags |= dns.flags.AA
            reply.answer = [to_rrset(rr) for rr in chunk]
            out.append(reply.to_wire(max_size=65535, multi=multi, tsig_ctx=context))
            context = reply.tsig_ctx
        return out

    @staticmethod
    def _client_serial(request: dns.message.Message) -> int | None:
        """The serial in an IXFR request's authority SOA (RFC 1995 3)."""
        for rrset in request.authority:
            if rrset.rdtype == dns.rdatatype.SOA and rrset.name == request.question[0].name:
                return int(rrset[0].serial)
        return None

    # -- zones and their versions --

    def _current(self, apex: Labels) -> _Version | None:
        if self._resolver.is_tld(apex):
            serial = self._ledger.head.height
            return _Version(serial, self._tld_rrs(apex, serial), None)
        zone = self._resolver.zone_at(apex)
        if zone is None:
            return None
        return _Version(zone.serial, zone.rrs(), zone.state)

    def _tld_rrs(self, apex: Labels, serial: int) -> list[RR]:
        return [make_soa(apex, serial, self._config), *make_ns(apex, self._config)]

    def _version_at(self, current: _Version, serial: int) -> _Version | None:
        """The zone as it was at `serial`, or None if it never had that serial (here)."""
        apex = current.rrs[0].name
        if current.state is None:  # a TLD: the same two records at every serial
            return _Version(serial, self._tld_rrs(apex, serial), None)
        records = self._records_at(current.state.domain, serial)
        if records is None:
            return None
        state = dataclasses.replace(current.state, records=records)
        return _Version(serial, Zone(state, serial, self._config).rrs(), state)

    def _records_at(self, domain: str, serial: int) -> tuple[Record, ...] | None:
        """The domain's record set after the last step finalized at height `serial`."""
        ledger = self._ledger
        for seq, txid in reversed(ledger.history(domain)[-MAX_IXFR_STEPS:]):
            try:
                height = ledger.get_tx_location(txid)[0]
            except NotFound:
                if seq != 0:
                    raise
                initial = [d for d in ledger.genesis.domains if d.domain == domain]
                return initial[0].records if serial == 0 and initial else None
            if height < serial:
                return None
            if height == serial:
                tx = ledger.get_tx(txid)[0]
                return None if tx.body.op is Op.RELEASE else tx.body.records
        return None


def _difference(old: _Version, new: _Version) -> list[RR]:
    """A condensed IXFR (RFC 1995 4): new SOA, old SOA, deletions, new SOA, additions, new SOA."""
    before, after = set(old.rrs[1:]), set(new.rrs[1:])
    deleted = [rr for rr in old.rrs[1:] if rr not in after]
    added = [rr for rr in new.rrs[1:] if rr not in before]
    soa = new.rrs[0]
    return [soa, old.rrs[0], *deleted, soa, *added, soa]
