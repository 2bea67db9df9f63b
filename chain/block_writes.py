"""What a block writes into the store besides its states: naming entries, its keys and indexes.

Pure functions over a `WriteBatch`, used by `chain.ledger.Ledger` when it checks
a block and by `chain.snapshot_restore` when it writes a snapshot's naming entries.
"""

from __future__ import annotations

from chain import keys
from chain.block import Block
from chain.blockwork import BlockWork, NamingEntry
from chain.commits import CommitEntry
from chain.crypto import sha256
from chain.params import NamingParams
from chain.store import WriteBatch
from chain.validators import Proposal


def put_naming_entry(
    batch: WriteBatch, tree_key: bytes, entry: NamingEntry, data: bytes, naming: NamingParams
) -> None:
    """Store a naming entry (`data` is its bytes) with its expiry mark and proposal index."""
    batch.put(keys.make_naming_key(tree_key), data)
    if isinstance(entry, Proposal):
        batch.put(keys.make_proposal_index_key(tree_key), b"")
    leaves = entry.leaves_at(naming) if isinstance(entry, CommitEntry) else entry.leaves_at()
    if leaves is not None:  # the validator schedule stays
        batch.put(keys.make_naming_expiry_key(leaves, tree_key), b"")


def write_naming(
    batch: WriteBatch, work: BlockWork, changes: dict[bytes, bytes | None], naming: NamingParams
) -> None:
    """A block's commits and claims into the batch (and `changes` for the tree), with expiry marks."""
    for tree_key in work.leaving:
        batch.delete(keys.make_naming_expiry_key(work.height, tree_key))
    for tree_key, entry in work.naming.items():
        if entry is None:
            batch.delete(keys.make_naming_key(tree_key))
            if tree_key in work.proposals_touched:
                batch.delete(keys.make_proposal_index_key(tree_key))
            changes[tree_key] = None
            continue
        data = entry.to_bytes()
        put_naming_entry(batch, tree_key, entry, data, naming)
        changes[tree_key] = sha256(data)


def write_block_keys(
    batch: WriteBatch, block: Block, work: BlockWork, *, partial_history: bool
) -> None:
    """The block, its hash and transaction indexes, history steps, rosters it scheduled, the head.

    With `partial_history` (a node that joined by state sync has only each domain's
    head from the state) the step before each transaction is written too, from `prev`.
    """
    height = block.height
    for start, roster in work.scheduled:
        batch.put(keys.make_roster_key(start), roster.to_bytes())
    batch.put(keys.make_block_key(height), block.to_bytes())
    batch.put(keys.make_block_hash_key(block.hash), keys.u64(height))
    for i, tx in enumerate(block.txs):
        batch.put(keys.make_tx_key(tx.txid), keys.tx_location(height, i))
        if tx.body.has_domain:  # a commit or validator op is no step of a domain's chain
            batch.put(keys.make_history_key(tx.body.domain, tx.body.seq), tx.txid)
            if tx.body.seq and partial_history:
                batch.put(keys.make_history_key(tx.body.domain, tx.body.seq - 1), tx.body.prev)
    batch.put(keys.make_meta_key(keys.META_HEAD), keys.u64(height))
