"""An in-process node over a real LevelDB ledger that finalizes at once.

For testing the node's faces (RPC, DNS, wallet) without networking. It is what
the real node hands them: the RPC's `NodeInfo` and `Submitter` (`rpc_model()`
gives the whole `RpcModel`), and DNS's block feed and `Writer`. `submit`
admits the transaction to a real mempool, builds the next block from it, signs
the commit certificate with the single dev validator key and commits it, all
before returning. The real node (`ledgerdns.node`) does the same through
consensus and gossip.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import trio

from chain.consensus_messages import Evidence, InvalidProposal
from chain.errors import NotFound
from chain.genesis import Genesis, make_single_validator_genesis
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.tx import Transaction
from ledgerdns.rpc.model import RpcModel
from ledgerdns.services import NodeStatus, PeerInfo, ValidatorInfo
from ledgerdns.storage.leveldb import LevelDBStore
from tools.devchain import certify, dev_key

VALIDATOR_KEY = dev_key("instant-validator", 0)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class InstantNode:
    """A single-validator chain that finalizes every submitted transaction immediately."""

    def __init__(self, data_dir: Path, genesis: Genesis | None = None) -> None:
        self._genesis = genesis or make_single_validator_genesis(
            VALIDATOR_KEY.public_key, genesis_time_ms=now_ms() - 1000, chain_id="instant-test"
        )
        self.store = LevelDBStore.open(data_dir / "chain")
        self._ledger = Ledger(self.store, self._genesis)
        self._ledger.initialize()
        self._mempool = Mempool(self._genesis.params, chain=self._ledger)  # as the node does
        self._callbacks: list[Callable[[int, frozenset[str]], None]] = []
        self._evidence: list[Evidence] = []
        self.hold = False  # when True, submit() only admits to the mempool

    def rpc_model(self) -> RpcModel:
        """What the RPC reads and writes, as the node builds it."""
        return RpcModel(
            genesis=self._genesis, chain=self._ledger, pool=self._mempool, node=self,
            writer=self, admin=self,
        )  # fmt: skip

    # -- NodeInfo, Submitter, Writer, BlockFeed --

    @property
    def genesis(self) -> Genesis:
        return self._genesis

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    @property
    def mempool(self) -> Mempool:
        return self._mempool

    def status(self) -> NodeStatus:
        head = self._ledger.head
        return NodeStatus(
            chain_id=self._genesis.chain_id,
            genesis_hash=self._genesis.hash(),
            peer_id="12D3KooWInstant",
            validator="validator-0",
            height=head.height,
            head_hash=head.hash,
            head_time_ms=head.time_ms,
            syncing=False,
            sync_target=head.height,
            mempool_txs=len(self._mempool),
            peers=0,
            consensus_height=head.height + 1,
            consensus_round=0,
            consensus_step="waiting",
            version="test",
        )

    async def submit(self, tx: Transaction) -> None:
        self._mempool.add(tx, self._ledger.get_domain, now_ms() // 1000)
        if not self.hold:
            self.finalize_pending()
        await trio.lowlevel.checkpoint()

    def finalize_pending(self) -> int:
        """Put every pending transaction into one finalized block; its height."""
        txs = self._mempool.batch(10_000, 1 << 30)
        update, rejected = self._ledger.build_update(
            txs, time_ms=now_ms(), proposer=VALIDATOR_KEY.public_key
        )
        for r in rejected:
            self._mempool.discard(r.tx.txid, r.error)
        block = update.block
        self._ledger.commit(update, certify(self._ledger, block.hash, block.height, [VALIDATOR_KEY]))
        self._mempool.block_applied(block.txs, self._ledger.get_domain, block.header.time_ms // 1000)
        changed = frozenset(tx.body.domain for tx in block.txs)
        for callback in self._callbacks:
            callback(block.height, changed)
        return block.height

    async def wait_finalized(self, txid: bytes, timeout_s: float) -> tuple[int, int] | None:
        with trio.move_on_after(timeout_s):
            while True:
                try:
                    _, height, index = self._ledger.get_tx(txid)
                    return height, index
                except NotFound:
                    pass
                await trio.sleep(0.01)
        return None

    def peers(self) -> list[PeerInfo]:
        return []

    def validators(self) -> list[ValidatorInfo]:
        return [
            ValidatorInfo(
                name="validator-0",
                public_key=bytes(VALIDATOR_KEY.public_key),
                online=True,
                last_vote_height=self._ledger.height,
                last_vote_round=0,
                last_seen_ms=now_ms(),
            )
        ]

    def evidence(self) -> list[Evidence]:
        return list(self._evidence)

    def invalid_proposals(self) -> list[InvalidProposal]:
        return []

    def pending_for(self, domain: str) -> list[Transaction]:
        return self._mempool.pending_for(domain)

    def on_block_applied(self, callback: Callable[[int, frozenset[str]], None]) -> None:
        self._callbacks.append(callback)

    def flush_store(self) -> int:
        self.store.flush()
        return self.store.memory_usage()

    def close(self) -> None:
        self.store.close()
