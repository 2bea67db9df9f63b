"""Measure what one peer's junk transaction batch costs a node's event loop (issue 13, defect 2).

Runs a real follower `Node`'s txs gossip filter (`TxGossip.validate`, as the
gossip library calls it, on the trio loop) on fresh batches and prints one JSON
line per kind, each with the median milliseconds, whether the batch would be
forwarded and the sender's penalty:

- ``junk``: the issue's batch, 50 registrations of 1,024 records each (0.5 MiB);
- ``at_limits``: a 1 MiB batch of registrations at the genesis record limits
  (64 records, under 8,192 bytes), the last one with a bad name: the most a
  batch can cost before it is refused.

    .venv/bin/python tools/bench_junk_batch.py --runs 5
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

from chain.crypto import PrivateKey
from chain.records import Record, RType
from chain.tx import ZERO_HASH, Op, Transaction, TxBody
from chain.wire import MAX_BATCH_BYTES, TxBatch
from ledgerdns.node.config import NodeConfig, Prepared
from ledgerdns.node.node import Node
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)


def _register(name: str, records: tuple[Record, ...]) -> Transaction:
    key = PrivateKey.generate(f"junk {name}".encode())
    body = TxBody(
        chain_id=GENESIS.chain_id, domain=name, seq=0, prev=ZERO_HASH, op=Op.REGISTER,
        records=records, owner=key.public_key, valid_until=int(time.time()) + 600,
    )  # fmt: skip
    return Transaction.sign(body, key, GENESIS.hash())


def junk(run: int) -> bytes:
    """50 registrations of 1,024 A records each (about 0.5 MiB)."""
    records = tuple(
        Record(name="@", rtype=RType.A, ttl=0, rdata=bytes([10, run % 256, i // 256, i % 256]))
        for i in range(1024)
    )
    return TxBatch(tuple(_register(f"junk{run}x{i}.p2p", records) for i in range(50))).to_bytes()


def at_limits(run: int) -> bytes:
    """Registrations of 64 TXT records (about 7 KiB each) filling a batch, the last one invalid."""
    records = tuple(
        Record(name=f"h{j:03d}", rtype=RType.TXT, ttl=300, rdata=b"\x64" + bytes([run % 256]) * 100)
        for j in range(64)
    )
    txs = [_register(f"lim{run}x{i}.p2p", records) for i in range(MAX_BATCH_BYTES // 7600)]
    txs[-1] = _register(f"bad_name{run}.p2p", records)
    return TxBatch(tuple(txs)).to_bytes()


def measure(node: Node, make: str, runs: int) -> dict[str, object]:
    batches = [globals()[make](run) for run in range(runs)]
    results: list[tuple[float, bool, int]] = []

    async def main() -> None:
        for run, data in enumerate(batches):
            peer = f"{make}-{run}"
            start = time.perf_counter()
            forwarded = node.txs.validate(peer, data)
            results.append((time.perf_counter() - start, forwarded, node.p2p.penalty(peer)))

    trio.run(main)
    return {
        "batch": make,
        "mib": round(len(batches[0]) / 2**20, 2),
        "loop_ms_median": round(statistics.median(r[0] for r in results) * 1000, 1),
        "forwarded": [r[1] for r in results],
        "penalty": [r[2] for r in results],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh batches per kind (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        prepared = Prepared(genesis=GENESIS, key=None, validator_name=None, created_devnet=False)
        node = Node(NodeConfig(data_dir=Path(data_dir)), prepared)
        try:
            for make in ("junk", "at_limits"):
                print(json.dumps(measure(node, make, args.runs)), flush=True)
        finally:
            node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
