"""State sync (issue 17 §2): a new follower joins a running network from a snapshot.

One cluster: a validator and two followers taking a snapshot every 3 heights. One
follower's snapshot is corrupted on disk (a value byte flipped in its chunk), and it
is the peer the joiner asks first, so the joiner must catch it at that chunk,
penalize it and take the chunk from another peer. Then the joiner follows new blocks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.crypto import PrivateKey
from chain.records import Record
from chain.snapshot import Chunk
from ledgerdns.api.client import RpcError
from tests.integration.conftest import FAST, chain_time, eventually
from tools.devchain import dev_key, register_tx
from tools.localnet import Cluster, ClusterNode

pytestmark = pytest.mark.integration

INTERVAL = 3
OWNER = dev_key("owner", 0)


def _register(cluster: Cluster, owner: PrivateKey, names: list[str]) -> None:
    assert cluster.genesis is not None
    client = cluster.nodes[0].rpc
    for name in names:
        record = Record.from_text("@ 300 A 192.0.2.7", origin=name)
        tx = register_tx(
            cluster.genesis, owner, name, (record,), valid_until=chain_time(client) + 3600
        )
        assert client.submit(tx, wait=20)["status"] == "finalized"


def _snapshot_heights(node: ClusterNode) -> list[int]:
    root = node.data_dir / "snapshots"
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit()) if root.is_dir() else []


def _corrupt(snapshot_dir: Path) -> None:
    """Flip a bit in the last byte of a value in every chunk (each still decodes)."""
    for path in snapshot_dir.glob("chunk-*"):
        chunk = Chunk.from_bytes(path.read_bytes())
        if not chunk.items:
            continue
        ident, value = chunk.items[0]
        items = ((ident, value[:-1] + bytes([value[-1] ^ 1])), *chunk.items[1:])
        path.write_bytes(Chunk(height=chunk.height, index=chunk.index, items=items).to_bytes())


def test_a_follower_joins_by_state_sync_past_a_lying_peer_and_follows(tmp_path: Path) -> None:
    with Cluster(tmp_path, validators=1, followers=2, consensus=FAST) as cluster:
        for node in cluster.nodes:
            node.extra_args = ["--snapshot-interval", str(INTERVAL)]
        cluster.start()
        cluster.wait_peers(1, timeout=30)
        _register(cluster, OWNER, [f"early{i}.p2p" for i in range(INTERVAL)])
        height = cluster.nodes[0].rpc.status()["height"]
        snap = height - height % INTERVAL
        assert snap >= INTERVAL
        for node in cluster.nodes:
            eventually(
                lambda n=node: snap in _snapshot_heights(n),
                30,
                f"snapshot {snap} on node {node.index}",
            )
        # The joiner asks chunk 0 first of the peer whose id sorts first: make that one lie.
        liar = min(cluster.nodes, key=lambda n: n.peer_id)
        _corrupt(liar.data_dir / "snapshots" / str(snap))

        joiner = ClusterNode(index=3, data_dir=tmp_path / "node-3", validator=False)
        joiner.extra_args = ["--state-sync", "--snapshot-interval", "0"]
        cluster.nodes.append(joiner)
        cluster.start_node(3)
        status = joiner.rpc.status()
        assert status["height"] >= snap
        log = joiner.stderr_tail(400)
        assert f"joined at height {snap} (1 bad chunks caught)" in log, log
        assert f"peer {liar.peer_id} served a bad chunk 0" in log, log
        # No block before the snapshot was replayed: the state came whole.
        assert "syncing blocks 1.." not in log
        assert joiner.rpc.domain("early0.p2p")["records"], "a name from before the snapshot"
        assert [b["height"] for b in joiner.rpc.blocks()][-1] == snap  # its first block

        _register(cluster, OWNER, ["later.p2p"])
        target = cluster.nodes[0].rpc.status()["height"]
        cluster.wait_height(target, nodes=[3], timeout=30)
        later = eventually(lambda: joiner.rpc.domain("later.p2p"), 10, "later.p2p on the joiner")
        assert later["records"]


def test_a_pruned_node_serves_proofs_and_snapshots_and_an_archive_still_serves_full_sync(
    tmp_path: Path,
) -> None:
    with Cluster(tmp_path, validators=1, followers=1, consensus=FAST) as cluster:
        cluster.nodes[0].extra_args = ["--snapshot-interval", "0"]
        pruned = cluster.nodes[1]
        pruned.extra_args = ["--snapshot-interval", str(INTERVAL), "--retain-blocks", "2"]
        cluster.start()
        cluster.wait_peers(1, timeout=30)
        _register(cluster, OWNER, [f"n{i}.p2p" for i in range(2 * INTERVAL)])
        head = cluster.nodes[0].rpc.status()["height"]
        cluster.wait_height(head, nodes=[1], timeout=30)
        snap = head - head % INTERVAL

        def gone() -> bool:
            try:
                pruned.rpc.block(1)
            except RpcError as exc:
                return "keeps blocks from height" in str(exc)
            return False

        eventually(gone, 20, "block 1 pruned on the pruned node")
        assert pruned.rpc.block(head)["height"] == head
        assert min(b["height"] for b in pruned.rpc.blocks(limit=100)) > 1
        assert cluster.genesis is not None
        assert pruned.rpc.verified_domain("n0.p2p", cluster.genesis) is not None  # proofs
        eventually(
            lambda: snap in _snapshot_heights(pruned), 30, f"snapshot {snap} on the pruned node"
        )

        # A new node without state sync: the pruned peer refuses it old blocks, the
        # archive (the validator) serves them all.
        replayer = ClusterNode(index=2, data_dir=tmp_path / "node-2", validator=False)
        replayer.extra_args = ["--snapshot-interval", "0"]
        cluster.nodes.append(replayer)
        cluster.start_node(2)
        cluster.wait_height(head, nodes=[2], timeout=30)
        assert replayer.rpc.block(1)["height"] == 1

        # With the archive gone, a node joins by state sync from the pruned one's snapshot.
        cluster.stop([0, 2])
        joiner = ClusterNode(index=3, data_dir=tmp_path / "node-3", validator=False)
        joiner.extra_args = ["--state-sync", "--snapshot-interval", "0"]
        cluster.nodes.append(joiner)
        cluster.start_node(3)
        log = joiner.stderr_tail(400)
        assert f"joined at height {snap} (0 bad chunks caught)" in log, log
        assert joiner.rpc.domain("n0.p2p")["records"]
