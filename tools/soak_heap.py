"""In-process memory of the ledger per name, and under updates to fixed names (issue 21).

    python tools/soak_heap.py [--names 10000] [--updates 20000] [--hot 2000] [--block 25]
        [--top 12] [--no-trace] [--json]

Builds a real `chain.ledger.Ledger` on a temporary LevelDB store (`LevelDBStore`, the
node's own options) through the path a node takes for every block: `build_update`
(each signature checked), a commit certificate, `commit`. One validator, blocks of
`--block` transactions, one A record per name (`tools.benchchain`'s names).

Phase 1 registers `--names` names; phase 2 sends `--updates` updates to the first
`--hot` names (the soak's two phases, without the network and DNS). The store is
flushed (memtable written out, `LevelDBStore.flush`) before each sample, so LevelDB's write buffer
is not counted. It prints, per phase: RSS and traced Python heap growth, per name
(phase 1) or per 1,000 updates (phase 2), and the allocation sites that grew most
(tracemalloc, innermost frame). Phase 1 is measured from a warm start (the first
10 % of the names), so one-time allocations are not charged per name. With
``--no-trace`` tracemalloc stays off: the RSS figures are then the honest ones
(tracing costs memory of its own per traced block).

The same code that a node runs is measured here: a figure that moves here moves
on a node (docs/operations.md, "Finding what grows in memory").
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import ctypes
import gc
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import coincurve

from chain import crypto
from chain.crypto import PrivateKey, sha256
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.rdata import RType
from chain.records import Record
from chain.tx import ZERO_HASH, Op, Transaction, TxBody, TxHash, tx_signing_digest
from ledgerdns.storage.leveldb import LevelDBStore
from tools.benchchain import CHAIN_ID, domain_name, genesis
from tools.devchain import certify, dev_key

_PAGE = 4096


def rss_bytes() -> int:
    """This process's resident set size, from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class _Chain:
    """A single-validator ledger in `directory`, fed blocks of signed transactions."""

    def __init__(self, directory: Path, block: int) -> None:
        self.genesis: Genesis = genesis()
        self.validator = dev_key("validator", 0)
        self.owner: PrivateKey = dev_key("owner", 0)
        self.store = LevelDBStore.open(directory)
        self.ledger = Ledger(self.store, self.genesis)
        self.ledger.initialize()
        self.block = block
        self.time_ms = self.genesis.genesis_time_ms
        self._signer = coincurve.PrivateKey(self.owner.to_bytes())
        self._genesis_hash = self.genesis.hash()

    def _tx(self, i: int, generation: int) -> Transaction:
        # The head comes from the ledger, not from a table here: the tool keeps nothing per name.
        state = self.ledger.get_domain(domain_name(i)) if generation else None
        seq, prev = (-1, ZERO_HASH) if state is None else (state.seq, state.head)
        record = Record(
            name="@", rtype=RType.A, ttl=300,
            rdata=bytes((10, generation & 255, i >> 8 & 255, i & 255)),
        )  # fmt: skip
        body = TxBody(
            chain_id=CHAIN_ID, domain=domain_name(i), seq=seq + 1, prev=prev,
            op=Op.REGISTER if seq < 0 else Op.UPDATE, records=(record,),
            owner=self.owner.public_key, valid_until=self.time_ms // 1000 + 3600,
        )  # fmt: skip
        body_bytes = body.to_bytes()  # signed as `Transaction.sign` does, with libsecp256k1
        digest = tx_signing_digest(self._genesis_hash, TxHash(sha256(body_bytes)))
        signature = self._signer.sign_recoverable(digest, hasher=None)[:64]
        return Transaction(body=body, body_bytes=body_bytes, signature=signature)

    def apply(self, names: range, generation: int) -> None:
        """Send one transaction for each of `names`, `self.block` to a block."""
        for at in range(0, len(names), self.block):
            txs = [self._tx(i, generation) for i in names[at : at + self.block]]
            self.time_ms += 1000
            ledger = self.ledger
            update, rejected = ledger.build_update(
                txs, time_ms=self.time_ms, proposer=self.validator.public_key
            )
            if rejected:
                raise RuntimeError(f"refused: {rejected[0].error}")
            height = update.block.height
            ledger.commit(update, certify(ledger, update.block.hash, height, [self.validator]))


def _sample(
    chain: _Chain, trace: bool, trim: bool = False
) -> tuple[int, tracemalloc.Snapshot | None]:
    chain.store.flush()  # the memtable written out: LevelDB's write buffer not counted
    gc.collect()
    if trim:  # give freed heap back to the system: what is left is what is live
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    snap = tracemalloc.take_snapshot() if trace else None
    return rss_bytes(), snap


def _top(
    old: tracemalloc.Snapshot, new: tracemalloc.Snapshot, top: int, per: float
) -> list[dict[str, Any]]:
    out = []
    for stat in new.compare_to(old, "lineno")[:top]:
        frame = stat.traceback[0]
        where = frame.filename.split("/main/")[-1].split("site-packages/")[-1]
        out.append({
            "site": f"{where}:{frame.lineno}", "bytes": stat.size_diff,
            "per": round(stat.size_diff / per, 1), "blocks": stat.count_diff,
        })  # fmt: skip
    return out


def _traced(old: tracemalloc.Snapshot, new: tracemalloc.Snapshot) -> int:
    return sum(s.size for s in new.statistics("filename")) - sum(
        s.size for s in old.statistics("filename")
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both phases; the figures as one dict."""
    trace = not args.no_trace
    if args.memo is not None:  # slots of the signature memo (fixed size: nothing to fill)
        crypto._verified = bytearray(1 << max(args.memo - 1, 0).bit_length() << 5)
    if trace:
        tracemalloc.start(1)
    result: dict[str, Any] = {"names": args.names, "updates": args.updates, "hot": args.hot}
    with tempfile.TemporaryDirectory(prefix="soak-heap-") as tmp:
        chain = _Chain(Path(tmp) / "chain", args.block)
        warm = max(1, args.names // 10)
        chain.apply(range(warm), 0)
        rss0, snap0 = _sample(chain, trace, args.trim)
        chain.apply(range(warm, args.names), 0)
        rss1, snap1 = _sample(chain, trace, args.trim)
        added = args.names - warm
        result["rss_bytes_per_name"] = round((rss1 - rss0) / added)
        result["verified_memo_bytes"] = crypto.verified_memo_bytes()
        if snap0 is not None and snap1 is not None:
            result["traced_bytes_per_name"] = round(_traced(snap0, snap1) / added)
            result["names_top"] = _top(snap0, snap1, args.top, added)
        hot = range(min(args.hot, args.names))
        steps: list[tuple[int, int]] = []
        done = 0
        rounds = max(2, args.updates // len(hot))
        rss_mid, snap_mid, mid_done = 0, None, 0
        for generation in range(1, rounds + 1):
            chain.apply(hot, generation)
            done += len(hot)
            if args.series:
                steps.append((done, _sample(chain, False, args.trim)[0]))
            if generation == rounds // 2:  # the slope is taken over the second half
                rss_mid, snap_mid = _sample(chain, trace, args.trim)
                mid_done = done
        rss_end, snap_end = _sample(chain, trace, args.trim)
        if steps:
            result["series_mib"] = [[n, round(rss / 2**20, 1)] for n, rss in steps]
        result["height"] = chain.ledger.height
        per_k = (done - mid_done) / 1000
        result["updates_rss_bytes_per_1k"] = round((rss_end - rss_mid) / per_k)
        if snap_mid is not None and snap_end is not None:
            result["updates_traced_bytes_per_1k"] = round(_traced(snap_mid, snap_end) / per_k)
            result["updates_top"] = _top(snap_mid, snap_end, args.top, per_k)
        result["cpu_s"] = round(time.process_time(), 1)
        result["rss_end_mib"] = round(rss_end / 2**20, 1)
        result["leveldb_memory_mib"] = round(chain.store.memory_usage() / 2**20, 1)
        chain.store.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--hot", type=int, default=2_000)
    parser.add_argument("--block", type=int, default=25)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--no-trace", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--series", action="store_true", help="RSS after every round of updates")
    parser.add_argument(
        "--memo",
        type=int,
        help="slots of the signature memo, rounded up to a power of two (default: the node's)",
    )
    parser.add_argument(
        "--trim",
        action="store_true",
        help="malloc_trim(0) before each RSS sample (freed heap not counted)",
    )
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return 0
    for key, value in result.items():
        if isinstance(value, list):
            print(f"{key}:")
            for row in value:
                print(
                    f"  {row['bytes']:>10} B {row['per']:>8}/unit {row['blocks']:>7} blocks  {row['site']}"
                )
        else:
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
