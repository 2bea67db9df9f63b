"""Benchmark of the registration stamp (issue 15, docs/naming.md): what a name costs.

Measures, in CPU seconds of this process (one core):

- `eval_ms`: one Argon2id evaluation at the network's memory and passes;
- `verify_ms`: checking one valid stamp (`stamp_count` evaluations) and
  `check_ms` the whole static check of a commit a validator runs (signature
  and stamp), medians over many;
- `solve_s`: full stamp searches at the network's work for an ordinary name,
  each on a fresh commitment (`solves` of them; their mean and spread), and
  `solve_eval_ms`, the cost of one evaluation over all of theirs;

and from `solve_eval_ms` and the parameters, the expected cost of a stamp and its
distribution: the sum of `stamp_count` geometric draws of mean `stamp_work`
evaluations (an Erlang distribution to within 1/work), its median, 90th, 95th
and 99th percentiles, and `million_core_days`, what a million registrations
cost one core.

The parameters are those of genesis/example-public.json unless given.
Progress on stderr, then one JSON line on stdout.

    python tools/bench_stamp.py            # 8 full searches (about a minute and a half)
    python tools/bench_stamp.py --quick    # 2 full searches (about 20 s)
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import dataclasses
import hashlib
import json
import math
import statistics
import sys
import time
from pathlib import Path

from chain.commits import make_commitment
from chain.crypto import PrivateKey
from chain.genesis import Genesis
from chain.params import NamingParams
from chain.rules import check_tx_static
from chain.stamp import evaluate, solve_stamp, stamp_seed, verify_stamp
from chain.tx import ZERO_HASH, Op, Transaction, TxBody

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "genesis" / "example-public.json"
DAY_S = 86400


def erlang_quantile(k: int, mean: float, q: float) -> float:
    """The `q` quantile of the sum of `k` exponential draws of total mean `mean`."""
    rate = k / mean

    def cdf(x: float) -> float:
        term, total = 1.0, 1.0
        for n in range(1, k):
            term *= rate * x / n
            total += term
        return 1.0 - math.exp(-rate * x) * total

    low, high = 0.0, mean * 10
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < q else (low, mid)
    return (low + high) / 2


def _cpu() -> float:
    return time.process_time()


def _eval_ms(naming: NamingParams, count: int) -> float:
    seed = hashlib.sha256(b"bench-eval").digest()
    runs = []
    for run in range(5):
        start = _cpu()
        for nonce in range(count):
            evaluate(seed, run * count + nonce, naming)
        runs.append((_cpu() - start) / count * 1000)
    return statistics.median(runs)


def _commit(genesis: Genesis, key: PrivateKey, salt: bytes, work: int) -> tuple[TxBody, bytes]:
    p = genesis.params
    commitment = make_commitment(p.genesis_hash, "bench-name.p2p", key.public_key, salt)
    body = TxBody(
        chain_id=p.chain_id, domain="", seq=0, prev=ZERO_HASH, op=Op.COMMIT, records=(),
        owner=key.public_key, valid_until=2**40, commitment=commitment, stamp_work=work,
    )  # fmt: skip
    return body, stamp_seed(p.genesis_hash, commitment, key.public_key, work)


def _verify_ms(genesis: Genesis, key: PrivateKey, rounds: int) -> tuple[float, float]:
    """(stamp check, whole static check of the commit), median ms, on one valid stamp."""
    naming = genesis.params.naming
    body, seed = _commit(genesis, key, b"v" * 16, naming.stamp_work)
    # A stamp searched at a small work verifies at exactly the cost of any other: k evaluations.
    light = dataclasses.replace(body, stamp_work=4)
    light_seed = stamp_seed(genesis.params.genesis_hash, light.commitment, key.public_key, 4)
    stamp = solve_stamp(light_seed, 4, naming)
    verify, check = [], []
    for i in range(rounds):
        start = _cpu()
        verify_stamp(stamp, light_seed, 4, naming)
        verify.append((_cpu() - start) * 1000)
        tx = Transaction.sign(dataclasses.replace(light, valid_until=2**40 - i, stamp=stamp), key,
                              genesis.params.genesis_hash)  # fmt: skip
        params = dataclasses.replace(genesis.params, naming=dataclasses.replace(naming, stamp_work=4))
        start = _cpu()
        check_tx_static(tx, params)  # a new txid each round: the verified-stamp memo never hits
        check.append((_cpu() - start) * 1000)
    del seed
    return statistics.median(verify), statistics.median(check)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 full searches instead of 8")
    parser.add_argument("--genesis", default=str(EXAMPLE), help="genesis whose naming rules to measure (default %(default)s)")
    parser.add_argument("--solves", type=int, default=None, help="full stamp searches to time (default 8, --quick 2; 0: none)")
    args = parser.parse_args()
    genesis = Genesis.from_json(Path(args.genesis).read_text())
    naming = genesis.params.naming
    if not naming.stamp_work:
        print(f"{args.genesis}: stamp_work is 0, nothing to measure", file=sys.stderr)
        return 2
    solves = args.solves if args.solves is not None else (2 if args.quick else 8)
    key = PrivateKey.generate(b"bench-stamp")
    eval_ms = _eval_ms(naming, 100 if args.quick else 400)
    print(f"one Argon2id evaluation ({naming.stamp_memory_kib} KiB, {naming.stamp_passes} pass): "
          f"{eval_ms:.3f} ms", file=sys.stderr)  # fmt: skip
    verify_ms, check_ms = _verify_ms(genesis, key, 20 if args.quick else 100)
    print(f"verify a stamp: {verify_ms:.2f} ms; whole commit check: {check_ms:.2f} ms", file=sys.stderr)
    times, evaluations = [], []
    for i in range(solves):
        _, seed = _commit(genesis, key, i.to_bytes(16, "big"), naming.stamp_work)
        start = _cpu()
        stamp = solve_stamp(seed, naming.stamp_work, naming)
        times.append(_cpu() - start)
        evaluations.append(int.from_bytes(stamp[-8:], "big") + 1)
        print(f"search {i + 1}/{solves}: {times[-1]:.2f} s CPU, {evaluations[-1]} evaluations",
              file=sys.stderr)  # fmt: skip
    k, work = naming.stamp_count, naming.stamp_work
    # The cost of one evaluation: over the searches' many evaluations when there were
    # some (hundreds of thousands), else the short measurement above.
    per_eval_ms = sum(times) / sum(evaluations) * 1000 if times else eval_ms
    mean_s = k * work * per_eval_ms / 1000
    out = {
        "genesis": Path(args.genesis).name,
        "stamp_memory_kib": naming.stamp_memory_kib,
        "stamp_passes": naming.stamp_passes,
        "stamp_count": k,
        "stamp_work": work,
        "eval_ms": round(eval_ms, 4),
        "verify_ms": round(verify_ms, 3),
        "check_ms": round(check_ms, 3),
        "expected_s": round(mean_s, 2),
        "cv": round(1 / math.sqrt(k), 3),
        "p50_s": round(erlang_quantile(k, mean_s, 0.50), 2),
        "p90_s": round(erlang_quantile(k, mean_s, 0.90), 2),
        "p95_s": round(erlang_quantile(k, mean_s, 0.95), 2),
        "p99_s": round(erlang_quantile(k, mean_s, 0.99), 2),
        "million_core_days": round(1_000_000 * mean_s / DAY_S, 1),
        "solves": solves,
        "solve_s_mean": round(statistics.mean(times), 2) if times else None,
        "solve_s_min": round(min(times), 2) if times else None,
        "solve_s_max": round(max(times), 2) if times else None,
        "solve_evaluations_mean": round(statistics.mean(evaluations)) if times else None,
        "solve_eval_ms": round(per_eval_ms, 4),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
