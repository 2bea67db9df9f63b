"""Soak benchmark (issue 21): a 4 + 1 cluster under steady load for minutes to hours, sampled and checked.

Four validators and a follower, each a real ``ledgerdns node`` on 127.0.0.1
(`tools/localnet.Cluster`; killed by process group at the end). The load
(`tools/soak_load.py`) keeps a ledger of every transaction it signs:

0. **Warm-up** (``--warm-up-minutes``, quick 4, default 10): the load of phase 1,
   not measured, so the bounded caches (LevelDB's 8 MiB block cache, the ledger's
   state and tree caches, the DNS workers' tables) are full when the measuring
   starts, as on a node that has run for a while. Filling them cost every node
   ~19-21 MiB in the first ~4 minutes at 50 tx/s whatever it did (issue 21,
   docs/operations.md), which a 5-minute phase 1 divided by its names
   (`rss_bytes_per_name_cold` keeps that figure for comparison).
1. **Registrations + updates** (the first half): ``--rate`` transactions a second
   over the validators, 30 % new names and 70 % updates of names already
   registered, each chained on the name's last accepted transaction.
2. **Updates only** (the second half): to a fixed set of ``--fixed-names`` names.

Throughout, ``--dns-rate`` UDP queries a second spread over all five nodes are
checked against the ledger (`tools/soak_dns.py`), and every ``--sample-s``
seconds each node's RSS (its process group: node + DNS workers), file
descriptors, LevelDB directory, write-ahead log, height and mempool are sampled
(`tools/soak_sample.py`), written to ``--out``.csv/.json/.png.

Then the network settles and everything is checked: every accepted transaction
in every node's blocks, each name's state and history over RPC and its answer
over DNS on every node, every node on the same chain and head, the node logs
(lines at WARNING or above, and tracebacks, up to the end of the checks), and
obsolete LevelDB tables: read from each MANIFEST while the nodes still run,
then again after the nodes are stopped and each store is compacted with plyvel.
Progress goes to stderr; the last stdout line is one JSON object with the
fields of issue 21 (docs/benchmarks.md explains each).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

from ledgerdns.api.client import NodeUnreachable, RpcError
from tools.chaos_checks import compare_chains, converge, find_lost, finish, raise_interrupt
from tools.localnet import Cluster
from tools.soak_checks import (
    compact_stopped,
    log_offsets,
    logged_errors,
    memory_figures,
    missing_in_blocks,
    obsolete_live,
    wait_leveldb_quiet,
)
from tools.soak_dns import Prober
from tools.soak_load import Ledger, Load
from tools.soak_report import write_samples
from tools.soak_sample import Sample, flush, sample

MIB = 1024 * 1024
VALIDATORS, FOLLOWERS = 4, 1


def say(text: str) -> None:
    print(f"[soak] {text}", file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="4 minutes of warm-up and 10 of load, sampled every 15 s",
    )
    parser.add_argument("--minutes", type=float, help="minutes of load (quick 10, default 60)")
    parser.add_argument(
        "--warm-up-minutes", type=float,
        help="minutes of the same mixed load before the measured phases, so the bounded caches "
        "(LevelDB's block cache, the ledger's) are full as on a node that has run a while "
        "(quick 4, default 10; 0: measure from a cold start)",
    )  # fmt: skip
    # tests: a run of seconds (overrides --minutes)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=50.0, help="transactions per second")
    parser.add_argument(
        "--new-share", type=float, default=0.3, help="share of registrations, phase 1"
    )
    parser.add_argument("--dns-rate", type=float, default=1000.0, help="DNS queries per second")
    parser.add_argument("--fixed-names", type=int, default=2000, help="names updated in phase 2")
    parser.add_argument(
        "--sample-s", type=float, help="seconds between samples (quick 15, default 30)"
    )
    parser.add_argument("--out", help="where the samples go: OUT.csv, OUT.json, OUT.png "
                        "(default ./soak-<UTC time>)")  # fmt: skip
    parser.add_argument("--dir", help="cluster directory (default: a fresh /tmp/soak-*)")
    parser.add_argument("--keep", action="store_true", help="keep the cluster directory")
    parser.add_argument("--seed", type=int, help="random seed (default: from the clock; printed)")
    parser.add_argument("--log-level", default="info", help="the nodes' --log-level")
    parser.add_argument(
        "--no-flush",
        dest="flush",
        action="store_false",
        help="do not flush each node's memtable (POST /v1/admin/flush) before each sample; "
        "subtract an estimate of it instead",
    )
    parser.add_argument(
        "--trace-node", type=int, action="append", default=[], metavar="N",
        help="start node N with --tracemalloc (repeatable; nodes 0-3 validate, 4 follows) and "
        "send it SIGUSR1 every --trace-every-s: heap snapshots in its data dir for "
        "tools/heapdiff.py (use --keep or --dir to keep them)",
    )  # fmt: skip
    parser.add_argument("--trace-frames", type=int, default=4, help="frames per traced allocation")
    parser.add_argument(
        "--heap-stats", action="store_true",
        help="send SIGUSR1 to every node every --trace-every-s, traced or not: each writes its "
        "allocators' figures (glibc, pymalloc) to DATA_DIR/heap-<unix ms>.alloc.json",
    )  # fmt: skip
    parser.add_argument(
        "--trace-every-s", type=float, default=60.0, help="seconds between heap snapshots"
    )
    args = parser.parse_args(argv)
    minutes = args.minutes if args.minutes is not None else (10.0 if args.quick else 60.0)
    args.load_s = args.seconds if args.seconds is not None else minutes * 60
    warm = args.warm_up_minutes if args.warm_up_minutes is not None else (4.0 if args.quick else 10.0)
    args.warm_s = 0.0 if args.seconds is not None and args.warm_up_minutes is None else warm * 60
    if args.warm_s < 0:
        parser.error("--warm-up-minutes must not be negative")
    if args.load_s <= 0 or args.rate <= 0 or args.dns_rate < 0 or not 0 <= args.new_share <= 1:
        parser.error("--minutes, --rate must be positive; --new-share within 0..1")
    if any(not 0 <= n < VALIDATORS + FOLLOWERS for n in args.trace_node) or args.trace_every_s <= 0:
        parser.error(f"--trace-node takes 0..{VALIDATORS + FOLLOWERS - 1}; --trace-every-s > 0")
    default_sample = 15.0 if args.quick else 30.0
    args.sample_s = args.sample_s or max(1.0, min(default_sample, args.load_s / 20))
    if args.seed is None:
        args.seed = time.time_ns() % 1_000_000
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    args.out = Path(args.out) if args.out else Path.cwd() / f"soak-{stamp}"
    return args


def _status(cluster: Cluster, i: int) -> dict[str, Any] | None:
    try:
        return cluster.status(i)
    except (NodeUnreachable, RpcError):
        return None


class Run:
    """One soak: the cluster, the load, the prober and the samples."""

    def __init__(self, args: argparse.Namespace, cluster: Cluster) -> None:
        assert cluster.genesis is not None
        rng = random.Random(args.seed)
        self.args, self.cluster = args, cluster
        self.ledger = Ledger()
        self.load = Load(cluster, cluster.genesis, self.ledger, rate=args.rate,
                         new_share=args.new_share, rng=random.Random(rng.random()))  # fmt: skip
        self.prober = Prober([n.dns for n in cluster.nodes], self.ledger, rate=args.dns_rate,
                             rng=random.Random(rng.random()))  # fmt: skip
        self.samples: list[Sample] = []
        self.t0 = time.monotonic()
        self.names_phase1 = 0  # names registered during phase 1
        self.names_cold = 0  # names registered from the start (warm-up included) to the end of phase 1
        self.next_snapshot = 0.0

    def take(self, phase: str) -> None:
        t = time.monotonic() - self.t0
        signalled = range(len(self.cluster.nodes)) if self.args.heap_stats else self.args.trace_node
        if signalled and t >= self.next_snapshot:
            self.next_snapshot += self.args.trace_every_s
            for i in signalled:  # the node writes DATA_DIR/heap-<unix ms>.snapshot, .alloc.json
                node = self.cluster.nodes[i]
                if node.pid is not None and node.running:
                    os.kill(node.pid, signal.SIGUSR1)
        for node in self.cluster.nodes:
            # the memtable written out first: every sample at the same point of its cycle
            leveldb = flush(node) if self.args.flush else None
            self.samples.append(sample(node, t, phase, _status(self.cluster, node.index), leveldb))
        last = self.samples[-len(self.cluster.nodes) :]
        d = self.prober.stats
        say(
            f"{t / 60:5.1f} min {phase}: {len(self.ledger.submitted)} submitted, "
            f"{len(self.ledger.accepted)} accepted, {self.ledger.open_count()} open, "
            f"{len(self.ledger.live)} names; dns {d.queries} q, {d.wrong} wrong, {d.timeouts} "
            f"timeouts; RSS MiB {[round(s.rss_bytes / MIB) for s in last]}; heights "
            f"{[s.height for s in last]}; mempools {[s.mempool for s in last]}"
        )

    def run_phase(self, phase: str, until: float) -> None:
        next_at = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= self.t0 + until:
                return
            if now >= next_at:
                self.take(phase)
                next_at += self.args.sample_s
            time.sleep(max(0.05, min(next_at, self.t0 + until) - time.monotonic()))

    def load_phases(self) -> tuple[tuple[float, float], tuple[float, float]]:
        warm, half = self.args.warm_s, self.args.load_s / 2
        self.t0 = time.monotonic()
        self.load.start()
        self.prober.start()
        names_before = 0
        if warm > 0:
            self.run_phase("warm-up", warm)
            self.take("warm-up")  # the last sample of the warm-up is the first of phase 1
            with self.ledger.lock:
                names_before = len(self.ledger.live)
            say(f"phase 1 from {warm / 60:g} min: the caches warmed up with {names_before} names")
        self.run_phase("registration", warm + half)
        self.take("registration")  # the last sample of phase 1 ...
        with self.ledger.lock:
            self.names_cold = len(self.ledger.live)
            self.names_phase1 = self.names_cold - names_before
            self.load.fixed = list(self.ledger.live[: self.args.fixed_names])
        self.load.registering = False
        say(f"phase 2: updates only, to {len(self.load.fixed)} names")
        self.run_phase("updates", warm + self.args.load_s)
        self.take("updates")  # ... and of phase 2
        return (warm, warm + half), (warm + half, warm + self.args.load_s)


def run(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    started = time.monotonic()
    traced = set(args.trace_node)

    def wrap(node: Any, cmd: list[str]) -> list[str]:
        return cmd + ["--tracemalloc", str(args.trace_frames)] if node.index in traced else cmd

    with Cluster(
        base, validators=VALIDATORS, followers=FOLLOWERS, log_level=args.log_level, wrap=wrap
    ) as cluster:
        cluster.start()
        cluster.wait_peers(1, timeout=60)
        say(f"{len(cluster.nodes)} nodes up in {time.monotonic() - started:.1f} s in {base}; "
            f"seed {args.seed}; {args.load_s / 60:g} min of load")  # fmt: skip
        soak = Run(args, cluster)
        phase1, phase2 = soak.load_phases()
        soak.load.stop_submitting()
        soak.prober.stop()
        stopped = time.monotonic()
        open_left = soak.load.drain(timeout=60)
        converged, seen = converge(cluster, stopped, timeout=90)
        top = max((x[0] for x in seen if isinstance(x, tuple)), default=0)
        soak.load.wait_read(top, timeout=60)
        soak.load.stop()
        say(
            f"settled in {converged and round(converged, 1)} s at height {top}; {open_left} transactions never in a block; checking"
        )
        result = check(soak, seen)
        result["settle_s"] = None if converged is None else round(converged, 2)
        result["txs_open"] = open_left
        result |= memory_figures(soak.samples, phase1, phase2, soak.names_phase1)
        if args.warm_s > 0:  # the same figure from a cold start, for comparison
            cold = memory_figures(soak.samples, (0.0, phase1[1]), phase2, soak.names_cold)
            result["rss_bytes_per_name_cold"] = cold["rss_bytes_per_name"]
        result["warm_up_minutes"] = round(args.warm_s / 60, 2)
        result["names_phase1"] = soak.names_phase1
        meta = {"validators": VALIDATORS, "phase1_s": phase1, "phase2_s": phase2,
                "warm_up_s": (0.0, args.warm_s),
                "title": f"soak {args.load_s / 60:g} min, {args.rate:g} tx/s, "
                         f"{args.dns_rate:g} DNS q/s (seed {args.seed})"}  # fmt: skip
        result["files"] = [str(p) for p in write_samples(args.out, soak.samples, meta | result)]
    return result | {"duration_s": round(time.monotonic() - started, 1), "seed": args.seed}


def check(soak: Run, seen: list[Any]) -> dict[str, Any]:
    """Everything after the load: chains, blocks, states, DNS, logs, LevelDB; the JSON fields."""
    cluster, ledger, load = soak.cluster, soak.ledger, soak.load
    diverged, top = compare_chains(cluster)
    heads = [x[1] if isinstance(x, tuple) else None for x in seen]
    majority = max(set(heads), key=heads.count) if heads else None
    diverged_nodes = set(diverged) | {i for i, h in enumerate(heads) if h is None or h != majority}
    lost = missing_in_blocks(cluster, ledger.accepted)
    for txid, nodes in find_lost(cluster, ledger.accepted).items():
        lost.setdefault(txid, set()).update(nodes)
    for txid, nodes in list(lost.items())[:10]:
        say(f"LOST {txid[:16]} on nodes {sorted(nodes)}")
    final_dns = soak.prober.check_all(ledger.live)
    dns = soak.prober.stats
    soak.prober.close()
    quiet = wait_leveldb_quiet(cluster)
    live_obsolete = obsolete_live(cluster)
    offsets = log_offsets(cluster)
    cluster.stop()  # everything below reads the stores with the nodes gone
    compacted = compact_stopped(cluster)
    errors, expected, examples = logged_errors(cluster, offsets)
    for line in examples[:10] + dns.examples[:5] + final_dns.examples[:5] + load.errors[:5]:
        say(line)
    accepted = len(ledger.accepted)
    return {
        "minutes": round(soak.args.load_s / 60, 2),
        "txs_submitted": len(ledger.submitted),
        "txs_accepted": accepted,
        "lost": len(lost),
        "diverged": len(diverged_nodes),
        "dns_queries": dns.queries + final_dns.queries,
        "dns_wrong": dns.wrong + final_dns.wrong,
        "dns_timeouts": dns.timeouts + final_dns.timeouts,
        "rss_growth_mib_per_h_updates": None,  # filled in by memory_figures
        "rss_bytes_per_name": None,
        "disk_bytes_per_tx": round(max(c["db_bytes"] for c in compacted) / max(accepted, 1)),
        "obsolete_files_left": sum(len(v) for v in live_obsolete.values())
        + sum(c["obsolete_files"] for c in compacted),
        "errors_logged": errors,
        "quick": soak.args.quick,
        "names": len(ledger.live),
        "height": top,
        "dns_during_load": {
            "queries": dns.queries,
            "wrong": dns.wrong,
            "timeouts": dns.timeouts,
            "stale_ok": dns.stale_ok,
        },  # fmt: skip
        "dns_final": {
            "queries": final_dns.queries,
            "wrong": final_dns.wrong,
            "timeouts": final_dns.timeouts,
        },  # fmt: skip
        "obsolete_running": {
            i: {"files": len(v), "bytes": sum(v.values())} for i, v in live_obsolete.items()
        },  # fmt: skip
        "leveldb_quiet": quiet,
        "compacted": compacted,
        "warnings_expected": expected,
        "load": dict(load.stats),
        "failures": load.errors[:20],
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)  # Ctrl-C and SIGTERM both stop every node
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    try:
        result = run(args, base)
    except KeyboardInterrupt:  # the cluster's context manager has stopped every node by now
        say(f"interrupted; cluster directory: {base}")
        return 130
    ok = not (result["lost"] or result["diverged"] or result["dns_wrong"] or result["failures"])
    summary = (
        f"{result['txs_accepted']}/{result['txs_submitted']} accepted, {result['lost']} lost, "
        f"{result['diverged']} diverged, DNS {result['dns_wrong']} wrong of {result['dns_queries']}, "
        f"RSS slope {result['rss_growth_mib_per_h_updates']} MiB/h, "
        f"{result['rss_bytes_per_name']} B/name; samples {result['files']}"
    )
    return finish(result, ok, "soak", summary, base, remove=not args.keep and not args.dir)


if __name__ == "__main__":
    sys.exit(main())
