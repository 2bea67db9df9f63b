"""A validator killed between recording a signature and sending it never signs a conflict."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chain.consensus_messages import SignStep
from chain.errors import ConfigError
from ledgerdns.consensus.guardfile import GuardFile

ROOT = Path(__file__).resolve().parents[2]
WRITER = """
import os, sys
from chain.consensus_messages import SignGuard, SignStep
from ledgerdns.consensus.guardfile import GuardFile
guard = SignGuard().after(7, 2, SignStep.PRECOMMIT, b"\\xaa" * 32).locked(2, b"\\xaa" * 32)
GuardFile(sys.argv[1]).store(guard.to_bytes())
print("recorded", flush=True)
os.kill(os.getpid(), 9)  # dies before the signed precommit could be sent
print("sent", flush=True)
"""


@pytest.mark.integration
def test_killed_after_recording_refuses_conflict_on_restart(tmp_path: Path) -> None:
    path = tmp_path / "guard"
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, str(path)], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL and proc.stdout == "recorded\n"
    guard = GuardFile(path).load()
    assert not guard.allows(7, 2, SignStep.PRECOMMIT, b"\xbb" * 32)  # a conflicting precommit
    assert not guard.allows(7, 1, SignStep.PREVOTE, b"\xbb" * 32)  # anything earlier
    assert guard.allows(7, 2, SignStep.PRECOMMIT, b"\xaa" * 32)  # the same one again is harmless
    assert (guard.lock_round, guard.lock_hash) == (2, b"\xaa" * 32)
    assert not (tmp_path / "guard.tmp").exists()


def test_corrupt_guard_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "guard"
    path.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="corrupt"):
        GuardFile(path).load()
    assert GuardFile(tmp_path / "missing").load().height == 0
