"""Benchmark of the ledger core: validate + apply signed transactions into LevelDB.

Builds a state of N domains through the normal block path (blocks of 1,000
registrations, every signature checked), and at two state sizes (10,000 and
N) times blocks of 1,000 mixed transactions (half updates of random existing
domains, half new registrations) as a validator that did not build the block
meets it (issue 17): the block's wire bytes decoded, checked with
`Ledger.check_block` (every signature verified: the good-signature memo and the
transaction decode memo are emptied first, since the proposer's build filled
them) and applied with `Ledger.commit` (state-tree update, one synced LevelDB
batch). Signing happens before timing (with libsecp256k1 through coincurve,
which produces the same RFC 6979 signatures as the wallet's `ecdsa`; a unit
test proves it).

Prints progress to stderr and ends with one JSON line on stdout:
`apply_tx_per_s` (at 10,000 domains, cold: the target's figure), `apply_tx_per_s_large`,
`cost_ratio_1m_vs_10k`, `apply_tx_per_s_memo` and `apply_tx_per_s_large_memo` (the
same blocks checked a second time with the memos full: what the benchmark reported
before issue 17, for comparison only), `proof_bytes_1m` (largest of 200 proofs at
the large size), `rss_mib_1m` (peak RSS of the whole process), `domains_large`,
`scaled_down`.

    python tools/bench_core.py            # the real run: 1,000,000 domains (several minutes)
    python tools/bench_core.py --quick    # 100,000 domains, under a minute; says so
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import coincurve

from chain.block import Block
from chain.crypto import forget_verified, sha256
from chain.genesis import make_single_validator_genesis
from chain.ledger import Ledger
from chain.records import Record
from chain.state import domain_key
from chain.tx import ZERO_HASH, Op, Transaction, TxBody, TxHash, forget_decoded, tx_signing_digest
from ledgerdns.storage.leveldb import LevelDBStore
from tools.devchain import certify, dev_key

BLOCK = 1000
SMALL = 10_000


class Bench:
    def __init__(self, path: str) -> None:
        self.validator = dev_key("validator", 0)
        self.owner = dev_key("owner", 0)
        self._signer = coincurve.PrivateKey(self.owner.to_bytes())
        self.genesis = make_single_validator_genesis(
            self.validator.public_key, genesis_time_ms=1_700_000_000_000, chain_id="bench"
        )
        self.store = LevelDBStore.open(path)
        self.ledger = Ledger(self.store, self.genesis)
        self.ledger.initialize()
        self.count = 0  # domains registered so far
        self.rng = random.Random(7)

    def _sign(self, body: TxBody) -> Transaction:
        body_bytes = body.to_bytes()
        digest = tx_signing_digest(self.genesis.hash(), TxHash(sha256(body_bytes)))
        sig = self._signer.sign_recoverable(digest, hasher=None)[:64]
        return Transaction(body=body, body_bytes=body_bytes, signature=sig)

    def _body(self, domain: str, seq: int, prev: bytes, op: Op, records: tuple[Record, ...]) -> TxBody:
        return TxBody(
            chain_id=self.genesis.chain_id, domain=domain, seq=seq, prev=prev, op=op,
            records=records, owner=self.owner.public_key,
            valid_until=self.ledger.head.time_ms // 1000 + 3600,
        )

    def registrations(self, n: int) -> list[Transaction]:
        txs = []
        for _ in range(n):
            name = f"d{self.count}.p2p"
            rec = (Record.from_text(f"@ 300 A 10.{self.count >> 16 & 255}.{self.count >> 8 & 255}.{self.count & 255}", origin=name),)
            txs.append(self._sign(self._body(name, 0, ZERO_HASH, Op.REGISTER, rec)))
            self.count += 1
        return txs

    def updates(self, n: int) -> list[Transaction]:
        txs = []
        for i in self.rng.sample(range(self.count), n):
            name = f"d{i}.p2p"
            state = self.ledger.get_domain(name)
            assert state is not None
            rec = (Record.from_text(f"www 60 AAAA 2001:db8::{state.seq + 1:x}", origin=name),)
            txs.append(self._sign(self._body(name, state.seq + 1, state.head, Op.UPDATE, rec)))
        return txs

    def propose(self, txs: list[Transaction]) -> tuple[float, float]:
        """Build (as a proposer would), then time a validator's decode + check + commit.

        Returns the seconds of the cold path (memos emptied, as at a validator that
        did not build the block) and of the same block checked again with the memos
        full (the old, flattering figure), both including the commit.
        """
        ledger = self.ledger
        block, rejected = ledger.build_block(
            txs, time_ms=ledger.head.time_ms + 1000, proposer=self.validator.public_key
        )
        assert not rejected, rejected[0].error
        cert = certify(ledger, block.hash, block.height, [self.validator])
        wire = block.to_bytes()
        forget_verified()
        forget_decoded(block.txs)
        t0 = time.perf_counter()
        received = Block.from_bytes(wire, limits=self.genesis.params.record_limits)
        update = ledger.check_block(received)
        t1 = time.perf_counter()
        ledger.check_block(received)  # again: every signature now a memo hit
        t2 = time.perf_counter()
        ledger.commit(update, cert)
        t3 = time.perf_counter()
        return (t1 - t0) + (t3 - t2), (t2 - t1) + (t3 - t2)

    def fill(self, target: int) -> None:
        """Register domains up to `target` through the fast proposer path."""
        start, first, next_report = time.perf_counter(), self.count, self.count + 50_000
        while self.count < target:
            ledger = self.ledger
            txs = self.registrations(min(BLOCK, target - self.count))
            update, rejected = ledger.build_update(
                txs, time_ms=ledger.head.time_ms + 1000, proposer=self.validator.public_key
            )
            assert not rejected
            ledger.commit(update, certify(ledger, update.block.hash, update.block.height, [self.validator]))
            if self.count >= next_report or self.count == target:
                next_report += 50_000
                rate = (self.count - first) / (time.perf_counter() - start + 1e-9)
                print(f"  state: {self.count:,} domains ({rate:,.0f}/s)", file=sys.stderr)

    def measure(self, blocks: int) -> tuple[float, float]:
        """Seconds per transaction over `blocks` mixed blocks: cold, and with full memos.

        The store is compacted first at every size, so both sizes are measured on a
        settled database, as a node that has run for a while has (right after a bulk
        fill, LevelDB's background compaction would compete for the second core).
        """
        self.store.compact()
        cold, memo, n = 0.0, 0.0, 0
        for _ in range(blocks):
            txs = self.updates(BLOCK // 2) + self.registrations(BLOCK // 2)
            seconds, seconds_memo = self.propose(txs)
            cold += seconds
            memo += seconds_memo
            n += len(txs)
        return cold / n, memo / n

    def max_proof(self, samples: int) -> int:
        worst = 0
        for i in self.rng.sample(range(self.count), samples):
            worst = max(worst, len(self.ledger.tree.prove(domain_key(f"d{i}.p2p")).to_bytes()))
        return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 domains instead of 1,000,000")
    parser.add_argument("--domains", type=int, default=None, help="large state size (default 1,000,000)")
    parser.add_argument("--blocks", type=int, default=None, help="measured blocks per state size")
    args = parser.parse_args()
    large = args.domains or (100_000 if args.quick else 1_000_000)
    blocks = args.blocks or (3 if args.quick else 5)
    with tempfile.TemporaryDirectory(prefix="ledgerdns-bench-") as tmp:
        bench = Bench(str(Path(tmp) / "chain"))
        print(f"building {SMALL:,} domains", file=sys.stderr)
        bench.fill(SMALL)
        small_cost, small_memo = bench.measure(blocks)
        print(f"  {1 / small_cost:,.0f} tx/s at {bench.count:,} domains ({1 / small_memo:,.0f} "
              "with the memos full)", file=sys.stderr)
        print(f"building {large:,} domains", file=sys.stderr)
        bench.fill(large)
        large_cost, large_memo = bench.measure(blocks)
        print(f"  {1 / large_cost:,.0f} tx/s at {bench.count:,} domains ({1 / large_memo:,.0f} "
              "with the memos full)", file=sys.stderr)
        proof = bench.max_proof(200)
        bench.store.close()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "apply_tx_per_s": round(1 / small_cost),
        "apply_tx_per_s_large": round(1 / large_cost),
        "cost_ratio_1m_vs_10k": round(large_cost / small_cost, 3),
        "apply_tx_per_s_memo": round(1 / small_memo),
        "apply_tx_per_s_large_memo": round(1 / large_memo),
        "proof_bytes_1m": proof,
        "rss_mib_1m": round(rss_mib, 1),
        "domains_large": large,
        "scaled_down": large < 1_000_000,
    }))


if __name__ == "__main__":
    main()
