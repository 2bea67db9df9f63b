"""`tools.bench_scale`'s pure parts: point syntax and the CPU-per-validator slope."""

from __future__ import annotations

from typing import Any

import pytest

from tools.bench_scale import QUICK_POINTS, Point, cpu_slope, parse_points


def test_points_round_trip_through_text() -> None:
    points = parse_points(QUICK_POINTS + ",64+1,10+1@50")
    assert [p.to_text() for p in points] == [*QUICK_POINTS.split(","), "64+1", "10+1@50"]
    assert points[-1] == Point(validators=10, followers=1, rtt_ms=50.0)
    assert points[4].nodes == 24


@pytest.mark.parametrize("text", ["4", "4+", "+1", "0+1", "4+1@", "4-1", "4+1@x"])
def test_bad_points_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Point.from_text(text)


def _point(v: int, f: int, cpu: float | None, *, ok: bool = True, rtt: float = 0) -> dict[str, Any]:
    out: dict[str, Any] = {
        "validators": v, "followers": f, "finalized": ok, "node_cpu_ms_per_height": cpu
    }  # fmt: skip
    if rtt:
        out["rtt_ms"] = rtt
    return out


def test_the_slope_uses_finalized_one_follower_loopback_points_only() -> None:
    points = [
        _point(4, 1, 10.0), _point(10, 1, 16.0), _point(16, 1, 22.0),
        _point(31, 1, 999.0, ok=False), _point(4, 20, 500.0), _point(10, 1, 900.0, rtt=50),
    ]  # fmt: skip
    assert cpu_slope(points) == 1.0
    assert cpu_slope(points[:1]) is None  # one validator count: no slope
