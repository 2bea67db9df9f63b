"""Issue 18 §3: an idle network shows its validators online while they are connected.

Four validators and a follower with no heartbeat and nothing to do send no
consensus message, so "heard from lately" alone said "validators 1/4 online"
(each node counting only itself). A validator whose peer (named by its signed
hello) is connected is online too: `ledgerdns status` and the RPC's
``/v1/validators`` (which the explorer shows) say 4/4, and ``/v1/peers`` names them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledgerdns.cli import main
from tests.integration.conftest import FAST, eventually
from tools.localnet import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VALIDATORS = 4
LINK_TIMEOUT_S = 60.0  # hellos go out after 2, 4, 8 s while a validator is missing


# A validator is online when heard from lately or when a peer its signed hello names is
# connected (ledgerdns/protocol/views.py, validator_links.py): an idle network sends nothing.
def test_an_idle_network_shows_its_connected_validators_online(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Cluster(tmp_path, validators=VALIDATORS, followers=1, consensus=FAST) as cluster:
        cluster.start()
        for i in range(VALIDATORS):
            eventually(
                lambda i=i: cluster.status(i)["validators_linked"] == VALIDATORS - 1,  # type: ignore[misc]
                LINK_TIMEOUT_S, f"node {i} linked to every other validator",
            )  # fmt: skip
        assert all(cluster.status(n.index)["height"] == 0 for n in cluster.nodes)  # idle
        for node in cluster.nodes[:VALIDATORS]:
            assert main(["status", "--node", str(node.data_dir), "--json"]) == 0
            summary = json.loads(capsys.readouterr().out)["validators"]
            assert (summary["online"], summary["total"]) == (VALIDATORS, VALIDATORS), summary
            listed = node.rpc.validators()
            assert all(v["online"] for v in listed), listed
            named = {p["validator"] for p in node.rpc.peers() if p["connected"]}
            others = {f"validator-{i}" for i in range(VALIDATORS)} - {f"validator-{node.index}"}
            assert others <= named, named
