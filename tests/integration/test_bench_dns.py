"""`tools/bench_dns.py` end to end with tiny parameters: real node, Knot, dnsmasq and dnsperf."""

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
        ("knotd", "/usr/sbin", "knot"),
        ("dnsmasq", "/usr/sbin", "dnsmasq-base"),
    )
    if shutil.which(program) is None and shutil.which(program, path=directory) is None
]


@pytest.mark.skipif(
    bool(MISSING), reason=f"needs the Debian packages {', '.join(MISSING)} (make sysdeps)"
)
def test_bench_dns_ends_with_one_json_line_and_loses_nothing(tmp_path: Path) -> None:
    cmd = [
        sys.executable, "tools/bench_dns.py", "--names", "300", "--warm-names", "200",
        "--zipf-queries", "1000", "--rounds", "1", "--round-seconds", "1",
        "--latency-seconds", "1", "--latency-passes", "1", "--work-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - started < 60, "the tiny run should take seconds"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "qps_node", "qps_knot", "qps_dnsmasq", "qps_ratio", "qps_ratio_knot",
        "cold_qps_node", "cold_qps_knot", "cold_ratio_knot",
        "zipf_qps_node", "zipf_qps_knot", "zipf_ratio_knot",
        "rss_mib_node", "rss_mib_knot", "p99_ratio", "lost_node", "p99_node_ms", "p99_dnsmasq_ms",
        "names", "rounds", "targets_met",
    ):  # fmt: skip
        assert key in result, key
    assert "large_ratio" not in result, "it measured the cache: replaced by cold and zipf"
    assert result["lost"] == {"node": 0, "knot": 0, "dnsmasq": 0}
    assert result["errors"] == {"node": 0, "knot": 0, "dnsmasq": 0}
    assert result["names"] == 300 and result["warm_names"] == 200
    for key in ("qps", "cold_qps", "zipf_qps", "rss_mib"):
        assert result[f"{key}_node"] > 0 and result[f"{key}_knot"] > 0, key
    # Each single pass asked every query of its file, once.
    complete = {"cold": True, "zipf": True}
    assert result["passes_complete"] == {"node": complete, "knot": complete, "dnsmasq": complete}
    assert not list(tmp_path.glob("bdns-run-*")), "the run directory is removed"


def test_a_missing_program_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools import bench_dns
    from tools.dnsservers import MissingProgram

    monkeypatch.setattr(shutil, "which", lambda program, path=None: None)
    with pytest.raises(MissingProgram, match="apt-get install dnsperf"):
        bench_dns.find_binaries()
    for program, package in (("knotd", "knot"), ("dnsmasq", "dnsmasq-base")):
        monkeypatch.setattr(
            shutil, "which", lambda name, path=None, gone=program: None if name == gone else name
        )
        with pytest.raises(MissingProgram, match=f"apt-get install {package}$"):
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


def test_zipf_draws_are_seeded_and_weighted_one_over_rank() -> None:
    import random
    from collections import Counter

    from tools import bench_dns

    draws = bench_dns.zipf_indexes(100, 100_000, random.Random(7))
    assert draws == bench_dns.zipf_indexes(100, 100_000, random.Random(7))
    assert set(draws) <= set(range(100))
    counts = [n for _, n in Counter(draws).most_common()]
    harmonic = sum(1 / rank for rank in range(1, 101))
    # Rank r is drawn with probability 1 / (r * H_100): about 19,300 for the first, 190 for the last.
    assert abs(counts[0] / 100_000 - 1 / harmonic) < 0.01
    assert abs(counts[1] / counts[0] - 0.5) < 0.05 and abs(counts[9] / counts[0] - 0.1) < 0.03


def test_the_zone_file_holds_every_name_with_its_address(tmp_path: Path) -> None:
    import dns.zone

    from tools import benchchain

    benchchain.write_zone(tmp_path / "p2p.zone", 1000)
    zone = dns.zone.from_file(str(tmp_path / "p2p.zone"), origin="p2p.", relativize=False)
    addresses = {
        name.to_text(): [rdata.to_text() for rdata in rdataset]
        for name, rdataset in zone.iterate_rdatasets("A")
    }
    assert addresses.pop("ns.p2p.") == ["127.0.0.1"]
    assert addresses == {
        f"{benchchain.domain_name(i)}.": [benchchain.address(i)] for i in range(1000)
    }
    soa = zone.find_rdataset("p2p.", "SOA")
    assert soa.ttl == benchchain.TTL
