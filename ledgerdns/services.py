"""What a running node reports about itself: its status, peers and validators.

Plain values, shared by the RPC (`ledgerdns.rpc.model.NodeInfo` returns them),
its codec and the explorer. Each face declares the narrow protocol it needs in
its own package (`ledgerdns.rpc.model`, `ledgerdns.dns.faces`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """One connected (or known) peer."""

    peer_id: str
    addrs: tuple[str, ...]
    connected: bool
    validator: str | None  # the validator name from genesis, if this peer is one
    penalty: int  # misbehaviour score; 0 for a well-behaved peer
    banned: bool = False  # the score reached the ban threshold: disconnected and refused


@dataclass(frozen=True, slots=True)
class ValidatorInfo:
    """One validator of the current set as this node sees it."""

    name: str
    public_key: bytes
    online: bool  # a message signed by it arrived recently, or its peer (by its hello) is connected
    last_vote_height: int  # -1 when no vote was seen
    last_vote_round: int
    last_seen_ms: int  # unix ms of its last message, 0 when never


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A summary for `GET /v1/status` and the explorer dashboard."""

    chain_id: str
    genesis_hash: bytes
    peer_id: str
    validator: str | None  # this node's validator name, None for a follower
    height: int
    head_hash: bytes
    head_time_ms: int
    syncing: bool
    sync_target: int  # the highest height a peer reported
    mempool_txs: int
    peers: int
    consensus_height: int
    consensus_round: int
    consensus_step: str
    version: str
    validators_linked: int = 0  # other validators we send votes to over links (issue 20)
    validators_known: int = 0  # validators whose hello (peer and addresses) we hold, us included
    votes_to_proposer: int = 0  # our votes sent to their round's proposer alone, to be relayed
    votes_relayed: int = 0  # others' votes we passed on as the round's proposer
    blocks_via_sync: int = 0  # blocks fetched by sync after the first catch-up (gossip missed them)
    gossip_received: dict[str, int] = field(default_factory=dict)  # topic name -> messages handed in
    gossip_mesh: dict[str, int] = field(default_factory=dict)  # topic name -> peers in our mesh
