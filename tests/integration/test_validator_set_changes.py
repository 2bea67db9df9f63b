"""The validator set changes on a live 4 + 1 network (issue 15 §1) while names are registered.

Real `ledgerdns node` processes on 127.0.0.1 (`tools.localnet.Cluster`):

1. a fifth validator is added: its node, started with a key genesis does not list,
   follows until the change takes effect and then signs certificates;
2. a genesis validator is removed and its node stopped: the other four go on;
3. another validator's key is rotated and its node restarted with the new key, which
   then signs certificates;
4. the follower, stopped before any of it, starts again and syncs every block (each
   certificate checked against the set of its height), and a light client that trusts
   only the genesis follows the set to the head and verifies a name's proof there;
5. every name registered throughout is answered by every running node.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from chain.crypto import PrivateKey
from chain.genesis import Genesis
from chain.params import ConsensusParams
from chain.quorum import CommitCertificate
from chain.records import Record
from chain.tx import Op, Transaction
from chain.txbuilder import build_validator_tx
from chain.validators import CHANGE_DELAY, ChangeAction, ValidatorChange
from ledgerdns.api.client import NodeUnreachable, RpcClient, RpcError
from ledgerdns.explorer.data import check_proof
from ledgerdns.wallet.link import RpcLink
from ledgerdns.wallet.proofs import Trust, verify_domain
from tests.integration.conftest import chain_time, dns_a, eventually
from tools.devchain import dev_key, register_tx
from tools.localnet import Cluster, ClusterNode

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = ConsensusParams(
    timeout_propose_ms=1000, timeout_prevote_ms=500, timeout_precommit_ms=500,
    timeout_delta_ms=250, heartbeat_ms=0,
)  # fmt: skip
STEP_S = 45.0  # one change: final, scheduled, in force
FOLLOWER = 4


class Registrations:
    """A fresh name every `every` s through the running validators until stopped (≤ 500 names)."""

    def __init__(self, cluster: Cluster, genesis: Genesis, every: float = 0.4) -> None:
        self.cluster, self.genesis, self.every = cluster, genesis, every
        self.owner = dev_key("owner", 31)
        self.accepted: list[tuple[str, str]] = []  # (name, address)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Registrations:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        for i in range(500):
            if self._stop.is_set():
                return
            live = [n for n in self.cluster.nodes if n.validator and n.running and n.ready]
            node = live[i % len(live)]
            name, address = f"vc{i}.p2p", f"10.40.{i // 250}.{i % 250 + 1}"
            record = Record.from_text(f"@ 300 A {address}", origin=name)
            try:
                with RpcClient.for_node(node.data_dir, timeout=3) as client:
                    tx = register_tx(self.genesis, self.owner, name, (record,), valid_until=chain_time(client) + 3600)
                    client.submit(tx)
                self.accepted.append((name, address))
            except (NodeUnreachable, RpcError, OSError):
                pass  # a node stopping or restarting: the next name goes elsewhere
            self._stop.wait(self.every)


def final_height(cluster: Cluster, tx: Transaction) -> int:
    """Submit `tx` to a running validator (again while it is not final); its block height."""

    def check() -> int | None:
        node = next(n for n in cluster.nodes if n.validator and n.running and n.ready)
        found = node.rpc.tx(tx.txid.hex())
        if found.get("status") == "finalized":
            return int(found["height"])
        return None

    node = next(n for n in cluster.nodes if n.validator and n.running and n.ready)
    node.rpc.submit(tx)
    return eventually(check, STEP_S, f"transaction {tx.txid.hex()[:16]} final")


def change_set(
    cluster: Cluster, change: ValidatorChange, proposer: PrivateKey, approvers: list[PrivateKey]
) -> int:
    """Propose `change` and approve it (a quorum with the proposer); the height it takes effect at."""
    genesis = cluster.genesis
    assert genesis is not None
    node = next(n for n in cluster.nodes if n.validator and n.running)
    deadline = chain_time(node.rpc) + 3600

    def signed(op: Op, body: bytes, key: PrivateKey) -> Transaction:
        return build_validator_tx(
            op=op, change=body, key=key, chain_id=genesis.chain_id, genesis_hash=genesis.hash(),
            deadline=deadline,
        )  # fmt: skip

    proposal = signed(Op.VALIDATOR_PROPOSE, change.to_bytes(), proposer)
    final_height(cluster, proposal)
    approved = max(final_height(cluster, signed(Op.VALIDATOR_APPROVE, proposal.txid, k)) for k in approvers)
    return approved + CHANGE_DELAY


def runs_as(node: ClusterNode) -> str | None:
    return node.rpc.status().get("validator")


def signed_after(cluster: Cluster, index: int, start: int) -> int | None:
    """A height from `start` on whose certificate holds the signature of validator `index`."""
    node = next(n for n in cluster.nodes if n.running and n.ready and n.index != FOLLOWER)
    head = int(node.rpc.status()["height"])
    for height in range(start, head + 1):
        cert = CommitCertificate.from_bytes(bytes.fromhex(node.rpc.block(height)["certificate"]["hex"]))
        if any(i == index for i, _ in cert.signatures):
            return height
    return None


def test_validators_are_added_removed_and_rotated_while_names_are_registered(tmp_path: Path) -> None:
    with Cluster(tmp_path / "net", validators=4, followers=1, consensus=FAST, start_timeout=60) as cluster:
        cluster.start()
        cluster.wait_peers(2, timeout=30)
        genesis = cluster.genesis
        assert genesis is not None
        keys = [PrivateKey.from_pem((n.data_dir / "validator.pem").read_bytes()) for n in cluster.nodes[:4]]
        cluster.stop([FOLLOWER])  # it sleeps through every change
        with Registrations(cluster, genesis) as load:
            # 1. A fifth validator: its node follows until its key is in the set, then signs.
            added = PrivateKey.generate(os.urandom(32))
            newcomer = cluster.add_node(added)
            assert runs_as(newcomer) is None
            add = ValidatorChange(action=ChangeAction.ADD, name="validator-4", key=bytes(added.public_key))
            start = change_set(cluster, add, keys[0], keys[1:3])
            eventually(lambda: runs_as(newcomer) == "validator-4", STEP_S, "the added node a validator")
            eventually(lambda: signed_after(cluster, 4, start), STEP_S, "the added validator signing")
            # 2. Remove validator-3 (a quorum of five is four) and stop its node.
            remove = ValidatorChange(action=ChangeAction.REMOVE, name="validator-3")
            start = change_set(cluster, remove, keys[0], [keys[1], keys[2], added])
            cluster.wait_height(start, nodes=[0], timeout=STEP_S)
            cluster.stop([3])
            # 3. Rotate validator-2's key; its node restarts with the new one (v0, v1, v4 keep
            # the quorum of four meanwhile), which signs from the change's height on.
            fresh = PrivateKey.generate(os.urandom(32))
            rotate = ValidatorChange(action=ChangeAction.ROTATE, name="validator-2", key=bytes(fresh.public_key))
            start = change_set(cluster, rotate, keys[2], [keys[0], keys[1]])
            cluster.use_key(2, fresh)
            cluster.restart(2)
            eventually(lambda: runs_as(cluster.nodes[2]) == "validator-2", STEP_S, "the rotated node a validator")
            eventually(lambda: signed_after(cluster, 2, start), STEP_S, "the rotated key signing")
            # a few more names under the final set (20 in all at least: a fast run makes fewer)
            eventually(lambda: len(load.accepted) >= 20, 30, "20 names registered")
            time.sleep(1)
        names = load.accepted
        roster = cluster.nodes[0].rpc.validator_set()
        assert [v["name"] for v in roster["validators"]] == ["validator-0", "validator-1", "validator-2", "validator-4"]
        assert next(v for v in roster["validators"] if v["name"] == "validator-2")["public_key"] == bytes(
            fresh.public_key
        ).hex()
        # 4. The follower wakes up: it syncs every block, each certificate against its set.
        head = int(cluster.nodes[0].rpc.status()["height"])
        cluster.start_node(FOLLOWER)
        cluster.wait_height(head, nodes=[FOLLOWER], timeout=60)
        follower = cluster.nodes[FOLLOWER]
        # No block came while it slept but by sync (each checked against its height's set):
        # its chain is the validators' chain, block for block.
        for height in range(1, head + 1):
            assert follower.rpc.block(height)["hash"] == cluster.nodes[0].rpc.block(height)["hash"], height
        # A light client trusting only the genesis follows the set to the head and checks a proof.
        name = names[-1][0]
        trust = Trust(genesis=genesis, max_age_ms=None, bound_from="test")
        with RpcClient.for_node(follower.data_dir) as client:
            link = RpcLink(client, str(follower.data_dir))
            # what the explorer and scripts use (registered names may still be coming in)
            state = eventually(lambda: client.verified_domain(name, genesis), 30, f"{name} proven on the follower")
            assert state.domain == name
            verdict = verify_domain(link, name, trust, now_ms=time.time_ns() // 1_000_000)
            check = check_proof(client.proof(name), genesis, name, changes=client.set_changes)
            assert check.verified, check
        assert verdict.height >= start and verdict.quorum == 3
        # 5. Every name, on every running node.
        running = [n for n in cluster.nodes if n.running]
        for name, address in names:
            for node in running:
                eventually(
                    lambda n=node, d=name, a=address: dns_a(n, d) == {a},  # type: ignore[misc]
                    20, f"{name} on node {node.index}",
                )  # fmt: skip
