"""Writing a verified snapshot into a fresh store: what a node joining by state sync keeps.

`StateRestore` is given verified pieces only (`chain.snapshot.verify_manifest`,
`verify_chunk`). It writes each chunk as it comes (tree nodes below the cut, domain
states, naming entries with their expiry marks and proposal index), then `finish`
writes the tree above the cut, the snapshot block with its certificate, the blocks
and certificates of the validator-set changes (to serve them on, as an archive node
does), the rosters, and last the head and the base height, in one synced batch. Until
then the store's head is still genesis, so an interrupted restore is recognised
(`is_partial`) and started again from scratch by the caller.

Domain histories are not copied: the state commits to each domain's head, and
`Ledger.history` shows it from there.
"""

from __future__ import annotations

from chain import keys
from chain.block import read_block_frame
from chain.block_writes import put_naming_entry
from chain.blockwork import state_entry_from_bytes
from chain.errors import ConfigError
from chain.params import ChainParams
from chain.smt_proof import Node
from chain.snapshot import VerifiedChunk, VerifiedManifest, upper_tree
from chain.store import KVStore, WriteBatch

# Everything the genesis state wrote, removed before the snapshot's state goes in.
_STATE_PREFIXES = (
    keys.DOMAIN,
    keys.TREE_NODE,
    keys.NAMING,
    keys.NAMING_EXPIRY,
    keys.PROPOSAL_INDEX,
    keys.HISTORY,
)
_RESTORING = keys.make_meta_key(b"restoring")  # u64 BE: the height a restore is writing


def is_partial(store: KVStore) -> bool:
    """Whether the store holds a state sync that never finished."""
    return store.get(_RESTORING) is not None


class StateRestore:
    """One snapshot's state going into a store that holds only genesis."""

    def __init__(self, store: KVStore, params: ChainParams, verified: VerifiedManifest) -> None:
        self._store = store
        self._params = params
        self._verified = verified
        self._tops: list[Node | None] = [None] * (1 << verified.manifest.depth)
        self._done: set[int] = set()

    def begin(self) -> None:
        """Clear the genesis state and mark the store as being restored.

        Raises:
            ConfigError: the store already holds blocks.
        """
        head = self._store.get(keys.make_meta_key(keys.META_HEAD))
        if head is None or keys.read_u64(head) != 0:
            raise ConfigError("state sync needs a data directory with no blocks yet")
        batch = WriteBatch()
        for prefix in _STATE_PREFIXES:
            with self._store.iterate(prefix) as pairs:
                for key, _ in pairs:
                    batch.delete(key)
        batch.put(_RESTORING, keys.u64(self._verified.manifest.height))
        self._store.write(batch)

    @property
    def missing(self) -> list[int]:
        """The chunks not written yet."""
        return [i for i in range(len(self._tops)) if i not in self._done]

    def add(self, chunk: VerifiedChunk) -> None:
        """Write one verified chunk (not synced: `finish` syncs the whole)."""
        batch = WriteBatch()
        for key, node in chunk.nodes:
            batch.put(key, node)
        for name, data in chunk.domains:
            batch.put(keys.make_domain_key(name), data)
        naming = self._params.naming
        for tree_key, data in chunk.naming:
            put_naming_entry(batch, tree_key, state_entry_from_bytes(data), data, naming)
        self._store.write(batch, sync=False)
        self._tops[chunk.index] = chunk.top
        self._done.add(chunk.index)

    def finish(self) -> None:
        """Write the tree's top, the blocks, certificates and rosters, and the head.

        Raises:
            InvalidUpdate: a chunk is missing (a caller's bug: every chunk is verified).
        """
        verified = self._verified
        manifest = verified.manifest
        nodes: list[tuple[bytes, bytes]] = []
        upper_tree(manifest.entries, manifest.depth, self._tops, nodes)
        batch = WriteBatch()
        for key, node in nodes:
            batch.put(key, node)
        block = verified.block
        height = block.height
        for change_height, block_bytes, cert_bytes in verified.change_blocks:
            _put_block(batch, change_height, block_bytes, cert_bytes)
        _put_block(batch, height, manifest.block, manifest.certificate)
        for i, tx in enumerate(block.txs):
            batch.put(keys.make_tx_key(tx.txid), keys.tx_location(height, i))
        for start, roster in verified.rosters:
            batch.put(keys.make_roster_key(start), roster.to_bytes())
        batch.put(keys.make_meta_key(keys.META_HEAD), keys.u64(height))
        batch.put(keys.make_meta_key(keys.META_BASE), keys.u64(height))
        batch.delete(_RESTORING)
        self._store.write(batch, sync=True)


def _put_block(batch: WriteBatch, height: int, block: bytes, certificate: bytes) -> None:
    batch.put(keys.make_block_key(height), block)
    batch.put(keys.make_block_hash_key(read_block_frame(block)[0].hash), keys.u64(height))
    batch.put(keys.make_certificate_key(height), certificate)
