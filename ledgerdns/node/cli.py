"""`ledgerdns node`: run a node (the embedded single-validator devnet by default)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import trio
from rich.console import Console
from rich.logging import RichHandler

from chain.errors import ConfigError, LedgerError
from ledgerdns.clock import SYSTEM_CLOCK
from ledgerdns.dns.zone import ZoneConfig
from ledgerdns.node.config import (
    DEFAULT_DNS,
    DEFAULT_P2P,
    DEFAULT_RPC,
    DEFAULT_SNAPSHOT_INTERVAL,
    NodeConfig,
    parse_host_port,
    prepare_data_dir,
)
from ledgerdns.node.settings_file import (
    LOG_LEVELS,
    describe,
    load_node_settings,
    settings_problems,
)

DEFAULT_DATA_DIR = "~/.ledgerdns/node"


def setup_logging(level: str) -> None:
    """Logs to stderr: rich on a terminal, plain lines otherwise; libp2p kept quiet."""
    console = Console(stderr=True)
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    # LEDGERDNS_DEBUG=ledgerdns.consensus,ledgerdns.sync: debug logs for some parts only
    for name in filter(None, os.environ.get("LEDGERDNS_DEBUG", "").split(",")):
        logging.getLogger(name.strip()).setLevel(logging.DEBUG)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _check_config(args: argparse.Namespace) -> int:
    """``--check-config``: every problem in the settings file, one line each; 0 if none."""
    data_dir = Path(os.path.expanduser(args.data_dir))
    path = Path(os.path.expanduser(args.config)) if args.config else data_dir / "node.toml"
    if not path.exists():
        raise ConfigError(f"no settings file to check: {path} does not exist (--config FILE)")
    problems = settings_problems(path)
    for problem in problems:
        named = problem if problem.startswith(str(path)) else f"{path}: {problem}"
        print(f"error: {named}", file=sys.stderr)
    if problems:
        return 2
    print(f"ok: {describe(load_node_settings(path))}")
    return 0


def _run(args: argparse.Namespace, out: Console) -> int:
    if args.check_config:
        return _check_config(args)
    data_dir = Path(os.path.expanduser(args.data_dir))
    p2p = tuple(args.p2p) if args.p2p else (DEFAULT_P2P,)
    for addr in p2p + tuple(args.bootstrap):
        if not addr.startswith("/"):
            raise ConfigError(f"{addr!r} is not a multiaddr (like /ip4/127.0.0.1/tcp/4747)")
    for addr in args.bootstrap:
        if "/p2p/" not in addr:
            raise ConfigError(f"bootstrap address {addr!r} needs the peer id: .../p2p/12D3KooW...")
    config = NodeConfig(
        data_dir=data_dir,
        genesis_file=Path(args.genesis) if args.genesis else None,
        validator_key_file=Path(args.validator_key) if args.validator_key else None,
        dns=parse_host_port(args.dns, "--dns"),
        rpc=parse_host_port(args.rpc, "--rpc"),
        p2p=p2p,
        bootstrap=tuple(args.bootstrap),
        mdns=args.mdns,
        dns_name=args.dns_name,
        progress=not args.no_progress,
        config_file=Path(os.path.expanduser(args.config)) if args.config else None,
        metrics=parse_host_port(args.metrics, "--metrics") if args.metrics else None,
        state_sync=args.state_sync,
        snapshot_interval=args.snapshot_interval,
        retain_blocks=args.retain_blocks,
        dot=parse_host_port(args.dot, "--dot") if args.dot else None,
        doh=parse_host_port(args.doh, "--doh") if args.doh else None,
        tls_cert=Path(os.path.expanduser(args.tls_cert)) if args.tls_cert else None,
        tls_key=Path(os.path.expanduser(args.tls_key)) if args.tls_key else None,
        log_level=args.log_level,
        query_log=Path(os.path.expanduser(args.query_log)) if args.query_log else None,
    )
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
    if config.dns_name is not None:
        ZoneConfig(server_name=config.dns_name)  # a bad name is a usage error, found now
    settings = load_node_settings(config.settings_path)  # likewise a bad settings file
    setup_logging(args.log_level or settings.log.level or "info")
    # Until the node handles SIGHUP (a reload), one must not kill it half-started.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    clock = SYSTEM_CLOCK  # the node's one wall clock
    prepared = prepare_data_dir(config, clock)
    if prepared.created_devnet:
        logging.getLogger("ledgerdns.node").info(
            "created a single-validator devnet in %s (chain %s)",
            data_dir,
            prepared.genesis.chain_id,
        )
    from ledgerdns.node.heap import start_tracing
    from ledgerdns.node.node import run_node  # imports libp2p (1 s): only when running
    from ledgerdns.p2p.errors import P2PError

    start_tracing(args.tracemalloc)  # after the imports: what they allocate never grows
    try:
        trio.run(run_node, config, prepared, clock)
    except P2PError as exc:  # the node key cannot be used: say so in one line
        raise ConfigError(str(exc)) from None
    except BaseExceptionGroup as group:
        # A listener that cannot bind, a store in use: say what, not a task-tree traceback.
        for leaf in _leaves(group):
            if isinstance(leaf, P2PError):  # a --p2p address that cannot be listened on
                raise ConfigError(str(leaf)) from None
            if isinstance(leaf, ConfigError | LedgerError | OSError):
                raise leaf from None
        raise
    return 0


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def _frames(text: str) -> int:
    try:
        frames = int(text)
    except ValueError:
        frames = -1
    if not 0 <= frames <= 100:
        raise argparse.ArgumentTypeError(f"expected 0 (off) to 100 frames, got {text!r}")
    return frames


def _count(flag: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit():
            raise argparse.ArgumentTypeError(f"{flag} expects a whole number >= 0, got {text!r}")
        return int(text)

    return parse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `node` command to the main parser."""
    node = commands.add_parser(
        "node",
        help="run a node (with no --genesis: a local single-validator devnet)",
        description="Run a ledgerdns node. With no --genesis it starts (or resumes) a local "
        "single-validator devnet in --data-dir: key, genesis and chain are created on first "
        "start. With --genesis FILE it joins that network: as a validator if its key "
        "(--validator-key, default DATA_DIR/validator.pem) is in the genesis, else as a "
        "follower. Once every listener is bound it prints one line "
        'READY {"peer_id", "dns", "rpc", "p2p"} on stdout (and "metrics", "dot", "doh" when on).',
    )
    node.add_argument(
        "--data-dir", default=DEFAULT_DATA_DIR, help="node data directory (default %(default)s)"
    )
    node.add_argument(
        "--genesis", help="network genesis file (default: the data dir's, or a new devnet)"
    )
    node.add_argument("--validator-key", help="validator key PEM (default DATA_DIR/validator.pem)")
    node.add_argument(
        "--dns",
        default=DEFAULT_DNS,
        help="DNS listen HOST:PORT, UDP and TCP (default %(default)s; port 0 = any)",
    )
    node.add_argument(
        "--rpc",
        default=DEFAULT_RPC,
        help="RPC listen HOST:PORT (default %(default)s; port 0 = any)",
    )
    node.add_argument(
        "--p2p",
        action="append",
        metavar="MULTIADDR",
        help=f"p2p listen address, repeatable (default {DEFAULT_P2P})",
    )
    node.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="a peer to join through, with /p2p/<peer id>; repeatable",
    )
    node.add_argument(
        "--dns-name",
        metavar="HOST",
        help="this server's public host name, named by the SOA and NS records it synthesizes (default ns.ledgerdns.invalid)",
    )
    node.add_argument(
        "--config",
        metavar="FILE",
        help="TOML settings file: forwarding, rate limiting, TSIG keys, DNS UPDATE, zone transfers, "
        "log level and query log (default DATA_DIR/node.toml if present; see docs/dns.md); "
        "SIGHUP reads it again",
    )
    node.add_argument(
        "--check-config",
        action="store_true",
        help="check the settings file (--config, or DATA_DIR/node.toml) and exit: 0 if it is "
        "good, else 2 with one line per problem",
    )
    node.add_argument(
        "--query-log",
        metavar="FILE",
        help="append one JSON object per DNS query to FILE (time, client, qname, qtype, rcode, "
        "transport, latency_ms); also [log] queries in the settings file; reopened on SIGHUP",
    )
    node.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics, with /healthz (alive) and "
        "/readyz (synced and serving, else 503); unauthenticated, off by default (docs/operations.md)",
    )
    node.add_argument(
        "--dot",
        metavar="HOST:PORT",
        help="also serve DNS over TLS (RFC 7858) here, e.g. 0.0.0.0:853 (port 0 = any; "
        "docs/dns-tls.md)",
    )
    node.add_argument(
        "--doh",
        metavar="HOST:PORT",
        help="also serve DNS over HTTPS (RFC 8484, HTTP/2) at https://HOST:PORT/dns-query",
    )
    node.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="PEM certificate chain for --dot/--doh (a devnet without one makes a self-signed "
        "DATA_DIR/tls.crt)",
    )
    node.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
    node.add_argument(
        "--mdns", action="store_true", help="discover peers on the LAN by mDNS (off by default)"
    )
    node.add_argument("--no-progress", action="store_true", help="no progress bar while syncing")
    node.add_argument(
        "--state-sync",
        action="store_true",
        help="on a new data directory, join from the newest snapshot peers offer (checked against "
        "the genesis and the certificates) instead of replaying every block (docs/operations.md)",
    )
    node.add_argument(
        "--snapshot-interval",
        type=_count("--snapshot-interval"),
        default=DEFAULT_SNAPSHOT_INTERVAL,
        metavar="N",
        help="take a state snapshot every N heights for joining peers (default %(default)s; 0 = none)",
    )
    node.add_argument(
        "--retain-blocks",
        type=_count("--retain-blocks"),
        default=0,
        metavar="N",
        help="prune: keep only the last N blocks (default 0 = keep all, an archive node); "
        "state, certificates and snapshots are kept",
    )
    node.add_argument(
        "--tracemalloc",
        type=_frames,
        default=0,
        metavar="FRAMES",
        help="trace Python allocations (FRAMES frames each; 0 = off, the default); each SIGUSR1 "
        "then writes DATA_DIR/heap-<unix ms>.snapshot for tools/heapdiff.py (docs/operations.md)",
    )
    node.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="default: [log] level in the settings file, else info",
    )
    node.set_defaults(run=_run)
