"""The resolver's DNS server: UDP and TCP on one port, each query to the right path.

- A class-IN question under a ledger TLD: from the cache of verified replies,
  else from a proof fetched and checked now (`Verifier`), answered by the
  node's own lookup over the proven state (`answers.verified_reply`); when no
  upstream proves its answer, SERVFAIL with an Extended DNS Error per upstream.
- Anything else: the ``--forward`` resolvers through the node's `Forwarder`
  (for clients on private networks, as the node does), or REFUSED.

One trio event loop; a query that needs an upstream runs as its own task
(at most `MAX_PENDING` at once over UDP: more are dropped, as a busy resolver
does, and the client retries). Nothing here imports libp2p or the node.
"""

from __future__ import annotations

import errno
import json
import logging
import socket as stdlib_socket
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import trio

from chain.errors import ConfigError
from ledgerdns.clock import SYSTEM_CLOCK, Clock
from ledgerdns.dns.result import CLASS_IN, Labels, QType, labels_of
from ledgerdns.dns.settings import ForwardSettings, in_networks
from ledgerdns.dns.tcp import TcpFront
from ledgerdns.dns.wire import (
    EDNS_PAYLOAD,
    Query,
    Rejection,
    bare_reply,
    parse_query,
    servfail_for,
)
from ledgerdns.resolver.answers import (
    badvers_reply,
    refused_reply,
    servfail_reply,
    verified_reply,
)
from ledgerdns.resolver.cache import VerifiedCache
from ledgerdns.resolver.config import Address, ResolverConfig, format_address
from ledgerdns.resolver.verifier import Refusals, Verifier

if TYPE_CHECKING:
    from ledgerdns.dns.forward import Forwarder

log = logging.getLogger(__name__)

MAX_PENDING = 512
MAX_TCP_MESSAGE = 65535
_MAX_UDP_RECEIVE = 65535
_TCP_IDLE_S = 10.0
_TCP_MAX_CONNECTIONS = 128
_BIND_ATTEMPTS = 5
_UDP_BATCH = 64
_UDP_BUFFER = 1 << 20
_TRANSFERS = frozenset({QType.AXFR, QType.IXFR})

Immediate = tuple[bytes | None, None]


class ResolverServer:
    """Serves DNS for this machine from verified ledger state (see the module doc).

    Args:
        config: the checked command line.
        clock: the wall clock proofs' freshness is judged by.

    Attributes:
        address: the bound (host, port), once `run` has started.
        cache: the verified replies.
        verifier: the upstreams and the followed validator-set history.
    """

    def __init__(self, config: ResolverConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self._config = config
        self._params = config.genesis.params
        self._clock = clock
        self.verifier = Verifier(
            self._params,
            config.upstreams,
            max_age_ms=config.max_age_ms,
            timeout_s=config.timeout_s,
            now_ms=clock.now_ms,
        )
        self.cache = VerifiedCache()
        self._forwarder: Forwarder | None = None
        if config.forwards:
            # dnspython's async query stack (with its QUIC support) costs ~0.1 s and
            # ~15 MiB: loaded only when forwarding is asked for.
            from ledgerdns.dns.forward import Forwarder

            self._forwarder = Forwarder(ForwardSettings(upstreams=config.forwards))
        self._forward_allow = ForwardSettings().allow  # private networks, as on a node
        # Longest first: with TLDs "p2p" and "co.p2p", "x.co.p2p" is under "co.p2p".
        self._tlds = sorted((labels_of(t) for t in self._params.tlds), key=len, reverse=True)
        self._pending = 0
        self.dropped = 0
        self.address: Address | None = None

    # -- running --

    async def run(
        self,
        sockets: tuple[stdlib_socket.socket, stdlib_socket.socket],
        *,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve on the bound UDP and TCP `sockets` (`bind`) until cancelled.

        Reports the bound address through `task_status`.
        """
        udp, tcp = sockets
        self.address = (udp.getsockname()[0], udp.getsockname()[1])
        front = TcpFront(
            lambda data, peer: self.dispatch(data, peer, tcp=True),
            idle_s=_TCP_IDLE_S,
            max_connections=_TCP_MAX_CONNECTIONS,
        )
        udp_sock = trio.socket.from_stdlib_socket(udp)
        tcp_sock = trio.socket.from_stdlib_socket(tcp)
        with udp_sock, tcp_sock:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(front.serve, tcp_sock, nursery)
                nursery.start_soon(self._udp_loop, udp, udp_sock, nursery)
                task_status.started(self.address)

    async def _udp_loop(
        self, raw: stdlib_socket.socket, sock: trio.socket.SocketType, nursery: trio.Nursery
    ) -> None:
        """Read what is waiting, up to `_UDP_BATCH` datagrams, answering without yielding.

        Cache hits (most queries) are answered right away on the non-blocking
        socket, with no scheduler round trip per packet; a query that needs an
        upstream becomes a task of its own. A full send buffer drops the reply
        (the client retries), as any UDP server under overload does.
        """
        while True:
            await trio.lowlevel.wait_readable(raw.fileno())
            for _ in range(_UDP_BATCH):
                try:
                    data, peer = raw.recvfrom(_MAX_UDP_RECEIVE)
                except BlockingIOError:
                    break
                except OSError as exc:  # an ICMP error for an earlier reply, on some systems
                    log.debug("udp receive error=%s", exc)
                    continue
                reply = self.cache.lookup_exact(data, now=trio.current_time())
                if reply is None:
                    result = self.dispatch(data, peer, tcp=False)
                    if not isinstance(result, tuple):
                        self._udp_later(sock, result, peer, nursery)
                        continue
                    reply = result[0]
                    if reply is None:
                        continue
                try:
                    raw.sendto(reply, peer)
                except BlockingIOError:
                    self.dropped += 1
                except OSError as exc:
                    log.debug("udp send failed peer=%s error=%s", peer, exc)
            await trio.lowlevel.checkpoint()  # let the upstream and TCP tasks run

    def _udp_later(
        self,
        sock: trio.socket.SocketType,
        pending: Coroutine[Any, Any, bytes | None],
        peer: Any,
        nursery: trio.Nursery,
    ) -> None:
        if self._pending >= MAX_PENDING:
            self.dropped += 1
            pending.close()  # never started: no 'never awaited' warning
            return
        self._pending += 1
        nursery.start_soon(self._udp_slow, sock, pending, peer)

    async def _udp_slow(
        self, sock: trio.socket.SocketType, pending: Coroutine[Any, Any, bytes | None], peer: Any
    ) -> None:
        try:
            reply = await pending
        finally:
            self._pending -= 1
        if reply is not None:
            await _send(sock, reply, peer)

    # -- answering (never raises) --

    def dispatch(
        self, data: bytes, peer: Any, *, tcp: bool
    ) -> Immediate | Coroutine[Any, Any, bytes | None]:
        """The reply to one message: at once (``(reply or None, None)``) or awaitable.

        Never raises: a bug answers SERVFAIL and is logged with its traceback.
        """
        try:
            return self._dispatch(data, peer, tcp=tcp)
        except Exception:
            log.error("answer failed size=%d tcp=%s", len(data), tcp, exc_info=True)
            return servfail_for(data), None

    def _dispatch(
        self, data: bytes, peer: Any, *, tcp: bool
    ) -> Immediate | Coroutine[Any, Any, bytes | None]:
        query = parse_query(data)
        if query is None:
            return None, None
        if isinstance(query, Rejection):
            return bare_reply(query), None
        limit = MAX_TCP_MESSAGE if tcp else query.udp_limit(EDNS_PAYLOAD)
        qname = tuple(label.lower() for label in query.qname)
        if query.qclass == CLASS_IN and self._in_ledger(qname):
            if query.edns is not None and query.edns.version != 0:
                return badvers_reply(query), None
            if query.qtype in _TRANSFERS:
                return refused_reply(query), None  # as a node refuses them: no proof needed
            cached = self.cache.lookup(
                query, now=trio.current_time(), limit=limit, udp_bytes=None if tcp else data
            )
            if cached is not None:
                return cached, None
            return self._verified(query, qname, limit)
        if self._forwarder is not None and in_networks(peer[0], self._forward_allow):
            return self._forwarder.answer(data, limit=limit)
        return refused_reply(query), None

    def _in_ledger(self, qname: Labels) -> bool:
        return any(len(qname) >= len(t) and qname[len(qname) - len(t) :] == t for t in self._tlds)

    async def _verified(self, query: Query, qname: Labels, limit: int) -> bytes | None:
        try:
            result = await self.verifier.fetch(qname, query.qtype)
            if isinstance(result, Refusals):
                return servfail_reply(query, result.failures)
            reply = verified_reply(self._params, result, query)
            now = trio.current_time()
            # A header dated ahead of this clock (by less than the slack allowed) counts as
            # new, not as fresher than new: the bound stays at most --max-staleness from now.
            age_s = max(0, self._clock.now_ms() - result.header.time_ms) / 1000
            fresh_until = now + self._config.max_age_ms / 1000 - age_s
            self.cache.store(query, reply.full, reply.truncated, now=now, fresh_until=fresh_until)
            return reply.fitting(limit)
        except Exception:
            log.error("verified answer failed name=%s", _show(qname), exc_info=True)
            return servfail_reply(query, [])


def _show(qname: Labels) -> str:
    return b".".join(qname).decode("ascii", "replace")


async def _send(sock: trio.socket.SocketType, reply: bytes, peer: Any) -> None:
    try:
        await sock.sendto(reply, peer)
    except OSError as exc:
        log.debug("udp send failed peer=%s error=%s", peer, exc)




def bind(listen: Address) -> tuple[stdlib_socket.socket, stdlib_socket.socket]:
    """UDP, then TCP on the same port; with port 0, retry if TCP finds that port taken.

    Raises:
        ConfigError: the address cannot be bound (in use, not local, no permission).
    """
    host, port = listen
    family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
    attempts = _BIND_ATTEMPTS if port == 0 else 1
    for attempt in range(attempts):
        udp = stdlib_socket.socket(family, stdlib_socket.SOCK_DGRAM)
        try:
            udp.bind((host, port))
            for option in (stdlib_socket.SO_RCVBUF, stdlib_socket.SO_SNDBUF):
                udp.setsockopt(stdlib_socket.SOL_SOCKET, option, _UDP_BUFFER)
            bound = udp.getsockname()[1]
            tcp = stdlib_socket.socket(family, stdlib_socket.SOCK_STREAM)
            try:
                tcp.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
                tcp.bind((host, bound))
                tcp.listen(128)
            except OSError:
                tcp.close()
                raise
            return udp, tcp
        except OSError as exc:
            udp.close()
            if exc.errno == errno.EADDRINUSE and attempt < attempts - 1:
                continue
            raise ConfigError(
                f"cannot listen on {format_address(listen)}: {exc.strerror or exc}", key="--listen"
            ) from None
    raise AssertionError("unreachable: the last attempt returns or raises")


def run_resolver(config: ResolverConfig, clock: Clock = SYSTEM_CLOCK) -> int:
    """Run until interrupted; print ``READY {json}`` on stdout once listening.

    Returns:
        0 after Ctrl-C.

    Raises:
        ConfigError: the listen address cannot be bound.
    """
    server = ResolverServer(config, clock)
    sockets = bind(config.listen)  # before the event loop: a failure is one clear error

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run, sockets)
            ready = {
                "listen": format_address(address),
                "upstreams": [format_address(u) for u in config.upstreams],
                "forwards": [format_address(f) for f in config.forwards],
                "chain_id": config.genesis.chain_id,
                "genesis_hash": config.genesis.hash().hex(),
                "tlds": list(config.genesis.params.tlds),
                "max_staleness_s": config.max_age_ms / 1000,
                "max_staleness_from": config.bound_from,
            }
            sys.stdout.write("READY " + json.dumps(ready) + "\n")
            sys.stdout.flush()
            log.info(
                "resolver listening listen=%s upstreams=%d max_staleness_s=%g (%s)",
                ready["listen"], len(config.upstreams), config.max_age_ms / 1000,
                config.bound_from,
            )  # fmt: skip

    try:
        trio.run(main)
    except KeyboardInterrupt:
        return 0
    return 0
