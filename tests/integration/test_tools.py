"""Every tool with a command line runs both ways, ``python tools/X.py`` and ``python -m tools.X``.

Each is started with ``--help`` in a fresh interpreter without ``PYTHONPATH``, as
from a clean checkout with the project's venv (`chain` and `ledgerdns` installed
editable, `tools` and `tests` not): the script from another directory, the module
from the checkout. See tools/_bootstrap.py.
"""

from __future__ import annotations

import json
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


# -- tools/bench_scale.py (issue 20): the JSON contract, on one small point --

SCALE_TIMEOUT_S = 90.0  # measured ~12 s on two cores
SCALE_POINT_KEYS = {
    "validators", "followers", "heights", "finalized", "node_cpu_ms_per_height",
    "visible_p50_ms", "visible_p99_ms", "blocks_via_sync",
}  # fmt: skip


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_text(errors="replace"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_bench_scale_prints_one_json_line_of_the_issue_20_contract(tmp_path: Path) -> None:
    command = [
        sys.executable, str(TOOLS / "bench_scale.py"), "--points", "4+1", "--heights", "5",
        "--idle", "1", "--dir", str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=SCALE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the tool stops its cluster on SIGTERM
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"bench_scale.py still ran after {SCALE_TIMEOUT_S:g} s\n{err[-4000:]}")
    assert proc.returncode == 0 and "Traceback" not in err, err[-4000:]
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    result = json.loads(lines[0])
    detail = f"{json.dumps(result, indent=1)}\n{err[-4000:]}"
    assert set(result) >= {"points", "cpu_ms_per_validator", "quick"}, detail
    assert (
        result["quick"] is False and result["cpu_ms_per_validator"] is None
    )  # one point: no slope
    [point] = result["points"]
    assert set(point) >= SCALE_POINT_KEYS, detail
    assert (point["validators"], point["followers"], point["heights"]) == (4, 1, 5), detail
    assert point["finalized"] is True and point["heights_finalized"] >= 5, detail
    assert point["node_cpu_ms_per_height"] > 0, detail
    assert 0 < point["visible_p50_ms"] <= point["visible_p99_ms"], detail
    assert isinstance(point["blocks_via_sync"], int) and point["blocks_via_sync"] >= 0, detail
    assert {"blocks", "txs"} <= set(point["gossip"]), detail  # consensus: quiet while every validator is linked
    assert _processes_mentioning(str(tmp_path)) == [], "nodes left running"
