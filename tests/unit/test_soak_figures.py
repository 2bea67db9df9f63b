"""The soak's memory figures (tools/soak_checks.py): flushed samples are taken as they are."""

from __future__ import annotations

import pytest

from tools.soak_checks import adjusted_rss, memory_figures
from tools.soak_sample import Sample

MIB = 1024 * 1024


def _sample(t: float, rss_mib: float, wal_number: int, *, flushed: bool, node: int = 0) -> Sample:
    return Sample(
        t=t, phase="updates" if t >= 60 else "registration", node=node,
        rss_bytes=int(rss_mib * MIB), processes=2, fds=30, db_bytes=1, wal_bytes=1000,
        wal_number=wal_number, cpu_s=t, height=int(t), mempool=0,
        flushed=flushed, leveldb_bytes=4 * MIB if flushed else None,
    )  # fmt: skip


def test_flushed_samples_are_neither_adjusted_nor_left_out() -> None:
    # every flush starts a new write-ahead log: each sample has a new number
    series = [_sample(t, 100 + t / 60, wal_number=10 + i, flushed=True) for i, t in
              enumerate(range(0, 121, 10))]  # fmt: skip
    assert adjusted_rss(series) == [float(s.rss_bytes) for s in series]
    figures = memory_figures(series, (0.0, 60.0), (60.0, 120.0), names_added=100)
    node = figures["per_node"][0]
    # 1 MiB a minute: 60 MiB/h, from every sample of the second half of phase 2
    assert node["slope_mib_per_h"] == pytest.approx(60.0, abs=0.1)
    assert figures["rss_growth_mib_per_h_updates_max"] == pytest.approx(60.0, abs=0.1)
    assert node["memtable_share"] is None and node["flushed_samples"] == len(series)
    assert node["leveldb_mib_end"] == 4.0


def test_the_steepest_node_is_reported_besides_the_busiest() -> None:
    flat = [_sample(t, 100, 1, flushed=True, node=0) for t in range(0, 121, 10)]
    steep = [_sample(t, 100 + t / 6, 1, flushed=True, node=1) for t in range(0, 121, 10)]
    busy = [Sample(**{**s.to_json(), "cpu_s": s.t * 10}) for s in flat]  # node 0 used more CPU
    figures = memory_figures(busy + steep, (0.0, 60.0), (60.0, 120.0), names_added=10)
    assert figures["busiest_node"] == 0
    assert figures["rss_growth_mib_per_h_updates"] == pytest.approx(0.0, abs=0.01)
    assert figures["rss_growth_mib_per_h_updates_max"] == pytest.approx(600.0, abs=0.1)


def test_a_node_that_died_is_measured_while_it_ran() -> None:
    alive = [_sample(t, 100 + t / 60, 1, flushed=True) for t in range(0, 91, 10)]
    dead = [
        # a zombie until reaped: one process of 0 bytes
        Sample(**{**_sample(t, 0, 1, flushed=False).to_json(), "processes": 1, "fds": 0})
        for t in range(100, 121, 10)
    ]
    node = memory_figures(alive + dead, (0.0, 60.0), (60.0, 120.0), names_added=10)["per_node"][0]
    assert node["gone_at_s"] == 100 and node["rss_mib_end"] == pytest.approx(101.5, abs=0.01)
    # one live sample in the window (90..120 s): no slope, rather than one through zeros
    assert node["slope_mib_per_h"] is None


def test_trace_options_and_proc_status() -> None:
    import os

    from tools import soak
    from tools.soak_sample import proc_status

    args = soak._parse(["--quick", "--trace-node", "1", "--trace-node", "4", "--heap-stats"])
    assert args.trace_node == [1, 4] and args.trace_frames == 4 and args.heap_stats
    with pytest.raises(SystemExit):
        soak._parse(["--trace-node", "5"])
    mine = proc_status(os.getpid())
    assert mine["RssAnon"] > 0 and mine["VmRSS"] >= mine["RssAnon"]
    assert proc_status(2**22 + 1) == {}  # no such process


def test_phase_growth_is_the_fitted_line_not_two_endpoints() -> None:
    # A run's last phase-1 sample was 6.4 MiB low (LevelDB's mapped tables out of RSS just
    # after a flush): the endpoints gave half the growth every other sample showed.
    from tools.soak_checks import _phase_growth

    mib = 1024 * 1024
    ts = [float(t) for t in range(0, 901, 60)]
    ys = [144 * mib + t / 900 * 11 * mib for t in ts]
    ys[-1] -= 6.4 * mib
    growth = _phase_growth(ts, ys, 900.0)
    assert growth is not None and 8.5 * mib < growth < 11.5 * mib  # the endpoints: 4.6
    assert _phase_growth([0.0, 10.0], [1.0, 3.0], 10.0) == 2.0
