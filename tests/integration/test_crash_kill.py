"""A writer killed with SIGKILL at random moments leaves exactly its last whole block."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chain import keys
from chain.ledger import Ledger
from chain.smt import root_of
from chain.state import DomainState, domain_key
from ledgerdns.storage.leveldb import LevelDBStore
from tests.integration.crash_writer import crash_genesis

ROOT = Path(__file__).resolve().parents[2]
KILLS = 24


def _check_store(path: Path) -> int:
    """Open the store and prove it holds whole blocks 0..head and nothing else."""
    store = LevelDBStore.open(path)
    try:
        ledger = Ledger(store, crash_genesis())
        ledger.initialize()  # checks genesis and format of an existing store
        head = ledger.height
        assert store.get(keys.make_block_key(head + 1)) is None
        assert store.get(keys.make_certificate_key(head + 1)) is None
        prev = ledger.get_block(0).header
        for height in range(1, head + 1):
            block = ledger.get_block(height)
            assert block.header.prev_block == prev.hash
            ledger.get_certificate(height).verify(
                ledger.params.validators, ledger.params.chain_id, block.hash,
                genesis_hash=ledger.params.genesis_hash,
            )  # fmt: skip
            for i, tx in enumerate(block.txs):
                assert ledger.get_tx(tx.txid)[1:] == (height, i)
            prev = block.header
        # Every domain state is the one the head block committed to, and nothing newer.
        states = [DomainState.from_bytes(v) for _, v in store.iterate(keys.DOMAIN)]
        assert root_of({domain_key(s.domain): s.value_hash() for s in states}) == prev.state_root
        for state in states:
            assert ledger.history(state.domain)[-1] == (state.seq, state.head)
        return head
    finally:
        store.close()


@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_at_random_moments_keeps_last_whole_block(tmp_path: Path) -> None:
    rng = random.Random(20261126)
    data = tmp_path / "chain"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    last_seen = 0
    progressed = 0
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.crash_writer", str(data)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        # Wait until it has committed at least one block, then kill it at a random moment.
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert first.startswith("applied"), proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(rng.uniform(0.0, 0.4))
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        lines = [first] + out.decode().splitlines()
        printed = max(int(line.split()[1]) for line in lines if line.startswith("applied"))
        head = _check_store(data)
        # The store may hold one block more than was printed (killed between commit and print).
        assert printed <= head <= printed + 1
        progressed += head > last_seen
        last_seen = head
    assert progressed == KILLS
