"""Reloading a running node's settings (SIGHUP), --check-config, and the JSON query log.

A real devnet `ledgerdns node` process with a settings file, queried over real
sockets while its file is rewritten and SIGHUP sent: forwarding (to a tiny
upstream the test runs on 127.0.0.1) and a TSIG key come and go, a bad file
keeps the running settings, no query is dropped, and the node is still there
(with its node.json) afterwards.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rrset
import dns.tsig
import pytest

from tests.integration.test_node import ROOT, Running

pytestmark = pytest.mark.integration

SECRET = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"
KEY = dns.tsig.Key("reload.", SECRET, "hmac-sha256")
TIMEOUT_S = 2.0


class Upstream:
    """A resolver on 127.0.0.1 that answers every A question with 192.0.2.77."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="upstream", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            name = query.question[0].name
            reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.77"))
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


def ask(node: Running, name: str, *, key: dns.tsig.Key | None = None) -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    if key is not None:
        query.use_tsig(key)
    return dns.query.udp(query, node.dns[0], port=node.dns[1], timeout=TIMEOUT_S)


def reload(node: Running, settings: Path, text: str) -> None:
    settings.write_text(text)
    node.proc.send_signal(signal.SIGHUP)


def wait_for(check: object, what: str, timeout: float = 10.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def check_config(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledgerdns", "node", "--check-config", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_check_config(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(f'[[dns.tsig]]\nname = "k."\nsecret = "{SECRET}"\n[log]\nlevel = "debug"\n')
    done = check_config("--config", str(good))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: settings {good}: ") and "tsig keys k." in done.stdout

    bad = tmp_path / "bad.toml"
    bad.write_text('[dns]\nworkers = -1\n[dns.forward]\nupstreams = ["x"]\n')
    done = check_config("--config", str(bad))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: {bad}: dns.workers: must be an integer in 0..16, not -1",
        f"error: {bad}: dns.forward.upstreams: not an IP address: 'x'",
    ]

    done = check_config("--data-dir", str(tmp_path / "empty"))
    assert done.returncode == 2 and "node.toml does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_sighup_reloads_without_dropping_queries(tmp_path: Path, upstream: Upstream) -> None:
    settings = tmp_path / "node.toml"
    queries = tmp_path / "queries.jsonl"
    settings.write_text("[dns]\nworkers = 1\n")
    node = Running(tmp_path / "node", "--config", str(settings), "--query-log", str(queries))
    try:
        assert ask(node, "example.com").rcode() == dns.rcode.REFUSED  # no forwarding yet
        with pytest.raises(dns.tsig.PeerBadKey):  # NOTAUTH/BADKEY: not a key it knows yet
            ask(node, "p2p", key=KEY)

        # Queries keep coming while the file is rewritten and SIGHUP sent five times.
        answered: list[int] = []
        failures: list[str] = []

        def load() -> None:
            for _ in range(200):
                try:
                    answered.append(ask(node, "p2p").rcode())
                except Exception as exc:  # a lost query: what the test counts
                    failures.append(repr(exc))

        client = threading.Thread(target=load, name="load")
        client.start()
        forwarding = (
            f'[dns.forward]\nupstreams = ["{upstream.address[0]}:{upstream.address[1]}"]\n'
            f'[[dns.tsig]]\nname = "reload."\nsecret = "{SECRET}"\n'
        )
        for _ in range(5):
            reload(node, settings, forwarding)
            time.sleep(0.1)
        client.join(60)
        assert not client.is_alive()
        assert failures == [] and answered == [dns.rcode.NOERROR] * 200

        wait_for(lambda: node.tail().count("reloaded settings") >= 1, "the reload")
        forwarded = ask(node, "example.com")
        assert [r.to_text() for r in forwarded.answer] == ["example.com. 60 IN A 192.0.2.77"]
        signed = ask(node, "p2p", key=KEY)  # dnspython checks the reply's MAC
        assert signed.rcode() == dns.rcode.NOERROR and signed.had_tsig

        # A bad file: one line, and the running settings stay.
        reload(node, settings, "[dns.forward]\nupstreams = ['nope']\n")
        wait_for(lambda: "reload of" in node.tail(), "the failed reload's line")
        failed = [line for line in node.tail().splitlines() if "reload of" in line]
        assert len(failed) == 1 and failed[0].endswith(
            f"reload of {settings} failed, the running settings are kept: "
            "dns.forward.upstreams: not an IP address: 'nope'"
        )
        assert ask(node, "example.com").answer  # still forwarding
        assert (tmp_path / "node" / "node.json").exists()

        # The query log: one JSON object per query, UDP and TCP; reopened on SIGHUP.
        moved = tmp_path / "queries.1"
        queries.rename(moved)
        reload(node, settings, forwarding + '[log]\nlevel = "debug"\n')
        wait_for(queries.exists, "the query log reopened")
        nx = dns.message.make_query("nx.p2p", "A")
        dns.query.tcp(nx, node.dns[0], port=node.dns[1], timeout=TIMEOUT_S)
        wait_for(lambda: queries.read_text().strip() != "", "a logged query")
        (line,) = [json.loads(text) for text in queries.read_text().splitlines()]
        assert line["client"] == "127.0.0.1" and line["transport"] == "tcp"
        assert (line["qname"], line["qtype"], line["rcode"]) == ("nx.p2p.", "A", "NXDOMAIN")
        assert set(line) == {"time", "client", "qname", "qtype", "rcode", "transport", "latency_ms"}
        old = [json.loads(text) for text in moved.read_text().splitlines()]
        # Every query reached the node (the workers keep no replies while the log is on).
        assert sum(1 for entry in old if entry["qname"] == "p2p.") >= 202
        assert {entry["transport"] for entry in old} == {"udp"}
        assert any(
            entry["qname"] == "example.com." and entry["rcode"] == "NOERROR" for entry in old
        )
        assert ask(node, "debug.example.com").answer  # forwarded: logged at debug
        wait_for(lambda: "upstream answered" in node.tail(), "debug lines after level = debug")
        assert node.proc.poll() is None
        assert node.stop() == 0
        assert not (tmp_path / "node" / "node.json").exists()
    finally:
        node.close()


def test_the_settings_file_is_named_in_the_log(tmp_path: Path) -> None:
    settings = tmp_path / "node.toml"
    settings.write_text(f'[[dns.tsig]]\nname = "k."\nsecret = "{SECRET}"\n')
    node = Running(tmp_path / "node", "--config", str(settings))
    try:
        log = node.tail()
        assert f"settings {settings}: no forwarding; rrl 100/s; tsig keys k.;" in log
    finally:
        node.close()
