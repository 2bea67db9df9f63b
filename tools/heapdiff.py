"""What grew between two heap snapshots of a node, by allocation site.

    python tools/heapdiff.py OLD.snapshot NEW.snapshot [--top 15] [--by lineno|traceback|filename]
        [--frames 6] [--match ledgerdns] [--json]

    python tools/heapdiff.py OLD.alloc.json NEW.alloc.json [--top 15]

The second form compares the allocator figures every SIGUSR1 writes, traced or
not (``heap-<unix ms>.alloc.json``): glibc's heap, CPython's small-object heap
(live bytes against the arenas it holds), the transaction decode memo's fill,
and the object types whose counts changed most (`alloc_diff`).

The snapshots are the ``DATA_DIR/heap-<unix ms>.snapshot`` files a node writes
on SIGUSR1 when started with ``--tracemalloc FRAMES`` (``ledgerdns.node.heap``).
Prints the total traced memory of each, the growth and its rate per hour (from
the times in the file names, else the files' modification times), then the `top`
sites by bytes grown, each with its growth in bytes and blocks, its size now,
and (``--by traceback``) the innermost `frames` lines of the call stack that
allocated them. ``--match`` keeps only sites with a frame whose file contains
the text. See docs/operations.md, "Finding what grows in memory".
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import json
import linecache
import re
import sys
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 2**20
_STAMP = re.compile(r"heap-(\d+)\.(?:snapshot|alloc\.json)$")


@dataclass(frozen=True, slots=True)
class Growth:
    """One allocation site's change between two snapshots."""

    size_diff: int
    count_diff: int
    size: int
    count: int
    frames: tuple[str, ...]  # "file:line" innermost first, then the source line

    def to_json(self) -> dict[str, Any]:
        return {
            "size_diff": self.size_diff, "count_diff": self.count_diff,
            "size": self.size, "count": self.count, "frames": list(self.frames),
        }  # fmt: skip


def taken_at_s(path: Path) -> float:
    """When a snapshot was taken: the unix ms in its name, else its modification time."""
    found = _STAMP.search(path.name)
    return int(found.group(1)) / 1000 if found else path.stat().st_mtime


def _short(filename: str) -> str:
    """A file name from the interesting part on (site-packages/…, ledgerdns/…, chain/…)."""
    for marker in ("site-packages/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    for marker in ("/ledgerdns/", "/chain/", "/tools/"):
        if marker in filename:
            return marker.strip("/") + "/" + filename.rsplit(marker, 1)[1]
    return filename


def _frames(traceback: tracemalloc.Traceback, depth: int) -> tuple[str, ...]:
    out = []
    for frame in list(traceback)[-depth:][
        ::-1
    ]:  # oldest first in a Traceback: innermost first here
        line = linecache.getline(frame.filename, frame.lineno).strip()
        out.append(f"{_short(frame.filename)}:{frame.lineno}  {line}")
    return tuple(out)


def diff(
    old: tracemalloc.Snapshot, new: tracemalloc.Snapshot, *, by: str = "lineno", frames: int = 6,
    match: str | None = None,
) -> list[Growth]:  # fmt: skip
    """Every site's growth from `old` to `new`, largest first.

    Args:
        old: the earlier snapshot.
        new: the later one.
        by: tracemalloc's grouping: ``lineno`` (the allocating line), ``traceback``
            (the whole recorded stack) or ``filename``.
        frames: how many innermost frames to show per site.
        match: keep only sites with a frame whose file name contains this.
    """
    stats = new.compare_to(old, by, cumulative=False)
    out = []
    for stat in stats:
        if match is not None and not any(match in f.filename for f in stat.traceback):
            continue
        out.append(
            Growth(
                size_diff=stat.size_diff,
                count_diff=stat.count_diff,
                size=stat.size,
                count=stat.count,
                frames=_frames(stat.traceback, frames),
            )  # fmt: skip
        )
    out.sort(key=lambda g: g.size_diff, reverse=True)
    return out


def _total(snapshot: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snapshot.statistics("filename"))


def alloc_diff(old: dict[str, Any], new: dict[str, Any], *, top: int = 15) -> list[str]:
    """Lines comparing two ``.alloc.json`` files (`ledgerdns.node.heap.allocator_stats`)."""

    def row(name: str, a: float, b: float, unit: str = "MiB") -> str:
        scale = MIB if unit == "MiB" else 1
        return f"{name:44s} {a / scale:12.1f} -> {b / scale:12.1f}  ({(b - a) / scale:+.1f} {unit})"

    out = []
    g0, g1 = old.get("glibc", {}), new.get("glibc", {})
    for key, name in (
        ("uordblks", "glibc: in use (LevelDB, blocks > 512 B)"),
        ("fordblks", "glibc: free, kept"),
        ("hblkhd", "glibc: mmapped chunks"),
    ):
        if key in g0 and key in g1:
            out.append(row(name, g0[key], g1[key]))
    p0, p1 = old.get("pymalloc", {}), new.get("pymalloc", {})
    live = "bytes in allocated blocks"
    if live in p0 and live in p1:
        out.append(row("pymalloc: live objects of <= 512 B", p0[live], p1[live]))
        arenas = "arenas allocated current"
        out.append(row("pymalloc: 1 MiB arenas held", p0[arenas] * MIB, p1[arenas] * MIB))
    m0 = old.get("memos", {}).get("tx_decoded", {})
    m1 = new.get("memos", {}).get("tx_decoded", {})
    if m0 and m1:
        out.append(row("tx decode memo: entries", m0["entries"], m1["entries"], "entries"))
    t0 = old.get("gc", {}).get("top_types", {})
    t1 = new.get("gc", {}).get("top_types", {})
    changed = sorted(set(t0) | set(t1), key=lambda t: -abs(t1.get(t, 0) - t0.get(t, 0)))
    for name in changed[:top]:
        out.append(row(f"objects: {name}", t0.get(name, 0), t1.get(name, 0), "objects"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="What grew between two heap snapshots of a node (ledgerdns node "
        "--tracemalloc, then SIGUSR1), by allocation site."
    )
    parser.add_argument("old", type=Path, help="the earlier snapshot")
    parser.add_argument("new", type=Path, help="the later snapshot")
    parser.add_argument("--top", type=int, default=15, help="sites to show (default %(default)s)")
    parser.add_argument(
        "--by", choices=("lineno", "traceback", "filename"), default="lineno",
        help="group by allocating line, whole stack, or file (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--frames", type=int, default=6, help="stack lines shown per site (default %(default)s)"
    )
    parser.add_argument("--match", help="only sites with a frame in a file containing this text")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    args = parser.parse_args(argv)

    if args.old.name.endswith(".alloc.json"):
        minutes = (taken_at_s(args.new) - taken_at_s(args.old)) / 60
        print(f"allocators, {minutes:.1f} min apart")
        for line in alloc_diff(json.loads(args.old.read_text()), json.loads(args.new.read_text()),
                               top=args.top):  # fmt: skip
            print(line)
        return 0
    old = tracemalloc.Snapshot.load(str(args.old))
    new = tracemalloc.Snapshot.load(str(args.new))
    hours = (taken_at_s(args.new) - taken_at_s(args.old)) / 3600
    before, after = _total(old), _total(new)
    rate = (after - before) / MIB / hours if hours > 0 else float("nan")
    sites = diff(old, new, by=args.by, frames=args.frames if args.by == "traceback" else 1,
                 match=args.match)[: args.top]  # fmt: skip
    if args.json:
        print(json.dumps({
            "minutes": round(hours * 60, 2), "traced_before": before, "traced_after": after,
            "growth_mib_per_h": round(rate, 2), "sites": [g.to_json() for g in sites],
        }))  # fmt: skip
        return 0
    print(
        f"traced {before / MIB:.1f} MiB -> {after / MIB:.1f} MiB "
        f"({(after - before) / MIB:+.1f} MiB in {hours * 60:.1f} min: {rate:+.1f} MiB/hour)"
    )
    for g in sites:
        print(
            f"\n{g.size_diff / 1024:+10.1f} KiB {g.count_diff:+8d} blocks "
            f"(now {g.size / 1024:.1f} KiB in {g.count} blocks, "
            f"{g.size_diff / 1024 / hours if hours > 0 else 0:+.0f} KiB/hour)"
        )
        for line in g.frames:
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
