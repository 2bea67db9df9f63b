"""Issue 18 §3: `tools/cluster.py` as a new user runs it (any python; restart, status at 80
columns and as JSON, roles on an existing network, a locked data dir), and the shipped docs.

The cluster here is one validator and one follower, started by the real CLI as subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgerdns.node.config import DEFAULT_RPC

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "tools" / "cluster.py"
RUN_S = 120.0  # bound of one command (a start waits for READY, up to 30 s a node)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


def _run(
    python: str | Path, script: Path, *argv: str, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), str(script), *argv], cwd=cwd, env=_env(**env), capture_output=True,
        text=True, timeout=RUN_S, check=False,
    )  # fmt: skip


# -- a python without the project --


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv's python: no ledgerdns, no third-party package at all."""
    where = tmp_path_factory.mktemp("bare-venv")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120
    )
    python = where / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import trio"], capture_output=True, check=False)
    assert probe.returncode != 0, "the bare venv should not have trio"
    return python


def test_a_tool_run_by_another_python_starts_again_with_the_venv(
    bare_python: Path, tmp_path: Path
) -> None:
    done = _run(bare_python, CLUSTER, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "usage: cluster.py" in done.stdout


def test_with_no_venv_a_tool_says_in_one_line_which_python_to_use(
    bare_python: Path, tmp_path: Path
) -> None:
    checkout = tmp_path / "checkout"  # a checkout without .venv
    (checkout / "tools").mkdir(parents=True)
    for name in ("_bootstrap.py", "cluster.py"):
        shutil.copy(ROOT / "tools" / name, checkout / "tools" / name)
    done = _run(bare_python, checkout / "tools" / "cluster.py", "--help", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "make venv" in lines[0] and f"{checkout}/.venv/bin/python" in lines[0]


# -- the cluster CLI on a running network --


def _cluster(*argv: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, CLUSTER, *argv, cwd=ROOT, COLUMNS=str(columns))


def _status(base: Path) -> list[dict[str, Any]]:
    done = _cluster("status", "--dir", str(base), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is True
    return list(doc["nodes"])


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Path]:
    base = tmp_path / "net"
    try:
        yield base
    finally:
        if (base / "cluster.json").exists():
            _cluster("stop", "--dir", str(base))


@pytest.mark.slow
def test_cluster_status_restart_roles_and_a_locked_dir(network: Path) -> None:
    base = str(network)
    started = _cluster("start", "--dir", base, "-n", "1", "--followers", "1", "--json")
    assert started.returncode == 0, started.stderr
    nodes = json.loads(started.stdout)["nodes"]
    assert [(n["role"], n["validator"]) for n in nodes] == [
        ("validator", "validator-0"),
        ("follower", None),
    ]

    table = _cluster("status", "--dir", base)
    assert table.returncode == 0, table.stderr
    widths = [len(line) for line in table.stdout.splitlines()]
    assert max(widths) <= 80, table.stdout
    for node in nodes:  # every row whole on its line: the node's ports and its peer id's end
        dns_port, rpc_port = node["dns"].rsplit(":", 1)[1], node["rpc"].rsplit(":", 1)[1]
        assert re.search(rf"{dns_port}\s+:{rpc_port}.*{node['peer_id'][-6:]}", table.stdout), (
            table.stdout
        )

    old_pids = [n["pid"] for n in _status(network)]
    restarted = _cluster("restart", "--dir", base, "--node", "1")
    assert restarted.returncode == 0, restarted.stderr
    after = _status(network)
    assert after[0]["pid"] == old_pids[0] and after[1]["pid"] != old_pids[1]
    assert all(n["running"] and n["error"] is None for n in after), after
    assert after[1]["dns"] == nodes[1]["dns"]  # the same ports again

    missing = _cluster("restart", "--dir", base, "--node", "7")
    assert missing.returncode == 1 and "no node 7" in missing.stderr

    # A second start while the nodes run, its cluster.json gone: only the real error is shown.
    (network / "cluster.json").rename(network / "cluster.saved")
    locked = _cluster("start", "--dir", base, "-n", "1", "--followers", "1")
    (network / "cluster.saved").rename(network / "cluster.json")
    assert locked.returncode == 1
    assert "in use by another process" in locked.stderr, locked.stderr
    assert "node 0 exited before READY" in locked.stderr, locked.stderr  # no "(code ?)"
    assert "rpc listening" not in locked.stderr, locked.stderr  # the running node's own log

    assert _cluster("stop", "--dir", base).returncode == 0
    # Again with more -n than the genesis has: the new nodes are followers, and said to be.
    again = _cluster("start", "--dir", base, "-n", "2", "--followers", "0", "--json")
    assert again.returncode == 0, again.stderr
    assert "network of 1 validators" in again.stdout.splitlines()[0]
    roles = [
        (n["role"], n["validator"]) for n in json.loads(again.stdout.splitlines()[-1])["nodes"]
    ]
    assert roles == [("validator", "validator-0"), ("follower", None)]


# -- the docs and the package metadata --


def test_the_explorer_doc_uses_the_default_rpc_port() -> None:
    text = (ROOT / "docs" / "explorer.md").read_text()
    port = DEFAULT_RPC.rsplit(":", 1)[1]
    assert f"127.0.0.1:{port}" in text
    assert not [p for p in re.findall(r"127\.0\.0\.1:(\d+)", text) if p != port]


def test_every_wallet_error_code_is_in_the_wallet_doc() -> None:
    source = "".join(p.read_text() for p in sorted((ROOT / "ledgerdns" / "wallet").glob("*.py")))
    codes = set(re.findall(r'code ?= ?"([a-z-]+)"', source))
    assert {"not-found", "usage", "bad-input"} <= codes
    doc = (ROOT / "docs" / "wallet.md").read_text()
    assert sorted(c for c in codes if f"`{c}`" not in doc) == []


def test_the_license_is_an_spdx_string() -> None:
    """A TOML table made setuptools warn `project.license` is deprecated, three times an install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert "setuptools>=77" in project["build-system"]["requires"]
