"""A writer process for the crash test: appends certified blocks to a LevelDB chain forever.

Usage: python -m tests.integration.crash_writer DATA_DIR

Each block registers a few new names and updates a few old ones, all derived
from the height, so a restarted writer continues where the store says it is.
After each committed block it prints ``applied HEIGHT`` (flushed).
"""

from __future__ import annotations

import sys

from chain.genesis import make_single_validator_genesis
from chain.ledger import Ledger
from chain.records import Record
from ledgerdns.storage.leveldb import LevelDBStore
from tools.devchain import certify, dev_key, next_tx, register_tx, soon

PER_BLOCK = 8


def crash_genesis():  # type: ignore[no-untyped-def]
    return make_single_validator_genesis(
        dev_key("validator", 0).public_key, genesis_time_ms=1_700_000_000_000, chain_id="crash"
    )


def main() -> None:
    validator = dev_key("validator", 0)
    owner = dev_key("owner", 0)
    genesis = crash_genesis()
    store = LevelDBStore.open(sys.argv[1])
    ledger = Ledger(store, genesis)
    ledger.initialize()
    while True:
        height = ledger.height + 1
        txs = []
        for i in range(PER_BLOCK):
            txs.append(register_tx(genesis, owner, f"n{height}-{i}.p2p", valid_until=soon(ledger)))
        if height > 1:
            for i in range(PER_BLOCK // 2):
                domain = f"n{height - 1}-{i}.p2p"
                rec = Record.from_text(f'@ 60 TXT "h{height}"', origin=domain)
                txs.append(next_tx(genesis, ledger, owner, domain, (rec,), valid_until=soon(ledger)))
        block, rejected = ledger.build_block(
            txs, time_ms=ledger.head.time_ms + 1000, proposer=validator.public_key
        )
        assert not rejected, rejected
        ledger.apply_block(block, certify(ledger, block.hash, height, [validator]))
        print(f"applied {height}", flush=True)


if __name__ == "__main__":
    main()
