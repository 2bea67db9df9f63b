"""`tools.netns.Lab` links with delay and loss (tc netem), timed by TCP dials between namespaces.

Needs root; the netem tests also need the kernel's ``sch_netem`` and are skipped
without it, with the reason. Without it, a lab asked for delay must refuse with
that reason rather than build plain links.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tools.netns import Lab, LabError, available, netem_available

pytestmark = pytest.mark.integration


# A TCP dial to a closed port is answered by a RST: one round trip, and no server to run.
_PROBE = """
import socket, statistics, sys, time
host, count = sys.argv[1], int(sys.argv[2])
rtts = []
for _ in range(count):
    start = time.perf_counter()
    try:
        socket.create_connection((host, 9), timeout=1.0).close()
    except ConnectionRefusedError:
        rtts.append((time.perf_counter() - start) * 1000)
    except OSError:
        pass
print(statistics.median(rtts) if rtts else "nan", len(rtts))
"""


def _rtt_ms(lab: Lab, src: int, dst: int, count: int = 5) -> tuple[float, int]:
    """Median RTT (ms) from node `src` to node `dst`, and how many of `count` dials were answered."""
    done = subprocess.run(
        ["ip", "netns", "exec", lab.netns(src), sys.executable, "-c", _PROBE, lab.host(dst),
         str(count)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    rtt, answered = done.stdout.split()
    return float(rtt), int(answered)


@pytest.fixture
def root() -> None:
    ok, reason = available()
    if not ok:
        pytest.skip(f"network namespaces unavailable: {reason}")


@pytest.fixture
def netem(root: None) -> None:
    ok, reason = netem_available()
    if not ok:
        pytest.skip(reason)


def test_a_plain_lab_has_fast_links(root: None) -> None:
    with Lab(2) as lab:
        rtt, received = _rtt_ms(lab, 0, 1)
    assert received == 5 and rtt < 20


def test_delay_is_paid_once_per_direction_and_can_change(netem: None) -> None:
    with Lab(2, delay_ms=20) as lab:
        rtt, received = _rtt_ms(lab, 0, 1)
        assert received == 5 and 40 <= rtt < 80, rtt
        lab.set_link(delay_ms=5)
        rtt, _ = _rtt_ms(lab, 0, 1)
        assert 10 <= rtt < 40, rtt
        lab.set_link()
        rtt, _ = _rtt_ms(lab, 0, 1)
        assert rtt < 10, rtt


def test_loss_drops_packets(netem: None) -> None:
    with Lab(2, loss_pct=100) as lab:
        _, received = _rtt_ms(lab, 0, 1, count=3)
    assert received == 0  # every SYN lost


def test_without_netem_a_lab_with_delay_refuses_and_says_why(root: None) -> None:
    ok, _ = netem_available()
    if ok:
        pytest.skip("this kernel has netem")
    with pytest.raises(LabError, match="netem"):
        Lab(2, delay_ms=20).setup()
