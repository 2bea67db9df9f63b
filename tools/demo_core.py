"""A walk through the ledger core on a real LevelDB store (what `make run` shows until the
node lands): register a name, update it, transfer it, and check a light-client proof.

    python tools/demo_core.py [--data-dir DIR]
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from chain.ledger import Ledger
from chain.records import Record
from chain.tx import Op, Transaction
from ledgerdns.storage.leveldb import LevelDBStore
from tools.devchain import certify, dev_key, next_tx, register_tx, soon
from tools.make_dev_genesis import devnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="keep the chain here (default: a temporary directory)")
    args = parser.parse_args()
    out = Console()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.data_dir or tmp) / "chain"
        genesis = devnet()
        validator, alice, bob = dev_key("validator", 0), dev_key("owner", 0), dev_key("owner", 1)
        with LevelDBStore.open(path) as store:
            ledger = Ledger(store, genesis)
            ledger.initialize()
            out.print(f"[bold]chain[/bold] {genesis.chain_id} at {path}, height {ledger.height}")

            def finalize(tx: Transaction, what: str) -> None:
                block, rejected = ledger.build_block(
                    [tx], time_ms=ledger.head.time_ms + 1000, proposer=validator.public_key
                )
                if rejected:
                    out.print(f"  [red]rejected[/red] {what}: {rejected[0].error}")
                    return
                ledger.apply_block(block, certify(ledger, block.hash, block.height, [validator]))
                out.print(f"  block {block.height}: {what} (tx {tx.txid.hex()[:16]})")

            name = f"demo{ledger.height}.p2p"
            finalize(register_tx(genesis, alice, name, valid_until=soon(ledger)), f"register {name}")
            recs = tuple(Record.from_text(line, origin=name) for line in ("www 300 A 10.0.0.1", "@ 300 TXT \"hello\""))
            recs = tuple(sorted(recs, key=lambda r: (r.name, int(r.rtype), r.rdata)))
            finalize(next_tx(genesis, ledger, alice, name, recs, valid_until=soon(ledger)), "set records")
            forged = next_tx(genesis, ledger, bob, name, (), valid_until=soon(ledger), new_owner=alice.public_key)
            finalize(forged, "update signed by a stranger")
            finalize(next_tx(genesis, ledger, alice, name, recs, op=Op.TRANSFER, valid_until=soon(ledger),
                             new_owner=bob.public_key), "transfer to bob")
            finalize(next_tx(genesis, ledger, bob, name, recs[:1], valid_until=soon(ledger)), "bob drops www")
            state = ledger.get_domain(name)
            assert state is not None
            table = Table(title=f"{name} at height {ledger.height}")
            table.add_column("record")
            for record in state.records:
                table.add_row(record.to_text(name))
            out.print(table)
            out.print(f"history: {[seq for seq, _ in ledger.history(name)]}")
            proof = ledger.prove_domain(name)
            proven = proof.verify(genesis.params)
            out.print(f"light-client proof: {len(proof.to_bytes())} bytes, verified: {proven == state}")


if __name__ == "__main__":
    main()
