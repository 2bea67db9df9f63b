"""What people and scripts read from `ledgerdns`: tables, `--json`, and no escape codes in a pipe.

One real devnet node (`python -m ledgerdns node`) per module; every command runs as a
separate process with stdout piped, as `ledgerdns ... | less` or a script would see it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_node import ROOT, Running

pytestmark = pytest.mark.integration

ANSI = "\x1b["
DOMAIN = "out.p2p"


def ledgerdns(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``ledgerdns ARGV`` with stdout and stderr piped (no terminal, no forced colour)."""
    base = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    return subprocess.run(
        [sys.executable, "-m", "ledgerdns", *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**base, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **env},
    )  # fmt: skip


def plain(done: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a successful command, checked free of escape codes."""
    assert done.returncode == 0, done.stderr
    assert ANSI not in done.stdout and ANSI not in done.stderr
    return done.stdout


def one_object(done: subprocess.CompletedProcess[str]) -> Any:
    lines = plain(done).strip().splitlines()
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0])


class Devnet:
    def __init__(self, root: Path) -> None:
        self.data = root / "node"
        self.node = Running(self.data)
        self.wallet_args = [
            "wallet",
            "--wallet-dir",
            str(root / "wallet"),
            "--node",
            str(self.data),
        ]

    def wallet(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        return ledgerdns(*self.wallet_args, *argv, **env)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(tmp_path_factory.mktemp("cliout"))
    try:
        plain(net.wallet("new", "--insecure-no-passphrase"))
        one_object(net.wallet("register", DOMAIN, "--record", "www 300 A 10.0.0.1", "--json"))
        yield net
    finally:
        net.node.close()


def test_status_table_and_json(devnet: Devnet) -> None:
    table = plain(ledgerdns("status", "--node", str(devnet.data)))
    for row in (
        "node status: ledgerdns-devnet",
        "validator validator-0",
        "synced",
        "1/1 online",
        "mempool",
        devnet.node.ready["dns"],
        devnet.node.ready["rpc"],
    ):
        assert row in table, row
    data = one_object(ledgerdns("status", "--node", str(devnet.data), "--json"))
    assert data["ok"] is True and data["chain_id"] == "ledgerdns-devnet"
    assert data["height"] >= 1 and data["head_age_s"] >= 0
    assert data["validators"]["online"] == data["validators"]["total"] == 1
    assert (data["dns"], data["rpc"]) == (devnet.node.ready["dns"], devnet.node.ready["rpc"])
    assert set(data["mempool"]) == {"txs", "bytes"} and set(data["peers"]) == {"connected", "known"}
    token = str(devnet.data / "rpc.token")
    by_url = one_object(ledgerdns("status", "--rpc", data["rpc"], "--token-file", token, "--json"))
    assert by_url["peer_id"] == data["peer_id"] and by_url["dns"] is None


@pytest.mark.parametrize(
    ("argv", "rows", "fields"),
    [
        (
            ["list"],
            ["keys in", "default", "domains", DOMAIN, "active"],
            ["keys", "domains", "refreshed"],
        ),
        (
            ["show", DOMAIN],
            ["status", "owner", "key 'default'", "www", "10.0.0.1"],
            ["owner", "seq", "records"],
        ),
        (["history", DOMAIN], [f"history of {DOMAIN}", "register"], ["history"]),
        (["export-zone", DOMAIN], [f"$ORIGIN {DOMAIN}.", "10.0.0.1"], ["zone", "records"]),
    ],
)
def test_wallet_read_commands(
    devnet: Devnet, argv: list[str], rows: list[str], fields: list[str]
) -> None:
    text = plain(devnet.wallet(*argv))
    for row in rows:
        assert row in text, row
    data = one_object(devnet.wallet(*argv, "--json"))
    assert data["ok"] is True and set(fields) <= set(data)


def test_no_color_even_where_colour_is_forced(devnet: Devnet) -> None:
    forced = ledgerdns("status", "--node", str(devnet.data), FORCE_COLOR="1")
    assert forced.returncode == 0 and ANSI in forced.stdout  # the check below can fail
    plain(ledgerdns("status", "--node", str(devnet.data), FORCE_COLOR="1", NO_COLOR="1"))
    plain(devnet.wallet("show", DOMAIN, FORCE_COLOR="1", NO_COLOR="1"))


def test_status_of_a_stopped_node(tmp_path: Path, devnet: Devnet) -> None:
    """A node killed without cleaning up leaves node.json behind: nothing answers there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = tmp_path / "dead"
    dead.mkdir(mode=0o700)
    (dead / "node.json").write_text(
        json.dumps({"rpc": f"http://127.0.0.1:{port}", "dns": "127.0.0.1:1"})
    )
    token = dead / "rpc.token"
    token.write_text((devnet.data / "rpc.token").read_text())
    token.chmod(0o600)
    done = ledgerdns("status", "--node", str(dead))
    assert done.returncode == 1 and done.stdout == ""
    assert (
        done.stderr.startswith("error: cannot reach the node")
        and "is the node running?" in done.stderr
    )
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    data = json.loads(ledgerdns("status", "--node", str(dead), "--json").stdout)
    assert (data["ok"], data["error"]) == (False, "node-unreachable")
    wrong = tmp_path / "wrong.token"
    wrong.write_text("0" * 64)
    wrong.chmod(0o600)
    rpc = devnet.node.ready["rpc"]
    refused = ledgerdns("status", "--rpc", rpc, "--token-file", str(wrong))
    assert refused.returncode == 1 and "refused the RPC token" in refused.stderr
    assert refused.stderr.count("\n") == 1
