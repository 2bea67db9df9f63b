"""Scale benchmark (issue 20): node CPU per height and visibility as validators and followers grow.

Each point is a fresh local network of real `ledgerdns node` processes
(`tools.localnet.Cluster`, every listener on 127.0.0.1). Per point:

1. Start the cluster; one registration (the warm-up, not timed; ``warm_up_s``)
   must be visible over DNS at every node within 60 s + 3 s per node: the
   network is connected and finalizing.
2. **Idle**: each node's CPU rate over a short window (the node process and its
   DNS worker children: utime + stime of every process in its process group,
   from ``/proc/<pid>/stat``); measured again after the load, and the
   lower of the two kept (a node still catching up after the warm-up is not idle).
3. **Load**: ``--heights`` registrations, one at a time, each to the next node in
   turn (as `tools.bench_net.measure_visible`); each is timed from submit until
   every node answers it over DNS (``visible_p50_ms``, ``visible_p99_ms``).
   Bounded in count and time: a registration not visible everywhere within
   `VISIBLE_TIMEOUT_S`, or a load phase past ``--load-timeout``, ends the point
   with ``finalized`` false.
4. ``node_cpu_ms_per_height``: the median over nodes of (CPU used during the
   load − idle rate × load duration) / heights finalized during the load.
   ``blocks_via_sync`` sums, over the load, every node's ``blocks_via_sync``
   status field (blocks applied through the sync path after the node's first
   catch-up); ``sync_nodes`` names the nodes where it grew; what the nodes
   counted before the load (start-up and warm-up: a node seconds old, whose
   gossip mesh is still forming, may get its first block by sync) is
   ``blocks_via_sync_warm_up``. ``gossip`` summarizes,
   per topic, the messages each node received during the load
   (``gossip_received``) and its mesh peers at the end (``gossip_mesh``).

The DNS polling that times visibility is itself load on the nodes' DNS workers,
and so part of the CPU figure: each node is asked again after a tenth of the time
elapsed since submit (5-50 ms), a few dozen queries per height at most
(``dns_queries_per_node_height`` in the details).

A point written ``V+F@RTT`` (e.g. ``10+1@50``) runs every node in its own
network namespace (`tools.netns.Lab`) whose outbound packets are delayed by
RTT/2 (tc netem), so any two nodes see an RTT of RTT ms. It needs root and a
kernel with ``sch_netem``; without them the point reports ``finalized`` false
and the reason.

``cpu_ms_per_validator`` is the least-squares slope of ``node_cpu_ms_per_height``
over the finalized points with one follower and no netem.

Progress goes to stderr; stdout gets one JSON line::

    {"points": [{"validators": 4, "followers": 1, "heights": 20, "finalized": true,
                 "node_cpu_ms_per_height": 21.0, "visible_p50_ms": 70.0,
                 "visible_p99_ms": 95.0, "blocks_via_sync": 0, ...}, ...],
     "cpu_ms_per_validator": 0.8, "quick": true}

    python tools/bench_scale.py --quick                  # 4+1 10+1 16+1 31+1 4+20
    python tools/bench_scale.py                          # adds 64+1 and 10+1@50
    python tools/bench_scale.py --points 4+1,10+1 --heights 10
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rdatatype
from rich.console import Console

from chain.crypto import PrivateKey
from chain.genesis import Genesis
from ledgerdns.api.client import NodeUnreachable, RpcClientError
from tools.bench_net import registration
from tools.localnet import Cluster, ClusterNode

console = Console(stderr=True)
TRACE = bool(os.environ.get("BENCH_SCALE_TRACE"))  # each registration's submit time and latency

QUICK_POINTS = "4+1,10+1,16+1,31+1,4+20"
FULL_POINTS = QUICK_POINTS + ",64+1,10+1@50"
QUICK_HEIGHTS = 20
FULL_HEIGHTS = 50
QUICK_IDLE_S = 3.0
FULL_IDLE_S = 8.0
WARMUP_TIMEOUT_S = 60.0  # plus WARMUP_PER_NODE_S per node: 32 nodes on 2 cores link up slowly
WARMUP_PER_NODE_S = 3.0
VISIBLE_TIMEOUT_S = 15.0  # one registration not visible at every node by then ends the point
START_TIMEOUT_S = 30.0  # plus START_PER_NODE_S per node: dozens of interpreters start on 2 cores
START_PER_NODE_S = 1.5
DNS_TIMEOUT_S = 0.25
POLL_MIN_S, POLL_MAX_S = 0.005, 0.05
TICK = os.sysconf("SC_CLK_TCK")
SETTLE_S = 1.0  # after the warm-up, before the idle window: let commit notices pass
POINT_RE = re.compile(r"^(\d+)\+(\d+)(?:@(\d+(?:\.\d+)?))?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Point:
    """One network shape: validators, followers, and an RTT between nodes (0: plain loopback)."""

    validators: int
    followers: int
    rtt_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.validators < 1 or self.followers < 0 or self.rtt_ms < 0:
            raise ValueError(f"bad point {self}")

    @classmethod
    def from_text(cls, text: str) -> Point:
        """``V+F`` or ``V+F@RTT`` (RTT in ms between any two nodes, via netem)."""
        m = POINT_RE.match(text.strip())
        if m is None:
            raise ValueError(f"a point is V+F or V+F@RTT_MS, not {text!r}")
        return cls(validators=int(m[1]), followers=int(m[2]), rtt_ms=float(m[3] or 0))

    def to_text(self) -> str:
        """The inverse of `from_text`."""
        base = f"{self.validators}+{self.followers}"
        return f"{base}@{self.rtt_ms:g}" if self.rtt_ms else base

    @property
    def nodes(self) -> int:
        return self.validators + self.followers


def parse_points(text: str) -> list[Point]:
    """A comma-separated list of points, e.g. ``4+1,10+1,10+1@50``."""
    return [Point.from_text(part) for part in text.split(",") if part.strip()]


# -- measuring --


def cpu_by_group(pgids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system, own and reaped children's) of each process group in `pgids`.

    A node runs in its own session, so its group is the node and its DNS workers.
    """
    wanted = set(pgids)
    total = dict.fromkeys(pgids, 0)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        pgid = int(fields[2])
        if pgid in wanted:
            total[pgid] += sum(int(x) for x in fields[11:15])
    return {pgid: ticks / TICK for pgid, ticks in total.items()}


def idle_rates(pgids: list[int], seconds: float) -> dict[int, float]:
    """Each process group's CPU rate (seconds per second) over a window of `seconds`."""
    cpu0, t0 = cpu_by_group(pgids), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = cpu_by_group(pgids), time.monotonic()
    return {p: (cpu1[p] - cpu0[p]) / (t1 - t0) for p in pgids}


def status_of(node: ClusterNode) -> dict[str, Any]:
    """Node's RPC status; once more with a fresh client if the kept-alive connection was stale."""
    try:
        return dict(node.rpc.status())
    except NodeUnreachable:  # the server closed an idle connection as we reused it (issue 20)
        node.drop_rpc()
        return dict(node.rpc.status())


def _submit(node: ClusterNode, tx: Any) -> None:
    try:
        node.rpc.submit(tx)
    except NodeUnreachable:  # as in status_of; a resent tx the node already holds is no error
        node.drop_rpc()
        with contextlib.suppress(RpcClientError):
            node.rpc.submit(tx)


def _answered(
    socks: dict[int, socket.socket], pending: list[ClusterNode], query: bytes
) -> set[int]:
    """Ask every pending node at once; the indexes of those that answer `query` with records
    within `DNS_TIMEOUT_S`.

    All at once, not one after another: asked in turn, 32 nodes each a few ms slow to answer
    on a loaded machine made one sweep ~100 ms, which the last node's latency counted.
    """
    by_fd = {}
    for n in pending:
        sock = socks[n.index]
        sock.sendto(query, n.dns)
        by_fd[sock.fileno()] = (n.index, sock)
    answered: set[int] = set()
    waiting = dict(by_fd)
    deadline = time.perf_counter() + DNS_TIMEOUT_S
    while waiting and (left := deadline - time.perf_counter()) > 0:
        ready, _, _ = select.select(list(waiting), [], [], left)
        for fd in ready:
            index, sock = waiting[fd]
            reply = sock.recv(4096)
            if reply[:2] != query[:2]:
                continue  # a reply to an earlier query
            del waiting[fd]
            if len(reply) >= 12 and reply[3] & 0x0F == 0 and reply[6:8] != b"\0\0":
                answered.add(index)
    return answered


@dataclass(slots=True)
class Load:
    """What a run of registrations measured: latencies (ms), DNS queries sent, why it stopped."""

    latencies_ms: list[float] = field(default_factory=list)
    queries: int = 0
    error: str | None = None


def run_load(
    cluster: Cluster, genesis: Genesis, count: int, *, deadline: float, timeout: float, tag: str
) -> Load:
    """Submit `count` registrations one at a time, round robin; time each until visible at all nodes."""
    owner = PrivateKey.generate(f"bench-scale {tag}".encode())
    nodes = cluster.nodes
    socks = {n.index: socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for n in nodes}
    load = Load()
    try:
        for i in range(count):
            if time.monotonic() > deadline:
                load.error = f"load phase out of time after {i} of {count} heights"
                return load
            name = f"{tag}{i}-{time.time_ns() % 10**9}.p2p"
            query = dns.message.make_query(name, dns.rdatatype.A).to_wire()
            tx = registration(genesis, owner, name, f"10.3.{i // 250}.{i % 250 + 1}")
            start = time.perf_counter()
            submitted = time.time()
            _submit(nodes[i % len(nodes)], tx)
            submit_ms = (time.perf_counter() - start) * 1000
            pending = list(nodes)
            last: list[int] = []
            while pending:
                load.queries += len(pending)
                answered = _answered(socks, pending, query)
                pending = [n for n in pending if n.index not in answered]
                last = sorted(answered)
                elapsed = time.perf_counter() - start
                if pending and elapsed > timeout:
                    late = ", ".join(str(n.index) for n in pending[:10])
                    load.error = (
                        f"{name} not visible at {len(pending)} nodes ({late}) after {timeout:g} s"
                    )
                    return load
                if pending:  # a tenth of the wait so far: ~10 % resolution, few queries
                    time.sleep(min(POLL_MAX_S, max(POLL_MIN_S, elapsed / 10)))
            load.latencies_ms.append((time.perf_counter() - start) * 1000)
            if TRACE:  # for reading against the nodes' logs (same clock)
                console.print(
                    f"    {name} submitted {time.strftime('%H:%M:%S', time.localtime(submitted))}"
                    f".{int(submitted * 1000) % 1000:03d} to node {i % len(nodes)} (RPC {submit_ms:.0f} ms),"
                    f" visible everywhere in {load.latencies_ms[-1]:.0f} ms (last: nodes {last[:5]})",
                    highlight=False,
                )
    finally:
        for s in socks.values():
            s.close()
    return load


def percentile(sorted_ms: list[float], q: float) -> float:
    """The nearest-rank `q` quantile of an ascending list."""
    return sorted_ms[min(len(sorted_ms) - 1, round(q * (len(sorted_ms) - 1)))]


def gossip_summary(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """Per topic: messages each node received during the load (min/median/max) and mesh sizes."""
    topics = sorted({t for s in after for t in s.get("gossip_received") or {}})
    out: dict[str, Any] = {}
    for topic in topics:
        got = [
            int((a.get("gossip_received") or {}).get(topic, 0))
            - int((b.get("gossip_received") or {}).get(topic, 0))
            for b, a in zip(before, after, strict=True)
        ]
        mesh = [int((a.get("gossip_mesh") or {}).get(topic, 0)) for a in after]
        out[topic] = {
            "received_min": min(got),
            "received_median": statistics.median(got),
            "received_max": max(got),
            "least_node": got.index(min(got)),
            "mesh_min": min(mesh),
            "mesh_max": max(mesh),
        }
    return out


# -- one point --


def measure_point(
    cluster: Cluster, point: Point, heights: int, opts: argparse.Namespace, out: dict[str, Any]
) -> None:
    """Warm up, idle window, load; fills `out` as it goes (a failure leaves what was measured)."""
    nodes = cluster.nodes
    genesis = Genesis.from_json(cluster.genesis_path.read_text())
    warm_s = WARMUP_TIMEOUT_S + WARMUP_PER_NODE_S * len(nodes)
    warm = run_load(cluster, genesis, 1, deadline=time.monotonic() + warm_s, timeout=warm_s, tag="warm")
    out["warm_up_s"] = round(warm.latencies_ms[0] / 1000, 1) if warm.error is None else None
    if warm.error is not None:
        out["error"] = f"warm-up: {warm.error}"
        after = [status_of(n) for n in nodes]  # what the nodes saw since they started
        _sync_fields(after, out)
        out["gossip"] = gossip_summary([{} for _ in after], after)
        return
    time.sleep(SETTLE_S)
    running = [n for n in nodes if n.pid is not None]
    pgids = [n.pid for n in running if n.pid is not None]
    console.print(
        f"  {point.to_text()}: warm-up visible in {warm.latencies_ms[0]:.0f} ms; idle {opts.idle:g} s"
    )
    idle = idle_rates(pgids, opts.idle)

    before = [status_of(n) for n in nodes]
    console.print(f"  {point.to_text()}: load of {heights} heights")
    cpu_a, t_a = cpu_by_group(pgids), time.monotonic()
    load = run_load(
        cluster,
        genesis,
        heights,
        deadline=t_a + opts.load_timeout,
        timeout=VISIBLE_TIMEOUT_S,
        tag="s",
    )
    cpu_b, t_b = cpu_by_group(pgids), time.monotonic()
    after = [status_of(n) for n in nodes]
    time.sleep(SETTLE_S)  # a node still catching up after the warm-up inflated the first window
    later = idle_rates(pgids, opts.idle)
    idle = {p: min(idle[p], later[p]) for p in pgids}
    out["idle_cpu_pct_median"] = round(100 * statistics.median(idle.values()), 2)
    out["idle_cpu_pct_max"] = round(100 * max(idle.values()), 2)
    grown = max(int(s["height"]) for s in after) - max(int(s["height"]) for s in before)
    out["heights_finalized"] = grown
    out["load_s"] = round(t_b - t_a, 1)
    if grown > 0:
        per_node = [(cpu_b[p] - cpu_a[p] - idle[p] * (t_b - t_a)) * 1000 / grown for p in pgids]
        out["node_cpu_ms_per_height"] = round(statistics.median(per_node), 2)
        out["node_cpu_ms_per_height_max"] = round(max(per_node), 2)
        for role, chosen in (("validators", True), ("followers", False)):
            mine = [c for c, n in zip(per_node, running, strict=True) if n.validator is chosen]
            if mine:  # the median node of a 4 + 20 point is a follower: both roles, apart
                out[f"node_cpu_ms_per_height_{role}"] = round(statistics.median(mine), 2)
        out["dns_queries_per_node_height"] = round(load.queries / len(nodes) / grown, 1)
    _load_fields(load, heights, out)
    _sync_fields(after, out, before=before)
    out["gossip"] = gossip_summary(before, after)


def _load_fields(load: Load, heights: int, out: dict[str, Any]) -> None:
    lat = sorted(load.latencies_ms)
    if lat:
        out["visible_p50_ms"] = round(statistics.median(lat), 1)
        out["visible_p99_ms"] = round(percentile(lat, 0.99), 1)
    out["finalized"] = load.error is None and len(lat) == heights
    if load.error is not None:
        out["error"] = load.error


def _sync_fields(
    statuses: list[dict[str, Any]], out: dict[str, Any], *, before: list[dict[str, Any]] | None = None
) -> None:
    """Heights, links and ``blocks_via_sync``: over the load when `before` (the statuses at
    its start) is given, with the start-up's count apart (``blocks_via_sync_warm_up``: a
    node a few seconds old whose gossip mesh is still forming gets its first block by
    sync); since start otherwise (a point that failed its warm-up)."""
    heights = [int(s["height"]) for s in statuses]
    out["end_height_min_max"] = [min(heights), max(heights)]
    linked = [int(s["validators_linked"]) for s in statuses if "validators_linked" in s]
    if linked:
        out["validators_linked_min_max"] = [min(linked), max(linked)]
    counts = [s.get("blocks_via_sync") for s in statuses]
    known = [int(c) for c in counts if c is not None]
    if len(known) < len(counts):
        out["blocks_via_sync"] = None  # a node without the field (before issue 20's status change)
        return
    if before is not None:
        start = [int(s.get("blocks_via_sync") or 0) for s in before]
        out["blocks_via_sync_warm_up"] = sum(start)
        known = [k - s for k, s in zip(known, start, strict=True)]
    out["blocks_via_sync"] = sum(known)
    out["sync_nodes"] = {str(i): c for i, c in enumerate(known) if c > 0}


@contextlib.contextmanager
def _network(point: Point, base: Path, start_timeout: float) -> Iterator[Cluster]:
    """A started cluster for `point` (in netem namespaces when it has an RTT); stopped after."""
    with contextlib.ExitStack() as stack:
        kwargs: dict[str, Any] = {}
        if point.rtt_ms:
            from tools.netns import Lab  # only the netem points need root and iproute2

            lab = stack.enter_context(Lab(point.nodes, delay_ms=point.rtt_ms / 2))
            kwargs = {"host_of": lab.host, "wrap": lab.wrap}
        cluster = stack.enter_context(
            Cluster(base, point.validators, point.followers, start_timeout=start_timeout, **kwargs)
        )
        cluster.start()
        yield cluster


def run_point(point: Point, heights: int, opts: argparse.Namespace, base: Path) -> dict[str, Any]:
    """One point's figures; a point that fails says why (``error``) and has ``finalized`` false."""
    out: dict[str, Any] = {
        "validators": point.validators, "followers": point.followers, "heights": heights,
        "finalized": False, "node_cpu_ms_per_height": None, "visible_p50_ms": None,
        "visible_p99_ms": None, "blocks_via_sync": None,
    }  # fmt: skip
    if point.rtt_ms:
        out["rtt_ms"] = point.rtt_ms
    started = time.monotonic()
    console.print(f"[bold]{point.to_text()}[/]: starting {point.nodes} nodes")
    try:
        with _network(point, base, START_TIMEOUT_S + START_PER_NODE_S * point.nodes) as cluster:
            out["start_s"] = round(time.monotonic() - started, 1)
            measure_point(cluster, point, heights, opts, out)
    except Exception as exc:  # the run goes on to the next point: report it, never a traceback
        out["error"] = f"{type(exc).__name__}: {exc}"[:800]
        base.mkdir(parents=True, exist_ok=True)
        (base / "error.txt").write_text(traceback.format_exc())
    out["point_s"] = round(time.monotonic() - started, 1)
    if out["finalized"] and not opts.keep:
        shutil.rmtree(base, ignore_errors=True)
    else:
        out["logs"] = str(base)
    colour = "green" if out["finalized"] else "red"
    console.print(
        f"[{colour}]{point.to_text()}[/]: cpu/height {out['node_cpu_ms_per_height']} ms, "
        f"visible p50 {out['visible_p50_ms']} ms p99 {out['visible_p99_ms']} ms, "
        f"via sync {out['blocks_via_sync']}" + (f" — {out['error']}" if "error" in out else "")
    )
    return out


def cpu_slope(points: list[dict[str, Any]]) -> float | None:
    """Least-squares slope of CPU per height over validators (finalized, 1 follower, no netem)."""
    chosen = [
        p for p in points
        if p["finalized"] and p["followers"] == 1 and not p.get("rtt_ms")
        and p["node_cpu_ms_per_height"] is not None
    ]  # fmt: skip
    if len({p["validators"] for p in chosen}) < 2:
        return None
    fit = statistics.linear_regression(
        [float(p["validators"]) for p in chosen],
        [float(p["node_cpu_ms_per_height"]) for p in chosen],
    )
    return round(fit.slope, 3)


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[Point], int]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--quick", action="store_true", help=f"points {QUICK_POINTS}, {QUICK_HEIGHTS} heights")
    add("--points", help=f"comma-separated V+F or V+F@RTT_MS (full: {FULL_POINTS})")
    add(
        "--heights",
        type=int,
        help=f"registrations per point (quick {QUICK_HEIGHTS}, full {FULL_HEIGHTS})",
    )
    add("--idle", type=float, help=f"idle window, s (quick {QUICK_IDLE_S:g}, full {FULL_IDLE_S:g})")
    add(
        "--load-timeout",
        type=float,
        help="bound on each point's load phase, s (quick 60, full 240)",
    )
    add("--dir", help="where the clusters go (default: a temporary directory)")
    add("--keep", action="store_true", help="keep every point's node directories")
    args = parser.parse_args(argv)
    try:
        points = parse_points(args.points or (QUICK_POINTS if args.quick else FULL_POINTS))
    except ValueError as exc:
        parser.error(str(exc))
    if not points or (args.heights is not None and args.heights < 1):
        parser.error("need at least one point and one height")
    if args.idle is None:
        args.idle = QUICK_IDLE_S if args.quick else FULL_IDLE_S
    if args.load_timeout is None:
        args.load_timeout = 60.0 if args.quick else 240.0
    return args, points, args.heights or (QUICK_HEIGHTS if args.quick else FULL_HEIGHTS)


def main(argv: list[str] | None = None) -> int:
    args, points, heights = _parse_args(argv)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    signal.signal(signal.SIGTERM, _interrupt)  # so the clusters (and namespaces) are cleaned up
    results: list[dict[str, Any]] = []
    report: dict[str, Any] = {"points": results}
    try:
        for k, point in enumerate(points):
            base = root / f"{k}-{point.to_text().replace('@', '-rtt')}"
            results.append(run_point(point, heights, args, base))
    except KeyboardInterrupt:  # SIGINT or SIGTERM: the points so far, and a clean exit
        console.print("[red]interrupted[/]: the clusters are stopped")
        report["interrupted"] = True
    if not args.dir and not args.keep and all(p["finalized"] for p in results):
        shutil.rmtree(root, ignore_errors=True)
    report |= {"cpu_ms_per_validator": cpu_slope(results), "quick": args.quick}
    print(json.dumps(report), flush=True)
    return 1 if report.get("interrupted") else 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
