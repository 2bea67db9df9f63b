"""`tools/bench_dns.py` end to end with tiny parameters: real node, real dnsmasq, real dnsperf."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MISSING = [
    package
    for program, directory, package in (
        ("dnsperf", "/usr/bin", "dnsperf"),
        ("dnsmasq", "/usr/sbin", "dnsmasq-base"),
    )
    if shutil.which(program) is None and shutil.which(program, path=directory) is None
]


@pytest.mark.skipif(
    bool(MISSING), reason=f"needs the Debian packages {', '.join(MISSING)} (make sysdeps)"
)
def test_bench_dns_ends_with_one_json_line_and_loses_nothing(tmp_path: Path) -> None:
    cmd = [
        sys.executable, "tools/bench_dns.py", "--domains", "200", "--large", "300",
        "--rounds", "1", "--round-seconds", "1", "--latency-seconds", "1", "--latency-passes", "1",
        "--work-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - started < 25, "the tiny run should take seconds"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("qps_node", "qps_dnsmasq", "qps_ratio", "p99_ratio", "lost_node", "p99_node_ms",
                "p99_dnsmasq_ms", "qps_large", "large_ratio", "large_domains", "rounds", "domains"):  # fmt: skip
        assert key in result, key
    assert result["lost_node"] == 0
    assert result["lost_large"] == 0
    assert result["domains"] == 200 and result["large_domains"] == 300
    assert result["qps_node"] > 0 and result["qps_dnsmasq"] > 0 and result["qps_large"] > 0
    assert result["errors"] == {"node": 0, "dnsmasq": 0, "node-large": 0}
    assert not list(tmp_path.glob("bdns-run-*")), "the run directory is removed"


def test_a_missing_program_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools import bench_dns
    from tools.dnsservers import MissingProgram

    monkeypatch.setattr(shutil, "which", lambda program, path=None: None)
    with pytest.raises(MissingProgram, match="apt-get install dnsperf"):
        bench_dns.find_binaries()
    monkeypatch.setattr(
        shutil, "which", lambda program, path=None: None if program == "dnsmasq" else program
    )
    with pytest.raises(MissingProgram, match="apt-get install dnsmasq-base"):
        bench_dns.find_binaries()


def test_dnsperf_output_is_parsed(tmp_path: Path) -> None:
    from tools import dnsperf

    verbose = tmp_path / "v.txt"
    verbose.write_text(
        "[Status] Sending queries\n> NOERROR d1.p2p A 0.000100\n> NOERROR d2.p2p A 0.000300\n"
        "> T d3.p2p A\n> SERVFAIL d4.p2p A 0.000050\n\nStatistics:\n\n"
        "  Queries sent:         4\n  Queries completed:    3 (75.00%)\n  Queries lost:         1 (25.00%)\n\n"
        "  Response codes:       NOERROR 2 (66.67%), SERVFAIL 1 (33.33%)\n"
        "  Average packet size:  request 26, response 42\n  Run time (s):         1.000000\n"
        "  Queries per second:   3.000000\n\n  Average Latency (s):  0.000150 (min 0.000050, max 0.000300)\n"
    )
    result = dnsperf.Result.from_text(verbose.read_text())
    assert (result.sent, result.completed, result.lost, result.noerror) == (4, 3, 1, 2)
    assert result.qps == 3.0 and result.response_bytes == 42
    latencies = dnsperf.read_latencies(verbose, timeout_s=2.0)
    assert latencies == [0.0001, 0.0003, 2.0]  # the timeout counts; an error reply does not
    assert dnsperf.percentile(latencies, 0.5) == 0.0003
    assert dnsperf.percentile(list(range(1, 101)), 0.99) == 99
