"""A real network of five node processes: what users and operators would notice.

One 4-validator + 1-follower cluster serves the whole module (see conftest).
The tests that stop or kill nodes restart them, except the last one, which
takes the network down validator by validator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from chain.crypto import PrivateKey
from chain.genesis import Genesis
from chain.records import Record
from chain.tx import ZERO_HASH, Op, Transaction, TxBody
from ledgerdns.api.client import RpcClient, RpcError
from tests.integration.conftest import chain_time, dns_a, eventually, update_tx, wait_dns
from tools.devchain import dev_key, register_tx
from tools.localnet import Cluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FINALIZE_S = 20.0  # a write with one validator down may sit out a few 1-2 s rounds


def _genesis(cluster: Cluster) -> Genesis:
    assert cluster.genesis is not None
    return cluster.genesis


def _register(cluster: Cluster, owner: PrivateKey, domain: str, address: str, via: int = 0) -> Transaction:
    client = cluster.nodes[via].rpc
    record = Record.from_text(f"@ 300 A {address}", origin=domain)
    tx = register_tx(_genesis(cluster), owner, domain, (record,), valid_until=chain_time(client) + 3600)
    result = client.submit(tx, wait=FINALIZE_S)
    assert result["status"] == "finalized", result
    return tx


def _wallet(wallet_dir: Path, node_dir: Path, *args: str) -> str:
    env = {**os.environ, "LEDGERDNS_PASSPHRASE": "integration test passphrase"}
    cmd = [sys.executable, "-m", "ledgerdns", "wallet", "--wallet-dir", str(wallet_dir),
           "--node", str(node_dir), *args]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_name_registered_through_the_wallet_is_answered_by_every_node(
    network: Cluster, tmp_path: Path
) -> None:
    wallet = tmp_path / "wallet"
    _wallet(wallet, network.nodes[0].data_dir, "new")
    _wallet(wallet, network.nodes[0].data_dir, "register", "alice.p2p", "--record", "@ 300 A 10.0.0.1")

    wait_dns(network.nodes, "alice.p2p", {"10.0.0.1"}, timeout=FINALIZE_S)
    assert len(network.nodes) == 5


def test_conflicting_updates_resolve_to_one_winner_everywhere(network: Cluster) -> None:
    owner = dev_key("owner", 11)
    registration = _register(network, owner, "fork.p2p", "10.0.0.1")
    chain_id = _genesis(network).chain_id
    a = update_tx(network.nodes[1].rpc, chain_id, owner, "fork.p2p", "@ 300 A 10.0.0.2",
                  seq=1, prev=registration.txid)  # fmt: skip
    b = update_tx(network.nodes[2].rpc, chain_id, owner, "fork.p2p", "@ 300 A 10.0.0.3",
                  seq=1, prev=registration.txid)  # fmt: skip

    def submit(i: int, tx: Transaction) -> str:
        try:
            return str(network.nodes[i].rpc.submit(tx)["status"])
        except RpcError as exc:  # the other one got there first: a conflict, not a failure
            assert exc.status == 409, exc
            return exc.code

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(submit, (1, 2), (a, b)))
    assert "pending" in outcomes, outcomes

    def heads() -> set[str]:
        states = [n.rpc.domain("fork.p2p") for n in network.nodes]
        if any(s is None or s["seq"] != 1 for s in states):
            return set()
        return {str(s["head"]) for s in states if s is not None}

    agreed = eventually(heads, FINALIZE_S, "every node at fork.p2p seq 1")
    assert len(agreed) == 1
    winner, loser = (a, b) if agreed == {a.txid.hex()} else (b, a)
    assert agreed == {winner.txid.hex()}
    expected = {winner.body.records[0].to_text("fork.p2p").split()[-1]}
    wait_dns(network.nodes, "fork.p2p", expected, timeout=5)
    for node in network.nodes:
        def gone(client: RpcClient = node.rpc) -> bool:
            try:
                client.tx(loser.txid.hex())
            except RpcError as exc:
                return exc.status == 404
            return False

        eventually(gone, 10, f"node {node.index} forgetting the losing update")


def _raw_submit(client: RpcClient, token_dir: Path, tx_hex: str) -> httpx.Response:
    token = (token_dir / "rpc.token").read_text().strip()
    return httpx.post(
        f"{client.url}/v1/txs", json={"tx": tx_hex}, timeout=10, trust_env=False,
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip


def test_unsigned_wrongly_signed_and_malformed_updates_are_refused(network: Cluster) -> None:
    genesis = _genesis(network)
    owner, other = dev_key("owner", 21), dev_key("owner", 22)
    client = network.nodes[1].rpc
    until = chain_time(client) + 3600

    def body(domain: str) -> TxBody:
        record = Record.from_text("@ 300 A 10.6.6.6", origin=domain)
        return TxBody(chain_id=genesis.chain_id, domain=domain, seq=0, prev=ZERO_HASH, op=Op.REGISTER,
                      records=(record,), owner=owner.public_key, valid_until=until)  # fmt: skip

    unsigned_body = body("unsigned.p2p")
    unsigned = Transaction(body=unsigned_body, body_bytes=unsigned_body.to_bytes(), signature=bytes(64))
    forged = Transaction.sign(body("forged.p2p"), other, genesis.hash())
    for tx in (unsigned, forged):
        with pytest.raises(RpcError) as refused:
            client.submit(tx, wait=2)
        assert (refused.value.status, refused.value.code) == (400, "bad-signature"), refused.value
        assert refused.value.message

    good = register_tx(genesis, owner, "malformed.p2p", valid_until=until)
    for garbage in (good.to_bytes()[:-7].hex(), "00" * 40, good.to_bytes().hex() + "00"):
        response = _raw_submit(client, network.nodes[1].data_dir, garbage)
        assert response.status_code == 400, response.text
        assert response.json()["error"] in ("malformed", "non-canonical"), response.text

    # A valid write after them: once every node has it, none holds the refused ones.
    marker = _register(network, owner, "marker.p2p", "10.0.0.9", via=1)
    height = int(network.nodes[1].rpc.tx(marker.txid.hex())["height"])
    network.wait_height(height, timeout=FINALIZE_S)
    for node in network.nodes:
        for name in ("unsigned.p2p", "forged.p2p", "malformed.p2p"):
            assert node.rpc.domain(name) is None, (node.index, name)
            assert dns_a(node, name) == set()
        for tx in (unsigned, forged):
            with pytest.raises(RpcError) as missing:
                node.rpc.tx(tx.txid.hex())
            assert missing.value.status == 404


def test_a_node_started_after_200_updates_catches_up_and_answers_them(network: Cluster) -> None:
    genesis = _genesis(network)
    owner = dev_key("owner", 31)
    names = [f"bulk{i}.p2p" for i in range(100)]
    validators = [n for n in network.nodes if n.validator]
    until = chain_time(network.nodes[0].rpc) + 3600
    registrations = [
        register_tx(genesis, owner, name, (Record.from_text(f"@ 300 A 10.1.0.{i}", origin=name),),
                    valid_until=until)  # fmt: skip
        for i, name in enumerate(names)
    ]
    updates = [
        Transaction.sign(
            TxBody(chain_id=genesis.chain_id, domain=name, seq=1, prev=reg.txid, op=Op.UPDATE,
                   records=(Record.from_text(f"@ 300 A 10.2.0.{i}", origin=name),),
                   owner=owner.public_key, valid_until=until),  # fmt: skip
            owner,
            genesis.hash(),
        )
        for i, (name, reg) in enumerate(zip(names, registrations, strict=True))
    ]
    # All at once, each name's registration and update through the same validator (its
    # mempool queues the update behind the registration), one thread per validator.
    def send(j: int) -> None:
        with RpcClient.for_node(validators[j].data_dir) as client:
            for reg, upd in list(zip(registrations, updates, strict=True))[j :: len(validators)]:
                client.submit(reg)
                client.submit(upd)
            for upd in updates[j :: len(validators)]:  # seq 1 final implies seq 0 final
                assert client.tx(upd.txid.hex(), wait=30)["status"] == "finalized"

    with ThreadPoolExecutor(len(validators)) as pool:
        list(pool.map(send, range(len(validators))))
    head = int(network.nodes[0].rpc.status()["height"])

    started = time.monotonic()
    late = network.add_follower()
    try:
        network.wait_height(head, nodes=[late.index], timeout=30)
        caught_up = time.monotonic() - started
        for i, name in enumerate(names):
            assert dns_a(late, name) == {f"10.2.0.{i}"}, name
        assert late.rpc.block(head)["hash"] == network.nodes[0].rpc.block(head)["hash"]
    finally:
        network.stop([late.index])
    print(f"late follower: {head} blocks in {caught_up:.1f} s after start")


class _Load:
    """Registers fresh names through some nodes until stopped; remembers what finalized."""

    def __init__(self, cluster: Cluster, via: list[int]) -> None:
        self.cluster, self.via = cluster, via
        self.owner = dev_key("owner", 41)
        self.submitted: list[Transaction] = []
        self.stop = threading.Event()
        self.errors: list[Exception] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        genesis = _genesis(self.cluster)
        # Own clients: httpx clients are not shared between threads here.
        clients = [RpcClient.for_node(self.cluster.nodes[i].data_dir) for i in self.via]
        try:
            until = chain_time(clients[0]) + 3600
            n = 0
            while not self.stop.is_set():
                tx = register_tx(genesis, self.owner, f"load{n}.p2p", valid_until=until)
                try:
                    clients[n % len(clients)].submit(tx)
                    self.submitted.append(tx)
                except RpcError as exc:
                    if exc.status != 503:  # busy is fine under load
                        self.errors.append(exc)
                n += 1
                time.sleep(0.01)
        except Exception as exc:  # reported by the test, not lost in the thread
            self.errors.append(exc)
        finally:
            for client in clients:
                client.close()

    def __enter__(self) -> _Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_a_validator_killed_under_load_restarts_without_losing_a_finalized_block(
    network: Cluster,
) -> None:
    victim = 3
    with _Load(network, via=[0, 1]) as load:
        start = int(network.status(0)["height"])
        network.wait_height(start + 3, nodes=[victim], timeout=FINALIZE_S)
        before = int(network.status(victim)["height"])
        assert network.kill(victim, signal.SIGKILL) == -signal.SIGKILL
        time.sleep(1.0)  # the other three keep finalizing meanwhile
    assert not load.errors, load.errors
    assert load.submitted

    network.restart(victim)
    assert int(network.status(victim)["height"]) >= before  # nothing finalized was lost
    last = load.submitted[-1]
    height = int(network.nodes[0].rpc.tx(last.txid.hex(), wait=FINALIZE_S)["height"])
    network.wait_height(height, nodes=[0, victim], timeout=30)
    here, there = network.nodes[victim].rpc, network.nodes[0].rpc
    for h in range(1, height + 1):
        assert here.block(h)["hash"] == there.block(h)["hash"], f"block {h} differs"
    for tx in load.submitted[:: max(1, len(load.submitted) // 20)]:
        found = here.tx(tx.txid.hex(), wait=5)
        assert found["status"] == "finalized", found


def _write(cluster: Cluster, owner: PrivateKey, domain: str, via: int = 0) -> Transaction:
    client = cluster.nodes[via].rpc
    record = Record.from_text("@ 300 A 10.9.9.9", origin=domain)
    tx = register_tx(_genesis(cluster), owner, domain, (record,), valid_until=chain_time(client) + 3600)
    client.submit(tx)
    return tx


def test_writes_need_three_of_four_validators_and_resume_when_one_returns(network: Cluster) -> None:
    """Leaves validator 3 stopped (the next test takes the rest down)."""
    owner = dev_key("owner", 51)
    network.stop([3])
    three = _write(network, owner, "three.p2p")
    assert network.nodes[0].rpc.tx(three.txid.hex(), wait=FINALIZE_S)["status"] == "finalized"

    network.stop([2])
    stalled = _write(network, owner, "stalled.p2p")
    time.sleep(3.0)
    assert network.nodes[0].rpc.tx(stalled.txid.hex())["status"] == "pending"

    network.start_node(2)  # three of four again: the waiting write goes through
    assert network.nodes[0].rpc.tx(stalled.txid.hex(), wait=30)["status"] == "finalized"
    follower = next(n for n in network.nodes if not n.validator and n.running)
    wait_dns([network.nodes[2], follower], "stalled.p2p", {"10.9.9.9"}, timeout=FINALIZE_S)


def _some_apex_a(client: RpcClient) -> tuple[str, set[str]]:
    """A finalized name with apex A records, and those addresses (empty if none)."""
    for domain in client.domains():
        addresses = {r.split()[-1] for r in domain["records"] if r.startswith("@ ") and " A " in r}
        if addresses:
            return str(domain["domain"]), addresses
    return "", set()


def test_reads_are_answered_by_every_survivor_down_to_the_last_node(network: Cluster) -> None:
    """Runs last: stops the validators one at a time, leaving only the follower."""
    live = [n.index for n in network.running_nodes() if n.validator]
    name, expected = _some_apex_a(network.nodes[live[0]].rpc)
    if not expected:  # a fresh network (this test run alone): write one first
        _register(network, dev_key("owner", 61), "reads.p2p", "10.0.0.7", via=live[0])
        name, expected = "reads.p2p", {"10.0.0.7"}
    follower = next(n for n in network.nodes if not n.validator and n.running)
    network.wait_height(int(network.status(live[0])["height"]), timeout=FINALIZE_S)
    for victim in reversed(live):
        network.stop([victim])
        wait_dns(network.running_nodes(), name, expected, timeout=5)
    assert network.running_nodes() == [follower]
