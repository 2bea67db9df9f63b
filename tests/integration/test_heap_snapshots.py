"""Heap snapshots of a running `ledgerdns node` (issue 21): --tracemalloc, SIGUSR1, heapdiff."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_node import ROOT, Running

pytestmark = pytest.mark.integration


@pytest.fixture
def started() -> Iterator[list[Running]]:
    nodes: list[Running] = []
    yield nodes
    for node in nodes:
        node.close()


def snapshots(data_dir: Path, count: int, timeout: float = 20.0) -> list[Path]:
    """Wait until `data_dir` holds `count` finished snapshots (renamed into place)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(data_dir.glob("heap-*.snapshot"))
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{count} snapshots not written in {timeout} s")


def test_sigusr1_writes_snapshots_that_heapdiff_reads(
    tmp_path: Path, started: list[Running]
) -> None:
    node = Running(tmp_path / "node", "--tracemalloc", "4")
    started.append(node)
    node.proc.send_signal(signal.SIGUSR1)
    first = snapshots(node.data_dir, 1)[0]
    time.sleep(0.05)  # a later unix ms in the next name
    node.proc.send_signal(signal.SIGUSR1)
    old, new = snapshots(node.data_dir, 2)
    assert old == first and (new.stat().st_mode & 0o777) == 0o600
    assert node.proc.poll() is None
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "heapdiff.py"), str(old), str(new), "--json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    report = json.loads(out.stdout)
    assert report["traced_after"] > 0 and isinstance(report["sites"], list)
    assert "heap snapshot path=" in node.tail()
    assert node.stop() == 0


def test_sigusr1_without_tracing_writes_only_allocator_figures_and_does_not_stop_the_node(
    tmp_path: Path, started: list[Running]
) -> None:
    node = Running(tmp_path / "node")
    started.append(node)
    node.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while "tracemalloc is off" not in node.tail() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "tracemalloc is off" in node.tail()
    assert node.proc.poll() is None
    assert not list(node.data_dir.glob("heap-*.snapshot"))
    (figures,) = node.data_dir.glob("heap-*.alloc.json")  # the allocators' figures only
    assert json.loads(figures.read_text())["pymalloc"]["arenas allocated current"] > 0
    assert node.stop() == 0
