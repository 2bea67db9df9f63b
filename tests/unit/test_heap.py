"""Heap snapshots on SIGUSR1 (`ledgerdns.node.heap`) and their diff by site (`tools/heapdiff.py`)."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from ledgerdns.node.heap import (
    count_tasks,
    dump_allocator_stats,
    dump_snapshot,
    snapshot_path,
    start_tracing,
)
from tools import heapdiff

_kept: list[str] = []


@pytest.fixture
def tracing() -> Iterator[None]:
    was = tracemalloc.is_tracing()
    start_tracing(4)
    try:
        yield
    finally:
        _kept.clear()
        if not was:
            tracemalloc.stop()


def grow(n: int) -> None:
    _kept.extend(f"entry {i}" * 4 for i in range(n))  # the site the diff must find


@pytest.mark.usefixtures("tracing")
def test_two_snapshots_diff_to_the_growing_site(tmp_path: Path) -> None:
    old = dump_snapshot(tmp_path, 1_000)
    grow(5_000)
    new = dump_snapshot(tmp_path, 61_000)
    assert old == snapshot_path(tmp_path, 1_000) and new == tmp_path / "heap-61000.snapshot"
    assert (new.stat().st_mode & 0o777) == 0o600
    assert heapdiff.taken_at_s(new) - heapdiff.taken_at_s(old) == 60
    sites = heapdiff.diff(
        tracemalloc.Snapshot.load(str(old)), tracemalloc.Snapshot.load(str(new)),
        by="traceback", frames=2,
    )  # fmt: skip
    top = sites[0]
    assert "test_heap.py" in top.frames[0] and "_kept.extend" in top.frames[0]
    assert top.count_diff >= 5_000 and top.size_diff > 5_000 * 40
    assert heapdiff.main([str(old), str(new), "--top", "1", "--match", "test_heap"]) == 0


def test_without_tracing_no_snapshot_is_written(tmp_path: Path) -> None:
    if tracemalloc.is_tracing():
        pytest.skip("the test run itself is traced (PYTHONTRACEMALLOC)")
    assert dump_snapshot(tmp_path, 5) is None
    assert [p.name for p in tmp_path.iterdir()] == ["heap-5.alloc.json"]  # the allocators only


def test_allocator_stats_tell_python_objects_from_native_memory(tmp_path: Path) -> None:
    path = dump_allocator_stats(tmp_path, 7)
    stats = json.loads(path.read_text())
    assert path.name == "heap-7.alloc.json" and (path.stat().st_mode & 0o777) == 0o600
    py = stats["pymalloc"]
    assert py["arenas allocated current"] >= 1
    assert 0 < py["bytes in allocated blocks"] <= py["arenas allocated current"] * 2**20
    if stats["glibc"]:  # glibc only
        assert stats["glibc"]["uordblks"] > 0 and stats["glibc"]["arena"] > 0


@pytest.mark.parametrize("frames", [-1, 101])
def test_tracing_takes_0_to_100_frames(frames: int) -> None:
    with pytest.raises(ValueError):
        start_tracing(frames)


def test_trio_tasks_are_counted() -> None:
    async def main() -> tuple[int, int]:
        before = count_tasks()
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(trio.sleep_forever)
            await trio.sleep(0)
            during = count_tasks()
            nursery.cancel_scope.cancel()
        return before, during

    before, during = trio.run(main)
    assert during == before + 5
    assert count_tasks() == -1  # outside a trio loop


def test_alloc_diff_reads_two_allocator_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = dump_allocator_stats(tmp_path, 1_000)
    grow(20_000)  # small str objects: pymalloc's live bytes grow
    new = dump_allocator_stats(tmp_path, 31_000)
    lines = heapdiff.alloc_diff(json.loads(old.read_text()), json.loads(new.read_text()))
    live = next(line for line in lines if line.startswith("pymalloc: live"))
    assert float(live.rsplit("(", 1)[1].split()[0]) > 0.5  # MiB
    assert any(line.startswith("tx decode memo: entries") for line in lines)
    assert any(line.startswith("objects: ") for line in lines)
    assert heapdiff.main([str(old), str(new), "--top", "3"]) == 0
    assert "allocators, 0.5 min apart" in capsys.readouterr().out
    _kept.clear()
