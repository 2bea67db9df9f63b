"""Pruning: dropping old blocks while keeping what proofs and snapshots need.

A pruning node keeps the state (domains, naming entries, the tree), every block's
worth of validator history it needs to prove the validator set (the block before
each set change, with its certificate, as `chain.snapshot` and proofs over DNS
show them), the last blocks from its base height on, and their certificates. It
drops older blocks, their certificates, their transactions' index entries and
domain-history steps. Its disk then grows with the live records, not with history.

The base height (`Ledger.base_height`) moves up as blocks go; a peer asking for a
block below it is refused (`ledgerdns.protocol.sync`), and `Ledger.history` starts
at the base (the head is always there, from the state).
"""

from __future__ import annotations

from chain import keys
from chain.block import Block
from chain.ledger import Ledger
from chain.store import WriteBatch


def prune(ledger: Ledger, below: int, *, max_blocks: int) -> int:
    """Drop the blocks from the base height up to `below` (exclusive), at most `max_blocks`.

    The head is never dropped (`below` is capped at it), nor the block before a
    validator-set change. One synced batch; returns the new base height.
    """
    base = ledger.base_height
    stop = min(below, ledger.height, base + max_blocks)
    if stop <= base:
        return base
    keep = {start - 1 for start, _ in ledger.rosters()[1:]}
    batch = WriteBatch()
    for height in range(base, stop):
        if height in keep:
            continue
        raw = ledger.store.get(keys.make_block_key(height))
        if raw is None:
            continue  # never held (a state-synced node) or dropped already
        block = Block.from_bytes(raw)
        batch.delete(keys.make_block_key(height))
        batch.delete(keys.make_block_hash_key(block.hash))
        batch.delete(keys.make_certificate_key(height))
        for tx in block.txs:
            batch.delete(keys.make_tx_key(tx.txid))
            if tx.body.has_domain:
                batch.delete(keys.make_history_key(tx.body.domain, tx.body.seq))
    batch.put(keys.make_meta_key(keys.META_BASE), keys.u64(stop))
    ledger.store.write(batch)
    ledger.forget_base()
    return stop
