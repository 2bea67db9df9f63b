"""Installing ledgerdns as an operator would: `pip install .` into a clean venv, the systemd unit.

The install test copies the source tree to a temp dir (so no build output lands
in the work tree), makes a new venv and runs `pip install` there with the
machine's ordinary pip settings (its wheel mirror and cache: about 40 s); then
the installed `ledgerdns` starts a devnet node that prints READY and answers
DNS. The unit file is checked with `systemd-analyze verify` (no warnings) and
`systemd-analyze security --offline` (the sandbox's exposure score).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.integration.test_node import PORTS, ROOT

pytestmark = pytest.mark.integration

UNIT = ROOT / "tools" / "systemd" / "ledgerdns.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed (Debian: systemd)"
)
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".hypothesis", "data", "*.png", "*.csv",
)  # fmt: skip


def _unit_for(ledgerdns: Path, tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an installed `ledgerdns` (verify checks it exists)."""
    text = UNIT.read_text().replace("/opt/ledgerdns/bin/ledgerdns", str(ledgerdns))
    unit = tmp_path / "ledgerdns.service"
    unit.write_text(text)
    return unit


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""},
    )  # fmt: skip


def test_the_unit_sandboxes_the_node() -> None:
    directives = dict(
        line.split("=", 1) for line in UNIT.read_text().splitlines() if re.match(r"^\w+=", line)
    )
    assert directives["User"] == "ledgerdns" and directives["ProtectSystem"] == "strict"
    assert directives["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert directives["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert directives["ReadWritePaths"] == "/var/lib/ledgerdns"
    assert "--data-dir /var/lib/ledgerdns" in directives["ExecStart"]
    assert directives["ExecReload"] == "/bin/kill -HUP $MAINPID"  # the node reloads node.toml


@needs_systemd_analyze
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    installed = Path(sys.executable).parent / "ledgerdns"
    assert installed.exists(), "the test venv has no ledgerdns script"
    unit = _unit_for(installed, tmp_path)
    done = _analyze("verify", str(unit))
    # verify exits 0 for an unknown key but names it: any output at all is a finding.
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stderr
    security = _analyze("security", "--offline=yes", str(unit))
    found = re.search(r"Overall exposure level for ledgerdns\.service: (\d+\.\d)", security.stdout)
    assert found is not None, security.stdout + security.stderr
    assert float(found.group(1)) <= 2.5, security.stdout  # systemd calls < 3 "OK"; 1.9 today


@pytest.mark.slow
def test_pip_install_into_a_clean_venv_gives_a_working_ledgerdns(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-v", str(source)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    # setuptools warned three times an install while project.license was a table.
    assert "project.license" not in output and "SetuptoolsDeprecationWarning" not in output

    ledgerdns = env_dir / "bin" / "ledgerdns"
    version = subprocess.run(
        [str(ledgerdns), "--version"], capture_output=True, text=True, timeout=60, env=env
    )
    assert version.returncode == 0 and "0." in version.stdout, version.stderr
    log = (tmp_path / "node.log").open("wb")
    node = subprocess.Popen(
        [str(ledgerdns), "node", "--data-dir", str(tmp_path / "node"), *PORTS, "--no-progress"],
        stdout=subprocess.PIPE, stderr=log, env=env, cwd=tmp_path, start_new_session=True,
    )  # fmt: skip
    try:
        assert node.stdout is not None
        line = node.stdout.readline().decode()
        assert line.startswith("READY "), (tmp_path / "node.log").read_text()[-3000:]
        host, port = json.loads(line[len("READY ") :])["dns"].rsplit(":", 1)
        reply = dns.query.udp(dns.message.make_query("p2p", "SOA"), host, port=int(port), timeout=3)
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=20) == 0
    finally:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()
        assert node.stdout is not None
        node.stdout.close()
        log.close()
