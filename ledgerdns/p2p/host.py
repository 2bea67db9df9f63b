"""Building the libp2p pieces with the settings ledgerdns needs (and only those).

Every choice here answers a measured trap of py-libp2p 0.8.1 (see docs/p2p.md):
the default host also accepts plaintext, secio and TLS peers; the default GossipSub
heartbeats every 120 s, stretches it to 60 s and drops messages above 10/s per
forwarder; and `Pubsub` seeds its sequence numbers from whole seconds, so a node
that restarts reuses them and its first messages are taken for old ones.
"""

from __future__ import annotations

import time

import multiaddr
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import ContentAddressedMessageIDGenerator, Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from ledgerdns.p2p.errors import P2PError

HEARTBEAT_SECONDS = 1
MESH_DEGREE = 6


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


def build_pubsub(host: IHost) -> tuple[Pubsub, GossipSub]:
    """Gossipsub with a steady 1 s heartbeat, no message-rate limit and content-addressed ids."""
    router = GossipSub(
        protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
        degree=MESH_DEGREE,
        degree_low=4,
        degree_high=12,
        heartbeat_interval=HEARTBEAT_SECONDS,
        adaptive_gossip_enabled=False,
        spam_protection_enabled=False,
    )
    pubsub = Pubsub(
        host,
        router,
        strict_signing=True,
        msg_id_constructor=ContentAddressedMessageIDGenerator(),
    )
    # The library seeds this with int(time.time()): a node publishing more than one
    # message a second reuses sequence numbers after a restart and peers drop those
    # messages as seen / equivocating. go and rust seed from nanoseconds too.
    pubsub.counter = time.time_ns()
    return pubsub, router


def build_dht(host: IHost) -> KadDHT:
    """A Kademlia DHT in server mode; create it before the first dial so it sees every peer."""
    return KadDHT(host, DHTMode.SERVER, enable_random_walk=True)


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
