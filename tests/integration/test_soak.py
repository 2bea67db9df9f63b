"""`tools/soak.py` end to end, for seconds: the JSON line has issue 21's fields and nothing is lost.

The memory figures of so short a run say nothing (they are warm-up); only their
presence is checked. The benchmark's targets are in docs/benchmarks.md, not here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FIELDS = {
    "minutes", "txs_submitted", "txs_accepted", "lost", "diverged", "dns_queries", "dns_wrong",
    "dns_timeouts", "rss_growth_mib_per_h_updates", "rss_bytes_per_name", "disk_bytes_per_tx",
    "obsolete_files_left", "errors_logged", "quick",
}  # fmt: skip
TIMEOUT_S = 120


def test_a_short_soak_loses_nothing_and_answers_every_query_right(tmp_path: Path) -> None:
    out_stem = tmp_path / "samples"
    cmd = [
        sys.executable, "tools/soak.py", "--seconds", "20", "--rate", "30", "--dns-rate", "300",
        "--seed", "3", "--out", str(out_stem),
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # soak.py stops its nodes' process groups on SIGTERM
        out, err = proc.communicate(timeout=20)
        pytest.fail(f"soak.py still ran after {TIMEOUT_S} s\n{err[-4000:]}")
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"exit {proc.returncode}, stdout {out!r}\n{err[-4000:]}"
    result = json.loads(lines[0])
    assert FIELDS <= set(result), sorted(FIELDS - set(result))
    assert (result["lost"], result["diverged"], result["dns_wrong"]) == (0, 0, 0), (
        f"{result}\n{err[-4000:]}"
    )
    assert result["txs_accepted"] == result["txs_submitted"] > 100, result  # the load really ran
    assert result["dns_queries"] > 1000 and result["quick"] is False, result
    assert result["minutes"] == pytest.approx(20 / 60, abs=0.01)
    assert all(c["manifest_matches_leveldb"] for c in result["compacted"]), result["compacted"]
    assert isinstance(result["rss_growth_mib_per_h_updates"], float), result
    assert isinstance(result["obsolete_files_left"], int) and result["disk_bytes_per_tx"] > 0
    assert proc.returncode == 0, err[-4000:]
    for suffix in (".csv", ".json", ".png"):
        assert out_stem.with_suffix(suffix).stat().st_size > 0, suffix
    assert time.monotonic() - started < TIMEOUT_S
