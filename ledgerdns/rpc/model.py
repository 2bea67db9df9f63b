"""What the RPC reads and writes: a read model of the node, never its store.

The endpoints see the finalized chain through `ChainReader` (read methods only:
`chain.ledger.Ledger` is one), pending transactions through `PoolReader`
(`chain.mempool.Mempool` is one), the node's own state through `NodeInfo`, and
make their one write through `Submitter`. The composition root
(`ledgerdns.node`) fills an `RpcModel` with its parts; tests fill it with a
small in-process node (`tests/support/instant_node.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chain.block import BlockHeader
from chain.commits import Claim
from chain.consensus_messages import Evidence, InvalidProposal
from chain.genesis import Genesis
from chain.lightclient import DomainProof
from chain.params import ChainParams
from chain.quorum import CommitCertificate
from chain.state import DomainState
from chain.tx import Transaction
from chain.validators import Proposal, Roster
from ledgerdns.services import NodeStatus, PeerInfo, ValidatorInfo


class ChainReader(Protocol):
    """The finalized chain, read only."""

    @property
    def params(self) -> ChainParams: ...
    @property
    def height(self) -> int: ...
    @property
    def head(self) -> BlockHeader: ...
    @property
    def base_height(self) -> int:
        """The lowest height from which every block is kept (1 on an archive node)."""
    def get_block_bytes(self, height: int) -> bytes: ...
    def get_certificate(self, height: int) -> CommitCertificate: ...
    def get_tx_location(self, txid: bytes) -> tuple[int, int]: ...
    def get_domain(self, domain: str) -> DomainState | None: ...
    def get_claim(self, domain: str) -> Claim | None: ...
    def domains(self, *, start: str = "", limit: int = 100) -> list[DomainState]: ...
    def history(self, domain: str) -> list[tuple[int, bytes]]: ...
    def prove_domain(self, domain: str) -> DomainProof: ...
    def rosters(self) -> list[tuple[int, Roster]]:
        """Every roster since genesis with its first height, scheduled ones included."""
    def roster_at(self, height: int) -> Roster: ...
    def validator_name(self, key: bytes) -> str | None: ...
    def pending_proposals(self) -> list[Proposal]: ...


class PoolReader(Protocol):
    """Pending transactions, read only."""

    @property
    def size_bytes(self) -> int: ...
    def __len__(self) -> int: ...
    def __contains__(self, txid: object) -> bool: ...
    def get(self, txid: bytes) -> Transaction | None: ...
    def snapshot(self) -> list[Transaction]: ...
    def pending_for(self, domain: str) -> Sequence[Transaction]: ...


class NodeInfo(Protocol):
    """The node's own state: status, peers, validators, misbehaviour on record."""

    def status(self) -> NodeStatus: ...
    def peers(self) -> list[PeerInfo]: ...
    def validators(self) -> list[ValidatorInfo]: ...
    def evidence(self) -> list[Evidence]:
        """Equivocation evidence, oldest first."""
    def invalid_proposals(self) -> list[InvalidProposal]:
        """Provably invalid proposals, oldest first."""


class Submitter(Protocol):
    """The RPC's one write: admit a transaction, and wait for it to be final."""

    async def submit(self, tx: Transaction) -> None:
        """Admit `tx` to the mempool and gossip it.

        Raises:
            InvalidUpdate: malformed, wrongly signed, stale, conflicting, or the
                mempool is full (the reason says which).
        """

    async def wait_finalized(self, txid: bytes, timeout_s: float) -> tuple[int, int] | None:
        """``(height, index)`` once `txid` is final (at once if it is); None on timeout."""


class Maintenance(Protocol):
    """Operations on the node itself, for operators and benchmarks (``/v1/admin/...``)."""

    def flush_store(self) -> int:
        """Write the store's write buffer (memtable) out as a table now; may block.

        Returns:
            LevelDB's estimate of its memory in bytes afterwards (memtables and
            block cache).

        Raises:
            StorageError: the flush failed.
        """


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcModel:
    """Everything the endpoints may touch."""

    genesis: Genesis
    chain: ChainReader
    pool: PoolReader
    node: NodeInfo
    writer: Submitter
    admin: Maintenance | None = None  # None: ``/v1/admin/...`` answers 404
