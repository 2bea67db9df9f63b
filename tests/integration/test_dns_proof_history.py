"""Proofs over DNS carry the validator-set changes a client lacks (issue 16), end to end.

One real devnet node: its validator proposes adding a second validator (a
network of one approves at once, the new set decides from height S), and a
registration makes block S - 1 final, so the change is final while the old
set still certifies the head. A client that knows only the genesis set asks
over DNS and gets the change with the proof; having followed it, it asks again
saying so and gets none. The new validator never runs: the chain stops at S - 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.dns_proof import ProofRequest, verify_answer
from chain.genesis import Genesis
from ledgerdns.dns.proof_query import fetch_proof_sync
from tests.integration.test_node import ROOT, Running, _register
from tools.devchain import dev_key

pytestmark = [pytest.mark.integration]

NEW = dev_key("new-validator", 2)


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Running]:
    node = Running(tmp_path / "devnet")
    try:
        yield node
    finally:
        node.close()


def test_the_changes_the_client_lacks_come_with_the_proof(devnet: Running, tmp_path: Path) -> None:
    data = devnet.data_dir
    proposed = subprocess.run(
        [sys.executable, "-m", "ledgerdns", "validator", "propose", "add", "v1",
         bytes(NEW.public_key).hex(), "--validator-key", str(data / "validator.pem"),
         "--node", str(data), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proposed.returncode == 0, proposed.stderr
    wallet = tmp_path / "wallet"
    assert _register(data, wallet, "new").returncode == 0
    done = _register(data, wallet, "register", "alice.p2p", "--record", "@ 300 A 10.0.0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    height = json.loads(done.stdout)["height"]
    genesis = Genesis.from_json((data / "genesis.json").read_text(encoding="utf-8"))
    host, port = devnet.dns
    now_ms = time.time_ns() // 1_000_000

    first = fetch_proof_sync(host, port, "alice.p2p", "A", ProofRequest(), tcp_only=True)
    assert first.proof is not None and first.proof.header.height == height
    assert len(first.proof.changes) == 1 and not first.proof.more_changes
    result = verify_answer(
        first.proof, params=genesis.params, known=None, qname="alice.p2p", now_ms=now_ms,
        max_age_ms=None,
    )  # fmt: skip
    assert result.state is not None and [v.n for _, v in result.followed] == [1, 2]
    start = result.followed[-1][0]
    assert start == height + 1  # the new set decides from the next height

    again = fetch_proof_sync(
        host, port, "alice.p2p", "A", ProofRequest.following(result.followed), tcp_only=True
    )
    assert again.proof is not None and again.proof.changes == ()
    known = verify_answer(
        again.proof, params=genesis.params, known=result.followed, qname="alice.p2p",
        now_ms=now_ms, max_age_ms=None,
    )  # fmt: skip
    assert known.state == result.state and known.followed == result.followed
