"""``tools/cluster.py``: start, inspect and stop a local ledgerdns network from a shell.

    python tools/cluster.py start --dir DIR -n 4 --followers 1
    python tools/cluster.py status --dir DIR
    python tools/cluster.py stop --dir DIR

Nodes keep running after ``start`` returns; ``DIR/cluster.json`` holds their
pids and addresses for ``status`` and ``stop``. The network itself (keys,
genesis, processes, ports, waiting) is `tools.localnet.Cluster`, which the
integration tests and benchmarks use directly.
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chain.params import ConsensusParams
from ledgerdns.api.client import NodeUnreachable, RpcError
from tools.localnet import Cluster, ClusterError, ClusterNode, as_dict, pid_alive

__all__ = ["main"]

# -- command line --

STATE_FILE = "cluster.json"


def _load(base: Path) -> Cluster:
    """The cluster a ``start --dir`` left behind (its pids and addresses)."""
    try:
        doc = json.loads((base / STATE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ClusterError(f"no cluster in {base} ({exc}); run: cluster.py start --dir {base}") from None
    cluster = Cluster(base, validators=1, followers=0)
    cluster.nodes = [
        ClusterNode(
            index=n["index"],
            data_dir=Path(n["data_dir"]),
            validator=n["validator"],
            pid=n["pid"],
            ready={k: n[k] for k in ("peer_id", "dns", "rpc", "p2p")},
        )
        for n in doc["nodes"]
    ]
    for node in cluster.nodes:  # never signal a pid that is no longer our node
        if node.pid is not None and not _is_our_node(node.pid, node.data_dir):
            node.pid = None
    return cluster


def _is_our_node(pid: int, data_dir: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(data_dir).encode() in cmdline and pid_alive(pid)


def _save(cluster: Cluster) -> None:
    doc = {"genesis": str(cluster.genesis_path), "nodes": [n.to_json() for n in cluster.nodes]}
    (cluster.base_dir / STATE_FILE).write_text(json.dumps(doc, indent=2) + "\n")


def _table(cluster: Cluster, title: str, *, with_status: bool) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for column in ("node", "role", "pid", "DNS", "RPC", "peer id"):
        table.add_column(column, no_wrap=column != "peer id", overflow="fold")
    if with_status:
        for column in ("height", "peers", "mempool"):
            table.add_column(column, justify="right")
    for node in cluster.nodes:
        role = "validator" if node.validator else "follower"
        row = [str(node.index), role, str(node.pid or "-"), str(node.ready.get("dns", "-")),
               str(node.ready.get("rpc", "-")), str(node.ready.get("peer_id", "-"))]  # fmt: skip
        if with_status:
            row += _status_cells(node)
        table.add_row(*row)
    return table


def _status_cells(node: ClusterNode) -> list[str]:
    if node.pid is None or not node.running:
        return ["[red]down[/red]", "-", "-"]
    try:
        status = as_dict(node.rpc.status())
    except (NodeUnreachable, RpcError) as exc:  # shown in the table, not a crash
        return [f"[red]{type(exc).__name__}[/red]", "-", "-"]
    return [str(status.get("height")), str(status.get("peers")), str(status.get("mempool_txs"))]


def _cmd_start(args: argparse.Namespace) -> int:
    from rich.console import Console

    base = Path(args.dir)
    if (base / STATE_FILE).exists() and any(n.running for n in _load(base).nodes if n.pid):
        raise ClusterError(f"a cluster already runs in {base}; stop it first")
    cluster = Cluster(
        base, validators=args.n, followers=args.followers, log_level=args.log_level,
        consensus=ConsensusParams(timeout_propose_ms=args.propose_ms, heartbeat_ms=args.heartbeat_ms),
    )  # fmt: skip
    cluster.start(detach=True)
    _save(cluster)
    Console().print(_table(cluster, f"cluster in {base} (chain ledgerdns-cluster)", with_status=False))
    print(f"logs: {base}/node-<i>/stderr.log; stop with: python tools/cluster.py stop --dir {base}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console

    cluster = _load(Path(args.dir))
    Console().print(_table(cluster, f"cluster in {args.dir}", with_status=True))
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    cluster = _load(Path(args.dir))
    running = [n.index for n in cluster.nodes if n.pid is not None]
    cluster.stop(running)
    for node in cluster.nodes:
        node.pid = None
    _save(cluster)
    print(f"stopped {len(running)} node(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``tools/cluster.py`` argument parser."""
    parser = argparse.ArgumentParser(
        description="Run a local ledgerdns network on 127.0.0.1.",
        epilog="Data, keys and logs stay in --dir; start again on a fresh --dir for a new network.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    start = commands.add_parser("start", help="create a network and start its nodes in the background")
    start.add_argument("--dir", required=True, help="base directory (genesis, node-<i>/, cluster.json)")
    start.add_argument("-n", "--validators", dest="n", type=int, default=4, help="validators (default %(default)s)")
    start.add_argument("--followers", type=int, default=1, help="followers (default %(default)s)")
    start.add_argument("--propose-ms", type=int, default=1000, help="consensus propose timeout (default %(default)s)")
    start.add_argument("--heartbeat-ms", type=int, default=0, help="empty-block interval, 0 = none (default %(default)s)")
    start.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    start.set_defaults(run=_cmd_start)
    status = commands.add_parser("status", help="height, peers and mempool of each node")
    status.add_argument("--dir", required=True)
    status.set_defaults(run=_cmd_status)
    stop = commands.add_parser("stop", help="stop every node of the cluster (SIGTERM, then SIGKILL)")
    stop.add_argument("--dir", required=True)
    stop.set_defaults(run=_cmd_stop)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 success, 1 failure, 2 usage error."""
    args = build_parser().parse_args(argv)
    if getattr(args, "n", 1) < 1:
        print("error: -n must be at least 1", file=sys.stderr)
        return 2
    try:
        code: int = args.run(args)
    except (ClusterError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
