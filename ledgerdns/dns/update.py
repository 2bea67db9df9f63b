"""RFC 2136 DNS UPDATE signed with TSIG (RFC 8945), turned into one signed ledger transaction.

Each TSIG key that may update is mapped (``[dns.update] keys``) to a signing key
the node holds (the composition root loads the key files, `ledgerdns.keyfiles`,
and hands the keys over); an UPDATE verified with that TSIG key may change the
domains that signing key owns. The update is applied to the domain's finalized
records (`ledgerdns.dns.update_rules`), signed as the wallet signs (the
transaction builder they share, `chain.txbuilder`), submitted, and answered once
the transaction is finalized. Updates of one domain are serialized, so two
concurrent ones never race for the same sequence number.

Answers (docs/dns.md lists them all):

- unsigned: NOTAUTH; unknown key, bad MAC, bad time: NOTAUTH with TSIG error
  BADKEY / BADSIG (unsigned, RFC 8945 5.3.2) or BADTIME (signed: more than
  min(fudge, 300 s) off our clock, or a replay: signed before the last request
  accepted with that key, or that very request again; `ledgerdns.dns.signing_times`
  keeps this on disk); a key not mapped to a signing key: REFUSED.
- zone: not exactly one SOA question: FORMERR; not a registered, active
  ledger domain (``label.tld``), or a class other than IN: NOTAUTH; a TLD:
  REFUSED; a domain the mapped signing key does not own: REFUSED.
- prerequisites and prescan as RFC 2136 3.2 and 3.4.1; a record the ledger
  cannot hold or a record set it refuses: REFUSED; no finality within
  ``wait_s``: SERVFAIL. Nothing to change: NOERROR, no transaction.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import cast

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.tsig
import dns.update
import trio

from chain.crypto import PrivateKey
from chain.errors import InvalidUpdate, RejectReason
from chain.names import validate_domain
from chain.records import Record
from chain.state import DomainState
from chain.tx import Op, Transaction
from chain.txbuilder import DomainView, build_tx, check_record_set, valid_until
from ledgerdns.clock import SYSTEM_CLOCK
from ledgerdns.dns.faces import Writer
from ledgerdns.dns.resolve import ZoneSource
from ledgerdns.dns.result import labels_of
from ledgerdns.dns.settings import DnsSettings
from ledgerdns.dns.signing_times import SigningTimes
from ledgerdns.dns.tsig import (
    TsigRdata,
    bad_time,
    bare_reply,
    error_name,
    is_on_time,
    make_keyring,
    reply,
    unsigned_error,
)
from ledgerdns.dns.update_rules import (
    UpdateRR,
    ZoneView,
    apply_updates,
    check_prerequisites,
    prescan,
    read_sections,
)
from ledgerdns.dns.zone import ZoneConfig, make_ns, make_soa

log = logging.getLogger(__name__)

_STALE = frozenset({RejectReason.BAD_SEQUENCE, RejectReason.BAD_PREV, RejectReason.DUPLICATE})
_BUSY = frozenset({RejectReason.MEMPOOL_FULL, RejectReason.DOMAIN_QUEUE_FULL})
_ATTEMPTS = 3  # another writer slipped in between our read and our submit: read again
_PENDING_POLL_S = 0.5
_SETTLE_PAUSE_S = 0.01


class _DomainLocks:
    """One trio lock per domain with an update in flight (forgotten when unused)."""

    def __init__(self) -> None:
        # bound: the domains with an UPDATE in flight now (an entry goes with its last user)
        self._locks: dict[str, tuple[trio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, domain: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(domain, (trio.Lock(), 0))
        self._locks[domain] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[domain]
            if users == 1:
                del self._locks[domain]
            else:
                self._locks[domain] = (lock, users - 1)


class Updater:
    """Answers RFC 2136 UPDATE messages for the ledger domains the node's update keys own.

    Args:
        settings: the ``[dns]`` settings: TSIG keys, and which may update with which key.
        source: the finalized state (`ZoneSource`; the node's ledger).
        writer: submit, wait for finality, and the domain's pending transactions.
        signers: the signing key each TSIG key may update with (the root loads them:
            `ledgerdns.keyfiles.load_signers`); a TSIG key not here is REFUSED.
        zone: what the synthesized SOA and NS say (as the DNS server is configured),
            for prerequisites that name them.
        now_s: the wall clock in unix seconds (for transaction deadlines and TSIG times);
            the node hands in its `ledgerdns.clock.Clock`.
        signing_times: the TSIG replay memory; the node hands one kept in its data
            directory, so a restart does not forget it (default: in memory only).
    """

    def __init__(
        self,
        settings: DnsSettings,
        source: ZoneSource,
        writer: Writer,
        *,
        signers: Mapping[str, PrivateKey] | Mapping[dns.name.Name, PrivateKey],
        zone: ZoneConfig | None = None,
        now_s: Callable[[], int] = SYSTEM_CLOCK.now_s,
        signing_times: SigningTimes | None = None,
    ) -> None:
        self._source = source
        self._writer = writer
        self._wait_s = settings.update.wait_s
        self._zone = zone or ZoneConfig()
        self._now_s = now_s
        self._keyring = make_keyring(settings.tsig)
        self._times = signing_times if signing_times is not None else SigningTimes()
        self._signers = {
            dns.name.from_text(name) if isinstance(name, str) else name: key
            for name, key in signers.items()
        }
        self._locks = _DomainLocks()

    async def answer(self, message: bytes, peer: tuple[str, int]) -> bytes | None:
        """The reply to one UPDATE message (UDP or TCP); None when there is nothing to say.

        Never raises (but for cancellation): a bug is logged and answered SERVFAIL.
        """
        try:
            return await self._answer(message, peer)
        except Exception:
            log.error("dns update failed peer=%s size=%d", peer, len(message), exc_info=True)
            return bare_reply(message, dns.rcode.SERVFAIL)

    # -- authentication --

    async def _answer(self, message: bytes, peer: tuple[str, int]) -> bytes | None:
        if len(message) < 12 or message[2] & 0x80:
            return None  # a fragment or a response: no reply (as the query path does)
        try:
            query = dns.message.from_wire(message, keyring=False, one_rr_per_rrset=True)
        except dns.exception.DNSException as exc:
            log.debug("dns update malformed peer=%s error=%s", peer, exc)
            return bare_reply(message, dns.rcode.FORMERR)
        if query.opcode() != dns.opcode.UPDATE:
            return bare_reply(message, dns.rcode.NOTIMP)
        if not query.had_tsig or query.keyname is None:
            log.debug("dns update refused peer=%s reason=unsigned", peer)
            return reply(query, dns.rcode.NOTAUTH)
        key = self._keyring.get(query.keyname)
        if key is None:
            return _tsig_refused(query, dns.rcode.BADKEY, peer)
        try:
            verified = dns.message.from_wire(
                message, keyring={query.keyname: key}, one_rr_per_rrset=True
            )
        except (dns.tsig.BadKey, dns.tsig.BadAlgorithm):
            return _tsig_refused(query, dns.rcode.BADKEY, peer)
        except dns.tsig.BadSignature:
            return _tsig_refused(query, dns.rcode.BADSIG, peer)
        except dns.tsig.BadTime:
            log.info("dns update refused peer=%s key=%s reason=badtime", peer, query.keyname)
            return bad_time(query, key, self._now_s())
        except dns.exception.DNSException as exc:  # e.g. a TSIG error set in a request
            log.debug("dns update malformed peer=%s error=%s", peer, exc)
            return bare_reply(message, dns.rcode.FORMERR)
        assert isinstance(verified, dns.update.UpdateMessage)
        stale = await self._stale(query, verified, key, peer)
        if stale is not None:
            return stale
        return reply(verified, await self._authorized(verified, message, peer))

    async def _stale(
        self,
        query: dns.message.Message,
        verified: dns.update.UpdateMessage,
        key: dns.tsig.Key,
        peer: tuple[str, int],
    ) -> bytes | None:
        """BADTIME (signed) for a request too far from our clock or replayed; None to go on.

        dnspython accepts whatever fudge the request names (up to 65,535 s); we
        accept at most `MAX_FUDGE_S`. A captured update replayed within that window
        would otherwise be carried out again (RFC 8945 5.2.3: refuse it with
        BADTIME), so the replay memory admits the request, on disk, before we act.
        """
        assert verified.tsig is not None
        signed = cast(TsigRdata, verified.tsig[0])
        now_s = self._now_s()
        if not is_on_time(signed, now_s):
            reason = "badtime"
        elif not await self._times.admit(
            key.name.to_text(), int(signed.time_signed), bytes(signed.mac), now_s=now_s
        ):
            reason = "replay"
        else:
            return None
        log.info("dns update refused peer=%s key=%s reason=%s", peer, query.keyname, reason)
        return bad_time(query, key, now_s)

    async def _authorized(
        self, message: dns.update.UpdateMessage, wire: bytes, peer: tuple[str, int]
    ) -> dns.rcode.Rcode:
        assert message.keyname is not None
        signer = self._signers.get(message.keyname)
        if signer is None:
            log.info(
                "dns update refused peer=%s key=%s reason=key-not-mapped", peer, message.keyname
            )
            return dns.rcode.REFUSED
        if len(message.zone) != 1:
            return dns.rcode.FORMERR
        apex, zclass = message.zone[0].name, message.zone[0].rdclass
        domain, rcode = self._zone_domain(apex, zclass)
        if domain is None:
            log.info("dns update refused peer=%s zone=%s rcode=%s", peer, apex, rcode.name)
            return rcode
        prerequisites, updates = read_sections(wire, message.prerequisite, message.update)
        with trio.move_on_after(self._wait_s):
            async with self._locks.hold(domain):
                return await self._update(domain, apex, zclass, prerequisites, updates, signer)
        log.warning("dns update timed out domain=%s wait_s=%g", domain, self._wait_s)
        return dns.rcode.SERVFAIL

    def _zone_domain(self, apex: dns.name.Name, zclass: int) -> tuple[str | None, dns.rcode.Rcode]:
        """The ledger domain a zone section names, or None and the RCODE (RFC 2136 3.1.1)."""
        if zclass != dns.rdataclass.IN:
            return None, dns.rcode.NOTAUTH
        name = apex.canonicalize().to_text(omit_final_dot=True)
        tlds = self._source.params.tlds
        if name in tlds:
            return None, dns.rcode.REFUSED  # ours, but a TLD holds no records to update
        try:
            validate_domain(name, tlds)
        except InvalidUpdate:
            return None, dns.rcode.NOTAUTH
        return name, dns.rcode.NOERROR

    # -- the update, under the domain's lock --

    async def _update(
        self,
        domain: str,
        apex: dns.name.Name,
        zclass: int,
        prerequisites: list[UpdateRR],
        updates: list[UpdateRR],
        signer: PrivateKey,
    ) -> dns.rcode.Rcode:
        for _ in range(_ATTEMPTS):
            await self._settle(domain)
            outcome = self._evaluate(domain, apex, zclass, prerequisites, updates, signer)
            if isinstance(outcome, dns.rcode.Rcode):
                return outcome
            state, records = outcome
            rcode = await self._submit(self._sign(state, records, signer))
            if rcode is not None:
                return rcode
        log.warning("dns update gave up domain=%s reason=stale attempts=%d", domain, _ATTEMPTS)
        return dns.rcode.SERVFAIL

    def _evaluate(
        self,
        domain: str,
        apex: dns.name.Name,
        zclass: int,
        prerequisites: list[UpdateRR],
        updates: list[UpdateRR],
        signer: PrivateKey,
    ) -> dns.rcode.Rcode | tuple[DomainState, tuple[Record, ...]]:
        """The RCODE to answer now, or the finalized state and the records to replace it with."""
        head = self._source.head
        state = self._source.get_domain(domain)
        if state is None or not state.is_active(head.time_ms // 1000):
            return dns.rcode.NOTAUTH  # not a zone this server serves (NXDOMAIN to queries)
        if state.owner != signer.public_key:
            log.info("dns update refused domain=%s reason=not-owner", domain)
            return dns.rcode.REFUSED
        labels = labels_of(domain)
        zone = ZoneView.of(
            apex,
            state.records,
            soa=make_soa(labels, head.height, self._zone).rdata,
            ns=[rr.rdata for rr in make_ns(labels, self._zone)],
        )
        rcode = check_prerequisites(prerequisites, zone, zclass)
        if rcode == dns.rcode.NOERROR:
            rcode = prescan(updates, apex, zclass)
        if rcode != dns.rcode.NOERROR:
            log.debug("dns update not applied domain=%s rcode=%s", domain, rcode.name)
            return rcode
        records = _new_records(domain, updates, state.records, apex)
        if records is None:
            return dns.rcode.REFUSED
        if records == state.records:
            return dns.rcode.NOERROR  # nothing changes: nothing to sign (RFC 2136 3.4.2.7)
        return state, records

    async def _settle(self, domain: str) -> None:
        """Wait until the domain has no pending transaction (the caller bounds the wait).

        Prerequisites are judged on finalized state, and the update must chain on
        it: so an update first lets pending ones (a wallet's, say) land.
        """
        while pending := self._writer.pending_for(domain):
            if await self._writer.wait_finalized(pending[-1].txid, _PENDING_POLL_S):
                await trio.sleep(_SETTLE_PAUSE_S)  # final, but the mempool may lag a moment

    def _sign(
        self, state: DomainState, records: tuple[Record, ...], signer: PrivateKey
    ) -> Transaction:
        view = DomainView(
            domain=state.domain,
            status="active",
            owner=state.owner,
            seq=state.seq,
            head=state.head,
            records=state.records,
            expires_at=state.expires_at,
            pending=0,
        )
        params = self._source.params
        deadline = valid_until(self._source.head.time_ms, self._now_s(), params.max_tx_lifetime_s)
        return build_tx(
            view, op=Op.UPDATE, key=signer, chain_id=params.chain_id,
            genesis_hash=params.genesis_hash, deadline=deadline, records=records,
        )  # fmt: skip

    async def _submit(self, tx: Transaction) -> dns.rcode.Rcode | None:
        """Submit and wait for finality: the RCODE, or None to read the state again (stale)."""
        domain, txid = tx.body.domain, tx.txid.hex()[:16]
        try:
            await self._writer.submit(tx)
        except InvalidUpdate as exc:
            if exc.reason in _STALE:
                log.debug("dns update stale domain=%s reason=%s", domain, exc.reason)
                return None
            if exc.reason in _BUSY:
                log.warning("dns update not admitted domain=%s reason=%s", domain, exc.reason)
                return dns.rcode.SERVFAIL
            log.info("dns update refused domain=%s reason=%s error=%s", domain, exc.reason, exc)
            return dns.rcode.REFUSED
        where = await self._writer.wait_finalized(tx.txid, self._wait_s)
        if where is None:
            log.warning("dns update not finalized domain=%s tx=%s", domain, txid)
            return dns.rcode.SERVFAIL
        log.info("dns update applied domain=%s tx=%s height=%d", domain, txid, where[0])
        return dns.rcode.NOERROR


def _tsig_refused(query: dns.message.Message, error: dns.rcode.Rcode, peer: object) -> bytes:
    log.info(
        "dns update refused peer=%s key=%s reason=%s",
        peer,
        query.keyname,
        error_name(error),
    )
    return unsigned_error(query, error)


def _new_records(
    domain: str, updates: list[UpdateRR], records: tuple[Record, ...], apex: dns.name.Name
) -> tuple[Record, ...] | None:
    """The checked record set after `updates`, or None (logged) if the ledger cannot hold it."""
    try:
        applied = apply_updates(updates, records, apex)
        checked = check_record_set(applied.records)
    except InvalidUpdate as exc:
        log.info("dns update refused domain=%s error=%s", domain, exc)
        return None
    for note in applied.ignored:
        log.debug("dns update ignored domain=%s rr=%s", domain, note)
    return checked
