"""`P2PService`: one libp2p peer with gossip topics, request/response, peer discovery and scoring.

The service knows nothing of blocks or transactions: it moves bytes. The composition
root registers validators, handlers and request handlers, then runs it in its
nursery.

Why "service": `node` is the ledgerdns node (`ledgerdns/node/`), and `host` is
libp2p's `IHost`, which `host.py` builds and this class runs together with
GossipSub, the DHT, mDNS and the reconnect loop; the long-running whole that owns
them is the node's p2p service.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import multiaddr
import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from ledgerdns.clock import SYSTEM_CLOCK, Clock
from ledgerdns.p2p import connections, gossip, links, reqresp
from ledgerdns.p2p.config import P2PConfig
from ledgerdns.p2p.errors import P2PError
from ledgerdns.p2p.host import (
    build_dht,
    build_host,
    build_pubsub,
    parse_addrs,
)
from ledgerdns.p2p.identity import load_or_create_identity, peer_id_of
from ledgerdns.p2p.logs import tame_libp2p_logging
from ledgerdns.p2p.mdns import Found, run_mdns
from ledgerdns.p2p.peers import KnownPeers, PeerScores
from ledgerdns.p2p.ports import check_ports_free

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger(__name__)

DIAL_TIMEOUT = 5.0
LOOKUP_TIMEOUT = 10.0
IDENTIFY_WAIT = 5.0


@dataclass(slots=True)
class _Live:
    host: IHost
    pubsub: Pubsub
    dht: KadDHT
    nursery: trio.Nursery
    gate: gossip.GossipGate
    senders: dict[str, links.LinkSender]


class P2PService:
    """A running libp2p peer: TCP + Noise + Yamux, GossipSub, Kademlia, optional mDNS.

    The identity is loaded (or created) by the constructor, so `peer_id` is known
    before `run`. Validators and handlers may be set before or after `run` starts.
    """

    def __init__(self, config: P2PConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self._config = config
        self._clock = clock  # seeds gossip sequence numbers (`build_pubsub`)
        self._key_pair = load_or_create_identity(config.key_path)
        self.peer_id: str = peer_id_of(self._key_pair)
        self.listen_addrs: list[str] = []
        self._listen = parse_addrs(config.listen)
        self._validators: dict[str, gossip.Validator] = {}
        self._handlers: dict[str, gossip.Handler] = {}
        self._request_handlers: dict[str, reqresp.RequestHandler] = {}
        self._links: dict[str, _LinkSpec] = {}
        self._connected_callbacks: list[Callable[[str], None]] = []
        self._scores = PeerScores(threshold=config.ban_threshold, ban_seconds=config.ban_seconds)
        self._known = KnownPeers(interval=config.reconnect_interval)
        self._bootstrap = [connections.split_p2p_addr(addr) for addr in config.bootstrap]
        for peer, addr in self._bootstrap:
            self._known.pin(peer, [addr])
        self._live: _Live | None = None
        self._gate: gossip.GossipGate | None = None
        self._stopping: trio.Event | None = None
        # Per joined topic (bounded by the configured topics): messages handed to its
        # handler, and messages we published.
        self.received: dict[str, int] = {}
        self.published: dict[str, int] = {}
        self.rejected: dict[str, int] = {}  # per joined topic: refused by its validator
        self.penalties = 0  # penalties given (each may be several points)
        self.bans = 0  # bans begun

    # -- lifecycle --

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run host, gossip, DHT, reconnect loop (and mDNS) until cancelled.

        `task_status.started()` is called once the host listens and every topic is
        joined; `listen_addrs` is filled in by then.

        Raises:
            P2PError: already running, or the listen addresses cannot be bound.
        """
        if self._live is not None or self._stopping is not None:
            raise P2PError("p2p service is already running")
        check_ports_free(self._listen)  # libp2p itself would share a port in use (SO_REUSEPORT)
        # libp2p cleans up badly when cancelled (a cancelled connection close
        # leaves its socket open), so the stack runs shielded and is stopped
        # in order: close the host first, then cancel what is left.
        stopping = self._stopping = trio.Event()
        try:
            async with trio.open_nursery() as guard:
                await guard.start(self._run_stack, stopping)
                task_status.started()
                try:
                    await trio.sleep_forever()
                finally:
                    stopping.set()
        finally:
            self._stopping = None

    async def _run_stack(self, stopping: trio.Event, *, task_status: TaskStatus[None]) -> None:
        tame_libp2p_logging()
        host = build_host(self._key_pair, self._config.listen)
        dht = build_dht(host, self._config.target_peers)  # before any dial, so it registers its protocol first
        pubsub, router = build_pubsub(host, seqno_start=self._clock.now_ns(), mesh=self._config.mesh)
        gate = self._gate = gossip.GossipGate(
            host.get_id(),
            self.penalize,
            trio.current_time,
            self._config.topics,
            self._config.gossip_limits,
            self._config.default_gossip_limit,
            oversize_penalty=self._config.oversize_penalty,
            rate_penalty=self._config.rate_penalty,
        )
        pubsub.gate = gate.check
        pubsub.frame_refused = self._frame_refused
        for protocol, fn in self._request_handlers.items():
            host.set_stream_handler(TProtocol(protocol), reqresp.stream_handler(protocol, fn))
        for protocol, spec in self._links.items():
            handler = links.link_handler(spec.accept_greeting, spec.on_frame, spec.max_frame)
            host.set_stream_handler(TProtocol(protocol), handler)
        host.get_network().register_notifee(_Notifee(self))
        with trio.CancelScope(shield=True) as stack:
            try:
                async with host.run(listen_addrs=self._listen):
                    self._check_listening(host)
                    async with background_trio_service(pubsub), background_trio_service(router):
                        await pubsub.wait_until_ready()
                        async with background_trio_service(dht), trio.open_nursery() as nursery:
                            senders = {
                                protocol: links.LinkSender(host, nursery, protocol, spec.greeting)
                                for protocol, spec in self._links.items()
                            }
                            live = self._live = _Live(host, pubsub, dht, nursery, gate, senders)
                            nursery.start_soon(connections.stop_when, stopping, host, stack)
                            await self._join_topics(live)
                            if self._config.mdns:
                                await self._start_mdns(live)
                            nursery.start_soon(self._maintain, live)
                            self.listen_addrs = [str(a) for a in host.get_addrs()]
                            log.info(
                                "p2p listening peer=%s addrs=%s", self.peer_id, self.listen_addrs
                            )
                            task_status.started()
            finally:
                self._live = None
                self.listen_addrs = []
        log.info("p2p stopped peer=%s", self.peer_id)

    def _check_listening(self, host: IHost) -> None:
        if not host.get_transport_addrs():
            raise P2PError(f"cannot listen on {self._config.listen}")

    async def _join_topics(self, live: _Live) -> None:
        own = live.host.get_id()
        for topic, fn in self._validators.items():
            validator = gossip.wrap_validator(topic, fn, own, self.rejected)
            live.pubsub.set_topic_validator(topic, validator, False)
        for topic in self._config.topics:
            sub = await live.pubsub.subscribe(topic)
            send, receive = trio.open_memory_channel[rpc_pb2.Message](gossip.QUEUE_SIZE)
            live.nursery.start_soon(gossip.drain, topic, sub, send)
            live.nursery.start_soon(
                gossip.deliver, topic, receive, self._handlers, own, self.received
            )

    async def _start_mdns(self, live: _Live) -> None:
        send, receive = trio.open_memory_channel[Found](64)
        await live.nursery.start(run_mdns, live.host, self._config.mdns_interfaces, send)
        live.nursery.start_soon(self._mdns_found, live, receive)

    async def _mdns_found(self, live: _Live, found: trio.MemoryReceiveChannel[Found]) -> None:
        async for peer, addrs in found:
            log.debug("mdns found peer=%s addrs=%s", peer, addrs)
            self._known.learn(peer, addrs, trio.current_time())
            if not self._is_connected(live, peer) and not self._scores.is_banned(peer):
                live.nursery.start_soon(self._dial, live, peer, addrs)

    # -- gossip --

    def set_validator(self, topic: str, fn: gossip.Validator) -> None:
        """Check each message on `topic` from another node before it is delivered or forwarded.

        `fn(forwarder_peer_id, data)` returns False to reject: the message is then
        neither handed to the handler nor forwarded. Our own publishes skip it. A
        validator that raises rejects the message (the error is logged).
        """
        self._validators[topic] = fn
        if self._live is not None:
            own = self._live.host.get_id()
            self._live.pubsub.set_topic_validator(
                topic, gossip.wrap_validator(topic, fn, own), False
            )

    def set_handler(self, topic: str, fn: gossip.Handler) -> None:
        """Receive each accepted message on `topic` from other nodes as `fn(source_peer_id, data)`.

        The source is the peer that published the message (not the one that
        forwarded it). Calls are sequential per topic, in arrival order; an
        exception from `fn` stops the service.

        Raises:
            ValueError: `topic` is not one of the configured topics.
        """
        if topic not in self._config.topics:
            raise ValueError(f"not a configured topic: {topic!r}")
        self._handlers[topic] = fn

    async def publish(self, topic: str, data: bytes) -> None:
        """Publish `data` on `topic`.

        Message ids are content hashes: the same bytes published again while the
        network still remembers them (about two minutes) are not delivered again.

        Raises:
            P2PError: the service is not running.
        """
        live = self._require_live()
        self.published[topic] = self.published.get(topic, 0) + 1
        await live.pubsub.publish(topic, data)

    def mesh_sizes(self) -> dict[str, int]:
        """Per joined topic, how many peers are in our gossip mesh for it (0 when not running)."""
        live = self._live
        if live is None:
            return dict.fromkeys(self._config.topics, 0)
        mesh = live.pubsub.router.mesh
        return {topic: len(mesh.get(topic, ())) for topic in self._config.topics}

    def gossip_refused(self) -> dict[tuple[str, str], int]:
        """Gossip refused from other peers, by (topic, why): ``limit`` (over size or rate), ``invalid``."""
        limited = self._gate.refused if self._gate is not None else {}
        refused = {(topic, "limit"): n for topic, n in limited.items()}
        refused.update({(topic, "invalid"): n for topic, n in self.rejected.items()})
        return refused

    # -- request/response --

    def set_request_handler(self, protocol: str, fn: reqresp.RequestHandler) -> None:
        """Answer requests on `protocol` with `await fn(peer_id, request)`.

        `fn` may raise `P2PError` to refuse: the requester gets a `P2PError` with
        that message. Any other exception is logged and reported as "internal error".
        """
        self._request_handlers[protocol] = fn
        if self._live is not None:
            self._live.host.set_stream_handler(
                TProtocol(protocol), reqresp.stream_handler(protocol, fn)
            )

    async def request(
        self, peer_id: str, protocol: str, data: bytes, timeout: float = 10.0
    ) -> bytes:
        """Send a request (≤ 1 MiB) and return the response (≤ 16 MiB).

        Dials the peer if it is not connected but its address is known.

        Raises:
            P2PError: not running, unknown peer, timed out, refused or failed remotely.
        """
        live = self._require_live()
        if self._scores.is_banned(peer_id):
            raise P2PError(f"request failed peer={peer_id}: peer is banned")
        connections.unblock(live.host, reqresp.parse_peer_id(peer_id))
        return await reqresp.request(live.host, peer_id, protocol, data, timeout)

    # -- links --

    def set_link_handler(
        self,
        protocol: str,
        *,
        greeting: links.Greeting,
        accept_greeting: links.AcceptGreeting,
        on_frame: links.OnFrame,
        max_frame: int,
    ) -> None:
        """Send and receive messages on `protocol` over links (`ledgerdns.p2p.links`).

        Our links open with `greeting()`; a peer's link is read only once
        `accept_greeting(peer, first_frame)` says yes, then each frame goes to
        `await on_frame(peer, data)` (False closes that link). Set before `run`.

        Raises:
            P2PError: the service is already running.
        """
        if self._live is not None:
            raise P2PError("set link handlers before the p2p service runs")
        self._links[protocol] = _LinkSpec(greeting, accept_greeting, on_frame, max_frame)

    def send_link(self, peer_id: str, protocol: str, data: bytes) -> bool:
        """Queue `data` on our link to a connected peer; False if it cannot go (not connected,
        queue full, not running). Never blocks."""
        live = self._live
        if live is None or peer_id == self.peer_id or self._scores.is_banned(peer_id):
            return False
        sender = live.senders.get(protocol)
        if sender is None:
            raise ValueError(f"no link handler for {protocol!r}")
        return sender.send(reqresp.parse_peer_id(peer_id), data)

    def open_link(self, peer_id: str, protocol: str) -> bool:
        """Open our link to a connected peer (it is greeted at once) without sending anything."""
        live = self._live
        if live is None or peer_id == self.peer_id or self._scores.is_banned(peer_id):
            return False
        sender = live.senders.get(protocol)
        if sender is None:
            raise ValueError(f"no link handler for {protocol!r}")
        return sender.open(reqresp.parse_peer_id(peer_id)) is not None

    def on_connected(self, callback: Callable[[str], None]) -> None:
        """Call `callback(peer_id)` for each new connection of a peer that is not banned."""
        self._connected_callbacks.append(callback)

    def links_dropped(self) -> int:
        """Messages dropped because a link's queue was full, over every link protocol."""
        live = self._live
        return 0 if live is None else sum(s.dropped for s in live.senders.values())

    def links_broken(self) -> int:
        """Streams that broke under an open link and were replaced, over every link protocol."""
        live = self._live
        return 0 if live is None else sum(s.broken for s in live.senders.values())

    def keep_connected(self, peer_id: str, addrs: list[str], *, after: float = 0.0) -> None:
        """Dial this peer (the first time `after` seconds from now, if it has not connected to
        us by then) and redial it whenever it drops, as for a bootstrap peer."""
        if peer_id != self.peer_id:
            self._known.pin(peer_id, addrs, not_before=trio.current_time() + after)

    def is_connected(self, peer_id: str) -> bool:
        """Whether the peer is connected right now."""
        live = self._live
        return live is not None and self._is_connected(live, peer_id)

    # -- peers --

    def connected_peers(self) -> list[str]:
        """Peer ids of the peers connected right now."""
        if self._live is None:
            return []
        network = self._live.host.get_network()
        return [pid.to_base58() for pid, conns in network.get_connections_map().items() if conns]

    def peer_addrs(self, peer_id: str) -> list[str]:
        """Known transport addresses of a peer (no `/p2p/` part); empty if unknown."""
        addrs = self._known.addrs(peer_id)
        if self._live is not None:
            pid = reqresp.parse_peer_id(peer_id)
            for text in reqresp.known_addrs(self._live.host, pid):
                if text not in addrs:
                    addrs.append(text)
        return addrs

    def peer_protocols(self, peer_id: str) -> list[str]:
        """The protocols a connected peer said it speaks (identify); empty if not known (yet)."""
        if self._live is None:
            return []
        return reqresp.known_protocols(self._live.host, reqresp.parse_peer_id(peer_id))

    def penalize(self, peer_id: str, points: int, reason: str) -> None:
        """Add penalty points; at the threshold the peer is disconnected and refused for a while."""
        now = trio.current_time()
        banned = self._scores.add(peer_id, points, now)
        total = self._scores.points(peer_id, now)
        self.penalties += 1
        self.bans += banned
        log.warning(
            "penalized peer=%s points=%d total=%d reason=%s", peer_id, points, total, reason
        )
        if not banned:
            return
        log.warning(
            "banned peer=%s seconds=%d reason=%s", peer_id, self._config.ban_seconds, reason
        )
        if self._live is not None:
            pid = reqresp.parse_peer_id(peer_id)
            self._live.gate.limiter.forget(peer_id)
            self._live.pubsub.add_to_blacklist(pid)
            self._live.dht.routing_table.remove_peer(pid)
            self._live.nursery.start_soon(self._disconnect, self._live, pid)

    def _frame_refused(self, peer: ID, why: str) -> None:
        self.penalize(
            peer.to_base58(), self._config.oversize_penalty, f"pubsub RPC frame refused: {why}"
        )

    def penalty(self, peer_id: str) -> int:
        """The peer's penalty points now, decayed and rounded down.

        0 for a peer never penalized, forgiven, or whose ban ended; frozen while banned.
        """
        return int(self._scores.points(peer_id, trio.current_time()))

    def is_banned(self, peer_id: str) -> bool:
        """Whether the peer is banned right now."""
        return self._scores.is_banned(peer_id)

    def penalized_peers(self) -> list[str]:
        """Every peer with penalty points, whoever penalized it, the most recently penalized last."""
        return self._scores.penalized()

    # -- internals --

    def _require_live(self) -> _Live:
        if self._live is None:
            raise P2PError("p2p service is not running")
        return self._live

    def _is_connected(self, live: _Live, peer_id: str) -> bool:
        return bool(live.host.get_network().get_connections(reqresp.parse_peer_id(peer_id)))

    async def _disconnect(self, live: _Live, pid: ID) -> None:
        try:
            await live.host.disconnect(pid)
        except Exception as exc:  # already closed by the other side
            log.debug("disconnect failed peer=%s: %r", pid, exc)

    async def _maintain(self, live: _Live) -> None:
        """Keep connected to bootstrap and known peers; find more through the DHT."""
        while True:
            reached = await self._reconnect_pass(live)
            if reached and len(self.connected_peers()) < self._config.target_peers:
                # We reached someone new and still want peers: ask the network who is
                # near us, then dial what that turned up at once instead of a pass later.
                # (Not past `target_peers`: 31 validators keeping connected to each other
                # made a lookup of a dozen streams per new connection, a start-up storm.)
                await self._self_lookup(live)
                await self._reconnect_pass(live)
            await trio.sleep(self._config.reconnect_interval)

    async def _reconnect_pass(self, live: _Live) -> bool:
        now = trio.current_time()
        live.gate.limiter.sweep(now)
        for peer in self._scores.expire(now):
            live.pubsub.remove_from_blacklist(reqresp.parse_peer_id(peer))
            log.info("ban ended peer=%s", peer)
        connected = set(self.connected_peers())
        for peer in connected:
            pid = reqresp.parse_peer_id(peer)
            self._known.learn(peer, reqresp.known_addrs(live.host, pid), now)
            self._known.connected(peer, now)
            if not live.dht.routing_table.peer_in_table(pid):
                with trio.move_on_after(DIAL_TIMEOUT):
                    await live.dht.add_peer(pid)
        if len(connected) < self._config.target_peers:
            for pid in live.dht.routing_table.get_peer_ids():
                addrs = reqresp.known_addrs(live.host, pid)
                if addrs:
                    self._known.learn(pid.to_base58(), addrs, now)
        due = self._known.due(now, skip=connected | self._scores.banned() | {self.peer_id})
        if due:
            log.debug("redialling peers=%s connected=%d", [p for p, _ in due], len(connected))
        results: list[bool] = []
        async with trio.open_nursery() as nursery:
            for peer, addrs in due:
                nursery.start_soon(self._dial_into, results, live, peer, addrs)
        return any(results)

    async def _dial_into(
        self, results: list[bool], live: _Live, peer: str, addrs: list[str]
    ) -> None:
        results.append(await self._dial(live, peer, addrs))

    async def _dial(self, live: _Live, peer: str, addrs: list[str]) -> bool:
        pid = reqresp.parse_peer_id(peer)
        # One failed dial makes the swarm refuse every dial to the peer for 60 s;
        # a peer that restarted must be reachable again on the next pass.
        connections.unblock(live.host, pid)
        info = PeerInfo(pid, [multiaddr.Multiaddr(a) for a in addrs])
        try:
            with trio.fail_after(DIAL_TIMEOUT):
                await live.host.connect(info)
        except (Exception, trio.TooSlowError) as exc:  # SwarmException, transport errors
            log.debug("dial failed peer=%s: %r", peer, exc)
            self._known.failed(peer, trio.current_time())
            return False
        self._known.connected(peer, trio.current_time())
        with trio.move_on_after(DIAL_TIMEOUT):
            await live.dht.add_peer(pid)
        return True

    async def _self_lookup(self, live: _Live) -> None:
        with trio.move_on_after(LOOKUP_TIMEOUT):
            try:
                await live.dht.peer_routing.find_closest_peers_network(
                    live.host.get_id().to_bytes()
                )
            except Exception as exc:  # a lookup is best effort; the next pass tries again
                log.debug("dht lookup failed: %r", exc)

    def _on_connected(self, conn: INetConn) -> None:
        live = self._live
        peer = conn.muxed_conn.peer_id
        if not connections.fail_fast(conn):
            log.debug("no TCP socket under the connection to peer=%s", peer)
        if live is None:
            return
        try:
            if self._scores.is_banned(peer.to_base58()):
                log.info("refused banned peer=%s", peer)
                live.nursery.start_soon(self._disconnect, live, peer)
            else:
                live.nursery.start_soon(self._remember, live, peer)
                for callback in self._connected_callbacks:
                    callback(peer.to_base58())
        except RuntimeError:  # "Nursery is closed to new arrivals": we are stopping
            log.debug("connection from peer=%s while stopping: ignored", peer)

    async def _remember(self, live: _Live, pid: ID) -> None:
        """Remember a new peer's listen addresses (identify brings them) to redial it later.

        Done per connection rather than per reconnect pass, so a peer that was
        connected only briefly (say, it restarted) is still redialled.
        """
        with trio.move_on_after(IDENTIFY_WAIT):
            while not (addrs := reqresp.known_addrs(live.host, pid)):
                await trio.sleep(0.1)
            self._known.learn(pid.to_base58(), addrs, trio.current_time())


@dataclass(frozen=True, slots=True)
class _LinkSpec:
    greeting: links.Greeting
    accept_greeting: links.AcceptGreeting
    on_frame: links.OnFrame
    max_frame: int


class _Notifee(INotifee):
    """Connection events: drop banned peers as soon as they connect, log the rest."""

    def __init__(self, service: P2PService) -> None:
        self._service = service

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        log.debug("peer connected peer=%s", conn.muxed_conn.peer_id)
        self._service._on_connected(conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        log.debug("peer disconnected peer=%s", conn.muxed_conn.peer_id)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        pass

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        pass
