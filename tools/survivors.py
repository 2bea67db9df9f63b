"""Nodes lost one by one: every survivor still answers, down to the last node (the seed paper's first experiment).

A local 4 + 1 network (real `ledgerdns node` processes on 127.0.0.1) registers
`--names` names, each with its own A record, and every node is checked to hold
them all. Then, step by step, one node is stopped (validators first, newest to
oldest; the follower is left last), and at each step, with every node still up:

- **reads**: every survivor is asked every name over UDP DNS; an answer is right
  only with the name's own address (`wrong` counts the others, `timeouts` the
  unanswered), with the latency of each (p50, p99);
- **writes**: one new registration is submitted to a surviving node and waited
  for (`--write-wait` s): it is final while a quorum of validators (3 of 4) is
  up, and must not be once fewer are (the survivors cannot finalize, and they
  must not pretend to).

Progress goes to stderr; stdout ends with one JSON line: ``steps`` (per step:
``nodes_up``, ``validators_up``, ``queries``, ``wrong``, ``timeouts``,
``p50_ms``, ``p99_ms``, ``write_finalized``, ``write_expected``), ``names``,
``last_node_answers`` (the follower alone answered every name right) and
``pass`` (no wrong answer or timeout at any step, and every write finalized
exactly when a quorum was up). Exit status 0 on pass.

    python tools/survivors.py --quick     # 200 names, under 2 minutes
    python tools/survivors.py             # 2,000 names
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dns.message
import dns.rdatatype
from rich.console import Console

from chain.crypto import PrivateKey
from chain.genesis import Genesis
from ledgerdns.api.client import NodeUnreachable, RpcError
from tools.bench_net import registration, wait_settled
from tools.localnet import Cluster, ClusterNode

console = Console(stderr=True, highlight=False)
DNS_TIMEOUT_S = 1.0
BATCH = 200


def address(i: int) -> str:
    """The A record of name `i` (distinct for every name)."""
    return f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"


def read_everything(node: ClusterNode, names: list[str]) -> tuple[int, int, list[float]]:
    """Ask `node` every name; (wrong answers, timeouts, latencies in ms of the answered)."""
    wrong = timeouts = 0
    latencies: list[float] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(DNS_TIMEOUT_S)
        for i, name in enumerate(names):
            query = dns.message.make_query(name, dns.rdatatype.A)
            start = time.perf_counter()
            sock.sendto(query.to_wire(), node.dns)
            try:
                while True:  # skip a late reply to an earlier, timed-out query
                    reply = dns.message.from_wire(sock.recv(4096))
                    if reply.id == query.id:
                        break
            except TimeoutError:
                timeouts += 1
                continue
            latencies.append((time.perf_counter() - start) * 1000)
            got = {r.address for rrset in reply.answer for r in rrset if rrset.rdtype == dns.rdatatype.A}
            wrong += got != {address(i)}
    return wrong, timeouts, latencies


def try_write(cluster: Cluster, genesis: Genesis, owner: PrivateKey, step: int, wait_s: float) -> bool:
    """Submit one registration to a surviving node; whether it is final within `wait_s`."""
    node = cluster.running_nodes()[0]
    tx = registration(genesis, owner, f"write{step}-{int(time.time())}.p2p", "10.255.0.1")
    try:
        return node.rpc.submit(tx, wait=wait_s).get("status") == "finalized"
    except (NodeUnreachable, RpcError) as exc:
        console.print(f"  write refused by node {node.index}: {exc}")
        return False


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


def run(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    owner = PrivateKey.generate(b"survivors owner")
    names = [f"survive{i}.p2p" for i in range(args.names)]
    steps: list[dict[str, Any]] = []
    with Cluster(base, validators=4, followers=1) as cluster:
        cluster.start()
        cluster.wait_peers(4, timeout=60)
        genesis = Genesis.from_json(cluster.genesis_path.read_text())
        quorum = genesis.params.validators.quorum
        txs = [registration(genesis, owner, name, address(i)) for i, name in enumerate(names)]
        console.print(f"registering {len(txs)} names")
        for start in range(0, len(txs), BATCH):
            results = cluster.nodes[start // BATCH % 4].rpc.submit_batch(txs[start : start + BATCH])
            refused = [r for r in results if r["status"] == "refused"]
            if refused:
                raise SystemExit(f"{len(refused)} registrations refused: {refused[0]}")
        wait_settled(cluster, timeout=120)
        order = [n.index for n in cluster.nodes if n.validator][::-1] + [
            n.index for n in cluster.nodes if not n.validator
        ]
        for step, victim in enumerate([None, *order[:-1]]):
            if victim is not None:
                cluster.stop([victim])
            alive = cluster.running_nodes()
            validators_up = sum(1 for n in alive if n.validator)
            wrong = timeouts = 0
            latencies: list[float] = []
            for node in alive:
                w, t, lat = read_everything(node, names)
                wrong, timeouts = wrong + w, timeouts + t
                latencies += lat
            expected = validators_up >= quorum
            finalized = try_write(cluster, genesis, owner, step, args.write_wait)
            row = {
                "nodes_up": len(alive), "validators_up": validators_up,
                "queries": len(names) * len(alive), "wrong": wrong, "timeouts": timeouts,
                "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
                "write_finalized": finalized, "write_expected": expected,
            }  # fmt: skip
            steps.append(row)
            console.print(
                f"{len(alive)} nodes up ({validators_up} validators): {row['queries']} reads, "
                f"{wrong} wrong, {timeouts} timeouts, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms; "
                f"write {'final' if finalized else 'not final'} (expected {'final' if expected else 'not'})"
            )
    last = steps[-1]
    ok = all(s["wrong"] == 0 and s["timeouts"] == 0 and s["write_finalized"] == s["write_expected"]
             for s in steps)  # fmt: skip
    return {
        "steps": steps,
        "names": len(names),
        "last_node_answers": last["nodes_up"] == 1 and last["wrong"] == 0 and last["timeouts"] == 0,
        "pass": ok,
        "quick": args.quick,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 names (under 2 minutes)")
    parser.add_argument("--names", type=int, help="names registered and read at every step (quick 200, full 2000)")
    parser.add_argument("--write-wait", type=float, default=10.0, metavar="SECONDS",
                        help="how long a step's write may take to be final (default %(default)g)")  # fmt: skip
    parser.add_argument("--dir", help="cluster directory (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    args.names = args.names or (200 if args.quick else 2000)
    if not 1 <= args.names <= 100_000:
        parser.error("--names must be between 1 and 100,000")
    if args.dir:
        result = run(args, Path(args.dir))
    else:
        with tempfile.TemporaryDirectory(prefix="survivors-") as tmp:
            result = run(args, Path(tmp))
    print(json.dumps(result), flush=True)
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
