"""A Byzantine validator in a real cluster: the honest three finalize, prove it, and ban it.

Validator 3 of four (plus a follower) runs `tools/byzantine.py` (through
`Cluster(wrap=...)`) with some of its modes: equivocation, invalid proposals,
garbage gossip. The three honest validators must keep finalizing real
registrations submitted over RPC, list the offences at ``GET /v1/evidence``, and
show the Byzantine peer banned and disconnected at ``GET /v1/peers``. Every wait
is bounded.

One cluster serves the module (starting five nodes is most of the cost on two
cores). Each test restarts validator 3 with its modes and a fresh p2p identity
(the last one is banned), and looks only at offences above the height it
started at and at the new peer.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from chain.records import Record
from ledgerdns.api.client import NodeUnreachable, RpcError
from ledgerdns.p2p.peers import BAN_THRESHOLD
from tests.integration.conftest import FAST, chain_time, eventually
from tools.devchain import dev_key, register_tx
from tools.localnet import Cluster, ClusterNode

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BYZANTINE = 3
HONEST = (0, 1, 2)
FOLLOWER = 4
FINALIZE_S = 15.0  # a write may wait out the Byzantine proposer's round (1 s) and more
OFFENCES_S = 40.0  # until every honest node has recorded everything and banned the peer
AFTER_BAN_WRITES = 2  # registrations finalized with the Byzantine node cut off


@dataclass
class Byzantine:
    """The modes validator 3 runs with; read each time the cluster (re)starts it."""

    modes: str = "equivocate,invalid,garbage"

    def wrap(self, node: ClusterNode, cmd: list[str]) -> list[str]:
        if node.index != BYZANTINE:
            return cmd
        assert cmd[1:4] == ["-m", "ledgerdns", "node"], cmd
        return [sys.executable, "tools/byzantine.py", "--mode", self.modes, "--seed", "7", *cmd[4:]]


@dataclass
class Writer:
    """Registers fresh names through the honest nodes in turn, each waited on until final."""

    cluster: Cluster
    count: int = 0
    heights: list[int] = field(default_factory=list)

    def write(self) -> int:
        via = self.cluster.nodes[HONEST[self.count % len(HONEST)]].rpc
        assert self.cluster.genesis is not None
        self.count += 1
        domain = f"byz{self.count}-{time.monotonic_ns()}.p2p"
        record = Record.from_text("@ 300 A 10.0.0.7", origin=domain)
        tx = register_tx(self.cluster.genesis, dev_key("owner", 70), domain, (record,),
                         valid_until=chain_time(via) + 3600)  # fmt: skip
        result = via.submit(tx, wait=FINALIZE_S)
        assert result["status"] == "finalized", (domain, result)
        self.heights.append(int(result["height"]))
        return self.heights[-1]


@pytest.fixture(scope="module")
def byzantine() -> Byzantine:
    return Byzantine()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, byzantine: Byzantine) -> Iterator[Cluster]:
    """Four validators (3 honest, validator 3 Byzantine) and a follower, all READY."""
    with Cluster(tmp_path_factory.mktemp("byz"), validators=4, followers=1, consensus=FAST,
                 wrap=byzantine.wrap) as net:  # fmt: skip
        net.start()
        net.wait_peers(2, nodes=list(HONEST), timeout=30)
        yield net


def offences_seen(
    cluster: Cluster, since: int, nodes: tuple[int, ...] = HONEST
) -> dict[int, dict[str, Any]]:
    """What each node shows about validator 3 above height `since`, and about its current peer."""
    byz_peer = cluster.nodes[BYZANTINE].peer_id
    seen: dict[int, dict[str, Any]] = {}
    for i in nodes:
        client = cluster.nodes[i].rpc
        doc = client._get("/v1/evidence")
        mine = lambda e: e["validator"] == "validator-3" and e["height"] > since  # noqa: E731
        seen[i] = {
            "equivocations": [e for e in doc["evidence"] if mine(e)],
            "invalid": [p for p in doc.get("invalid_proposals", []) if mine(p)],
            "peer": next((p for p in client.peers() if p["peer_id"] == byz_peer), None),
        }
    return seen


def complete(seen: dict[int, dict[str, Any]], modes: set[str]) -> bool:
    for view in seen.values():
        peer = view["peer"]
        if peer is None or not peer.get("banned") or peer["connected"]:
            return False
        if "equivocate" in modes and not view["equivocations"]:
            return False
        if "invalid" in modes and not view["invalid"]:
            return False
    return True


def run_phase(cluster: Cluster, byzantine: Byzantine, modes: str) -> dict[str, Any]:
    """Validator 3 misbehaves in `modes` until every honest node proved it and banned its peer."""
    chosen = set(modes.split(","))
    since = max(int(cluster.status(i)["height"]) for i in HONEST)
    if byzantine.modes != modes or not cluster.nodes[BYZANTINE].running:
        byzantine.modes = modes
        if cluster.nodes[BYZANTINE].running:
            cluster.stop([BYZANTINE])
        # A new identity (the old peer id is banned) on new ports (peers still try the old
        # identity at the old address; the library refuses a dial to the wrong peer id).
        (cluster.nodes[BYZANTINE].data_dir / "node.key").unlink()
        cluster.nodes[BYZANTINE].ready = {}
        cluster.start_node(BYZANTINE)
    started = time.monotonic()
    writer = Writer(cluster)
    deadline = started + OFFENCES_S
    seen: dict[int, dict[str, Any]] = {}
    while True:
        writer.write()
        try:
            seen = offences_seen(cluster, since)
        except (NodeUnreachable, RpcError):
            seen = {}
        if seen and complete(seen, chosen):
            break
        if time.monotonic() > deadline:
            pytest.fail(
                f"modes {modes}: not every honest node proved and banned validator 3 within "
                f"{OFFENCES_S:g} s (heights {writer.heights}); last seen: {seen}\n"
                + cluster.nodes[0].stderr_tail()
            )
    banned_after = time.monotonic() - started
    height_at_ban = writer.heights[-1]
    for _ in range(AFTER_BAN_WRITES):  # the honest three go on without it
        writer.write()
    final = cluster.wait_height(writer.heights[-1], nodes=list(HONEST), timeout=FINALIZE_S)
    common = min(final.values())
    hashes = {cluster.nodes[i].rpc.block(common)["hash"] for i in HONEST}
    assert len(hashes) == 1, f"honest nodes disagree at height {common}: {hashes}"
    # The banned peer keeps redialling; each connection is dropped as soon as it is made,
    # so a sample may catch one open: look again (bounded) for one without.
    seen = eventually(
        lambda: (v := offences_seen(cluster, since)) and complete(v, chosen) and v,
        10,
        "every honest node showing validator 3's peer banned and disconnected",
    )
    result = {
        "modes": modes, "since": since, "seen": seen,
        "banned_after_s": round(banned_after, 1), "height_at_ban": height_at_ban,
        "final_heights": final, "writes": writer.count,
    }  # fmt: skip
    check(result)
    return result


def check(result: dict[str, Any]) -> None:
    modes = set(result["modes"].split(","))
    for i, view in result["seen"].items():
        peer = view["peer"]
        assert peer is not None, f"node {i} does not list the Byzantine peer"
        assert peer["penalty"] >= BAN_THRESHOLD and peer["banned"] and not peer["connected"], (
            i,
            peer,
        )
        if "equivocate" in modes:
            ev = view["equivocations"][0]
            assert ev["first"]["block_hash"] != ev["second"]["block_hash"], ev
        else:
            assert view["equivocations"] == [], (i, view["equivocations"])
        if "invalid" in modes:
            bad = view["invalid"][0]
            assert bad["reason"].split(":")[0] in {"bad-state-root", "bad-prev-block"}, bad
            assert bad["height"] > result["since"] and bad["hex"], bad
        else:
            assert view["invalid"] == [], (i, view["invalid"])
    print(  # the figures for the report (pytest -s)
        f"\nbyzantine modes={result['modes']} banned_after_s={result['banned_after_s']} "
        f"heights: from {result['since']}, at ban {result['height_at_ban']}, "
        f"final {result['final_heights']} writes={result['writes']}"
    )


def test_all_misbehaviours_at_once(cluster: Cluster, byzantine: Byzantine) -> None:
    run_phase(cluster, byzantine, "equivocate,invalid,garbage")
    # Votes travel over validator links while a quorum of validators is linked (issue 20):
    # a follower sees few or none, only finalized blocks with their certificates, so the
    # proofs are the validators' (checked above). The follower holds the honest chain.
    honest = int(cluster.nodes[HONEST[0]].rpc.status()["height"])
    cluster.wait_height(honest, nodes=[FOLLOWER], timeout=FINALIZE_S)
    hashes = {cluster.nodes[i].rpc.block(honest)["hash"] for i in (*HONEST, FOLLOWER)}
    assert len(hashes) == 1, f"the follower and the honest validators differ at {honest}: {hashes}"


@pytest.mark.parametrize("modes", ["equivocate", "invalid", "garbage"])
def test_one_misbehaviour(cluster: Cluster, byzantine: Byzantine, modes: str) -> None:
    run_phase(cluster, byzantine, modes)
