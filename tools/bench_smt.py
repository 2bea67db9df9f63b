"""Measure the state tree: insert cost per key, proof size, memory.

Builds a tree of ``--keys`` sha256-derived keys in a `MemoryStore`, ``--batch``
changes per `update` (one WriteBatch and one `store.write` per batch, as the
ledger does per block), then times a block of value updates at full size,
proves a sample of keys and prints one JSON line.

    .venv/bin/python tools/bench_smt.py --keys 100000 --batch 1000
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import json
import resource
import sys
import time

from chain import keys
from chain.crypto import sha256
from chain.smt import SparseMerkleTree, verify_proof
from chain.store import MemoryStore, WriteBatch


def _key(i: int) -> bytes:
    return sha256(b"key" + i.to_bytes(8, "big"))


def _value(i: int, generation: int = 0) -> bytes:
    return sha256(b"value" + i.to_bytes(8, "big") + generation.to_bytes(4, "big"))


def _window_us(times: list[tuple[int, float]], lo: int, hi: int) -> float | None:
    """Mean microseconds per key over the batches whose keys fall in [lo, hi)."""
    picked = [(n, t) for start, (n, t) in _starts(times) if lo <= start < hi]
    count = sum(n for n, _ in picked)
    return round(sum(t for _, t in picked) / count * 1e6, 2) if count else None


def _starts(times: list[tuple[int, float]]) -> list[tuple[int, tuple[int, float]]]:
    out = []
    start = 0
    for n, t in times:
        out.append((start, (n, t)))
        start += n
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000, help="keys to insert")
    parser.add_argument("--batch", type=int, default=1_000, help="changes per update")
    parser.add_argument("--proofs", type=int, default=1_000, help="keys to prove at the end")
    args = parser.parse_args(argv)
    if args.keys < 1 or args.batch < 1 or args.proofs < 1:
        parser.error("--keys, --batch and --proofs must be positive")

    store = MemoryStore()
    tree = SparseMerkleTree(store)
    times: list[tuple[int, float]] = []
    started = time.perf_counter()
    for lo in range(0, args.keys, args.batch):
        hi = min(lo + args.batch, args.keys)
        t0 = time.perf_counter()
        batch = WriteBatch()
        tree.update(batch, {_key(i): _value(i) for i in range(lo, hi)})
        store.write(batch)
        times.append((hi - lo, time.perf_counter() - t0))
    build_s = time.perf_counter() - started

    # One block of value changes to existing keys at full size.
    step = max(1, args.keys // args.batch)
    t0 = time.perf_counter()
    batch = WriteBatch()
    changed = range(0, args.keys, step)
    root = tree.update(batch, {_key(i): _value(i, 1) for i in changed})
    store.write(batch)
    update_block_s = time.perf_counter() - t0

    sample = range(0, args.keys, max(1, args.keys // args.proofs))
    sizes = []
    depths = []
    t0 = time.perf_counter()
    for i in sample:
        proof = tree.prove(_key(i))
        wire = proof.to_bytes()
        sizes.append(len(wire))
        depths.append(proof.depth)
        value = _value(i, 1 if i % step == 0 else 0)
        if not verify_proof(root, _key(i), value, proof):
            raise SystemExit(f"proof of key {i} does not verify")
    prove_s = time.perf_counter() - t0
    absent = tree.prove(_key(args.keys)).to_bytes()

    nodes = sum(1 for _ in store.iterate(keys.TREE_NODE))
    last = args.keys - min(args.keys, 10 * args.batch)
    result = {
        "keys": args.keys,
        "batch": args.batch,
        "build_s": round(build_s, 2),
        "us_per_key": round(build_s / args.keys * 1e6, 2),
        "us_per_key_first_10k": _window_us(times, 0, 10_000),
        "us_per_key_last_10_batches": _window_us(times, last, args.keys),
        "update_block_us_per_key": round(update_block_s / len(changed) * 1e6, 2),
        "prove_verify_us": round(prove_s / len(sample) * 1e6, 2),
        "proof_bytes_mean": round(sum(sizes) / len(sizes), 1),
        "proof_bytes_max": max(sizes),
        "absent_proof_bytes": len(absent),
        "depth_mean": round(sum(depths) / len(depths), 2),
        "depth_max": max(depths),
        "tree_nodes": nodes,
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
