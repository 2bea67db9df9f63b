"""``ledgerdns explorer``: the command line in front of the TUI.

Only argument checks and the first contact with the node happen here; textual
is imported when the app starts, so ``ledgerdns --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console

from chain.errors import ConfigError
from chain.genesis import Genesis
from chain.lightclient import default_max_age_ms
from ledgerdns.api.client import NodeUnreachable, RpcClient, RpcError
from ledgerdns.api.token import TOKEN_FILE, read_token
from ledgerdns.clock import SYSTEM_CLOCK
from ledgerdns.explorer.data import Connector, NodeData

DEFAULT_NODE_DIR = "~/.ledgerdns/node"
RPC_TIMEOUT_S = 3.0  # a node slower than this shows as disconnected


def _genesis(path: Path) -> Genesis:
    try:
        return Genesis.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the genesis {path}: {exc}", key="--genesis") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}", key="--genesis") from None


def make_data(args: argparse.Namespace) -> NodeData:
    """The model the options name, checked before any screen opens.

    Raises:
        ConfigError: no such data directory, a missing or unsafe token, a bad
            URL or genesis, or a token the node refuses.
    """
    if args.node and args.rpc:
        raise ConfigError("pass either --node DATA_DIR or --rpc URL --token-file FILE, not both")
    genesis_path = Path(os.path.expanduser(args.genesis)) if args.genesis else None
    if args.rpc:
        if not args.token_file:
            raise ConfigError("--rpc needs --token-file (the node's DATA_DIR/rpc.token)")
        token = read_token(Path(os.path.expanduser(args.token_file)))
        url: str = args.rpc
        try:
            RpcClient(url, token).close()
        except ValueError as exc:
            raise ConfigError(str(exc), key="--rpc") from None

        def connect() -> RpcClient:
            return RpcClient(url, token, timeout=RPC_TIMEOUT_S)

        where, connector = url, connect
    else:
        node_dir = Path(os.path.expanduser(args.node or DEFAULT_NODE_DIR))
        if not node_dir.is_dir():
            raise ConfigError(f"no node data directory at {node_dir} (pass --node DATA_DIR)")
        read_token(node_dir / TOKEN_FILE)  # missing or unsafe: say so now, not in the app
        genesis_path = genesis_path or node_dir / "genesis.json"
        where = str(node_dir)
        connector = _dir_connector(node_dir)
    genesis = _genesis(genesis_path) if genesis_path and genesis_path.exists() else None
    if args.genesis and genesis is None:
        raise ConfigError(f"no genesis file at {args.genesis}", key="--genesis")
    _check_token(connector)
    return NodeData(
        connector, where=where, genesis=genesis, now_ms=SYSTEM_CLOCK.now_ms,
        max_age_ms=_max_age_ms(args.max_staleness, genesis), poll_s=args.interval,
    )  # fmt: skip


def _max_age_ms(max_staleness_s: float | None, genesis: Genesis | None) -> int | None:
    """The freshness bound: ``--max-staleness``, else the genesis's default (None: unbounded)."""
    if max_staleness_s is not None:
        if not max_staleness_s > 0:
            raise ConfigError("must be a positive number of seconds", key="--max-staleness")
        return int(max_staleness_s * 1000)
    return None if genesis is None else default_max_age_ms(genesis.params)


def _dir_connector(node_dir: Path) -> Connector:
    def connect() -> RpcClient:  # node.json is re-read: a restarted node may have a new port
        return RpcClient.for_node(node_dir, timeout=RPC_TIMEOUT_S)

    return connect


def _check_token(connect: Connector) -> None:
    """Refuse a token the node rejects; a node that is down is fine (the app waits for it)."""
    try:
        with connect() as client:
            client.status()
    except NodeUnreachable:
        return
    except RpcError as exc:
        if exc.status == 401:
            raise ConfigError(f"the node refused the RPC token: {exc.message}") from None
        raise ConfigError(f"the node answered with an error: {exc}") from None


def run(args: argparse.Namespace, out: Console) -> int:
    """Check the options, then run the app until the user quits."""
    data = make_data(args)
    from ledgerdns.explorer.app import ExplorerApp

    ExplorerApp(data).run()
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``explorer`` command to the main parser."""
    parser = commands.add_parser(
        "explorer",
        help="a live terminal explorer of a node: blocks, transactions, domains, peers",
        description="Watch a node live: finalized height, block and transaction rates, "
        "validators, peers and evidence; browse blocks and transactions; search a domain and "
        "see its whole chain with its proof checked against a certified header. Keys: d "
        "dashboard, b blocks, p peers, / search, Enter open, Escape back, q quit. A node that "
        "stops answering shows as DISCONNECTED and is reconnected to automatically.",
    )
    parser.add_argument(
        "--node", metavar="DATA_DIR",
        help=f"the node's data directory (its node.json and rpc.token; default {DEFAULT_NODE_DIR})",
    )  # fmt: skip
    parser.add_argument(
        "--rpc", metavar="URL", help="the node's RPC URL instead, e.g. http://127.0.0.1:8353"
    )
    parser.add_argument("--token-file", metavar="FILE", help="with --rpc: the node's rpc.token")
    parser.add_argument(
        "--genesis", metavar="FILE",
        help="the genesis proofs are checked against (default DATA_DIR/genesis.json; "
        "with --rpc and no --genesis proofs show as NOT verified)",
    )  # fmt: skip
    parser.add_argument(
        "--max-staleness", type=float, metavar="SECONDS",
        help="show a proof whose certified header is older than this as NOT verified (the "
        "node is behind or hiding blocks). Default: two heartbeats + 60 s when the genesis sets "
        "consensus.heartbeat_ms (an idle network then still makes a block every heartbeat); "
        "with no heartbeat the age is only shown",
    )  # fmt: skip
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS",
        help="seconds between refreshes (default %(default)s)",
    )  # fmt: skip
    parser.set_defaults(run=run)
