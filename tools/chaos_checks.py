"""The crash loop's end checks: convergence, chains compared across nodes, finalized updates looked up."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape

from ledgerdns.api.client import NodeUnreachable, RpcClient, RpcError
from tools.chaos_load import Finalized
from tools.localnet import Cluster, ClusterNode

console = Console(stderr=True, highlight=False)
T = TypeVar("T")
SETTLE_S = 1.5  # every node on one head this long counts as converged
SLOW_S = 3.0  # a convergence slower than this prints how the nodes got there


def node_height(cluster: Cluster, i: int) -> int | None:
    try:
        return int(cluster.status(i)["height"])
    except (NodeUnreachable, RpcError):
        return None


def converge(cluster: Cluster, since: float, timeout: float) -> tuple[float | None, list[Any]]:
    """Seconds from `since` until every node stayed on one head, mempools empty, for `SETTLE_S`.

    When that takes longer than `SLOW_S` (or never happens), how the nodes'
    (height, mempool size) moved is printed: which node lagged, which mempool held on.

    Returns:
        Those seconds (None: not within `timeout`) and each node's last (height, head, idle).
    """
    started = time.monotonic()
    deadline = started + timeout
    agreed_at: float | None = None
    seen: list[Any] = []
    trace: list[tuple[float, list[str]]] = []  # each change of the nodes' (height, mempool)
    while time.monotonic() < deadline:
        seen, brief = [], []
        for i in range(len(cluster.nodes)):
            try:
                s = cluster.status(i)
                # a non-empty mempool means one more block is coming: not settled yet
                seen.append((int(s["height"]), str(s["head_hash"]), int(s["mempool_txs"]) == 0))
                brief.append(f"{s['height']}/{s['mempool_txs']}")
            except (NodeUnreachable, RpcError) as exc:
                seen.append(type(exc).__name__)
                brief.append(type(exc).__name__)
        if not trace or trace[-1][1] != brief:
            trace.append((time.monotonic() - started, brief))
        if len(set(seen)) == 1 and isinstance(seen[0], tuple) and seen[0][2]:
            agreed_at = agreed_at or time.monotonic()
            if time.monotonic() - agreed_at >= SETTLE_S:
                _print_trace(trace, agreed_at - started)
                return agreed_at - since, seen
        else:
            agreed_at = None
        time.sleep(0.2)
    _print_trace(trace, None)
    return None, seen


def _print_trace(trace: list[tuple[float, list[str]]], agreed: float | None) -> None:
    if agreed is not None and agreed < SLOW_S:
        return
    took = "did not agree" if agreed is None else f"agreed after {agreed:.1f} s"
    console.print(f"[yellow]converge {took}; height/mempool per node:[/]")
    for t, brief in trace[-12:]:
        console.print(f"  +{t:5.1f} s  {' '.join(brief)}")


def _hashes(client: RpcClient, top: int) -> list[str]:
    """Block hashes at heights 1..top, oldest first."""
    out: dict[int, str] = {}
    before = top + 1
    while before > 1:
        page = client.blocks(before=before, limit=100)
        if not page:
            break
        out.update({int(b["height"]): str(b["hash"]) for b in page})
        before = min(int(b["height"]) for b in page)
    return [out.get(h, "") for h in range(1, top + 1)]


def per_node(cluster: Cluster, read: Callable[[ClusterNode], T]) -> list[T]:
    """`read(node)` for every node, the nodes in parallel (each thread uses its node's client).

    The nodes answer one at a time each; on a loaded machine asking all of them at
    once takes about as long as asking the slowest, not the sum.
    """
    with ThreadPoolExecutor(max_workers=len(cluster.nodes) or 1) as pool:
        return list(pool.map(read, cluster.nodes))


def compare_chains(cluster: Cluster) -> tuple[list[int], int]:
    """Nodes whose block hashes (every height up to the lowest head) or state root differ."""
    heights = per_node(cluster, lambda n: node_height(cluster, n.index))
    top = min((h for h in heights if h is not None), default=0)

    def read_view(node: ClusterNode) -> tuple[list[str], str] | None:
        try:
            return (
                _hashes(node.rpc, top),
                str(node.rpc.block(top)["state_root"]) if top else "",
            )
        except (NodeUnreachable, RpcError) as exc:
            console.print(f"[red]node {node.index}: cannot read its chain: {escape(str(exc))}[/]")
            return None

    views = dict(zip((n.index for n in cluster.nodes), per_node(cluster, read_view), strict=True))
    keys = Counter(json.dumps(v) for v in views.values() if v is not None)
    majority = keys.most_common(1)[0][0] if keys else ""
    diverged = [i for i, v in views.items() if v is None or json.dumps(v) != majority]
    for i in diverged:
        view = views[i]
        if view is not None:
            ref = json.loads(majority)[0]
            first = next(
                (h + 1 for h, (a, b) in enumerate(zip(view[0], ref, strict=True)) if a != b), None
            )
            console.print(
                f"[red]node {i} diverges: first differing height {first}, state root {view[1][:16]}[/]"
            )
    return diverged, top


def find_lost(
    cluster: Cluster, finalized: list[Finalized], latest: int = 20
) -> dict[str, set[int]]:
    """Updates seen finalized that some node lacks: txid -> those nodes."""
    lost: dict[str, set[int]] = {}
    domains = sorted({f.domain for f in finalized})
    last = {f.domain: f for f in finalized}  # each domain's newest update seen final
    for missing in per_node(cluster, lambda n: _lost_on(n, domains, last, finalized, latest)):
        for txid, nodes in missing.items():
            lost.setdefault(txid, set()).update(nodes)
    order = {f.txid: i for i, f in enumerate(finalized)}
    return dict(sorted(lost.items(), key=lambda item: order.get(item[0], len(order))))


def _lost_on(
    node: ClusterNode,
    domains: list[str],
    last: dict[str, Finalized],
    finalized: list[Finalized],
    latest: int,
) -> dict[str, set[int]]:
    """The updates in `finalized` that `node` lacks (txid -> {node.index})."""
    lost: dict[str, set[int]] = {}
    _check_states(node.index, node.rpc, last, lost)
    try:
        chains = {d: {int(e["seq"]): str(e["txid"]) for e in node.rpc.history(d)} for d in domains}
    except (NodeUnreachable, RpcError) as exc:
        console.print(f"[red]node {node.index}: cannot read histories: {escape(str(exc))}[/]")
        chains = {}
    for f in finalized:
        if chains.get(f.domain, {}).get(f.seq) != f.txid:
            lost.setdefault(f.txid, set()).add(node.index)
    for f in finalized[-latest:]:  # the newest also by txid: final, same height
        try:
            doc = node.rpc.tx(f.txid)
            ok = doc.get("status") == "finalized" and int(doc["height"]) == f.height
        except (NodeUnreachable, RpcError):
            ok = False
        if not ok:
            lost.setdefault(f.txid, set()).add(node.index)
    return lost


def _check_states(
    index: int, client: RpcClient, last: dict[str, Finalized], lost: dict[str, set[int]]
) -> None:
    """Each domain's finalized state at `index` holds its newest update's records (or a later seq)."""
    for domain, f in last.items():
        try:
            state = client.domain(domain)
        except (NodeUnreachable, RpcError):
            state = None
        seq = None if state is None else state.get("seq")
        if (
            seq is None
            or int(seq) < f.seq
            or (int(seq) == f.seq and (state is None or list(state["records"]) != list(f.records)))
        ):
            lost.setdefault(f.txid, set()).add(index)


# -- command line --


# -- the end of a run (chaos.py, partition.py) --


def raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as Ctrl-C: the cluster's (and the lab's) context managers stop everything."""
    raise KeyboardInterrupt(f"signal {signum}")


def finish(
    result: dict[str, Any], ok: bool, label: str, summary: str, base: Path, *, remove: bool
) -> int:
    """Print `label: summary`, keep the run's directory unless `ok` and `remove`, then the JSON line.

    Returns the exit code: 0 if `ok`, else 1.
    """
    console.print(f"[{'green' if ok else 'red'}]{label if ok else 'FAILED'}[/]: {escape(summary)}")
    if ok and remove:
        shutil.rmtree(base, ignore_errors=True)
    else:
        console.print(f"cluster directory (logs: node-*/stderr.log): {base}")
    print(json.dumps(result), flush=True)
    return 0 if ok else 1
