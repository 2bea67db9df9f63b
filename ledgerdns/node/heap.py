"""Heap snapshots of a running node, for finding what grows (issue 21).

`ledgerdns node --tracemalloc FRAMES` (or Python's own ``PYTHONTRACEMALLOC=FRAMES``)
starts `tracemalloc` at start-up; each SIGUSR1 then writes one snapshot to
``DATA_DIR/heap-<unix ms>.snapshot``. ``tools/heapdiff.py OLD NEW`` compares two
of them by allocation site (docs/operations.md, "Finding what grows in memory").

A signal, not an RPC endpoint: it needs no listener, no token and no code path
reachable from the network, and only someone who may signal the process (its
user, root) can ask for a snapshot. Without tracing, SIGUSR1 writes nothing and
says so in the log (it no longer kills the process, as its default action would).
"""

from __future__ import annotations

import logging
import os
import tracemalloc
from pathlib import Path

import trio

log = logging.getLogger("ledgerdns.node.heap")

SNAPSHOT_PREFIX = "heap-"
SNAPSHOT_SUFFIX = ".snapshot"
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


def dump_snapshot(data_dir: Path, now_ms: int) -> Path | None:
    """Write a tracemalloc snapshot to `snapshot_path(data_dir, now_ms)`; None if not tracing.

    The file is written under a temporary name and renamed, so a reader never
    sees half of one. The whole process pauses while the snapshot is taken
    (about a second per million live allocations).

    Returns:
        The snapshot's path, or None when tracemalloc is off.
    """
    if not tracemalloc.is_tracing():
        log.warning(
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
