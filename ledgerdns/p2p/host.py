"""Building the libp2p pieces with the settings ledgerdns needs (and only those).

Every choice here answers a measured trap of py-libp2p 0.8.1 (see docs/p2p.md):
the default host also accepts plaintext, secio and TLS peers; the default GossipSub
heartbeats every 120 s, stretches it to 60 s and drops messages above 10/s per
forwarder; and `Pubsub` seeds its sequence numbers from whole seconds, so a node
that restarts reuses them and its first messages are taken for old ones.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar

import multiaddr
from google.protobuf.message import DecodeError
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.io.abc import Reader
from libp2p.io.exceptions import MessageTooLarge
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.pubsub import gossipsub as gossipsub_module
from libp2p.pubsub import pubsub as pubsub_module
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pb.rpc_pb2 import RPC
from libp2p.pubsub.pubsub import ContentAddressedMessageIDGenerator, Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from ledgerdns.p2p.errors import P2PError
from ledgerdns.p2p.limits import MAX_RPC_FRAME_BYTES
from ledgerdns.p2p.yamux_window import install_window_hysteresis

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1
# go-libp2p's defaults. With 3/2/5 and a 10 s prune backoff, 31 validators (each connected to
# the other 30) kept grafting and pruning each other every heartbeat: the churn alone held
# one 2-core machine at 200 % CPU with no block made; with these it settles (issue 20).
MESH_DEGREE = 6
MESH_DEGREE_LOW = 4
MESH_DEGREE_HIGH = 12
MeshDegree = tuple[int, int, int]  # (degree, low, high)
DEFAULT_MESH: MeshDegree = (MESH_DEGREE, MESH_DEGREE_LOW, MESH_DEGREE_HIGH)
# A follower only receives and passes on blocks and transactions: each reaches a node about
# once per mesh peer, so a smaller mesh is fewer copies to read (issue 20: at 4 validators +
# 20 followers each follower spent ~75 ms per height against ~12 with one follower).
FOLLOWER_MESH: MeshDegree = (3, 2, 6)
PRUNE_BACKOFF_S = 60


def build_host(key_pair: KeyPair, listen: list[str]) -> IHost:
    """A TCP host that speaks Noise and Yamux only: plaintext, secio and TLS peers are refused."""
    noise = NoiseTransport(key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
    return new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=parse_addrs(listen),
        enable_tcp=True,
    )


Gate = Callable[[ID, rpc_pb2.Message], bool]
FrameRefused = Callable[[ID, str], None]


class GuardedPubsub(Pubsub):
    """`Pubsub` whose per-peer reader survives a malformed RPC, with a gate on inbound messages.

    `gate(forwarder, msg)`, when set, sees every message a peer hands us (and our
    own publishes) before the library looks at it: before the blacklist, the
    seen-cache, the signature check and the topic validators. False drops the
    message: it is neither delivered nor forwarded, and unlike a validator's
    verdict the refusal is not cached, so the same message from another peer
    is judged afresh.

    The library reads a pubsub RPC frame only up to `max_inbound_rpc_size` (we
    pass `MAX_RPC_FRAME_BYTES`, its own default, 1 MiB, which is also the largest
    it ever sends): a longer length prefix resets the stream before any byte of
    the body is read. `frame_refused(peer, why)`, when set, is told of each such
    frame (the library only logs it), so the peer can be penalized.

    The library's stream handler lets a protobuf `DecodeError` (bytes that are
    not an RPC, seen once under heavy load in a 100,000-transaction benchmark)
    escape into the swarm's task tree, which stops the whole node. Here it
    only costs that peer its pubsub stream: it is reset and the peer dropped
    from pubsub until it reconnects, as for any other read error.
    """

    gate: Gate | None = None
    frame_refused: FrameRefused | None = None

    async def continuously_read_stream(self, stream: INetStream) -> None:
        token = _reading.set((self, stream.muxed_conn.peer_id))
        try:
            await super().continuously_read_stream(stream)
        finally:
            _reading.reset(token)

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        gate = self.gate
        if (
            gate is not None
            and not self.is_peer_blacklisted(msg_forwarder)
            and not gate(msg_forwarder, msg)
        ):
            return
        await super().push_msg(msg_forwarder, msg)

    async def _teardown_if_connected(self, peer_id: ID) -> None:
        """The library's clean-up of a blacklisted peer, without its race.

        It awaits the stream reset and then deletes the peer; when the ban's own
        disconnect (or the peer leaving) removed the peer in between, the `del`
        raised KeyError inside the pubsub service and stopped the node. It also
        left the peer in the router's mesh and its send queue open. Here the
        library's dead-peer clean-up does all of that (it tolerates a peer
        already gone, and never re-registers a blacklisted one), then the
        stream is reset.
        """
        stream = self.peers.get(peer_id)
        self._handle_dead_peer(peer_id)
        if stream is not None:
            try:
                await stream.reset()
            except Exception:  # the stream may be gone already
                pass

    async def stream_handler(self, stream: INetStream) -> None:
        try:
            await super().stream_handler(stream)
        except DecodeError as exc:
            peer_id = stream.muxed_conn.peer_id
            log.warning("malformed pubsub RPC from %s (%s): stream reset", peer_id, exc)
            try:
                await stream.reset()
            except Exception:  # the stream may be gone already
                pass
            self._handle_dead_peer(peer_id)


# Bounds of the library's per-message state (issue 21), each checked by tests/unit/test_p2p_bounds.py:
EQUIVOCATION_ENTRIES = 1000  # (from, seqno) -> digest; the library trims to 500 above 1,000 a heartbeat
DELIVERY_HISTORY = 1024  # publish times kept per topic (read only by adaptive gossip, which is off)


class BoundedGossipSub(GossipSub):
    """GossipSub whose per-message bookkeeping stays bounded with adaptive gossip off.

    py-libp2p 0.8.1 appends the time of every message it publishes or forwards
    to ``recent_message_deliveries[topic]`` and prunes that list only in its
    adaptive-gossip health check, which we turn off (docs/p2p.md): one float per
    message, forever (32 bytes each: 11 MiB an hour at 100 msg/s). Each heartbeat keeps
    the last `DELIVERY_HISTORY` entries per topic. Its equivocation check keeps the first
    whole message per (from, seqno), up to 1,000 of them: up to 1,000 gossiped
    blocks and batches of up to 1 MiB each. Here it keeps a 32-byte digest of
    the data and the topics instead, which decides the same.
    """

    def _check_equivocation(self, msg: rpc_pb2.Message) -> bool:
        key = msg.from_id + msg.seqno
        digest = _message_digest(msg)
        known = self._equivocation_digests.get(key)
        if known is None:
            if len(self._equivocation_digests) >= EQUIVOCATION_ENTRIES:
                del self._equivocation_digests[next(iter(self._equivocation_digests))]
            self._equivocation_digests[key] = digest
            return True
        if known != digest:
            log.warning("gossip equivocation from %s: same seqno, other content", ID(msg.from_id))
            if self.scorer is not None:
                self.scorer.penalize_equivocation(ID(msg.from_id), 100.0)
            return False
        return True

    @property
    def _equivocation_digests(self) -> dict[bytes, bytes]:
        # The library's dict (typed for whole messages) holds our digests instead, so its
        # own heartbeat trim (above 1,000 entries, keep 500) still applies.
        found: dict[bytes, bytes] = self.equivocation_detection  # type: ignore[assignment]
        return found

    def _get_peers_to_send(
        self,
        topic_ids: Iterable[str],
        msg_forwarder: ID,
        origin: ID,
        msg_id: bytes | None = None,
    ) -> Iterable[ID]:
        """The library's choice, and for a message we publish ourselves every peer in its topics.

        Flood publishing, as go-libp2p does by default: our own message goes to
        each connected peer that joined the topic, not only to our mesh, so it
        reaches them in one hop even when the mesh is thin (a node pruned by
        everyone at start-up had none, and got proposals only through the next
        heartbeat's IHAVE, up to a second late: issue 20). Forwarding others'
        messages stays on the mesh.
        """
        chosen = set(super()._get_peers_to_send(topic_ids, msg_forwarder, origin, msg_id))
        pubsub = self.pubsub
        if pubsub is not None and origin == msg_forwarder == pubsub.my_id:
            for topic in topic_ids:
                chosen.update(pubsub.peer_topics.get(topic, ()))
            chosen.discard(origin)
        return chosen

    async def handle_graft(self, graft_msg: rpc_pb2.ControlGraft, sender_peer_id: ID) -> None:
        """The library's handling, except that a mesh already at its high bound refuses newcomers.

        py-libp2p 0.8.1 accepts every GRAFT and trims the mesh back only at the next
        heartbeat, so a node that many peers pick at once holds them all in between (a
        follower with a high bound of 6 was seen at 12 in make test). go-libp2p answers
        a GRAFT to a mesh at its high bound with a PRUNE and a back-off; so do we (it
        exempts outbound connections, which the library does not track).
        """
        topic = graft_msg.topicID
        mesh = self.mesh.get(topic)
        if mesh is not None and sender_peer_id not in mesh and len(mesh) >= self.degree_high:
            self._add_back_off(sender_peer_id, topic, False)
            await self.emit_prune(topic, sender_peer_id, False, False)
            return
        await super().handle_graft(graft_msg, sender_peer_id)

    def _periodic_security_cleanup(self) -> None:
        super()._periodic_security_cleanup()
        for times in self.recent_message_deliveries.values():
            del times[:-DELIVERY_HISTORY]


def _message_digest(msg: rpc_pb2.Message) -> bytes:
    """What the equivocation check compares: the data and the topics, as one sha256."""
    h = hashlib.sha256()
    for topic in msg.topicIDs:
        h.update(b"%d:%s" % (len(topic), topic.encode()))
    h.update(b"|")
    h.update(msg.data)
    return h.digest()


# The pubsub (and its peer) whose stream the current task reads, for `_reporting_frame_cap`.
_reading: ContextVar[tuple[GuardedPubsub, ID]] = ContextVar("ledgerdns_pubsub_reading")

ReadLimited = Callable[[Reader, int], Awaitable[bytes]]


def _reporting_frame_cap(original: ReadLimited) -> ReadLimited:
    """`read_varint_prefixed_bytes_limited` that tells the reading `GuardedPubsub` of a refused frame."""

    async def read_limited(reader: Reader, max_length: int) -> bytes:
        try:
            return await original(reader, max_length)
        except MessageTooLarge as exc:
            reading = _reading.get(None)
            if reading is not None and reading[0].frame_refused is not None:
                reading[0].frame_refused(reading[1], str(exc))
            raise

    return read_limited


def install_frame_report() -> None:
    """Route pubsub's frame reads through `_reporting_frame_cap` (idempotent)."""
    current = getattr(pubsub_module, "read_varint_prefixed_bytes_limited")  # noqa: B009
    if getattr(current, "__name__", "") != "read_limited":
        setattr(pubsub_module, "read_varint_prefixed_bytes_limited", _reporting_frame_cap(current))  # noqa: B010


def build_pubsub(
    host: IHost, seqno_start: int, mesh: MeshDegree = DEFAULT_MESH
) -> tuple[GuardedPubsub, BoundedGossipSub]:
    """Gossipsub with a steady 1 s heartbeat, no message-rate limit and content-addressed ids.

    Our messages' sequence numbers count up from `seqno_start`: the wall clock in
    nanoseconds (see below). `mesh`: the mesh degree, low and high bounds.
    """
    install_record_memo()
    install_frame_report()
    install_window_hysteresis()
    router = BoundedGossipSub(
        protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
        degree=mesh[0],
        degree_low=mesh[1],
        degree_high=mesh[2],
        prune_back_off=PRUNE_BACKOFF_S,
        heartbeat_interval=HEARTBEAT_SECONDS,
        adaptive_gossip_enabled=False,
        spam_protection_enabled=False,
    )
    pubsub = GuardedPubsub(
        host,
        router,
        strict_signing=True,
        msg_id_constructor=ContentAddressedMessageIDGenerator(),
        max_inbound_rpc_size=MAX_RPC_FRAME_BYTES,
    )
    # The library seeds this with int(time.time()): a node publishing more than one
    # message a second reuses sequence numbers after a restart and peers drop those
    # messages as seen / equivocating. go and rust seed from nanoseconds too.
    pubsub.counter = seqno_start
    return pubsub, router


# per host (each keeps its own peerstore): peer -> the record bytes it sent last;
# ≤ CONSUMED_RECORDS peers per host, cleared when full (a forgotten record is checked again)
CONSUMED_RECORDS = 4096
_consumed_records: weakref.WeakKeyDictionary[IHost, dict[ID, bytes]] = weakref.WeakKeyDictionary()


def _remembering_record_check(
    original: Callable[[RPC, IHost, ID], bool],
) -> Callable[[RPC, IHost, ID], bool]:
    """`maybe_consume_signed_record`, skipped when a peer resends the record it sent last.

    py-libp2p attaches the sender's signed peer record to every pubsub RPC and
    verifies it (an ed25519 check, a protobuf parse, a peerstore update) on every
    one received: a tenth of a busy node's CPU. A peer's record changes only when
    its addresses do, so the bytes it sent last, once accepted, need no new check.
    """

    def check(msg: RPC, host: IHost, peer_id: ID) -> bool:
        if not msg.HasField("senderRecord"):
            return True
        record = msg.senderRecord
        known = _consumed_records.setdefault(host, {})
        if known.get(peer_id) == record:
            return True
        accepted = original(msg, host, peer_id)
        if accepted:
            if len(known) >= CONSUMED_RECORDS:
                known.clear()
            known[peer_id] = record
        return accepted

    return check


_own_records: weakref.WeakKeyDictionary[IHost, tuple[float, tuple[bytes, bool]]] = (
    weakref.WeakKeyDictionary()
)
OWN_RECORD_TTL_S = 5.0


def _cached_own_record(
    original: Callable[[IHost], tuple[bytes, bool]],
) -> Callable[[IHost], tuple[bytes, bool]]:
    """`env_to_send_in_RPC`, recomputed at most every `OWN_RECORD_TTL_S` per host.

    The library rebuilds the set of our listen addresses (formatting every
    multiaddr) on each RPC it sends, to notice an address change.
    """

    def own_record(host: IHost) -> tuple[bytes, bool]:
        now = time.monotonic()
        cached = _own_records.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        result = original(host)
        _own_records[host] = (now + OWN_RECORD_TTL_S, (result[0], False))
        return result

    return own_record


def install_record_memo() -> None:
    """Route pubsub's signed-record handling through the memos above (idempotent).

    Also turns off Yamux's window update after every read (the library's own
    ``PY_YAMUX_RELEASE_ON_READ`` switch): updates then go out in batches of half
    a window, one small frame (and its encryption) less per message received.
    """
    os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")
    for module in (pubsub_module, gossipsub_module):
        current = getattr(module, "maybe_consume_signed_record")  # noqa: B009
        if getattr(current, "__name__", "") != "check":
            setattr(module, "maybe_consume_signed_record", _remembering_record_check(current))  # noqa: B010
        own = getattr(module, "env_to_send_in_RPC")  # noqa: B009
        if getattr(own, "__name__", "") != "own_record":
            setattr(module, "env_to_send_in_RPC", _cached_own_record(own))  # noqa: B010


# The random walk's periodic refresh: go-libp2p-kad-dht's routing-table refresh period, not
# py-libp2p 0.8.1's 2 minutes. Each refresh is three random walks, full lookups that in a
# network of 32 connected nodes query nearly every peer (and check every returned peer
# record's signature); all nodes started together refreshed together 2 minutes later, which
# took ~19 % of a node's samples and held heights several seconds (issue 20). Discovery
# between refreshes is the reconnect loop's (`P2PService._maintain`).
DHT_REFRESH_S = 600.0


def build_dht(host: IHost, target_peers: int = 8) -> KadDHT:
    """A Kademlia DHT in server mode; create it before the first dial so it sees every peer.

    With the library's random walk, although it costs (a forced refresh at start and
    every `DHT_REFRESH_S`: 6.5 % of a 16-validator node's samples in its first minute under
    load, issue 20): without it, a node of a 10-validator test network stayed at 0 peers
    for a minute (not understood yet).
    """
    dht = KadDHT(host, DHTMode.SERVER, enable_random_walk=True)
    if dht.rt_refresh_manager is not None:
        dht.rt_refresh_manager.refresh_interval = DHT_REFRESH_S
    _discovery_only_when_short(host, target_peers)
    return dht


def _discovery_only_when_short(host: IHost, target_peers: int) -> None:
    """Let the swarm's auto-connector force a DHT refresh only while we have fewer than
    `target_peers` connections.

    py-libp2p 0.8.1's `AutoConnector` aims at ~200 connections and, when fewer than 20
    peers are left to dial, forces a DHT refresh (three random walks) on every check:
    every 10 s while under its `min_connections` of 50, so always in a network of fewer
    nodes. In a network of 32 connected nodes each refresh queried nearly every peer: a
    storm every 10 s from every node, ~3 % of a core per node when idle, and heights held
    seconds when one fell mid-height (issue 20). A node short of peers (a follower that
    knows only its bootstrap peer) still gets them, as our reconnect loop's self-lookup
    does below `target_peers`.
    """
    auto_connector = getattr(host.get_network(), "auto_connector", None)
    if auto_connector is None:
        return
    wire = auto_connector.set_discovery_callback

    def set_discovery_callback(callback: Callable[[], Awaitable[None]] | None) -> None:
        if callback is None:
            wire(None)
            return

        async def when_short() -> None:
            connected = sum(1 for conns in host.get_network().get_connections_map().values() if conns)
            if connected < target_peers:
                await callback()

        wire(when_short)

    auto_connector.set_discovery_callback = set_discovery_callback


def parse_addrs(addrs: list[str]) -> list[multiaddr.Multiaddr]:
    """Parse multiaddr strings.

    Raises:
        P2PError: one of them is not a multiaddr (the message names it).
    """
    parsed = []
    for text in addrs:
        try:
            parsed.append(multiaddr.Multiaddr(text))
        except Exception as exc:  # multiaddr raises several unrelated types
            raise P2PError(f"bad multiaddr {text!r}: {exc}") from exc
    return parsed
