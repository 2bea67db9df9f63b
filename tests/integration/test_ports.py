"""Ports a node refuses to share: a p2p port another process listens on (even with SO_REUSEPORT)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import multiaddr
import pytest

from ledgerdns.p2p.errors import P2PError
from ledgerdns.p2p.ports import check_ports_free
from tests.integration.test_node import ROOT, Running

pytestmark = pytest.mark.integration


@pytest.fixture
def reuseport_listener() -> Iterator[int]:
    """A TCP listener bound the way libp2p's transport binds (SO_REUSEADDR + SO_REUSEPORT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _addr(port: int) -> multiaddr.Multiaddr:
    return multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")


def test_a_port_listened_on_with_reuseport_is_refused(reuseport_listener: int) -> None:
    # Without the probe a second SO_REUSEPORT bind succeeds: what libp2p would do.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as twin:
        twin.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        twin.bind(("127.0.0.1", reuseport_listener))
    with pytest.raises(P2PError, match=f"port {reuseport_listener} is in use"):
        check_ports_free([_addr(reuseport_listener)])


def test_port_zero_a_free_port_and_other_transports_pass() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    check_ports_free([_addr(0), _addr(free), multiaddr.Multiaddr("/ip4/127.0.0.1/udp/4747/quic-v1")])
    check_ports_free([_addr(free)])  # the probe let it go again


def test_a_second_node_on_the_same_p2p_port_exits_with_one_line(tmp_path: Path) -> None:
    first = Running(tmp_path / "a")
    try:
        p2p = first.ready["p2p"][0].split("/p2p/")[0]  # /ip4/127.0.0.1/tcp/PORT
        second = subprocess.run(
            [sys.executable, "-m", "ledgerdns", "node", "--data-dir", str(tmp_path / "b"),
             "--dns", "127.0.0.1:0", "--rpc", "127.0.0.1:0", "--p2p", p2p],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert second.returncode == 2, second.stderr
        errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        port = p2p.rsplit("/", 1)[1]
        assert errors == [
            f"error: cannot listen on {p2p}: port {port} is in use "
            "(another ledgerdns node? give each node its own --p2p port)"
        ], second.stderr
        assert "Traceback" not in second.stderr
        assert first.proc.poll() is None  # the first node is untouched
    finally:
        first.close()
