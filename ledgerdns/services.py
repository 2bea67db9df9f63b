"""What the node's faces (RPC, DNS, explorer) may ask of a running node.

The composition root (`ledgerdns.node`) implements `NodeServices`; the RPC
server and the DNS server only see this protocol, so each can be tested against
a small in-process implementation over a real ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chain.consensus_messages import Evidence
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.tx import Transaction


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
    """One genesis validator as this node sees it."""

    name: str
    public_key: bytes
    online: bool  # a message signed by it arrived recently
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


class NodeServices(Protocol):
    """The running node, as its faces see it. All methods run in the node's trio loop."""

    @property
    def genesis(self) -> Genesis: ...

    @property
    def ledger(self) -> Ledger:
        """The finalized chain (read only: never write through it)."""

    @property
    def mempool(self) -> Mempool:
        """Pending transactions (read only)."""

    def status(self) -> NodeStatus: ...

    async def submit(self, tx: Transaction) -> None:
        """Admit `tx` to the mempool and gossip it.

        Raises:
            InvalidUpdate: the transaction is malformed, wrongly signed, stale,
                conflicts with the finalized state or the pending chain, or the
                mempool is full (the reason says which).
        """

    async def wait_finalized(self, txid: bytes, timeout_s: float) -> tuple[int, int] | None:
        """Wait until `txid` is in a finalized block: its ``(height, index)``.

        Returns None on timeout. Returns at once if it is already finalized.
        """

    def peers(self) -> list[PeerInfo]: ...

    def validators(self) -> list[ValidatorInfo]: ...

    def evidence(self) -> list[Evidence]:
        """Equivocation evidence recorded by this node, oldest first.

        Invalid proposals are read from the store (`chain.evidence_store`) by the RPC.
        """

    def on_block_applied(self, callback: Callable[[int, frozenset[str]], None]) -> None:
        """Call ``callback(height, changed_domains)`` after each block is stored."""
