"""`tools.netns` link options: the netem arguments a lab gives its links (no root needed)."""

from __future__ import annotations

import pytest

from tools.netns import Lab, netem_args


@pytest.mark.parametrize(
    ("delay_ms", "loss_pct", "expected"),
    [
        (0, 0, []),
        (25, 0, ["netem", "delay", "25ms"]),
        (0, 1.5, ["netem", "loss", "1.5%"]),
        (12.5, 100, ["netem", "delay", "12.5ms", "loss", "100%"]),
    ],
)
def test_netem_args(delay_ms: float, loss_pct: float, expected: list[str]) -> None:
    assert netem_args(delay_ms, loss_pct) == expected


@pytest.mark.parametrize(("delay_ms", "loss_pct"), [(-1, 0), (0, -0.1), (0, 100.1)])
def test_netem_args_refuses_impossible_links(delay_ms: float, loss_pct: float) -> None:
    with pytest.raises(ValueError, match="delay must be"):
        netem_args(delay_ms, loss_pct)


def test_a_lab_checks_its_link_options_before_touching_the_system() -> None:
    with pytest.raises(ValueError):
        Lab(2, loss_pct=150)
    assert Lab(2, delay_ms=25).netem == ["netem", "delay", "25ms"]
    assert Lab(2).netem == []
