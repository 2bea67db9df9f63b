"""`ledgerdns resolver`: the command line of the verifying light resolver.

Only argparse here: `ledgerdns --help` builds this parser, and the resolver's
runtime (trio, the proof checks, the server) is imported when the command runs.

The ``ledgerdns`` command loads every subcommand's code (the wallet, the
explorer, the RPC client: about 55 MiB). Once its flags check out,
``ledgerdns resolver`` therefore re-executes itself as ``python -m
ledgerdns.resolver`` (`main`), the same process id with only the resolver's
modules loaded (about 35 MiB). Called in-process (``ledgerdns.cli.main([...])``
with another command line) it runs where it is.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from ledgerdns.resolver.config import ResolverConfig

_DESCRIPTION = (
    "A DNS resolver for this machine that trusts no ledger node: names under the ledger's TLDs "
    "are answered only from state proven (certified header, validator-set history, state proof) "
    "against the genesis file you trust, fresh within --max-staleness, with AD=1. When no "
    "--upstream gives a verifiable fresh answer the reply is SERVFAIL with an Extended DNS Error "
    "naming why. Other names go to --forward resolvers (REFUSED without one). Prints one line "
    "READY {json} once it listens. See docs/resolver.md."
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``resolver`` subcommand to the top-level parser."""
    p = commands.add_parser(
        "resolver", help="run a verifying DNS resolver for this machine", description=_DESCRIPTION
    )
    _add_arguments(p)
    p.set_defaults(run=_run)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--genesis", required=True, metavar="FILE", help="the genesis file you trust")
    p.add_argument(
        "--upstream", action="append", required=True, metavar="HOST:PORT",
        help="a ledger node's DNS address, asked for proofs (repeatable; tried in order)",
    )  # fmt: skip
    p.add_argument(
        "--listen", required=True, metavar="HOST:PORT",
        help="where to answer DNS, UDP and TCP (port 0: any free port, shown in the READY line)",
    )  # fmt: skip
    p.add_argument(
        "--forward", action="append", default=[], metavar="HOST:PORT",
        help="a resolver for names outside the ledger (repeatable; without one they get REFUSED)",
    )  # fmt: skip
    p.add_argument(
        "--max-staleness", type=float, default=None, metavar="SECONDS",
        help="refuse state whose certified header is older than this (default: two heartbeats of "
        "the genesis + 60 s; required when the genesis has no heartbeat)",
    )  # fmt: skip
    p.add_argument(
        "--timeout", type=float, default=1.0, metavar="SECONDS",
        help="how long each upstream has to answer before the next is asked (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"],
        help="stderr log level (default %(default)s); lying upstreams are logged at warning",
    )  # fmt: skip


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))


def _config(args: argparse.Namespace) -> ResolverConfig:
    from ledgerdns.resolver.config import ResolverConfig  # lazy: see the module doc

    return ResolverConfig.from_flags(
        genesis=args.genesis,
        upstreams=args.upstream,
        listen=args.listen,
        forwards=args.forward,
        max_staleness_s=args.max_staleness,
        timeout_s=args.timeout,
    )


def _serve(args: argparse.Namespace, config: ResolverConfig) -> int:
    from ledgerdns.resolver.service import run_resolver  # lazy: see the module doc

    _setup_logging(args.log_level)
    return run_resolver(config)


def _run(args: argparse.Namespace, out: Console) -> int:
    config = _config(args)  # a mistake is reported here, by the full command line
    argv = sys.argv[1:]
    if argv[:1] == ["resolver"]:  # this process is the command itself: shed the rest of it
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "ledgerdns.resolver", *argv[1:]])
    return _serve(args, config)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ledgerdns.resolver``: the resolver alone (see the module doc).

    Returns:
        The exit code: 0 after Ctrl-C, 2 for a usage or configuration error,
        1 for another failure.
    """
    from chain.errors import LedgerError  # lazy: see the module doc

    parser = argparse.ArgumentParser(prog="ledgerdns resolver", description=_DESCRIPTION)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _serve(args, _config(args))
    except LedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
