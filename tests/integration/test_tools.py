"""Every tool with a command line runs both ways, ``python tools/X.py`` and ``python -m tools.X``.

Each is started with ``--help`` in a fresh interpreter without ``PYTHONPATH``, as
from a clean checkout with the project's venv (`chain` and `ledgerdns` installed
editable, `tools` and `tests` not): the script from another directory, the module
from the checkout. See tools/_bootstrap.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"
MAIN_GUARD = 'if __name__ == "__main__":'
BOOTSTRAP = "    import _bootstrap  # noqa: F401\n"

CLI_TOOLS = sorted(p.stem for p in TOOLS.glob("*.py") if MAIN_GUARD in p.read_text())


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_the_tools_are_found() -> None:
    assert {"bench_dns", "chaos", "cluster", "fuzz", "sim"} <= set(CLI_TOOLS)


@pytest.mark.parametrize("tool", CLI_TOOLS)
def test_every_cli_tool_uses_the_one_bootstrap(tool: str) -> None:
    text = (TOOLS / f"{tool}.py").read_text()
    assert "if not __package__:" in text and BOOTSTRAP in text
    assert "sys.path.insert" not in text


@pytest.mark.parametrize("how", ["script", "module"])
@pytest.mark.parametrize("tool", CLI_TOOLS)
def test_a_tool_runs_both_ways(tool: str, how: str, tmp_path: Path) -> None:
    if how == "script":
        command, cwd = [sys.executable, str(TOOLS / f"{tool}.py"), "--help"], tmp_path
    else:
        command, cwd = [sys.executable, "-m", f"tools.{tool}", "--help"], ROOT
    done = subprocess.run(
        command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    assert "usage:" in done.stdout
