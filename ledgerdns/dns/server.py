"""The DNS server: UDP and TCP on one port, answering from the finalized ledger (trio).

What answers a message (`DnsServer.dispatch`): UPDATE goes to the `updater`
(RFC 2136), AXFR/IXFR to `transfers`, a name outside the ledger TLDs to the
`forwarder` when the client may recurse, and everything else to the answer
cache (`ledgerdns.dns.cache`), which reads the finalized ledger.

UDP is served by worker processes (`ledgerdns.dns.workers`) that keep the
encoded replies of repeat questions and pass the rest here; with
``workers=0`` (or no `blocks` feed) UDP is served in this event
loop instead: one receive loop that answers synchronously and hands replies
to a sender task through a bounded queue, dropping replies when it is full.
Either way, responses per client prefix are rate limited (`ledgerdns.dns.rrl`).
TCP takes length-prefixed messages, several per connection, with an idle
timeout and a cap on concurrent connections (RFC 7766).
"""

from __future__ import annotations

import errno
import logging
import socket as stdlib_socket
from collections.abc import Awaitable, Callable
from typing import Any

import dns.exception
import dns.message
import trio

from ledgerdns.clock import SYSTEM_CLOCK
from ledgerdns.dns.answer import EDNS_PAYLOAD, AnswerBuilder
from ledgerdns.dns.cache import (
    DEFAULT_MAX_ENTRIES,
    MAX_TCP_MESSAGE,
    WORKER_FRONTED_ENTRIES,
    AnswerCache,
)
from ledgerdns.dns.faces import BlockFeed, Forwarder, Notifier, Transfers, Updater
from ledgerdns.dns.nametable_build import DomainLister, NameTableSource
from ledgerdns.dns.proof_reply import ProofResponder
from ledgerdns.dns.proofs import ProofSource
from ledgerdns.dns.querylog import QueryLog
from ledgerdns.dns.resolve import ZoneSource
from ledgerdns.dns.result import CLASS_IN, QType
from ledgerdns.dns.rrl import SLIP, RateLimiter, slip_reply
from ledgerdns.dns.settings import DnsSettings, in_networks
from ledgerdns.dns.stats import QueryCounts
from ledgerdns.dns.tcp import TcpFront
from ledgerdns.dns.tsig import Refusal, error_name, make_keyring, sign_reply, verify
from ledgerdns.dns.wire import (
    FLAG_QR,
    HEADER,
    HEADER_SIZE,
    OPCODE_MASK,
    Query,
    Rcode,
    Rejection,
    bare_reply,
    parse_query,
    servfail_for,
)
from ledgerdns.dns.workers import Immediate, Keep, WorkerPool
from ledgerdns.dns.zone import ZoneConfig

log = logging.getLogger(__name__)

_MAX_UDP_RECEIVE = 65535
_UDP_BUFFER = 4 << 20  # socket buffers: ride out bursts while a worker is descheduled
_BIND_ATTEMPTS = 20
_LISTEN_BACKLOG = 128
_OPCODE_UPDATE = 5
_XFR_TYPES = frozenset({QType.AXFR, QType.IXFR})

Address = tuple[str, int]


class DnsServer:
    """Serves DNS over UDP and TCP on one address.

    Args:
        zone: the finalized state to answer from (`ZoneSource`; a ledger is one).
        blocks: tells the server of every stored block, so caches are
            invalidated per block and UDP workers can follow; without it the
            cache is cleared whenever it sees the height move, and UDP is
            served in-process.
        host: the address to bind (default loopback).
        port: the port for both UDP and TCP; 0 picks a free one.
        config: what the synthesized SOA and NS records say.
        settings: the ``[dns]`` configuration (workers, rate limiting, TCP
            limits, CHAOS answers, who may recurse).
        forwarder, updater, transfers, notifier: the optional faces.
        proofs: where proofs over DNS are read from (`ledgerdns.dns.proof_reply`;
            usually the same ledger as `zone`); None: the proof option is ignored.
        edns_payload: the UDP payload size we advertise and send at most.
        tcp_idle_timeout_s, max_tcp_connections: override `settings.tcp`.
        udp_queue: replies waiting to be sent (in-process UDP only).
        cache_entries: the most cached replies (default: `WORKER_FRONTED_ENTRIES` with UDP
            workers, else `DEFAULT_MAX_ENTRIES`).
        now_s: the wall clock TSIG-signed queries are checked against.
    """

    def __init__(
        self,
        zone: ZoneSource,
        host: str = "127.0.0.1",
        port: int = 53,
        *,
        blocks: BlockFeed | None = None,
        config: ZoneConfig | None = None,
        settings: DnsSettings | None = None,
        forwarder: Forwarder | None = None,
        updater: Updater | None = None,
        transfers: Transfers | None = None,
        notifier: Notifier | None = None,
        proofs: ProofSource | None = None,
        edns_payload: int = EDNS_PAYLOAD,
        tcp_idle_timeout_s: float | None = None,
        max_tcp_connections: int | None = None,
        udp_queue: int = 1024,
        cache_entries: int | None = None,
        now_s: Callable[[], int] = SYSTEM_CLOCK.now_s,
    ) -> None:
        settings = settings or DnsSettings()
        ledger = zone
        if blocks is not None:
            blocks.on_block_applied(self._block_applied)
            self._workers = settings.workers
        else:
            self._workers = 0  # nobody would tell the workers when the ledger moves
        builder = AnswerBuilder(ledger, config, edns_payload=edns_payload, chaos=settings.chaos)
        if cache_entries is None:  # the workers keep UDP replies: the node needs fewer
            cache_entries = WORKER_FRONTED_ENTRIES if self._workers else DEFAULT_MAX_ENTRIES
        self.cache = AnswerCache(builder, max_entries=cache_entries)
        self._builder = builder
        self._ledger = ledger
        self._settings = settings
        self._resolver = builder.resolver
        self._forwarder = forwarder
        self._updater = updater
        self._transfers = transfers
        self._notifier = notifier
        self._proof_replies = ProofResponder(builder, proofs) if proofs is not None else None
        self._keyring = make_keyring(settings.tsig)
        self._now_s = now_s
        self._rrl = _rate_limiter(settings)
        self._edns_payload = edns_payload
        self._host = host
        self._port = port
        tcp = settings.tcp
        self._tcp = TcpFront(
            lambda data, peer: self.dispatch(data, peer, tcp=True),
            idle_s=tcp.idle_timeout_s if tcp_idle_timeout_s is None else tcp_idle_timeout_s,
            max_connections=tcp.max_connections
            if max_tcp_connections is None
            else max_tcp_connections,
        )
        self._udp_queue = udp_queue
        self._pool: WorkerPool | None = None
        self._address: Address | None = None
        self._nursery: trio.Nursery | None = None
        self._notifier_scope: trio.CancelScope | None = None
        self.udp_dropped = 0
        self.queries = QueryCounts()  # what this process answered (not the workers' own replies)
        self.query_log: QueryLog | None = None  # every query logged as JSON when set

    @property
    def address(self) -> Address:
        """The bound ``(host, port)``.

        Raises:
            RuntimeError: the server is not listening yet.
        """
        if self._address is None:
            raise RuntimeError("the DNS server is not listening yet")
        return self._address

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Bind, start the UDP workers, report ``(host, port)`` through `task_status`, serve until cancelled.

        Raises:
            OSError: the address cannot be bound (in use, not ours, no permission).
        """
        udp, tcp = await self._bind()
        with udp, tcp:
            host, port = udp.getsockname()[:2]
            log.info("dns listening host=%s port=%d workers=%d", host, port, self._workers)
            try:
                async with trio.open_nursery() as nursery:
                    if self._workers > 0:
                        self._pool = WorkerPool(
                            udp,
                            self._workers,
                            self._settings.rrl,
                            self._udp_dispatch,
                            names=self._name_source(),
                            payload=self._edns_payload,
                        )
                        await nursery.start(self._pool.run)
                    else:
                        trio_udp = trio.socket.from_stdlib_socket(udp)
                        send, receive = trio.open_memory_channel[tuple[bytes, Any]](self._udp_queue)
                        nursery.start_soon(self._udp_send_loop, trio_udp, receive)
                        nursery.start_soon(self._udp_receive_loop, trio_udp, send, nursery)
                    if self._notifier is not None:
                        await nursery.start(self._run_notifier, self._notifier)
                    self._nursery = nursery
                    nursery.start_soon(
                        self._tcp.serve, trio.socket.from_stdlib_socket(tcp), nursery
                    )
                    self._address = (host, port)
                    task_status.started(self._address)
            finally:
                self._address = None
                self._pool = None
                self._nursery = None

    async def _run_notifier(
        self, notifier: Notifier, *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        with trio.CancelScope() as scope:
            self._notifier_scope = scope
            await notifier.run(task_status=task_status)

    # -- reload --

    def reconfigure(
        self,
        settings: DnsSettings,
        *,
        forwarder: Forwarder | None,
        updater: Updater | None,
        transfers: Transfers | None,
        notifier: Notifier | None,
    ) -> list[str]:
        """Take new settings and faces while serving (SIGHUP): no query is dropped.

        Queries being answered finish with the faces they started with; the next
        ones see the new. Cached replies are dropped (who may recurse, and so
        what a name outside the ledger gets, may have changed).

        Returns:
            The settings that changed but only take effect at a restart:
            ``dns.workers``, ``dns.tcp``, ``dns.chaos`` (``dns.rrl`` restarts
            the UDP workers with the new limits).
        """
        old = self._settings
        later = [
            name
            for name, before, after in (
                ("dns.workers", old.workers, settings.workers),
                ("dns.tcp", old.tcp, settings.tcp),
                ("dns.chaos", old.chaos, settings.chaos),
            )
            if before != after
        ]
        if settings.rrl != old.rrl:
            if self._pool is not None:
                self._pool.set_rrl(settings.rrl)  # the workers restart with it
            else:
                limited, self._rrl = self._rrl.limited, _rate_limiter(settings)
                self._rrl.limited = limited  # a counter: it goes on
        self._settings = settings
        self._keyring = make_keyring(settings.tsig)
        self._forwarder, self._updater, self._transfers = forwarder, updater, transfers
        if self._notifier_scope is not None:
            self._notifier_scope.cancel()
            self._notifier_scope = None
        self._notifier = notifier
        if notifier is not None and self._nursery is not None:
            self._nursery.start_soon(self._run_notifier, notifier)
        self.cache.clear()
        if self._pool is not None:
            self._pool.clear()
        return later

    def _name_source(self) -> NameTableSource | None:
        """Where the workers' name tables come from: the ledger, when it can list its domains.

        None while the query log is on: every query must reach this process to be logged.
        """
        if isinstance(self._ledger, DomainLister) and self.query_log is None:
            return NameTableSource(self._builder, self._ledger)
        return None

    @property
    def names_complete(self) -> bool:
        """Whether every UDP worker holds every active domain's names (True without workers)."""
        return self._pool is None or self._pool.names_complete

    @property
    def tcp_connections(self) -> int:
        """Open TCP connections."""
        return self._tcp.connections

    @property
    def tcp_refused(self) -> int:
        """TCP connections closed at once because the cap was reached."""
        return self._tcp.refused

    @property
    def rrl_limited(self) -> int:
        """UDP responses dropped or slipped by rate limiting in this process (workers keep their own)."""
        return self._rrl.limited

    @property
    def forwarder(self) -> Forwarder | None:
        """The forwarding face, if the settings turn it on."""
        return self._forwarder

    @property
    def workers(self) -> WorkerPool | None:
        """The running UDP worker pool (None: UDP is served in this process, or not started)."""
        return self._pool

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the running UDP workers (empty when UDP is served in-process)."""
        return list(self._pool.pids) if self._pool is not None else []

    # -- the ledger hook --

    def _block_applied(self, height: int, changed: frozenset[str]) -> None:
        self.cache.invalidate(changed)
        if self._pool is not None:
            self._pool.invalidate(changed, self._ledger.head.time_ms // 1000)
        if self._notifier is not None:
            self._notifier.block_applied(height, changed)

    # -- binding --

    async def _bind(self) -> tuple[stdlib_socket.socket, stdlib_socket.socket]:
        """UDP first, then TCP on the same port; with port 0, retry if TCP finds it taken."""
        infos = await trio.socket.getaddrinfo(self._host, self._port, type=stdlib_socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        attempts = _BIND_ATTEMPTS if self._port == 0 else 1
        for attempt in range(attempts):
            udp = stdlib_socket.socket(family, stdlib_socket.SOCK_DGRAM)
            try:
                udp.bind(sockaddr)
                udp.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, _UDP_BUFFER)
                udp.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, _UDP_BUFFER)
                port = udp.getsockname()[1]
                tcp = stdlib_socket.socket(family, stdlib_socket.SOCK_STREAM)
                try:
                    tcp.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
                    tcp.bind((sockaddr[0], port, *sockaddr[2:]))
                    tcp.listen(_LISTEN_BACKLOG)
                except OSError as exc:
                    tcp.close()
                    if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                        raise
                    log.debug("dns tcp port taken, retrying port=%d", port)
                    udp.close()
                    continue
                return udp, tcp
            except BaseException:
                udp.close()
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- answering (never raises) --

    def dispatch(
        self, data: bytes, peer: Any, *, tcp: bool, transport: str | None = None
    ) -> Immediate | list[bytes] | Awaitable[bytes | None]:
        """The reply to one message, by what the message is (see the module doc).

        Returns:
            ``(reply or None, Keep or None)`` when answered at once (a `Keep`
            says a UDP worker may reuse the reply for the same bytes); a list of
            messages for a zone transfer over TCP; or an awaitable reply from a
            slow face (forwarding, UPDATE). Never raises: a bug answers SERVFAIL.
            `transport` labels the query in `queries` (default ``udp`` or ``tcp``;
            DoT and DoH answer as TCP does, counted as ``dot`` and ``doh``).
        """
        transport = transport or ("tcp" if tcp else "udp")
        started = trio.current_time() if self.query_log is not None else 0.0
        try:
            result = self._dispatch(data, peer, tcp=tcp)
        except Exception:
            # A bug, not bad input (the reader rejects that): one query must not take the
            # node down, so answer SERVFAIL and log loudly with the traceback.
            log.error("dns answer failed size=%d tcp=%s", len(data), tcp, exc_info=True)
            result = servfail_for(data), None
        if isinstance(result, tuple):
            self.queries.note(transport, data, result[0])
        elif isinstance(result, list):
            self.queries.note(transport, data, result[0] if result else None)
        else:
            result = self._counted(result, data, transport)
        if self.query_log is not None:
            return self.query_log.logged(result, data, peer[0], tcp=tcp, started=started)
        return result

    def _dispatch(
        self, data: bytes, peer: Any, *, tcp: bool
    ) -> Immediate | list[bytes] | Awaitable[bytes | None]:
        if len(data) < HEADER_SIZE:
            return None, None
        flags = HEADER.unpack_from(data)[1]
        if flags & FLAG_QR:
            return None, None
        client = (peer[0], peer[1])
        if (flags & OPCODE_MASK) >> 11 == _OPCODE_UPDATE and self._updater is not None:
            return self._guarded(self._settled(self._updater.answer(data, client)), data)
        query = parse_query(data)
        if isinstance(query, Query):
            # Transfers, and the signed SOA queries secondaries check serials with.
            signed_soa = query.qtype == QType.SOA and not query.plain
            if (
                self._transfers is not None
                and query.qclass == CLASS_IN
                and (query.qtype in _XFR_TYPES or signed_soa)
            ):
                replies = self._transfers.answer(data, client, tcp=tcp)
                if replies is not None or not signed_soa:
                    replies = replies or []
                    return replies if tcp else (replies[0] if replies else None, None)
            if query.signed:
                return self._signed(data, query, client, tcp=tcp)
            if (
                self._forwarder is not None
                and query.qclass == CLASS_IN
                and not self._in_ledger(query)
            ):
                if in_networks(peer[0], self._settings.forward.allow):
                    limit = MAX_TCP_MESSAGE if tcp else query.udp_limit(self._edns_payload)
                    return self._guarded(self._forwarder.answer(data, limit=limit), data)
                return self.cache.lookup(query, tcp=tcp)[0], None  # REFUSED, for this client only
            if query.edns is not None and query.edns.proof and self._proof_replies is not None:
                # Never kept (no Keep): a proof is of the head now, the next block outdates it.
                limit = MAX_TCP_MESSAGE if tcp else query.udp_limit(self._edns_payload)
                return self._proof_replies.respond(query, limit=limit), None
        reply, cached = self.cache.lookup(query, tcp=tcp)
        if cached is None or not cached.cacheable:
            return reply, None
        return reply, Keep(cached.zone, cached.serial_bound, cached.expires_at)

    def _signed(
        self, data: bytes, query: Query, client: Address, *, tcp: bool
    ) -> Immediate | Awaitable[bytes | None]:
        """A TSIG-signed query (RFC 8945), as BIND answers one: verified, then signed.

        An unknown key gets NOTAUTH with BADKEY, a bad MAC BADSIG (both unsigned),
        a clock too far off BADTIME; a verified query is answered as it would be
        unsigned, and the reply signed with its key.
        """
        try:
            request = dns.message.from_wire(data, keyring=False)
            verified = verify(data, request, self._keyring, self._now_s())
        except dns.exception.DNSException as exc:
            log.debug("dns signed query malformed peer=%s error=%s", client[0], exc)
            return bare_reply(Rejection(query.id, query.flags, Rcode.FORMERR)), None
        if isinstance(verified, Refusal):
            reason = error_name(verified.error)
            log.info(
                "dns query refused peer=%s key=%s reason=%s", client[0], request.keyname, reason
            )
            return verified.reply, None
        limit = MAX_TCP_MESSAGE if tcp else query.udp_limit(self._edns_payload)
        result = self._dispatch(query.without_tsig(data), client, tcp=tcp)
        if isinstance(result, list):  # a zone transfer is signed by `transfers` itself
            result = (result[0] if result else None), None
        if isinstance(result, tuple):
            reply = result[0]
            return (sign_reply(reply, verified, limit) if reply else None), None
        return self._sign_later(result, verified, limit)

    async def _sign_later(
        self, pending: Awaitable[bytes | None], request: dns.message.Message, limit: int
    ) -> bytes | None:
        reply = await pending
        return sign_reply(reply, request, limit) if reply else None

    def _in_ledger(self, query: Query) -> bool:
        return self._resolver.tld_of(tuple(label.lower() for label in query.qname)) is not None

    async def _counted(
        self, pending: Awaitable[bytes | None], data: bytes, transport: str
    ) -> bytes | None:
        reply = await pending
        self.queries.note(transport, data, reply)
        return reply

    async def _settled(self, pending: Awaitable[bytes | None]) -> bytes | None:
        """`pending`'s reply once the UDP workers hold what it changed (read your writes)."""
        reply = await pending
        if self._pool is not None:
            await self._pool.settled()
        return reply

    async def _guarded(self, pending: Awaitable[bytes | None], data: bytes) -> bytes | None:
        try:
            return await pending
        except Exception:
            log.error("dns answer failed size=%d", len(data), exc_info=True)
            return servfail_for(data)

    def _udp_dispatch(self, data: bytes, peer: Any) -> Immediate | Awaitable[bytes | None]:
        result = self.dispatch(data, peer, tcp=False)
        if isinstance(result, list):
            return (result[0] if result else None), None
        return result

    # -- UDP in this process (workers = 0) --

    async def _udp_receive_loop(
        self,
        sock: trio.socket.SocketType,
        send: trio.MemorySendChannel[tuple[bytes, Any]],
        nursery: trio.Nursery,
    ) -> None:
        async with send:
            while True:
                try:
                    data, peer = await sock.recvfrom(_MAX_UDP_RECEIVE)
                except OSError as exc:  # an ICMP error for an earlier reply, on some systems
                    log.debug("dns udp receive error=%s", exc)
                    continue
                verdict = self._rrl.check(peer[0])
                if verdict:
                    reply = slip_reply(data) if verdict == SLIP else None
                else:
                    result = self._udp_dispatch(data, peer)
                    if not isinstance(result, tuple):
                        nursery.start_soon(self._udp_slow, result, peer, send)
                        continue
                    reply = result[0]
                if reply is None:
                    continue
                try:
                    send.send_nowait((reply, peer))
                except trio.WouldBlock:
                    self.udp_dropped += 1

    async def _udp_slow(
        self,
        pending: Awaitable[bytes | None],
        peer: Any,
        send: trio.MemorySendChannel[tuple[bytes, Any]],
    ) -> None:
        reply = await pending
        if reply is not None:
            try:
                send.send_nowait((reply, peer))
            except (trio.WouldBlock, trio.ClosedResourceError):
                self.udp_dropped += 1

    async def _udp_send_loop(
        self, sock: trio.socket.SocketType, receive: trio.MemoryReceiveChannel[tuple[bytes, Any]]
    ) -> None:
        async with receive:
            async for reply, peer in receive:
                try:
                    await sock.sendto(reply, peer)
                except OSError as exc:
                    log.debug("dns udp send failed peer=%s error=%s", peer, exc)


def _rate_limiter(settings: DnsSettings) -> RateLimiter:
    rrl = settings.rrl
    return RateLimiter(
        rrl.rate,
        rrl.slip,
        ipv4_prefix=rrl.ipv4_prefix,
        ipv6_prefix=rrl.ipv6_prefix,
        exempt=rrl.exempt,
    )
