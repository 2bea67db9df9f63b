"""Freshness on an idle network, end to end (issue 13): real `ledgerdns node` processes.

With a heartbeat in the genesis an idle chain still makes blocks, so `wallet show
--verify` finds a recent certified header however long nobody writes; without
one, the head of an idle chain ages, and the same bound refuses it. That is
what lets a client tell "nothing changed" from "this node is hiding blocks".
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from chain.params import ConsensusParams
from ledgerdns.cli import main
from tools.localnet import Cluster

pytestmark = [pytest.mark.integration]

IDLE_S = 4.0
BOUND_S = "3"


def _consensus(heartbeat_ms: int) -> ConsensusParams:
    return ConsensusParams(
        timeout_propose_ms=1000, timeout_prevote_ms=500, timeout_precommit_ms=500,
        timeout_delta_ms=250, heartbeat_ms=heartbeat_ms,
    )  # fmt: skip


def _wallet(capsys: pytest.CaptureFixture[str], wallet: Path, node: Path, *argv: str) -> tuple[int, Any]:
    code = main(["wallet", "--wallet-dir", str(wallet), "--node", str(node), "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("heartbeat_ms", "stays_fresh"), [(1000, True), (0, False)])
def test_an_idle_head_stays_fresh_only_with_a_heartbeat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], heartbeat_ms: int, stays_fresh: bool
) -> None:
    wallet = tmp_path / "wallet"
    with Cluster(tmp_path / "net", validators=1, followers=0, consensus=_consensus(heartbeat_ms)) as net:
        net.start()
        node = net.nodes[0].data_dir
        assert _wallet(capsys, wallet, node, "new", "--insecure-no-passphrase")[0] == 0
        code, registered = _wallet(capsys, wallet, node, "register", "alice.p2p", "--record", "@ A 192.0.2.1")
        assert code == 0 and registered["status"] == "finalized", registered
        time.sleep(IDLE_S)  # nobody writes
        # --verify reads the trusted genesis from the node's data directory (genesis.json).
        code, shown = _wallet(capsys, wallet, node, "show", "alice.p2p", "--verify", "--max-staleness", BOUND_S)
    if stays_fresh:
        assert code == 0 and shown["verified"] is True, shown
        assert shown["height"] > registered["height"] and shown["age_s"] < float(BOUND_S)
        assert shown["records"] == ["@ 300 IN A 192.0.2.1"]
    else:
        assert code == 1 and shown["error"] == "stale-proof", shown
        assert shown["height"] == registered["height"] and shown["age_s"] >= IDLE_S
