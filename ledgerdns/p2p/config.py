"""`P2PConfig`: how a node joins the network (split out of `service.py`, which runs it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ledgerdns.p2p.host import DEFAULT_MESH, MeshDegree
from ledgerdns.p2p.limits import DEFAULT_LIMIT, DEFAULT_TOPIC_LIMITS, GossipLimit
from ledgerdns.p2p.peers import BAN_SECONDS, BAN_THRESHOLD


@dataclass(frozen=True, slots=True)
class P2PConfig:
    """How a node joins the network.

    Attributes:
        key_path: the node identity (ed25519, libp2p protobuf), created 0600 on first start.
        listen: multiaddrs to listen on, e.g. `/ip4/127.0.0.1/tcp/0`.
        bootstrap: full multiaddrs of peers to keep connected to, each ending in `/p2p/<id>`.
        topics: gossip topics to join.
        mdns: discover peers on the LAN (opt-in).
        mdns_interfaces: limit mDNS to these interface addresses (tests use `["127.0.0.1"]`).
        reconnect_interval: seconds between passes of the reconnect loop.
        target_peers: below this many connections, dial peers the DHT knows.
        ban_threshold: penalty points that get a peer banned.
        ban_seconds: how long a ban lasts.
        gossip_limits: size cap and rate per forwarding peer, by topic (the full topic
            string, or its name: `txs` for `/ledgerdns/<chain>/txs/1`).
        default_gossip_limit: for topics `gossip_limits` does not name.
        oversize_penalty: points a peer pays per gossip message over its topic's cap.
        rate_penalty: points a peer pays per gossip message over its rate on a topic.
        mesh: gossipsub's mesh degree, low and high bounds (a follower keeps a smaller
            mesh: each message reaches a node about once per mesh peer).
    """

    key_path: Path
    listen: list[str]
    bootstrap: list[str]
    topics: list[str]
    mdns: bool = False
    mdns_interfaces: list[str] | None = None
    reconnect_interval: float = 3.0
    target_peers: int = 8
    ban_threshold: int = BAN_THRESHOLD
    ban_seconds: float = BAN_SECONDS
    gossip_limits: Mapping[str, GossipLimit] = field(
        default_factory=lambda: dict(DEFAULT_TOPIC_LIMITS)
    )
    default_gossip_limit: GossipLimit = DEFAULT_LIMIT
    oversize_penalty: int = 25
    mesh: MeshDegree = DEFAULT_MESH
    rate_penalty: int = 1


