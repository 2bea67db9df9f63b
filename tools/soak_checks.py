"""The soak's end checks and figures: blocks read back, logs, obsolete tables, memory slopes.

The chain comparisons and the per-name lookups over RPC are the crash loop's
(`tools/chaos_checks.py`); what is here is what only the soak needs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import plyvel
from rich.console import Console
from rich.markup import escape

from ledgerdns.api.client import NodeUnreachable, RpcError
from tools.chaos_checks import per_node
from tools.chaos_load import Finalized
from tools.localnet import Cluster, ClusterNode
from tools.soak_sample import (
    Sample,
    chain_dir,
    dir_bytes,
    live_tables,
    memtable_share,
    obsolete_tables,
)

console = Console(stderr=True, highlight=False)
MIB = 1024 * 1024
LOG_QUIET_S = 3.0  # LevelDB's LOG unchanged this long: no compaction under way
# A log line counts as an error if it is logged at WARNING or above, or is part of a traceback.
ERROR_LINE = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) |^Traceback ")
# Warnings expected in a healthy run, each with why (none so far: see docs/benchmarks.md).
EXPECTED: tuple[tuple[str, str], ...] = ()


# -- every accepted transaction in every node's blocks --


def missing_in_blocks(cluster: Cluster, accepted: Sequence[Finalized]) -> dict[str, set[int]]:
    """Accepted transactions some node's blocks lack at the height they were seen at: txid -> nodes."""
    wanted: dict[int, set[str]] = {}
    for f in accepted:
        wanted.setdefault(f.height, set()).add(f.txid)

    def read(node: ClusterNode) -> set[str]:
        missing: set[str] = set()
        for height, txids in sorted(wanted.items()):
            try:
                found = {str(t["txid"]) for t in node.rpc.block(height)["txs"]}
            except (NodeUnreachable, RpcError) as exc:
                console.print(f"[red]node {node.index}: block {height}: {escape(str(exc))}[/]")
                found = set()
            missing |= txids - found
        return missing

    lost: dict[str, set[int]] = {}
    for node, missing in zip(cluster.nodes, per_node(cluster, read), strict=True):
        for txid in missing:
            lost.setdefault(txid, set()).add(node.index)
    return lost


# -- logs --


def log_offsets(cluster: Cluster) -> dict[int, int]:
    """How far each node's log has come (errors are counted up to here: shutdown is not the run)."""
    out = {}
    for node in cluster.nodes:
        try:
            out[node.index] = (node.data_dir / "stderr.log").stat().st_size
        except OSError:
            out[node.index] = 0
    return out


def logged_errors(cluster: Cluster, upto: dict[int, int]) -> tuple[int, int, list[str]]:
    """(unexpected, expected) WARNING/ERROR/CRITICAL/Traceback lines in the node logs, and examples."""
    unexpected, expected, examples = 0, 0, list[str]()
    for node in cluster.nodes:
        with open(node.data_dir / "stderr.log", "rb") as handle:
            text = handle.read(upto.get(node.index, 0)).decode(errors="replace")
        for line in text.splitlines():
            if not ERROR_LINE.search(line):
                continue
            if any(pattern in line for pattern, _why in EXPECTED):
                expected += 1
                continue
            unexpected += 1
            if len(examples) < 20:
                examples.append(f"node {node.index}: {line[:300]}")
    return unexpected, expected, examples


# -- LevelDB: obsolete tables --


def wait_leveldb_quiet(cluster: Cluster, timeout: float = 60.0) -> bool:
    """Wait until no node's LevelDB LOG has changed for `LOG_QUIET_S` (no compaction running)."""
    deadline = time.monotonic() + timeout
    last: dict[int, tuple[int, float]] = {}
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        now = {}
        for node in cluster.nodes:
            st = (chain_dir(node) / "LOG").stat()
            now[node.index] = (st.st_size, st.st_mtime)
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= LOG_QUIET_S:
            return True
        time.sleep(0.5)
    return False


def obsolete_live(cluster: Cluster) -> dict[int, dict[int, int]]:
    """Per running node, table files its MANIFEST does not use, seen in two reads 2 s apart.

    Two reads: a table being written by a compaction is on disk before the
    MANIFEST names it; one that is still unused two seconds later, with the
    LOG quiet, is held by the node, not in flight.
    """
    first = {n.index: obsolete_tables(chain_dir(n)) for n in cluster.nodes}
    time.sleep(2.0)
    out = {}
    for node in cluster.nodes:
        again = obsolete_tables(chain_dir(node))
        out[node.index] = {k: v for k, v in again.items() if k in first[node.index]}
    return out


def compact_stopped(cluster: Cluster) -> list[dict[str, Any]]:
    """With every node stopped: open each store, compact it fully, close; what was left on disk.

    Also checks the MANIFEST reader against LevelDB's own list of the current
    version's tables (``leveldb.sstables``).
    """
    out = []
    for node in cluster.nodes:
        path = chain_dir(node)
        db = plyvel.DB(str(path), create_if_missing=False)
        try:
            db.compact_range()
            listed = {
                int(m.group(1))
                for m in re.finditer(
                    rb"^ (\d+):", db.get_property(b"leveldb.sstables") or b"", re.M
                )
            }
        finally:
            db.close()
        obsolete = obsolete_tables(path)
        out.append({
            "node": node.index, "db_bytes": dir_bytes(path), "obsolete_files": len(obsolete),
            "obsolete_bytes": sum(obsolete.values()),
            "manifest_matches_leveldb": live_tables(path) == listed,
        })  # fmt: skip
    return out


# -- memory figures --


def by_node(samples: Sequence[Sample]) -> dict[int, list[Sample]]:
    out: dict[int, list[Sample]] = {}
    for s in samples:
        out.setdefault(s.node, []).append(s)
    return out


def adjusted_rss(series: Sequence[Sample]) -> list[float]:
    """RSS minus the memtable's estimated share (`memtable_share`); RSS itself when flushed.

    A sample taken right after the node wrote its memtable out (`Sample.flushed`)
    holds no memtable to subtract: every such sample is at the same point of the
    write-buffer cycle already.
    """
    if series and all(s.flushed for s in series):
        return [float(s.rss_bytes) for s in series]
    share, _ = memtable_share(list(series))
    return [s.rss_bytes - m for s, m in zip(series, share, strict=True)]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def slope_per_h(ts: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ys over ts (seconds), per hour; None with fewer than 3 points."""
    n = len(ts)
    if n < 3:
        return None
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((t - mt) ** 2 for t in ts)
    if var == 0:
        return None
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var * 3600


def _phase_growth(ts: Sequence[float], ys: Sequence[float], duration: float) -> float | None:
    """RSS growth over a phase: the least-squares slope times its duration.

    Not last minus first: one sample can be off by megabytes. LevelDB maps its table
    files, and just after a compaction or a memtable flush their pages are out of RSS
    until read again (the 30-minute run of 2026-12-07 had one sample, at the end of phase 1,
    6.4 MiB low in file-backed RSS, anonymous memory unchanged: the endpoints gave 5.1 MiB
    of growth where every other sample says ~11). With under 3 samples, last minus first.
    """
    if len(ts) < 2:
        return None
    slope = slope_per_h(ts, ys)
    return ys[-1] - ys[0] if slope is None else slope / 3600 * duration


def memory_figures(
    samples: Sequence[Sample], phase1: tuple[float, float], phase2: tuple[float, float],
    names_added: int,
) -> dict[str, Any]:  # fmt: skip
    """rss_growth_mib_per_h_updates, rss_bytes_per_name and their per-node details."""
    nodes = by_node(samples)
    mid = (phase2[0] + phase2[1]) / 2
    per: dict[int, dict[str, Any]] = {}
    for index, everything in nodes.items():
        # a node that died has nothing to measure (no process, or a zombie of 0 bytes
        # until the cluster reaps it): its later samples are not zeros
        series = [s for s in everything if s.rss_bytes > 0]
        if not series:
            continue
        gone = [s.t for s in everything if s.rss_bytes == 0 and s.t > series[0].t]
        adj = adjusted_rss(series)
        # a sample right after a rollover may still hold the old memtable: left out of slopes
        settled = [
            i == 0 or s.flushed or s.wal_number == series[i - 1].wal_number
            for i, s in enumerate(series)
        ]
        series, adj = (
            [s for s, ok in zip(series, settled, strict=True) if ok],
            [a for a, ok in zip(adj, settled, strict=True) if ok],
        )
        late = [(s.t, a) for s, a in zip(series, adj, strict=True) if mid <= s.t <= phase2[1] + 1]
        raw = [(s.t, s.rss_bytes) for s in series if mid <= s.t <= phase2[1] + 1]
        slope = slope_per_h([t for t, _ in late], [a for _, a in late])
        raw_slope = slope_per_h([t for t, _ in raw], [float(r) for _, r in raw])
        p1 = [(s, a) for s, a in zip(series, adj, strict=True) if phase1[0] <= s.t <= phase1[1] + 1]
        growth = _phase_growth([s.t for s, _ in p1], [a for _, a in p1], phase1[1] - phase1[0])
        cpu2 = [s.cpu_s for s in series if phase2[0] <= s.t <= phase2[1] + 1]
        per[index] = {
            "slope_mib_per_h": None if slope is None else round(slope / MIB, 1),
            "raw_slope_mib_per_h": None if raw_slope is None else round(raw_slope / MIB, 1),
            "phase1_growth_mib": None if growth is None else round(growth / MIB, 1),
            "bytes_per_name": None if growth is None or not names_added else round(growth / names_added),
            "bytes_per_name_net": None if growth is None or slope is None or not names_added
            else round((growth - slope * (phase1[1] - phase1[0]) / 3600) / names_added),
            "phase2_cpu_s": round(cpu2[-1] - cpu2[0], 1) if len(cpu2) >= 2 else 0.0,
            "rss_mib_start": round(series[0].rss_bytes / MIB, 1),
            "rss_mib_end": round(series[-1].rss_bytes / MIB, 1),
            "memtable_rollovers": len({s.wal_number for s in series}) - 1,
            "memtable_share": None
            if all(s.flushed for s in series)
            else _round(memtable_share(list(series))[1]),
            "flushed_samples": sum(s.flushed for s in series),
            "leveldb_mib_end": None
            if series[-1].leveldb_bytes is None
            else round(series[-1].leveldb_bytes / MIB, 1),
            "fds_min_max": [min(s.fds for s in series), max(s.fds for s in series)],
            "gone_at_s": min(gone) if gone else None,  # not running from then on (it died)
        }  # fmt: skip
    busiest = max(per, key=lambda i: per[i]["phase2_cpu_s"]) if per else None
    per_name = [p["bytes_per_name"] for p in per.values() if p["bytes_per_name"] is not None]
    slopes = [p["slope_mib_per_h"] for p in per.values() if p["slope_mib_per_h"] is not None]
    return {
        "rss_growth_mib_per_h_updates": None
        if busiest is None
        else per[busiest]["slope_mib_per_h"],
        # the busiest node by CPU is the figure; the steepest is what to read
        # (the busiest was once the follower at 2.4 while the validators grew 20-26)
        "rss_growth_mib_per_h_updates_max": max(slopes, default=None),
        "rss_bytes_per_name": max(per_name, default=None),
        "busiest_node": busiest,
        "per_node": per,
    }
