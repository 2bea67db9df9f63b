"""``tools/cluster.py``: start, inspect, restart and stop a local ledgerdns network from a shell.

    python tools/cluster.py start --dir DIR -n 4 --followers 1
    python tools/cluster.py status --dir DIR [--json]
    python tools/cluster.py restart --dir DIR --node 2
    python tools/cluster.py stop --dir DIR

Nodes keep running after ``start`` returns; ``DIR/cluster.json`` holds their
pids and addresses for ``status``, ``restart`` and ``stop``. ``start`` on a DIR
that already holds a network starts it again: its genesis decides which nodes
are validators (a node is one when its key is in the genesis set; more ``-n``
than the genesis has only adds followers). The network itself (keys, genesis,
processes, ports, waiting) is `tools.localnet.Cluster`, which the integration
tests and benchmarks use directly. Run by a python without the project's
packages, the script starts again with ``.venv/bin/python`` (tools/_bootstrap.py).
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

from chain.crypto import PrivateKey
from chain.errors import InvalidUpdate, LedgerError
from chain.genesis import Genesis
from chain.params import ConsensusParams
from ledgerdns.api.client import NodeUnreachable, RpcError
from tools.localnet import LOOPBACK, Cluster, ClusterError, ClusterNode, as_dict, pid_alive

__all__ = ["main", "render_status"]

STATE_FILE = "cluster.json"
LOG_LEVELS = ("debug", "info", "warning", "error")

# -- cluster.json --


def _load(base: Path) -> Cluster:
    """The cluster a ``start --dir`` left behind (its pids and addresses)."""
    try:
        doc = json.loads((base / STATE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ClusterError(
            f"no cluster in {base} ({exc}); run: cluster.py start --dir {base}"
        ) from None
    cluster = Cluster(base, validators=1, followers=0, log_level=doc.get("log_level", "info"))
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
    doc = {
        "genesis": str(cluster.genesis_path),
        "log_level": cluster.log_level,
        "nodes": [n.to_json() for n in cluster.nodes],
    }
    (cluster.base_dir / STATE_FILE).write_text(json.dumps(doc, indent=2) + "\n")


# -- roles --


def _genesis_names(genesis: Genesis) -> dict[bytes, str]:
    keys = genesis.params.validators.keys
    return {bytes(k): name for k, name in zip(keys, genesis.validator_names, strict=True)}


def _validator_name(node: ClusterNode, names: dict[bytes, str]) -> str | None:
    """The genesis name of the validator whose key is in the node's data dir, or None."""
    try:
        key = PrivateKey.from_pem((node.data_dir / "validator.pem").read_bytes())
    except (OSError, InvalidUpdate):
        return None
    return names.get(bytes(key.public_key))


def _label_roles(cluster: Cluster) -> dict[int, str | None]:
    """Mark each node validator or follower by its key, as the node itself decides."""
    genesis = cluster.genesis or Genesis.from_json(cluster.genesis_path.read_text())
    names = _genesis_names(genesis)
    roles = {node.index: _validator_name(node, names) for node in cluster.nodes}
    for node in cluster.nodes:
        node.validator = roles[node.index] is not None
    return roles


# -- status --


def _address(text: object) -> str:
    """``host:port`` as just ``:port`` on loopback (the table's title says 127.0.0.1)."""
    value = str(text or "-").removeprefix("http://")
    host, sep, port = value.rpartition(":")
    return f":{port}" if sep and host == LOOPBACK else value


def node_status(node: ClusterNode) -> dict[str, Any]:
    """One node's line of ``status --json``: cluster.json's facts plus what its RPC says now."""
    row: dict[str, Any] = {
        "index": node.index,
        "role": "validator" if node.validator else "follower",
        "validator": None,
        "pid": node.pid,
        "running": node.pid is not None and node.running,
        "dns": node.ready.get("dns"),
        "rpc": node.ready.get("rpc"),
        "p2p": node.ready.get("p2p"),
        "peer_id": node.ready.get("peer_id"),
        "height": None,
        "peers": None,
        "mempool_txs": None,
        "error": None,
    }
    if not row["running"]:
        row["error"] = "down"
        return row
    try:
        status = as_dict(node.rpc.status())
    except (NodeUnreachable, RpcError) as exc:  # shown, not a crash
        row["error"] = type(exc).__name__
        return row
    name = status.get("validator")
    row.update(
        role="validator" if name else "follower", validator=name, height=status.get("height"),
        peers=status.get("peers"), mempool_txs=status.get("mempool_txs"),
    )  # fmt: skip
    return row


def render_status(rows: Sequence[dict[str, Any]], title: str) -> Any:
    """The ``status`` table: one line per node, fit for 80 columns."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("node", "role", "pid", "DNS", "RPC", "height", "peers", "mempool", "peer id"):
        right = column in ("pid", "height", "peers", "mempool")
        table.add_column(column, no_wrap=True, justify="right" if right else "left")
    for row in rows:
        role = row["validator"] or row["role"]
        if row["error"]:
            numbers = [f"[red]{row['error']}[/red]", "-", "-"]
        else:
            numbers = [str(row["height"]), str(row["peers"]), str(row["mempool_txs"])]
        peer = str(row["peer_id"] or "-")
        table.add_row(
            str(row["index"]), role, str(row["pid"] or "-"), _address(row["dns"]),
            _address(row["rpc"]), *numbers, "…" + peer[-6:] if len(peer) > 7 else peer,
        )  # fmt: skip
    return table


def _print_table(rows: Sequence[dict[str, Any]], title: str) -> None:
    from rich.console import Console

    Console().print(render_status(rows, title))


# -- commands --


def _cmd_start(args: argparse.Namespace) -> int:
    base = Path(args.dir)
    if (base / STATE_FILE).exists() and any(n.running for n in _load(base).nodes if n.pid):
        raise ClusterError(f"a cluster already runs in {base}; stop it first")
    validators = args.n
    if (base / "genesis.json").exists():  # an existing network: its genesis has the say
        have = Genesis.from_json((base / "genesis.json").read_text()).params.validators.n
        if args.n != have:
            print(f"note: {base} holds a network of {have} validators (genesis.json): a node is "
                  "a validator when its key is in that set, whatever -n says; a fresh --dir "
                  "makes a new network")  # fmt: skip
        validators = min(args.n, have)
    cluster = Cluster(
        base, validators=validators, followers=args.followers + args.n - validators,
        log_level=args.log_level,
        consensus=ConsensusParams(timeout_propose_ms=args.propose_ms, heartbeat_ms=args.heartbeat_ms),
        nameservers=tuple(args.nameserver or ()),
    )  # fmt: skip
    cluster.start(detach=True)
    _label_roles(cluster)
    _save(cluster)
    if args.json:
        print(
            json.dumps(
                {"ok": True, "dir": str(base), "nodes": [node_status(n) for n in cluster.nodes]}
            )
        )
        return 0
    _print_table([node_status(n) for n in cluster.nodes], f"cluster in {base} (all on {LOOPBACK})")
    print(f"logs: {base}/node-<i>/stderr.log; stop with: python tools/cluster.py stop --dir {base}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    cluster = _load(Path(args.dir))
    rows = [node_status(n) for n in cluster.nodes]
    if args.json:
        print(json.dumps({"ok": True, "dir": args.dir, "nodes": rows}))
        return 0
    _print_table(rows, f"cluster in {args.dir} (all on {LOOPBACK})")
    return 0


def _chosen(cluster: Cluster, indexes: list[int] | None) -> list[int]:
    known = [n.index for n in cluster.nodes]
    for i in indexes or ():
        if i not in known:
            raise ClusterError(f"no node {i} in {cluster.base_dir} (nodes {known[0]}..{known[-1]})")
    return sorted(set(indexes)) if indexes else known


def _cmd_restart(args: argparse.Namespace) -> int:
    cluster = _load(Path(args.dir))
    chosen = _chosen(cluster, args.node)
    cluster.stop(chosen)
    try:
        for i in chosen:  # each bootstraps from the nodes already running
            cluster.start_node(i, detach=True)
    finally:
        _save(cluster)  # the new pids (and ports, if the old ones were taken)
    print(f"restarted node(s) {', '.join(map(str, chosen))}")
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
    start = commands.add_parser(
        "start", help="create a network (or start the one in --dir) in the background"
    )
    start.add_argument(
        "--dir", required=True, help="base directory (genesis, node-<i>/, cluster.json)"
    )
    start.add_argument(
        "-n",
        "--validators",
        dest="n",
        type=int,
        default=4,
        help="validators (default %(default)s; on an existing network: at most its genesis's)",
    )
    start.add_argument("--followers", type=int, default=1, help="followers (default %(default)s)")
    start.add_argument(
        "--propose-ms",
        type=int,
        default=1000,
        help="consensus propose timeout (default %(default)s)",
    )
    start.add_argument(
        "--heartbeat-ms",
        type=int,
        default=0,
        help="empty-block interval, 0 = none (default %(default)s)",
    )
    start.add_argument(
        "--nameserver",
        action="append",
        metavar="HOST",
        help="a new network's public nameserver (repeatable; docs/dns.md): every node answers "
        "this NS set and SOA MNAME instead of its own name",
    )
    start.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    start.add_argument(
        "--json", action="store_true", help="print one JSON object (as status --json)"
    )
    start.set_defaults(run=_cmd_start)
    status = commands.add_parser(
        "status", help="role, addresses, height, peers and mempool of each node"
    )
    status.add_argument("--dir", required=True)
    status.add_argument(
        "--json", action="store_true", help="print one JSON object: {ok, dir, nodes: [...]}"
    )
    status.set_defaults(run=_cmd_status)
    restart = commands.add_parser(
        "restart", help="stop nodes and start them again on their data and ports"
    )
    restart.add_argument("--dir", required=True)
    restart.add_argument(
        "--node",
        type=int,
        action="append",
        metavar="I",
        help="the node to restart (repeatable; default every node)",
    )
    restart.set_defaults(run=_cmd_restart)
    stop = commands.add_parser(
        "stop", help="stop every node of the cluster (SIGTERM, then SIGKILL)"
    )
    stop.add_argument("--dir", required=True)
    stop.set_defaults(run=_cmd_stop)
    return parser  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 success, 1 failure, 2 usage error."""
    args = build_parser().parse_args(argv)
    if getattr(args, "n", 1) < 1 or getattr(args, "followers", 0) < 0:
        print("error: -n must be at least 1 and --followers at least 0", file=sys.stderr)
        return 2
    try:
        code: int = args.run(args)
    except (ClusterError, LedgerError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
