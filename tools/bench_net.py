"""Network benchmark: a local 4 + 1 cluster on loopback, measured from outside.

Phases (each node is a real `ledgerdns node` process):

1. **Update to visible**: one registration at a time is submitted over RPC to a
   node (round robin, no wait) and every node is polled over DNS until it
   answers the new record; the time from submit to the last node answering.
2. **Finalized throughput**: pre-signed registrations are submitted in batches
   to the validators as fast as they accept them; the rate is transactions over
   the time from the first submit until every node holds the last one. Every
   submitted transaction is accounted for: the blocks made during the phase hold
   exactly as many transactions as were submitted, at every node, and the nodes
   agree on the head (issue 17); anything else fails the run.
3. **Catch-up**: a fresh follower joins the finished chain; the rate is the
   chain's transactions over the time from its READY line to reaching the head.
4. **Idle**: with no load, each node's CPU share over a window (the node process
   and its DNS worker processes), and whether any block was made (an idle network
   must grow none).

Ends with one JSON line: visible_p50_ms, visible_p99_ms, finalized_tx_per_s,
catchup_tx_per_s, idle_cpu_pct (the busiest node), plus details.
``--quick`` runs small phases (under 2 minutes here); its 100 visibility samples
make p99 the second-slowest sample (`visible_p99_rank` says which).
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import dns.message
import dns.rdatatype
from rich.console import Console

from chain.crypto import PrivateKey, sha256
from chain.genesis import Genesis
from chain.records import Record
from chain.tx import ZERO_HASH, Op, Transaction, TxBody, TxHash, tx_signing_digest
from tools.localnet import Cluster
from tools.soak_sample import group_pids

console = Console(stderr=True)
TICK = os.sysconf("SC_CLK_TCK")
POLL_S = 0.005  # how often each node is asked whether the update is visible


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def node_cpu_seconds(pid: int) -> float:
    """CPU time of a node and its DNS worker processes (its process group)."""
    total = 0.0
    for member in group_pids(pid):
        try:
            total += cpu_seconds(member)
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
    return total


def registration(genesis: Genesis, owner: PrivateKey, name: str, address: str) -> Transaction:
    body = TxBody(
        chain_id=genesis.chain_id, domain=name, seq=0, prev=ZERO_HASH, op=Op.REGISTER,
        records=(Record.from_text(f"@ 300 A {address}", origin=name),),
        owner=owner.public_key, valid_until=int(time.time()) + 3000,
    )  # fmt: skip
    body_bytes = body.to_bytes()
    digest = tx_signing_digest(genesis.hash(), TxHash(sha256(body_bytes)))
    # libsecp256k1 signing (same bytes as the wallet's ecdsa): 100,000 of them in seconds
    signature = owner.sign_digest_native(digest)
    return Transaction(body=body, body_bytes=body_bytes, signature=signature)


def _query_bytes(name: str) -> bytes:
    return dns.message.make_query(name, dns.rdatatype.A).to_wire()


def answers(sock: socket.socket, addr: tuple[str, int], query: bytes) -> bool:
    """Whether the node at `addr` answers `query` with records (header check only: cheap)."""
    sock.sendto(query, addr)
    try:
        reply = sock.recv(4096)
    except TimeoutError:
        return False
    return len(reply) >= 12 and reply[:2] == query[:2] and reply[3] & 0x0F == 0 and reply[6:8] != b"\0\0"


def measure_visible(cluster: Cluster, genesis: Genesis, owner: PrivateKey, count: int) -> list[float]:
    """Submit-to-visible-everywhere times (ms); each node is asked every `POLL_S`."""
    nodes = cluster.nodes
    socks = {n.index: socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for n in nodes}
    for s in socks.values():
        s.settimeout(1.0)
    out = []
    try:
        for i in range(count):
            name = f"vis{i}-{int(time.time())}.p2p"
            query = _query_bytes(name)
            tx = registration(genesis, owner, name, f"10.1.{i // 250}.{i % 250 + 1}")
            node = nodes[i % len(nodes)]
            start = time.perf_counter()
            node.rpc.submit(tx)
            pending = list(nodes)
            deadline = start + 10
            while pending and time.perf_counter() < deadline:
                pending = [n for n in pending if not answers(socks[n.index], n.dns, query)]
                if pending:
                    time.sleep(POLL_S)
            if pending:
                raise SystemExit(f"{name} not visible at {len(pending)} nodes after 10 s")
            out.append((time.perf_counter() - start) * 1000)
            time.sleep(0.05)
    finally:
        for s in socks.values():
            s.close()
    return out


def measure_throughput(
    cluster: Cluster, genesis: Genesis, owner: PrivateKey, count: int, validators: int
) -> tuple[float, int]:
    console.print(f"signing {count} transactions…")
    txs = [registration(genesis, owner, f"load{i}.p2p", "10.2.0.1") for i in range(count)]
    chunks = [txs[i : i + 200] for i in range(0, len(txs), 200)]
    refused: list[str] = []

    def feed(worker: int) -> None:
        client = cluster.nodes[worker].rpc
        for chunk in chunks[worker::validators]:
            while True:
                results = client.submit_batch(chunk)
                full = [tx for tx, r in zip(chunk, results, strict=True)
                        if r.get("error") in ("mempool-full", "domain-queue-full")]
                refused.extend(r["error"] for r in results
                               if r["status"] == "refused" and r["error"] not in
                               ("mempool-full", "domain-queue-full"))
                if not full:
                    break
                chunk = full
                time.sleep(0.05)

    start_height = min(cluster.status(i)["height"] for i in range(len(cluster.nodes)))
    start = time.perf_counter()
    threads = [threading.Thread(target=feed, args=(w,)) for w in range(validators)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if refused:
        raise SystemExit(f"{len(refused)} transactions refused: {sorted(set(refused))}")
    wait_settled(cluster, timeout=600)  # every node holds every transaction in a block
    elapsed = time.perf_counter() - start
    end_height = min(cluster.status(i)["height"] for i in range(len(cluster.nodes)))
    check_all_in_blocks(cluster, start_height, end_height, count)
    return count / elapsed, end_height - start_height


def check_all_in_blocks(cluster: Cluster, start_height: int, end_height: int, count: int) -> None:
    """Every node's blocks above `start_height` hold exactly the `count` submitted transactions.

    Nothing else is submitted during the phase, and a registration is accepted
    once, so a total of `count` at every node, with one head hash, means every
    submitted transaction was finalized (none expired or dropped from a mempool).
    """
    heads = set()
    for i, node in enumerate(cluster.nodes):
        total, before = 0, end_height + 1
        while before > start_height + 1:
            page = node.rpc.blocks(before=before, limit=100)
            if not page:
                break
            total += sum(b["txs"] for b in page if b["height"] > start_height)
            before = page[-1]["height"]
        heads.add(node.rpc.blocks(before=end_height + 1, limit=1)[0]["hash"])
        if total != count:
            raise SystemExit(f"node {i}: {total} transactions in blocks {start_height + 1}..{end_height}, "
                             f"{count} submitted: {count - total} not finalized")
    if len(heads) != 1:
        raise SystemExit(f"the nodes disagree on block {end_height}: {sorted(heads)}")


def wait_settled(cluster: Cluster, timeout: float) -> None:
    """Until every node has an empty mempool and the same height."""
    deadline = time.perf_counter() + timeout
    while True:
        statuses = [cluster.status(i) for i in range(len(cluster.nodes))]
        if all(s["mempool_txs"] == 0 for s in statuses) and len({s["height"] for s in statuses}) == 1:
            return
        if time.perf_counter() > deadline:
            raise SystemExit(f"the network did not settle: {[(s['height'], s['mempool_txs']) for s in statuses]}")
        time.sleep(0.1)


def measure_catchup(cluster: Cluster) -> tuple[float, int, float]:
    head = cluster.status(0)["height"]
    txs = 0
    before = None
    while True:  # count the chain's transactions from block summaries, 100 at a time
        page = cluster.nodes[0].rpc.blocks(before=before, limit=100)
        if not page:
            break
        txs += sum(b["txs"] for b in page)
        before = page[-1]["height"]
        if before <= 1:
            break
    start = time.perf_counter()
    node = cluster.add_follower()
    ready = time.perf_counter()
    index = cluster.nodes.index(node)
    cluster.wait_height(head, nodes=[index], timeout=600)
    elapsed = time.perf_counter() - ready
    return txs / elapsed, txs, ready - start


def measure_idle(cluster: Cluster, seconds: float) -> tuple[float, int]:
    wait_settled(cluster, timeout=60)
    time.sleep(2)  # let the last commit notices and re-sends pass
    pids = [n.pid for n in cluster.nodes if n.pid is not None]
    heights = [cluster.status(i)["height"] for i in range(len(cluster.nodes))]
    before = [node_cpu_seconds(p) for p in pids]
    time.sleep(seconds)
    after = [node_cpu_seconds(p) for p in pids]
    grown = max(cluster.status(i)["height"] - h for i, h in enumerate(heights))
    return max(100 * (a - b) / seconds for a, b in zip(after, before, strict=True)), grown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small phases (under 2 minutes)")
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--followers", type=int, default=1)
    parser.add_argument("--visible", type=int, help="updates timed for visibility (quick 100, full 300)")
    parser.add_argument("--load", type=int, help="transactions for throughput (quick 3000, full 100000)")
    parser.add_argument("--dir", help="cluster directory (default: a temporary one)")
    args = parser.parse_args(argv)
    visible_n = args.visible or (100 if args.quick else 300)
    load_n = args.load or (3000 if args.quick else 100_000)
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-net-"))
    owner = PrivateKey.generate(b"bench-net owner")
    result: dict[str, object] = {}
    with Cluster(base, validators=args.validators, followers=args.followers) as cluster:
        t0 = time.perf_counter()
        cluster.start()
        cluster.wait_peers(args.validators + args.followers - 1, timeout=60)
        genesis = Genesis.from_json(cluster.genesis_path.read_text())
        console.print(f"cluster up in {time.perf_counter() - t0:.1f} s; timing {visible_n} updates")
        lat = sorted(measure_visible(cluster, genesis, owner, visible_n))
        p99_index = min(len(lat) - 1, round(0.99 * (len(lat) - 1)))
        p99 = lat[p99_index]
        console.print(f"visible p50 {statistics.median(lat):.0f} ms, p99 {p99:.0f} ms; load {load_n}")
        rate, blocks = measure_throughput(cluster, genesis, owner, load_n, args.validators)
        console.print(f"finalized {rate:.0f} tx/s in {blocks} blocks; idle window")
        idle, grown = measure_idle(cluster, 5 if args.quick else 20)
        console.print(f"idle: busiest node {idle:.2f} % of a core, {grown} blocks grown; catch-up")
        catchup, chain_txs, spawn_s = measure_catchup(cluster)
        result = {
            "visible_p50_ms": round(statistics.median(lat), 1),
            "visible_p99_ms": round(p99, 1),
            "finalized_tx_per_s": round(rate, 1),
            "catchup_tx_per_s": round(catchup, 1),
            "idle_cpu_pct": round(idle, 2),
            "idle_blocks_grown": grown,
            "visible_samples": len(lat),
            "visible_p99_rank": f"{len(lat) - p99_index} of {len(lat)} from the slowest",
            "load_txs_in_blocks": load_n,  # checked at every node (check_all_in_blocks)
            "load_txs": load_n,
            "load_blocks": blocks,
            "catchup_txs": chain_txs,
            "follower_start_s": round(spawn_s, 2),
            "nodes": args.validators + args.followers,
            "quick": args.quick,
        }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
