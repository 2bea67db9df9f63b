"""The crash loop's end checks: convergence, chains compared across nodes, finalized updates looked up."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.markup import escape

from ledgerdns.rpc.client import NodeUnreachable, RpcClient, RpcError
from tools.chaos_load import Finalized
from tools.localnet import Cluster

console = Console(stderr=True, highlight=False)
SETTLE_S = 1.5  # every node on one head this long counts as converged


def node_height(cluster: Cluster, i: int) -> int | None:
    try:
        return int(cluster.status(i)["height"])
    except (NodeUnreachable, RpcError):
        return None


def converge(cluster: Cluster, since: float, timeout: float) -> tuple[float | None, list[Any]]:
    """Seconds from `since` until every node stayed on one head, mempools empty, for `SETTLE_S`.

    Returns:
        Those seconds (None: not within `timeout`) and each node's last (height, head, idle).
    """
    deadline = time.monotonic() + timeout
    agreed_at: float | None = None
    seen: list[Any] = []
    while time.monotonic() < deadline:
        seen = []
        for i in range(len(cluster.nodes)):
            try:
                s = cluster.status(i)
                # a non-empty mempool means one more block is coming: not settled yet
                seen.append((int(s["height"]), str(s["head_hash"]), int(s["mempool_txs"]) == 0))
            except (NodeUnreachable, RpcError) as exc:
                seen.append(type(exc).__name__)
        if len(set(seen)) == 1 and isinstance(seen[0], tuple) and seen[0][2]:
            agreed_at = agreed_at or time.monotonic()
            if time.monotonic() - agreed_at >= SETTLE_S:
                return agreed_at - since, seen
        else:
            agreed_at = None
        time.sleep(0.2)
    return None, seen


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


def compare_chains(cluster: Cluster) -> tuple[list[int], int]:
    """Nodes whose block hashes (every height up to the lowest head) or state root differ."""
    views: dict[int, tuple[list[str], str] | None] = {}
    heights = [node_height(cluster, i) for i in range(len(cluster.nodes))]
    top = min((h for h in heights if h is not None), default=0)
    for node in cluster.nodes:
        try:
            views[node.index] = (
                _hashes(node.rpc, top),
                str(node.rpc.block(top)["state_root"]) if top else "",
            )
        except (NodeUnreachable, RpcError) as exc:
            console.print(f"[red]node {node.index}: cannot read its chain: {escape(str(exc))}[/]")
            views[node.index] = None
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
    for node in cluster.nodes:
        _check_states(node.index, node.rpc, last, lost)
        try:
            chains = {
                d: {int(e["seq"]): str(e["txid"]) for e in node.rpc.history(d)} for d in domains
            }
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
