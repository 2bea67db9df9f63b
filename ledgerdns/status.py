"""``ledgerdns status``: a summary of a running node, read from its RPC.

It asks ``GET /v1/status``, ``/v1/validators``, ``/v1/peers`` and ``/v1/mempool``
and prints a table (or, with ``--json``, one object). A node that is not
running, a refused token or a bad option give one line on stderr (with
``--json``: ``{"ok": false, "error", "message"}`` on stdout) and exit 1, or 2
for a command-line mistake.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from chain.errors import LedgerError
from ledgerdns.api.client import NODE_FILE, NodeNotStarted, NodeUnreachable, RpcClient, RpcError
from ledgerdns.api.token import read_token
from ledgerdns.clock import SYSTEM_CLOCK
from ledgerdns.console import emit_json

DEFAULT_NODE_DIR = "~/.ledgerdns/node"
DEFAULT_TIMEOUT_S = 5.0
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
Json = dict[str, Any]


class StatusFailure(LedgerError):
    """The node could not be asked; ``code`` names why (for ``--json``)."""

    def __init__(self, message: str, *, code: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code


# -- asking the node --


def _addresses(data_dir: Path | None, url: str) -> Json:
    """The node's listen addresses: from its node.json when we know its data directory."""
    found: Json = {"rpc": url, "dns": None, "p2p": []}
    if data_dir is None:
        return found
    try:
        info = json.loads((data_dir / NODE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return found
    if isinstance(info, dict):
        found["dns"] = info.get("dns")
        found["p2p"] = list(info.get("p2p") or [])
    return found


def _open(args: argparse.Namespace) -> tuple[RpcClient, Path | None]:
    if args.rpc is not None:
        if args.token_file is None:
            raise StatusFailure(
                "--rpc needs --token-file (the node's DATA_DIR/rpc.token)",
                code="usage",
                exit_code=EXIT_USAGE,
            )
        token = read_token(Path(os.path.expanduser(args.token_file)))
        try:
            return RpcClient(args.rpc, token, timeout=args.timeout), None
        except ValueError as exc:
            raise StatusFailure(f"--rpc: {exc}", code="usage", exit_code=EXIT_USAGE) from None
    data_dir = Path(os.path.expanduser(args.node or DEFAULT_NODE_DIR))
    try:
        return RpcClient.for_node(data_dir, timeout=args.timeout), data_dir
    except NodeNotStarted:
        raise StatusFailure(
            f"no node is running in {data_dir} (no {NODE_FILE}); "
            f"start one with `ledgerdns node --data-dir {data_dir}`",
            code="node-unreachable",
        ) from None


def fetch(args: argparse.Namespace, now_ms: int) -> Json:
    """Ask the node the options name; its summary (see `summarize`).

    Raises:
        StatusFailure: no node answers, or it refused the token or a request.
        TokenError: the token file is missing or unsafe.
    """
    client, data_dir = _open(args)
    try:
        with client:
            status = client.status()
            validator_set = client.validator_set()
            peers = client.peers()
            mempool = client.mempool(limit=0)
    except NodeUnreachable as exc:
        raise StatusFailure(f"{exc} (is the node running?)", code="node-unreachable") from None
    except RpcError as exc:
        if exc.code == "unauthorized":
            raise StatusFailure(
                f"the node at {client.url} refused the RPC token ({exc.message}); "
                "check --token-file or the data directory",
                code="unauthorized",
            ) from None
        raise StatusFailure(
            f"the node at {client.url} answered {exc.code}: {exc.message}", code=exc.code
        ) from None
    validators = list(validator_set.get("validators") or [])
    return summarize(
        status, validators, peers, mempool, _addresses(data_dir, client.url), now_ms,
        validator_set=validator_set,
    )  # fmt: skip


# -- the summary --


def summarize(
    status: Json,
    validators: list[Json],
    peers: list[Json],
    mempool: Json,
    addresses: Json,
    now_ms: int,
    *,
    validator_set: Json | None = None,
) -> Json:
    """The ``--json`` object: the RPC's answers gathered under stable names.

    Args:
        status: ``GET /v1/status``.
        validators: ``GET /v1/validators``'s list: the set deciding the next block.
        peers: ``GET /v1/peers``'s list.
        mempool: ``GET /v1/mempool`` (``count``, ``bytes``).
        addresses: ``rpc``, ``dns`` (None when unknown) and ``p2p``.
        now_ms: the local clock, unix ms (the head block's age is measured on it).
        validator_set: ``GET /v1/validators`` whole, for the quorum and the changes
            pending or scheduled (omitted: not reported).
    """
    doc = validator_set or {}
    head_time_ms = int(status.get("head_time_ms") or 0)
    return {
        "ok": True,
        "chain_id": status.get("chain_id"),
        "genesis_hash": status.get("genesis_hash"),
        "peer_id": status.get("peer_id"),
        "version": status.get("version"),
        "validator": status.get("validator"),
        "tlds": list(status.get("tlds") or []),
        "height": status.get("height"),
        "head_hash": status.get("head_hash"),
        "head_time_ms": head_time_ms,
        "head_age_s": max(0, now_ms - head_time_ms) // 1000,
        "syncing": bool(status.get("syncing")),
        "sync_target": status.get("sync_target"),
        "consensus": {
            "height": status.get("consensus_height"),
            "round": status.get("consensus_round"),
            "step": status.get("consensus_step"),
        },
        "validators": {
            "online": sum(1 for v in validators if v.get("online")),
            "total": len(validators),
            "quorum": doc.get("quorum"),
            "pending_changes": len(doc.get("pending") or []),
            "scheduled_changes": [
                {"from_height": r.get("from_height"),
                 "names": [m.get("name") for m in r.get("validators") or []]}
                for r in doc.get("scheduled") or []
            ],
            "list": [
                {
                    "name": v.get("name"),
                    "public_key": v.get("public_key"),
                    "online": bool(v.get("online")),
                    "last_vote_height": v.get("last_vote_height"),
                }
                for v in validators
            ],
        },
        "peers": {
            "connected": sum(1 for p in peers if p.get("connected")),
            "known": len(peers),
        },
        "mempool": {"txs": mempool.get("count"), "bytes": mempool.get("bytes")},
        "rpc": addresses.get("rpc"),
        "dns": addresses.get("dns"),
        "p2p": list(addresses.get("p2p") or []),
    }


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _short(hex_text: object) -> str:
    return f"{hex_text}"[:16] + "…" if hex_text else "-"


def render(summary: Json) -> Table:
    """The table a person reads."""
    table = Table(title=f"node status: {summary['chain_id']}", show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")

    def row(field: str, value: object, style: str = "") -> None:
        table.add_row(field, Text("-" if value is None else str(value), style=style))

    role = f"validator {summary['validator']}" if summary["validator"] else "follower"
    row("node", f"{summary['peer_id']} ({role}, version {summary['version']})")
    row(
        "height",
        f"{summary['height']} (head {_short(summary['head_hash'])}, "
        f"{_age(summary['head_age_s'])} ago)",
    )
    if summary["syncing"]:
        row("sync", f"syncing to {summary['sync_target']}", "yellow")
    else:
        row("sync", "synced", "green")
    c = summary["consensus"]
    row("consensus", f"height {c['height']}, round {c['round']}, {c['step']}")
    v = summary["validators"]
    row("validators", f"{v['online']}/{v['total']} online", "green" if v["online"] else "red")
    for one in v["list"]:
        seen = one["last_vote_height"]
        vote = f", last vote at {seen}" if isinstance(seen, int) and seen >= 0 else ""
        row(
            f"  {one['name']}",
            ("online" if one["online"] else "offline") + vote + f" (key {_short(one['public_key'])})",
            "" if one["online"] else "yellow",
        )
    changes = [f"from height {c['from_height']}: {', '.join(map(str, c['names']))}"
               for c in v.get("scheduled_changes") or []]  # fmt: skip
    if v.get("pending_changes"):
        changes.append(f"{v['pending_changes']} proposed (`ledgerdns validator list`)")
    for text in changes:
        row("  set change", text, "cyan")
    row("peers", f"{summary['peers']['connected']} connected ({summary['peers']['known']} known)")
    row("mempool", f"{summary['mempool']['txs']} txs, {summary['mempool']['bytes']} bytes")
    row("TLDs", ", ".join(summary["tlds"]) or None)
    row("DNS", summary["dns"])
    row("RPC", summary["rpc"])
    for address in summary["p2p"]:
        row("P2P", address)
    return table


# -- the command --


def run(args: argparse.Namespace, out: Console) -> int:
    """Print the node's status, or one line saying why it could not be read."""
    summary = fetch(args, SYSTEM_CLOCK.now_ms())  # a StatusFailure goes up to `cli.main`
    if args.json:
        emit_json(out, summary)
    else:
        out.print(render(summary))
    return EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``status`` command to the main parser."""
    parser = commands.add_parser(
        "status",
        help="summarize a running node: chain, height, validators, peers, mempool, addresses",
        description="Ask a running node (--node DATA_DIR, or --rpc URL --token-file FILE) "
        "for its status and print a summary; exit 1 if no node answers.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--node",
        metavar="DATA_DIR",
        help=f"the node running in this data directory (default {DEFAULT_NODE_DIR})",
    )
    where.add_argument("--rpc", metavar="URL", help="the node's RPC URL instead")
    parser.add_argument("--token-file", metavar="FILE", help="RPC token file, with --rpc")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="how long to wait for each answer (default %(default)g)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)
