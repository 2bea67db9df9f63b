"""Heap snapshots of a running node, for finding what grows (issue 21).

`ledgerdns node --tracemalloc FRAMES` (or Python's own ``PYTHONTRACEMALLOC=FRAMES``)
starts `tracemalloc` at start-up; each SIGUSR1 then writes one snapshot to
``DATA_DIR/heap-<unix ms>.snapshot``. ``tools/heapdiff.py OLD NEW`` compares two
of them by allocation site (docs/operations.md, "Finding what grows in memory").

Every SIGUSR1, traced or not, also writes ``DATA_DIR/heap-<unix ms>.alloc.json``:
what the allocators hold (`allocator_stats`): glibc's ``mallinfo2`` (the brk heap
and mmapped chunks, in use and free: LevelDB, OpenSSL and every block of over 512
bytes) and CPython's small-object allocator (its 1 MiB arenas, the bytes in live
objects and in free pools). Set against tracemalloc's live total, they tell
Python objects from native memory and from memory the allocators keep free.

A signal, not an RPC endpoint: it needs no listener, no token and no code path
reachable from the network, and only someone who may signal the process (its
user, root) can ask for a snapshot. Without tracing, SIGUSR1 writes the allocators'
figures only and says so in the log (it no longer kills the process, as its
default action would).
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import re
import sys
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path

import trio

log = logging.getLogger("ledgerdns.node.heap")

SNAPSHOT_PREFIX = "heap-"
SNAPSHOT_SUFFIX = ".snapshot"
ALLOC_SUFFIX = ".alloc.json"
TOP_TYPES = 40  # object types by count in each .alloc.json
# tracemalloc's own bookkeeping and the import machinery: noise in every diff.
_IGNORED = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


def start_tracing(frames: int) -> None:
    """Start tracemalloc keeping `frames` frames per allocation (0: leave it as it is).

    Raises:
        ValueError: `frames` is negative or above tracemalloc's limit.
    """
    if frames == 0:
        return
    if not 1 <= frames <= 100:
        raise ValueError(f"--tracemalloc takes 0 (off) to 100 frames, got {frames}")
    if tracemalloc.is_tracing() and tracemalloc.get_traceback_limit() >= frames:
        return  # PYTHONTRACEMALLOC started it already, with as many frames
    tracemalloc.stop()
    tracemalloc.start(frames)


def snapshot_path(data_dir: Path, now_ms: int) -> Path:
    """Where a snapshot taken at `now_ms` (unix milliseconds) goes."""
    return data_dir / f"{SNAPSHOT_PREFIX}{now_ms}{SNAPSHOT_SUFFIX}"


_MALLINFO2_FIELDS = (
    "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
    "uordblks", "fordblks", "keepcost",
)  # fmt: skip


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS]


def glibc_malloc_stats() -> dict[str, int]:
    """glibc's ``mallinfo2()`` in bytes ({} on another C library).

    ``arena``: bytes the arenas took from the system (brk heap and thread arenas),
    ``uordblks`` of them in use, ``fordblks`` free (kept, still resident if touched),
    ``keepcost`` releasable from the top; ``hblkhd``: bytes in mmapped chunks (large
    blocks). Python objects of over 512 bytes, LevelDB, OpenSSL: all here.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        call = libc.mallinfo2
    except (OSError, AttributeError):
        return {}
    call.restype = _MallInfo2
    info = call()
    return {name: int(getattr(info, name)) for name in _MALLINFO2_FIELDS}


_STAT_LINE = re.compile(r"^(#?\s*[^=]*?)\s*=\s*([\d,]+)\s*$")


def pymalloc_stats() -> dict[str, int]:
    """CPython's small-object allocator (``sys._debugmallocstats``), its totals by name.

    ``arenas allocated current`` × 1 MiB is what it holds from the system;
    ``bytes in allocated blocks`` is live objects of ≤ 512 bytes, ``bytes in available
    blocks`` and ``unused pools`` what it keeps free inside those arenas.
    """
    out: dict[str, int] = {}
    saved = os.dup(2)  # it prints to the C-level stderr
    try:
        with tempfile.TemporaryFile("w+") as tmp:
            sys.stderr.flush()
            os.dup2(tmp.fileno(), 2)
            try:
                sys._debugmallocstats()
            finally:
                os.dup2(saved, 2)
            tmp.seek(0)
            for line in tmp:
                found = _STAT_LINE.match(line.strip())
                if found and ("arena" in line or "bytes in" in line or "pools" in line):
                    key = found.group(1).lstrip("# ").strip()
                    key = re.sub(r"^\d+ ", "", key)  # "69 arenas * 1048576 bytes/arena"
                    out.setdefault(key, int(found.group(2).replace(",", "")))
    finally:
        os.close(saved)
    return out


def gc_stats() -> dict[str, object]:
    """The cyclic collector: objects it tracks per generation, its counts and its history.

    Garbage in reference cycles lives until its generation is collected; the oldest
    generation is collected only when its pending objects reach a quarter of it, so
    a node with a large long-lived heap can hold cycles for minutes.
    """
    types = Counter(type(o).__qualname__ for o in gc.get_objects())
    return {
        "top_types": dict(types.most_common(TOP_TYPES)),
        "tracked": [len(gc.get_objects(generation=g)) for g in range(3)],
        "counts": list(gc.get_count()),
        "thresholds": list(gc.get_threshold()),
        "stats": gc.get_stats(),
    }


def memo_stats() -> dict[str, object]:
    """The process-wide memos' fill: (entries, wire bytes) of `Transaction.from_bytes`'s."""
    from chain.tx import DECODED_CACHE_BYTES, DECODED_CACHE_SIZE, decoded_cached

    entries, wire = decoded_cached()
    return {"tx_decoded": {"entries": entries, "wire_bytes": wire,
                           "bound": [DECODED_CACHE_SIZE, DECODED_CACHE_BYTES]}}  # fmt: skip


def allocator_stats() -> dict[str, object]:
    """glibc's and pymalloc's figures, the collector's (with the commonest object types),
    the transaction decode memo's fill, and tracemalloc's live total when tracing."""
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
    return {"glibc": glibc_malloc_stats(), "pymalloc": pymalloc_stats(), "gc": gc_stats(),
            "memos": memo_stats(), "traced": traced}  # fmt: skip


def dump_allocator_stats(data_dir: Path, now_ms: int) -> Path:
    """Write `allocator_stats` to ``DATA_DIR/heap-<now_ms>.alloc.json``; log the main figures."""
    stats = allocator_stats()
    path = data_dir / f"{SNAPSHOT_PREFIX}{now_ms}{ALLOC_SUFFIX}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(stats, indent=1) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    glibc, py = stats["glibc"], stats["pymalloc"]
    assert isinstance(glibc, dict) and isinstance(py, dict)
    log.info(
        "allocators path=%s malloc_arena_mib=%.1f malloc_used_mib=%.1f malloc_free_mib=%.1f "
        "malloc_mmapped_mib=%.1f pymalloc_arenas=%d pymalloc_live_mib=%.1f",
        path, glibc.get("arena", 0) / 2**20, glibc.get("uordblks", 0) / 2**20,
        glibc.get("fordblks", 0) / 2**20, glibc.get("hblkhd", 0) / 2**20,
        py.get("arenas allocated current", -1), py.get("bytes in allocated blocks", 0) / 2**20,
    )  # fmt: skip
    return path


def dump_snapshot(data_dir: Path, now_ms: int) -> Path | None:
    """Write a tracemalloc snapshot to `snapshot_path(data_dir, now_ms)`; None if not tracing.

    The allocators' figures are written first, traced or not (`dump_allocator_stats`).

    The file is written under a temporary name and renamed, so a reader never
    sees half of one. The whole process pauses while the snapshot is taken
    (about a second per million live allocations).

    Returns:
        The snapshot's path, or None when tracemalloc is off.
    """
    dump_allocator_stats(data_dir, now_ms)
    if not tracemalloc.is_tracing():
        log.info(
            "SIGUSR1: no heap snapshot, tracemalloc is off "
            "(start the node with --tracemalloc FRAMES or PYTHONTRACEMALLOC=FRAMES)"
        )
        return None
    snapshot = tracemalloc.take_snapshot().filter_traces(_IGNORED)
    path = snapshot_path(data_dir, now_ms)
    tmp = path.with_name(path.name + ".tmp")
    snapshot.dump(str(tmp))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    traced, peak = tracemalloc.get_traced_memory()
    log.info(
        "heap snapshot path=%s traced_mib=%.1f peak_mib=%.1f overhead_mib=%.1f trio_tasks=%d",
        path, traced / 2**20, peak / 2**20, tracemalloc.get_tracemalloc_memory() / 2**20,
        count_tasks(),
    )  # fmt: skip
    return path


def count_tasks() -> int:
    """Live trio tasks of the running loop (-1 outside one): a task leak grows it too."""
    try:
        root = trio.lowlevel.current_root_task()
    except RuntimeError:
        return -1
    count, todo = 0, [root] if root is not None else []
    while todo:
        task = todo.pop()
        count += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return count
