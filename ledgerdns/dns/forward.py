"""Forwarding of names outside the ledger TLDs to upstream resolvers, through a cache.

Upstreams are tried in order, each for at most `ForwardSettings.timeout_s`: UDP
first, TCP when the UDP reply is truncated (dnspython's `udp_with_fallback`).
A reply other than NOERROR or NXDOMAIN, a timeout or a network error moves on
to the next upstream; when none is left the client gets SERVFAIL.

The cache holds upstream answers (not encoded replies) keyed by (question name
lower-cased, type, class, DO, CD): the upstream is always asked with EDNS, so
a client's EDNS presence and UDP size only change how the reply is written.

- Positive answers live for the smallest TTL in the answer section.
- Negative answers (NXDOMAIN, or NOERROR without the asked type) live for
  min(SOA TTL, SOA MINIMUM) of the SOA in the authority section (RFC 2308
  section 5), the SOA being served with that TTL; without an SOA they are not
  cached. SERVFAIL and other failures are never cached.
- Every TTL is capped at `max_ttl`, and TTLs served from the cache count down
  with the seconds elapsed since the answer arrived.
- At most `cache_entries` answers, least recently used out first.
- Concurrent misses for one key share a single upstream query.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset
import trio

from ledgerdns.dns.answer import EDNS_PAYLOAD
from ledgerdns.dns.settings import ForwardSettings

log = logging.getLogger(__name__)

_Key = tuple[
    dns.name.Name, dns.rdatatype.RdataType, dns.rdataclass.RdataClass, bool, bool
]  # name lower-cased, type, class, DO, CD
_Sections = tuple[tuple[dns.rrset.RRset, ...], ...]  # answer, authority, additional
_CACHED_RCODES = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)


@dataclass(frozen=True, slots=True)
class _Answer:
    """An upstream answer: its TTLs already capped, its life counted from `received_at`."""

    rcode: dns.rcode.Rcode
    authentic: bool  # the upstream set AD
    sections: _Sections
    received_at: float
    lifetime: float  # seconds it may be served from the cache (0: not cached)

    def is_fresh(self, now: float) -> bool:
        return now < self.received_at + self.lifetime


class _Flight:
    """An upstream query in progress that identical misses wait for."""

    __slots__ = ("answer", "done", "finished")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.finished = False  # False when set: the query was cancelled, not answered
        self.answer: _Answer | None = None  # None when finished: every upstream failed


def _capped(rrset: dns.rrset.RRset, ttl: int) -> dns.rrset.RRset:
    copy = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
    for rdata in rrset:
        copy.add(rdata)
    copy.ttl = max(0, ttl)
    return copy


def _negative_ttl(authority: tuple[dns.rrset.RRset, ...]) -> int | None:
    for rrset in authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset) > 0:
            soa = rrset[0]
            assert isinstance(soa, dns.rdtypes.ANY.SOA.SOA)
            return min(rrset.ttl, soa.minimum)
    return None


def _to_answer(response: dns.message.Message, qtype: int, now: float, max_ttl: int) -> _Answer:
    """`response` as a cache entry; its lifetime is 0 if it must not be cached."""
    has_type = any(r.rdtype == qtype for r in response.answer) or (
        qtype == dns.rdatatype.ANY and bool(response.answer)
    )
    negative = response.rcode() == dns.rcode.NXDOMAIN or not has_type
    ttls = [r.ttl for r in response.answer]
    authority = tuple(response.authority)
    if negative:
        soa_ttl = _negative_ttl(authority)
        if soa_ttl is not None:
            # RFC 2308 section 3: the SOA is served with the negative TTL.
            authority = tuple(
                _capped(r, soa_ttl) if r.rdtype == dns.rdatatype.SOA else r for r in authority
            )
            ttls.append(soa_ttl)
        else:
            ttls = []  # no SOA: nothing says how long the name stays absent
    sections = tuple(
        tuple(_capped(r, min(r.ttl, max_ttl)) for r in section)
        for section in (tuple(response.answer), authority, tuple(response.additional))
    )
    return _Answer(
        rcode=response.rcode(),
        authentic=bool(response.flags & dns.flags.AD),
        sections=sections,
        received_at=now,
        lifetime=float(min(max(0, min(ttls)), max_ttl)) if ttls else 0.0,
    )


def _parse(query: bytes) -> dns.message.Message | None:
    try:
        # keyring=False: a TSIG record is read but not checked (nothing here is signed).
        message = dns.message.from_wire(query, keyring=False)
    except dns.exception.DNSException:
        return None
    if (
        message.flags & dns.flags.QR
        or message.opcode() != dns.opcode.QUERY
        or len(message.question) != 1
    ):
        return None
    return message


class Forwarder:
    """Answers queries for names outside the ledger from upstream resolvers and a cache.

    Args:
        settings: the upstreams, timeouts and cache limits (`allow` is the server's job).
        clock: seconds on a monotonic clock, for TTL ageing (default: trio's clock).
    """

    def __init__(
        self, settings: ForwardSettings, *, clock: Callable[[], float] = trio.current_time
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._backend = dns.asyncbackend.get_backend("trio")
        self._entries: OrderedDict[_Key, _Answer] = OrderedDict()  # ≤ settings.cache_entries
        self._flights: dict[_Key, _Flight] = {}  # questions being asked upstream now
        self._stats = {"hits": 0, "misses": 0, "coalesced": 0, "upstream_failures": 0}
        self.upstream_answers = 0  # upstream attempts that gave an answer (NOERROR, NXDOMAIN)
        self.upstream_seconds = 0.0  # the time those attempts took, summed
        self._failing: set[tuple[str, int]] = set()  # upstreams whose last attempt failed

    # -- public API --

    async def answer(self, query: bytes, *, limit: int) -> bytes | None:
        """The reply to the wire `query`, from the cache or from the upstreams.

        The reply has the query's ID, its question exactly as sent (0x20 case
        kept), RD and CD copied, RA=1, AA=0, and an OPT record if the query had
        one. Every upstream failing gives SERVFAIL; zone transfers and other
        meta types get REFUSED, EDNS versions above 0 BADVERS. Never raises
        for any input.

        Args:
            query: a QUERY message for a name outside the ledger.
            limit: the most bytes the reply may take (UDP: the client's EDNS size
                or 512); a longer reply is cut to question and OPT, with TC=1.

        Returns:
            The wire reply, or None if `query` is not a parseable query.
        """
        message = _parse(query)
        if message is None:
            return None
        if message.edns > 0:
            return _render(message, None, 0, limit, rcode=dns.rcode.BADVERS)  # RFC 6891 6.1.3
        question = message.question[0]
        if dns.rdatatype.is_metatype(question.rdtype) and question.rdtype != dns.rdatatype.ANY:
            return _render(message, None, 0, limit, rcode=dns.rcode.REFUSED)
        do = message.edns >= 0 and bool(message.ednsflags & dns.flags.DO)
        key: _Key = (
            question.name.canonicalize(),
            question.rdtype,
            question.rdclass,
            do,
            bool(message.flags & dns.flags.CD),
        )
        answer = await self._resolve(key)
        if answer is None:
            return _render(message, None, 0, limit, rcode=dns.rcode.SERVFAIL)
        age = max(0, int(self._clock() - answer.received_at))
        return _render(message, answer, age, limit, rcode=answer.rcode)

    def stats(self) -> dict[str, int]:
        """Counters: ``hits``, ``misses``, ``coalesced`` (misses that shared another's
        upstream query), ``upstream_failures`` (upstream attempts that failed) and
        ``entries`` (answers cached now)."""
        return {**self._stats, "entries": len(self._entries)}

    # -- the cache --

    async def _resolve(self, key: _Key) -> _Answer | None:
        while True:
            cached = self._entries.get(key)
            if cached is not None:
                if cached.is_fresh(self._clock()):
                    self._entries.move_to_end(key)
                    self._stats["hits"] += 1
                    return cached
                del self._entries[key]
            flight = self._flights.get(key)
            if flight is None:
                break
            await flight.done.wait()
            if flight.finished:
                self._stats["coalesced"] += 1
                return flight.answer
            # The query we waited for was cancelled: look again, maybe ask ourselves.
        self._stats["misses"] += 1
        flight = self._flights[key] = _Flight()
        try:
            flight.answer = await self._fetch(key)
            flight.finished = True
        finally:
            del self._flights[key]
            flight.done.set()
        if flight.answer is not None and flight.answer.lifetime > 0:
            self._store(key, flight.answer)
        return flight.answer

    def _store(self, key: _Key, answer: _Answer) -> None:
        if self._settings.cache_entries <= 0:
            return
        self._entries[key] = answer
        self._entries.move_to_end(key)
        while len(self._entries) > self._settings.cache_entries:
            self._entries.popitem(last=False)

    # -- the upstreams --

    async def _fetch(self, key: _Key) -> _Answer | None:
        name, qtype, qclass, do, cd = key
        request = dns.message.make_query(
            name, qtype, qclass, use_edns=0, payload=EDNS_PAYLOAD, want_dnssec=do
        )
        if cd:
            request.flags |= dns.flags.CD
        timeout = self._settings.timeout_s
        for host, port in self._settings.upstreams:
            response = None
            started = trio.current_time()
            error = f"no answer in {timeout:g} s"
            with trio.move_on_after(timeout):
                try:
                    response, _ = await dns.asyncquery.udp_with_fallback(
                        request, host, timeout, port, ignore_unexpected=True, backend=self._backend
                    )
                except (dns.exception.DNSException, OSError, ValueError) as exc:
                    error = str(exc) or type(exc).__name__
                    log.debug("upstream failed upstream=%s:%d error=%r", host, port, exc)
            if response is not None and response.rcode() in _CACHED_RCODES:
                log.debug("upstream answered upstream=%s:%d name=%s", host, port, name)
                self.upstream_answers += 1
                self.upstream_seconds += trio.current_time() - started
                self._note(host, port, None)
                return _to_answer(response, qtype, self._clock(), self._settings.max_ttl)
            if response is not None:
                rcode = dns.rcode.to_text(response.rcode())
                log.debug("upstream refused upstream=%s:%d rcode=%s", host, port, rcode)
                error = f"answered {rcode}"
            self._note(host, port, error)
            self._stats["upstream_failures"] += 1
        log.debug("every upstream failed name=%s type=%d", name, qtype)
        return None

    def _note(self, host: str, port: int, error: str | None) -> None:
        """Log an upstream that starts failing (a warning) or answers again: once each time."""
        upstream = (host, port)
        if error is not None and upstream not in self._failing:
            self._failing.add(upstream)
            log.warning("forward upstream failing upstream=%s:%d error=%s", host, port, error)
        elif error is None and upstream in self._failing:
            self._failing.discard(upstream)
            log.info("forward upstream answering again upstream=%s:%d", host, port)


def _render(
    query: dns.message.Message,
    answer: _Answer | None,
    age: int,
    limit: int,
    *,
    rcode: dns.rcode.Rcode,
) -> bytes:
    """The reply to `query` holding `answer` aged by `age` seconds, cut to fit `limit`."""
    reply = dns.message.make_response(
        query, recursion_available=True, our_payload=EDNS_PAYLOAD, pad=0
    )
    reply.flags |= query.flags & dns.flags.CD
    reply.set_rcode(rcode)
    do = reply.edns >= 0 and bool(query.ednsflags & dns.flags.DO)
    if do:
        reply.ednsflags |= dns.flags.DO  # RFC 3225 section 3
    if answer is not None:
        if do and answer.authentic:
            reply.flags |= dns.flags.AD  # only to a client that showed it knows DNSSEC
        for section, rrsets in zip(
            (reply.answer, reply.authority, reply.additional), answer.sections, strict=True
        ):
            section.extend(_capped(r, r.ttl - age) for r in rrsets)
    try:
        # Names compress case-insensitively, so owners equal to the question point at it
        # and show the client's spelling.
        return reply.to_wire(max_size=limit)
    except dns.exception.TooBig:
        reply.answer.clear()
        reply.authority.clear()
        reply.additional.clear()
        reply.flags |= dns.flags.TC
        return reply.to_wire()
