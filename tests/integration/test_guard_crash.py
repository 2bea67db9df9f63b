"""A validator killed between recording a signature and sending it never signs a conflict."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chain.consensus_messages import SignGuard, SignStep
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


def test_newest_slot_wins_and_a_torn_write_keeps_the_previous_guard(tmp_path: Path) -> None:
    path = tmp_path / "guard"
    first = SignGuard().after(3, 0, SignStep.PREVOTE, b"\x01" * 32)
    second = first.after(3, 0, SignStep.PRECOMMIT, b"\x01" * 32)
    store = GuardFile(path)
    store.store(first.to_bytes())
    store.store(second.to_bytes())
    store.close()
    assert GuardFile(path).load() == second
    assert path.stat().st_mode & 0o077 == 0
    # Tear the newest slot (as a crash mid-write would): the previous guard survives.
    raw = bytearray(path.read_bytes())
    newest_slot = 0  # two writes: counter 1 went to slot 1, counter 2 to slot 0
    raw[newest_slot * 512 + 20] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert GuardFile(path).load() == first
    # A later write after restart goes to the torn slot's partner and wins again.
    again = GuardFile(path)
    again.load()
    third = second.after(4, 0, SignStep.PROPOSAL, b"\x02" * 32)
    again.store(third.to_bytes())
    again.close()
    assert GuardFile(path).load() == third
