"""A node bootstrapped into another network says so: once per peer, on both sides.

Three real node processes: devnet A; devnet B (another genesis, the same chain
id) bootstrapped to A; and E, a follower of the 4-validator localnet (another
chain id), bootstrapped to A too. The status exchange tells A and B apart (its
genesis hash); identify's protocol list tells E's chain from A's. Each node
names each foreign peer in one warning; one side of each pair bans the other after a
grace period.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.integration.test_node import ROOT, Running

pytestmark = pytest.mark.integration

WARNING = re.compile(r"WARNING ledgerdns\.sync: peer (\S+) is on another network: (.*)")


def warnings(node: Running) -> list[tuple[str, str]]:
    log = (node.data_dir.parent / f"{node.data_dir.name}.log").read_text()
    return [(m.group(1), m.group(2)) for m in WARNING.finditer(log)]


def banned(node: Running, peer: str) -> bool:
    log = (node.data_dir.parent / f"{node.data_dir.name}.log").read_text()
    return f"banned peer={peer} " in log


def test_peers_of_another_network_are_named_once(tmp_path: Path) -> None:
    a = Running(tmp_path / "a")
    nodes = [a]
    try:
        bootstrap = ["--bootstrap", a.ready["p2p"][0]]
        b = Running(tmp_path / "b", *bootstrap)
        nodes.append(b)
        e = Running(
            tmp_path / "e", "--genesis", str(ROOT / "genesis" / "localnet-4.json"), *bootstrap
        )
        nodes.append(e)
        ids = {node.ready["peer_id"]: name for node, name in ((a, "a"), (b, "b"), (e, "e"))}

        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            done = (
                {ids.get(p) for p, _ in warnings(a)} >= {"b", "e"}
                and "a" in {ids.get(p) for p, _ in warnings(b)}
                and "a" in {ids.get(p) for p, _ in warnings(e)}
                # whichever side meets the other again first bans it (and so disconnects)
                and (banned(a, b.ready["peer_id"]) or banned(b, a.ready["peer_id"]))
                and (banned(a, e.ready["peer_id"]) or banned(e, a.ready["peer_id"]))
            )
            if done:
                break
            time.sleep(0.2)
        seen = {name: warnings(node) for node, name in ((a, "a"), (b, "b"), (e, "e"))}
        states = [(n.data_dir.name, ids.get(p)) for n in nodes for p in ids if banned(n, p)]
        assert done, (seen, states)

        by_peer = {
            (who, ids.get(peer)): text for who, found in seen.items() for peer, text in found
        }
        for who, found in seen.items():  # once per peer, however often it is met
            peers = [peer for peer, _ in found]
            assert len(peers) == len(set(peers)), (who, found)
        genesis = re.compile(r"chain ledgerdns-devnet genesis [0-9a-f]{16} \(ours: chain ")
        assert genesis.match(by_peer["a", "b"]) and genesis.match(by_peer["b", "a"])
        assert by_peer["a", "e"].startswith(
            "chain ledgerdns-localnet-4 (ours: chain ledgerdns-devnet);"
        )
        assert by_peer["e", "a"].startswith(
            "chain ledgerdns-devnet (ours: chain ledgerdns-localnet-4);"
        )
        assert "check --genesis and --bootstrap" in by_peer["b", "a"]
    finally:
        for node in nodes:
            node.close()
