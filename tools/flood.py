"""Floods from one validator: a real 4 + 1 cluster on loopback, measured clean and flooded.

Validator 3 runs `tools/byzantine.py` from the start (through `Cluster(wrap=...)`),
idle until its trigger file exists. Phases:

1. **Clean**: ``--updates`` registrations, one at a time, each submitted over RPC to
   an honest node (round robin) and polled over DNS on every honest node (validators
   0-2 and the follower) until all answer it: submit-to-visible-everywhere times.
   Then each honest node's RSS (its whole process group: the node and its DNS worker).
2. **Flood**: the stages of ``--stages`` in turn, registrations timed the same way
   throughout, honest RSS sampled every ``SAMPLE_S``. The first stage lasts
   ``--seconds``; each later one runs on a fresh p2p identity of validator 3 (the
   last one may be banned) until every honest node has banned it, or for
   ``--stage-cap`` seconds. A stage is ``mode[+mode...][@rate]`` (default rate: just
   under the consensus topic's per-forwarder limit; see `tools/byzantine.py`).
3. **Lost**: every registration of both phases must be answered by every honest node.

Ends with ONE JSON line on stdout: clean_p50_ms, flood_p50_ms, p50_ratio,
clean_p99_ms, flood_p99_ms, rss_growth_mib_max (the largest honest node's RSS at the
end minus at flood start), flood_messages_sent, banned, heights_during_flood, lost,
pass (growth < 50 MiB, ratio <= 2, nothing lost) and per-stage details. Progress goes
to stderr. Every loop is bounded in count and time; every node is killed as a
process group at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import dns.message
import dns.rdatatype

from chain.crypto import PrivateKey
from chain.genesis import Genesis
from ledgerdns.api.client import NodeUnreachable, RpcError
from tools.bench_net import answers, registration
from tools.localnet import Cluster, ClusterNode

ROOT = Path(__file__).resolve().parents[1]
FLOODER = 3
HONEST = (0, 1, 2, 4)
STAGES = ("flood-votes", "flood-lead-proposals", "flood-proposals", "flood-equivocate",
          "flood-resent", "flood-votes@600")  # fmt: skip
MIB = 1024 * 1024
STATS_WAIT_S = 1.5  # the flooder rewrites its stats file every second
TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 2.0
VISIBLE_TIMEOUT_S = 20.0  # one update; past it the update is re-checked at the end
LOST_WAIT_S = 30.0
POLL_S = 0.005
MAX_UPDATES_PER_S = 20  # a bound on the flood phase's updates: at most this many a second
TARGET_GROWTH_MIB, TARGET_RATIO = 50.0, 2.0


def say(text: str) -> None:
    print(f"[flood] {text}", file=sys.stderr, flush=True)


@dataclass
class Flooder:
    """How validator 3 is launched: its current stage, trigger file and stats file."""

    base: Path
    stage: str = "flood-votes"
    cap_s: float = 600.0
    restarts: int = 0

    @property
    def trigger(self) -> Path:
        return self.base / "flood.trigger"

    @property
    def stats(self) -> Path:
        return self.base / f"flood-stats-{self.restarts}.json"

    def wrap(self, node: ClusterNode, cmd: list[str]) -> list[str]:
        if node.index != FLOODER:
            return cmd
        assert cmd[1:4] == ["-m", "ledgerdns", "node"], cmd
        modes, _, rate = self.stage.partition("@")
        extra = ["--flood-rate", rate] if rate else []
        return [
            sys.executable, str(ROOT / "tools" / "byzantine.py"), "--mode", modes.replace("+", ","),
            "--seed", str(7 + self.restarts), "--flood-seconds", str(self.cap_s + 5),
            "--flood-trigger", str(self.trigger), "--flood-stats", str(self.stats), *extra, *cmd[4:],
        ]  # fmt: skip

    def read_stats(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.stats.read_text()))
        except (OSError, ValueError):
            return {"sent": 0}


# -- measuring --


def group_rss_mib(pgid: int) -> float:
    """The resident memory of every process in a process group (a node and its DNS worker)."""
    total_kib = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return total_kib / 1024


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every process in a process group."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:
                    total += sum(int(x) for x in fields[11:13]) / TICK
            except (OSError, IndexError, ValueError):
                continue
    return total


def cpu_all(cluster: Cluster) -> dict[int, float]:
    return {n.index: group_cpu_s(n.pid) for n in cluster.nodes if n.pid is not None}


def honest_rss(cluster: Cluster) -> dict[int, float]:
    return {i: round(group_rss_mib(cluster.nodes[i].pid or -1), 1) for i in HONEST}


@dataclass
class RssSampler:
    """Samples the honest nodes' RSS every `SAMPLE_S` in a thread until stopped."""

    cluster: Cluster
    samples: list[dict[int, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.samples.append(honest_rss(self.cluster))


@dataclass
class Updater:
    """Registers fresh names through the honest nodes and times them to visible everywhere."""

    cluster: Cluster
    genesis: Genesis
    sock: socket.socket  # UDP, for the DNS polls; the caller closes it
    owner: PrivateKey = field(default_factory=lambda: PrivateKey.generate(b"flood-bench owner"))
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock.settimeout(1.0)

    def one(self) -> float | None:
        """Submit one registration; ms until every honest node answers it, None past the timeout."""
        n = len(self.names)
        name = f"fl{n}-{time.time_ns() % 10**9}.p2p"
        self.names.append(name)
        tx = registration(self.genesis, self.owner, name, f"10.3.{n // 250 % 250}.{n % 250 + 1}")
        query = dns.message.make_query(name, dns.rdatatype.A).to_wire()
        start = time.perf_counter()
        try:
            self.cluster.nodes[HONEST[n % len(HONEST)]].rpc.submit(tx)
        except (NodeUnreachable, RpcError) as exc:
            say(f"submit of {name} failed: {exc!r}")
            return None
        pending = [self.cluster.nodes[i] for i in HONEST]
        while pending and time.perf_counter() - start < VISIBLE_TIMEOUT_S:
            pending = [node for node in pending if not answers(self.sock, node.dns, query)]
            if pending:
                time.sleep(POLL_S)
        return None if pending else (time.perf_counter() - start) * 1000

    def run(self, count: int, seconds: float, stop: Any = None) -> list[float | None]:
        """Up to `count` updates within `seconds` (and until `stop()` is true)."""
        out: list[float | None] = []
        deadline = time.monotonic() + seconds
        while len(out) < count and time.monotonic() < deadline:
            out.append(self.one())
            if stop is not None and stop():
                break
            time.sleep(0.05)
        return out

    def lost(self) -> list[str]:
        """The names some honest node still does not answer after `LOST_WAIT_S`."""
        deadline = time.monotonic() + LOST_WAIT_S
        missing = list(self.names)
        while missing and time.monotonic() < deadline:
            missing = [
                name for name in missing
                if not all(answers(self.sock, self.cluster.nodes[i].dns,
                                   dns.message.make_query(name, dns.rdatatype.A).to_wire())
                           for i in HONEST)
            ]  # fmt: skip
            if missing:
                time.sleep(0.5)
        return missing


def banned_by(cluster: Cluster, peer_id: str) -> list[int]:
    """The honest nodes that show `peer_id` banned at ``/v1/peers``."""
    out = []
    for i in HONEST:
        try:
            peers = cluster.nodes[i].rpc.peers()
        except (NodeUnreachable, RpcError):
            continue
        if any(p["peer_id"] == peer_id and p.get("banned") for p in peers):
            out.append(i)
    return out


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)


def min_height(cluster: Cluster) -> int:
    return min(int(cluster.status(i)["height"]) for i in HONEST)


# -- the run --


def run_stage(
    cluster: Cluster, flooder: Flooder, updater: Updater, seconds: float
) -> dict[str, Any]:
    """Flood for up to `seconds` (less if every honest node bans the flooder), timing updates."""
    peer_id = cluster.nodes[FLOODER].peer_id
    cpu0 = cpu_all(cluster)
    flooder.trigger.touch()
    started = time.monotonic()
    ban_at: list[float] = []

    def all_banned() -> bool:
        if len(banned_by(cluster, peer_id)) == len(HONEST):
            ban_at.append(time.monotonic() - started)
            return True
        return False

    times = updater.run(int(seconds * MAX_UPDATES_PER_S) + 1, seconds, stop=all_banned)
    flooder.trigger.unlink()
    elapsed = time.monotonic() - started
    cpu1 = cpu_all(cluster)
    time.sleep(STATS_WAIT_S)  # the flooder's last counts
    stats = flooder.read_stats()
    seen = [t for t in times if t is not None]
    return {
        "stage": flooder.stage, "seconds": round(elapsed, 1),
        # each node's share of one core during the stage (node 3 is the flooder)
        "cpu_pct": {i: round(100 * (cpu1[i] - cpu0[i]) / elapsed) for i in cpu1 if i in cpu0},
        "sent": int(stats.get("sent", 0)), "by_mode": stats.get("by_mode", {}),
        # summed over the flooder's peers: dropped by its own outbound queues, never sent
        "dropped_at_sender": int(stats.get("dropped_at_sender", 0)),
        "banned_by": banned_by(cluster, peer_id), "banned_after_s": round(ban_at[0], 1) if ban_at else None,
        "updates": len(times), "late": len(times) - len(seen),
        "p50_ms": percentile(seen, 0.5), "p99_ms": percentile(seen, 0.99), "times": seen,
    }  # fmt: skip


def restart_flooder(cluster: Cluster, flooder: Flooder, stage: str, cap_s: float) -> None:
    """Validator 3 again, with `stage` and a fresh p2p identity on fresh ports."""
    node = cluster.nodes[FLOODER]
    if node.running:
        cluster.stop([FLOODER])
    flooder.stage, flooder.cap_s = stage, cap_s
    flooder.restarts += 1
    (node.data_dir / "node.key").unlink(missing_ok=True)
    node.ready = {}
    cluster.start_node(FLOODER)
    cluster.wait_peers(2, nodes=[FLOODER], timeout=30)


def measure(
    base: Path, stages: list[str], seconds: float, stage_cap: float, updates: int
) -> dict[str, Any]:
    """The whole measurement; returns the JSON document."""
    flooder = Flooder(base, stage=stages[0], cap_s=seconds)
    with (
        Cluster(base, validators=4, followers=1, wrap=flooder.wrap) as cluster,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        t0 = time.monotonic()
        cluster.start()
        cluster.wait_peers(4, timeout=60)
        genesis = Genesis.from_json(cluster.genesis_path.read_text())
        updater = Updater(cluster, genesis, sock)
        say(f"cluster up in {time.monotonic() - t0:.1f} s; warm-up, then {updates} clean updates")
        updater.run(3, 60)
        clean = [t for t in updater.run(updates, updates * VISIBLE_TIMEOUT_S) if t is not None]
        rss_clean = honest_rss(cluster)
        say(
            f"clean p50 {percentile(clean, 0.5)} ms p99 {percentile(clean, 0.99)} ms; RSS {rss_clean}"
        )
        height0, rss0 = min_height(cluster), honest_rss(cluster)
        results = []
        with RssSampler(cluster) as sampler:
            for k, stage in enumerate(stages):
                cap = seconds if k == 0 else stage_cap
                if k:
                    restart_flooder(cluster, flooder, stage, cap)
                say(f"stage {stage}: up to {cap:g} s")
                results.append(run_stage(cluster, flooder, updater, cap))
                r = results[-1]
                say(f"  sent {r['sent']}, banned by {r['banned_by']} after {r['banned_after_s']} s, "
                    f"p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms over {r['updates']} updates")  # fmt: skip
            rss1 = honest_rss(cluster)
        heights = min_height(cluster) - height0
        say(f"flood over: RSS {rss1}; checking {len(updater.names)} updates everywhere")
        lost = updater.lost()
        samples = sampler.samples
    return report(clean, results, rss_clean, rss0, rss1, samples, heights, lost)


def report(
    clean: list[float], stages: list[dict[str, Any]], rss_clean: dict[int, float],
    rss0: dict[int, float], rss1: dict[int, float], samples: list[dict[int, float]],
    heights: int, lost: list[str],
) -> dict[str, Any]:  # fmt: skip
    flood = [t for s in stages for t in s.pop("times")]
    clean_p50, flood_p50 = percentile(clean, 0.5), percentile(flood, 0.5)
    ratio = round(flood_p50 / clean_p50, 2) if clean_p50 and flood_p50 else None
    growth = max(rss1[i] - rss0[i] for i in HONEST)
    peak = max((max(s.values()) for s in samples), default=max(rss1.values()))
    return {
        "clean_p50_ms": clean_p50, "flood_p50_ms": flood_p50, "p50_ratio": ratio,
        "clean_p99_ms": percentile(clean, 0.99), "flood_p99_ms": percentile(flood, 0.99),
        "rss_growth_mib_max": round(growth, 1), "rss_peak_mib": round(peak, 1),
        "rss_clean_mib": rss_clean, "rss_flood_start_mib": rss0, "rss_end_mib": rss1,
        "flood_messages_sent": sum(s["sent"] for s in stages),
        "banned": {s["stage"]: len(s["banned_by"]) == len(HONEST) for s in stages},
        "heights_during_flood": heights, "lost": len(lost), "lost_names": lost[:10],
        "clean_updates": len(clean), "flood_updates": len(flood), "stages": stages,
        "pass": growth < TARGET_GROWTH_MIB and ratio is not None and ratio <= TARGET_RATIO and not lost,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, help="the first stage's length (default 60, quick 20)"
    )
    parser.add_argument(
        "--stage-cap", type=float, help="each later stage at most (default 15, quick 10)"
    )
    parser.add_argument("--updates", type=int, help="clean-phase updates (default 60, quick 20)")
    parser.add_argument("--stages", help=f"comma-separated stages (default {','.join(STAGES)})")
    parser.add_argument("--quick", action="store_true", help="20 s first stage, fewer updates")
    parser.add_argument("--dir", help="cluster directory (default: a temporary one)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (20.0 if args.quick else 60.0)
    stage_cap = args.stage_cap or (10.0 if args.quick else 15.0)
    updates = args.updates or (20 if args.quick else 60)
    stages = args.stages.split(",") if args.stages else list(STAGES)
    if not 0 < seconds <= 3600 or not 0 < stage_cap <= 600 or not 0 < updates <= 10_000:
        parser.error("--seconds in (0, 3600], --stage-cap in (0, 600], --updates in (0, 10000]")
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="flood-"))
    result = measure(base, stages, seconds, stage_cap, updates)
    result.update(seconds=seconds, quick=args.quick)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
