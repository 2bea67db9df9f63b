"""`ledgerdns node` as a user runs it: the embedded devnet, READY line, restart, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from ledgerdns.api.client import RpcClient

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PORTS = ["--dns", "127.0.0.1:0", "--rpc", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/tcp/0"]


class Running:
    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.log = (data_dir.parent / f"{data_dir.name}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ledgerdns", "node", "--data-dir", str(data_dir), *PORTS, *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        line = b""
        while time.monotonic() < deadline and not line.startswith(b"READY "):
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                break
        if not line.startswith(b"READY "):
            log = self.tail()
            self.close()  # nothing left open behind a failed start
            raise AssertionError(f"no READY line; log: {log}")
        self.ready = json.loads(line[len(b"READY ") :])
        host, port = self.ready["dns"].rsplit(":", 1)
        self.dns = (host, int(port))

    def tail(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.data_dir.parent / f"{self.data_dir.name}.log").read_text()[-3000:]

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.log.close()


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Running]]:
    nodes: list[Running] = []
    yield nodes
    for node in nodes:
        node.close()


def _register(data_dir: Path, wallet: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledgerdns", "wallet", "--wallet-dir", str(wallet), "--node",
         str(data_dir), "--json", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LEDGERDNS_PASSPHRASE": "test passphrase"},
    )


def test_devnet_starts_serves_and_resumes(tmp_path: Path, started: list[Running]) -> None:
    data = tmp_path / "devnet"
    node = Running(data)
    started.append(node)
    assert set(node.ready) == {"peer_id", "dns", "rpc", "p2p"}
    assert node.ready["p2p"][0].endswith("/p2p/" + node.ready["peer_id"])
    for name in ("genesis.json", "validator.pem", "node.key", "rpc.token", "node.json"):
        assert (data / name).exists(), name
    assert (data / "validator.pem").stat().st_mode & 0o077 == 0
    wallet = tmp_path / "wallet"
    assert _register(data, wallet, "new").returncode == 0
    done = _register(data, wallet, "register", "alice.p2p", "--record", "@ 300 A 10.0.0.7")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["height"] == 1
    reply = dns.query.udp(dns.message.make_query("alice.p2p", "A"), node.dns[0], port=node.dns[1], timeout=2)
    assert [r.to_text() for r in reply.answer] == ["alice.p2p. 300 IN A 10.0.0.7"]
    assert node.stop(signal.SIGTERM) == 0
    assert not (data / "node.json").exists()  # removed at a clean exit

    again = Running(data)  # same data dir: same network, same peer id, same chain
    started.append(again)
    assert again.ready["peer_id"] == node.ready["peer_id"]
    with RpcClient.for_node(data) as client:
        status = client.status()
    assert status["height"] == 1 and status["validator"] == "validator-0"
    reply = dns.query.tcp(dns.message.make_query("alice.p2p", "A"), again.dns[0], port=again.dns[1], timeout=2)
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    assert again.stop(signal.SIGINT) == 0  # Ctrl-C
    assert "Traceback" not in again.tail()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_sigterm_to_the_process_group_stops_quietly(tmp_path: Path, started: list[Running]) -> None:
    """What a service manager or `kill -TERM -PGID` sends reaches the DNS worker too, maybe first.

    The worker leaves SIGTERM to the node (and ends when the node hangs up), so the node never
    sees it die and "restart" it while stopping.
    """
    data = tmp_path / "devnet"
    node = Running(data)
    started.append(node)
    reply = dns.query.udp(dns.message.make_query("x.p2p", "A"), node.dns[0], port=node.dns[1], timeout=2)
    assert reply.rcode() == dns.rcode.NXDOMAIN  # the worker is up and answering
    (worker,) = _children(node.proc.pid)
    os.kill(worker, signal.SIGTERM)  # the group's signal reaching the worker before the node
    time.sleep(1.0)
    assert _children(node.proc.pid) == [worker]  # still there: the node decides
    os.killpg(node.proc.pid, signal.SIGTERM)
    assert node.proc.wait(timeout=20) == 0
    log = node.tail()
    assert "exited; restarting" not in log and "Traceback" not in log, log
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # every process of the group has ended
        try:
            os.killpg(node.proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("a process of the node's group outlived it")


def test_a_second_node_on_the_same_data_dir_is_refused(tmp_path: Path, started: list[Running]) -> None:
    data = tmp_path / "devnet"
    started.append(Running(data))
    second = subprocess.run(
        [sys.executable, "-m", "ledgerdns", "node", "--data-dir", str(data), *PORTS],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert second.returncode != 0
    assert "Traceback" not in second.stderr and "in use" in second.stderr.lower()


def test_a_follower_joins_the_devnet_and_syncs(tmp_path: Path, started: list[Running]) -> None:
    data = tmp_path / "devnet"
    validator = Running(data)
    started.append(validator)
    wallet = tmp_path / "wallet"
    _register(data, wallet, "new")
    for i in range(3):
        assert _register(data, wallet, "register", f"n{i}.p2p", "--record", "@ 60 A 10.0.0.1").returncode == 0
    follower = Running(
        tmp_path / "follower", "--genesis", str(data / "genesis.json"),
        "--bootstrap", validator.ready["p2p"][0],
    )
    started.append(follower)
    deadline = time.monotonic() + 30
    with RpcClient.for_node(tmp_path / "follower") as client:
        while client.status()["height"] < 3:
            assert time.monotonic() < deadline, follower.tail()
            time.sleep(0.2)
        status = client.status()
    assert status["validator"] is None and status["peers"] >= 1
    reply = dns.query.udp(dns.message.make_query("n2.p2p", "A"), follower.dns[0], port=follower.dns[1], timeout=2)
    assert reply.answer


def test_a_busy_dns_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "ledgerdns", "node", "--data-dir", str(tmp_path / "d"),
             "--dns", f"127.0.0.1:{port}", "--rpc", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/tcp/0"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert run.returncode == 2
    assert f"DNS (--dns): cannot listen on 127.0.0.1:{port}" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("damage", ["exposed", "corrupt"])
def test_an_unusable_node_key_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    """A p2p identity others can read (they could pose as this node) or garbage: one line, exit 2."""
    data = tmp_path / "d"
    Running(data).stop()
    key = data / "node.key"
    if damage == "exposed":
        key.chmod(0o644)
    else:
        key.write_bytes(b"not a key")
    run = subprocess.run(
        [sys.executable, "-m", "ledgerdns", "node", "--data-dir", str(data), *PORTS],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    expected = "chmod 600" if damage == "exposed" else "cannot load node key"
    assert expected in run.stderr and str(key) in run.stderr
