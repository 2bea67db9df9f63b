"""``ledgerdns wallet``: keys, domains and records from the command line.

``register(commands)`` adds the command to the main parser. Every subcommand
prints one JSON object with ``--json`` (also on failure: ``{"ok": false,
"error": code, "message": text}``) and exits 0 on success, 1 when the work
failed (the node refused, the passphrase was wrong, no node answered) and 2
when the command line was wrong (bad record, unknown key name).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

from ledgerdns.clock import SYSTEM_CLOCK
from ledgerdns.console import emit_json, make_console
from ledgerdns.wallet import views, writes
from ledgerdns.wallet.context import Outcome, Wallet
from ledgerdns.wallet.edit import (
    add_records,
    check_record_set,
    parse_records,
    remove_by_name,
    remove_records,
)
from ledgerdns.wallet.errors import UsageError
from ledgerdns.wallet.index import DomainIndex
from ledgerdns.wallet.keycommands import add_commands as add_key_commands
from ledgerdns.wallet.keystore import Keystore, validate_key_name
from ledgerdns.wallet.link import RpcLink, connect
from ledgerdns.wallet.passphrase import ENV_PASSPHRASE, PassphraseSource
from ledgerdns.wallet.proofs import Trust, Unverified, load_trust
from ledgerdns.wallet.zonefile import read_zone

ENV_WALLET_DIR = "LEDGERDNS_WALLET_DIR"
DEFAULT_WALLET_DIR = "~/.ledgerdns/wallet"
DEFAULT_NODE_DIR = "~/.ledgerdns/node"
DEFAULT_WAIT_S = 30.0
MAX_WAIT_S = 60.0  # the RPC's limit
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
LARGE_ZONE_LINES = 200  # a smaller zone file is read in a blink: no progress bar
DEFAULT_KEY = "default"


# -- opening the wallet --


def _wallet_dir(args: argparse.Namespace) -> Path:
    text = args.wallet_dir or os.environ.get(ENV_WALLET_DIR) or DEFAULT_WALLET_DIR
    return Path(os.path.expanduser(text))


def _connector(args: argparse.Namespace) -> RpcLink:
    node_dir = None if args.rpc else Path(os.path.expanduser(args.node or DEFAULT_NODE_DIR))
    token_file = Path(os.path.expanduser(args.token_file)) if args.token_file else None
    return connect(node_dir, args.rpc, token_file)


def _confirm(question: str) -> bool:
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def open_wallet(args: argparse.Namespace) -> Wallet:
    """The wallet the global options name."""
    if args.node and args.rpc:
        raise UsageError("pass either --node or --rpc, not both")
    root = _wallet_dir(args)
    tty = sys.stdin.isatty()
    return Wallet(
        root=root,
        keystore=Keystore(root),
        index=DomainIndex(root),
        passphrases=PassphraseSource.from_process(),
        connect=lambda: _connector(args),
        now_ms=SYSTEM_CLOCK.now_ms,
        confirm=_confirm if tty else None,
    )


# -- the commands --


def _wait(args: argparse.Namespace) -> float | None:
    if args.no_wait:
        return None
    if not 0 <= args.wait <= MAX_WAIT_S:
        raise UsageError(f"--wait must be between 0 and {MAX_WAIT_S:g} seconds")
    return float(args.wait)


def _domain(args: argparse.Namespace) -> str:
    return writes.domain_argument(args.domain)


def _cmd_new(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    return views.new_key(wallet, validate_key_name(args.name), insecure=args.insecure_no_passphrase)


def _cmd_list(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    return views.list_wallet(wallet)


def _trust(args: argparse.Namespace) -> Trust | Unverified:
    """What ``show`` and ``history`` check the node's proof against (issue 16: by default).

    The genesis is ``--genesis``, else the local node's own (as the explorer does).
    With ``--rpc`` and no ``--genesis`` there is nothing to trust: an explicit
    ``--verify`` is then a usage error, the default an answer marked NOT verified.
    """
    if args.no_verify:
        if args.verify or args.genesis is not None or args.max_staleness is not None:
            raise UsageError("--no-verify goes without --verify, --genesis and --max-staleness")
        return Unverified("--no-verify")
    if args.genesis is not None:
        path = Path(os.path.expanduser(args.genesis))
    elif args.rpc:
        if args.verify:
            raise UsageError("--verify with --rpc needs --genesis FILE (the genesis you trust)")
        return Unverified(
            "no trusted genesis: with --rpc, pass --genesis FILE to check the node's proof"
        )
    else:  # the local node's own genesis, as the explorer does
        path = Path(os.path.expanduser(args.node or DEFAULT_NODE_DIR)) / "genesis.json"
        if not path.exists() and not args.verify:  # no node there: the node error says so
            return Unverified(f"no genesis at {path}: pass --genesis FILE")
    return load_trust(path, args.max_staleness, strict=args.verify)


def _cmd_show(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    return views.show_domain(wallet, _domain(args), _trust(args))


def _cmd_history(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    return views.history(wallet, _domain(args), _trust(args))


def _cmd_export(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    return views.export_zone(wallet, _domain(args), Path(args.out) if args.out else None)


def _owner_key(wallet: Wallet, given: str | None) -> str:
    """``--key``, else the wallet's only key, else the key named ``default``.

    Raises:
        UsageError: several keys and none named ``default``: the user must choose.
    """
    if given is not None:
        return validate_key_name(given)
    names = wallet.keystore.names()
    if len(names) == 1:
        return names[0]
    if len(names) > 1 and DEFAULT_KEY not in names:
        raise UsageError(f"this wallet has {len(names)} keys ({', '.join(names)}): "
                         "choose the owner with --key NAME")  # fmt: skip
    return DEFAULT_KEY  # none yet: the unknown-key error says how to make one


def _cmd_register(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    key = _owner_key(wallet, args.key)
    console = make_console(stderr=True)
    with views.RegisterBar(console, disable=args.json or not console.is_terminal) as bar:
        return writes.register(wallet, _domain(args), key, args.record or [], _wait(args), bar)


def _cmd_set(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    domain = _domain(args)
    if not args.record and not args.clear:
        raise UsageError("give the new records with --record LINE (repeatable), or --clear")
    if args.record and args.clear:
        raise UsageError("--clear and --record exclude each other")
    records = check_record_set(parse_records(args.record or [], domain))
    target = writes.load_target(wallet, domain)
    return writes.update_records(wallet, target, records, _wait(args))


def _cmd_add(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    domain = _domain(args)
    new = parse_records(args.record, domain)
    target = writes.load_target(wallet, domain)
    writes.owner_key_name(wallet, target.view)
    records = add_records(target.view.records, new)
    return writes.update_records(wallet, target, records, _wait(args))


def _cmd_remove(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    domain = _domain(args)
    if not args.record and args.name is None:
        raise UsageError("say what to remove: --record LINE (repeatable) or --name NAME [--type T]")
    if args.type is not None and args.name is None:
        raise UsageError("--type needs --name")
    gone = parse_records(args.record or [], domain)
    target = writes.load_target(wallet, domain)
    writes.owner_key_name(wallet, target.view)
    records = target.view.records
    if gone:
        records = remove_records(records, gone)
    if args.name is not None:
        records = remove_by_name(records, args.name, args.type)
    return writes.update_records(wallet, target, records, _wait(args))


def zone_progress(lines: int, console: Console | None = None) -> Progress:
    """The progress bar of `import-zone`, drawn on stderr for a large zone on a terminal only."""
    console = console or make_console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        console=console,
        transient=True,
        disable=lines < LARGE_ZONE_LINES or not console.is_terminal,
    )


def _may_prompt(wallet: Wallet, target: writes.Target) -> bool:
    """Whether signing for `target` will ask a passphrase on the terminal."""
    key = wallet.keystore.info(writes.owner_key_name(wallet, target.view))
    return key.encrypted and os.environ.get(ENV_PASSPHRASE) is None


def _cmd_import(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    domain = _domain(args)
    wait = _wait(args)
    path = args.file
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    with zone_progress(text.count("\n") + 1) as progress:
        step = progress.add_task(f"parsing {path}", total=4)
        zone = read_zone(text, domain)
        progress.update(step, advance=1, description=f"checking {len(zone.records)} records")
        records = check_record_set(zone.records)
        progress.update(step, advance=1, description=f"reading {domain} from the node")
        target = writes.load_target(wallet, domain)
        if not records and target.view.records and not args.yes:
            progress.stop()  # never draw over the question
            _confirm_emptying(wallet, domain, path, len(target.view.records))
        sending = "sending" if wait is None else "sending and waiting for a block"
        progress.update(step, advance=1, description=sending)
        if _may_prompt(wallet, target):
            progress.stop()  # never draw over the passphrase prompt
        outcome = writes.update_records(wallet, target, records, wait)
        progress.advance(step)
    outcome.data["skipped"] = list(zone.skipped)
    outcome.show.extend(zone.skipped)
    return outcome


def _confirm_emptying(wallet: Wallet, domain: str, path: str, count: int) -> None:
    """Ask before an import removes every record (an empty file, or nothing on stdin).

    Raises:
        UsageError: no terminal to ask on and no ``--yes``, or the user said no.
    """
    source = "stdin" if path == "-" else path
    what = f"{source} holds no records: importing it removes all {count} records of {domain}"
    if wallet.confirm is None:
        raise UsageError(f"{what}; pass --yes to do that (or `wallet set {domain} --clear`)")
    if not wallet.confirm(f"{what}. Go on?"):
        raise UsageError("nothing imported")


def _cmd_transfer(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    return writes.transfer(wallet, _domain(args), args.to, _wait(args))


def _cmd_renew(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    console = make_console(stderr=True)
    with views.RegisterBar(console, disable=args.json or not console.is_terminal) as bar:
        return writes.renew(wallet, _domain(args), _wait(args), bar)


def _cmd_release(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    domain = _domain(args)
    if not args.yes:
        if wallet.confirm is None:
            raise UsageError(f"releasing {domain} cannot be undone: pass --yes to confirm")
        if not wallet.confirm(f"release {domain}? Its records go and anyone may register it"):
            raise UsageError("not released")
    return writes.release(wallet, domain, _wait(args))


# -- running and printing --


def _print(out: Console, items: list[RenderableType]) -> None:
    for item in items:
        if isinstance(item, str):
            out.print(item, markup=False, highlight=False, soft_wrap=True)
        else:
            out.print(item)


def run(args: argparse.Namespace, out: Console) -> int:
    """Run the chosen wallet command and print its result; the exit status.

    Errors (`LedgerError`, `OSError`) go up to `ledgerdns.cli.main`, which prints
    them as one line or one JSON object (a `ProofRefused` adds its `data`).
    """
    wallet: Wallet | None = None
    try:
        wallet = open_wallet(args)
        outcome: Outcome = args.wallet_action(wallet, args)
    except KeyboardInterrupt:
        make_console(stderr=True).print("interrupted (a transaction already sent may still land)")
        return EXIT_INTERRUPTED
    finally:
        if wallet is not None:
            wallet.close()
    if args.json:
        emit_json(out, outcome.data)
    else:
        _print(out, outcome.show)
    return EXIT_OK


# -- the parser --


def _common(parser: argparse.ArgumentParser, *, here: bool) -> None:
    """The wallet's global options; `here` False for the copies on each subcommand."""
    default: Any = None if here else argparse.SUPPRESS
    parser.add_argument(
        "--wallet-dir",
        default=default,
        metavar="DIR",
        help=f"wallet directory (default ${ENV_WALLET_DIR} or {DEFAULT_WALLET_DIR})",
    )
    parser.add_argument(
        "--node",
        default=default,
        metavar="DATA_DIR",
        help=f"talk to the node running in this data directory (default {DEFAULT_NODE_DIR})",
    )
    parser.add_argument("--rpc", default=default, metavar="URL", help="node RPC URL instead")
    parser.add_argument(
        "--token-file", default=default, metavar="FILE", help="RPC token file, with --rpc"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if here else argparse.SUPPRESS,
        help="print one JSON object",
    )


def _waiting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help=f"how long to wait for a block (default %(default)g, at most {MAX_WAIT_S:g})",
    )
    parser.add_argument("--no-wait", action="store_true", help="send and return at once")


def _verifying(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="show what the node says without checking its proof (by default the node's "
        "light-client proof is checked against the genesis you trust and the local clock; a "
        "proof that fails, or whose certified header is older than --max-staleness, is an "
        "error, exit 1)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="insist on a proof: where none can be checked (--rpc without --genesis, a chain "
        "with no certified block yet) fail instead of showing the answer as NOT verified",
    )
    parser.add_argument(
        "--genesis",
        metavar="FILE",
        help="the genesis you trust (default DATA_DIR/genesis.json of --node; with --rpc "
        "and no --genesis answers show as NOT verified)",
    )
    parser.add_argument(
        "--max-staleness",
        type=float,
        metavar="SECONDS",
        help="refuse state certified longer ago than this. Default: two "
        "heartbeats + 60 s when the genesis sets consensus.heartbeat_ms (an idle network then "
        "still makes a block every heartbeat, so an older head means the node is behind or "
        "hiding blocks); with no heartbeat the age is only reported",
    )


def _records(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--record",
        action="append",
        required=required,
        metavar="LINE",
        help='a zone-file line relative to the domain ("www 300 A 10.0.0.1", @ = apex); repeatable',
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``wallet`` command to the main parser's subcommands."""
    wallet = commands.add_parser(
        "wallet",
        help="keys, domains and records: register, update, transfer",
        description="Manage keys and the domains they own. Keys are stored encrypted with a "
        f"passphrase (from ${ENV_PASSPHRASE}, else asked for). Writes are signed here and "
        "sent to a node (--node DATA_DIR, or --rpc URL --token-file FILE).",
    )
    _common(wallet, here=True)
    common = argparse.ArgumentParser(add_help=False)
    _common(common, here=False)
    sub = wallet.add_subparsers(dest="wallet_command", metavar="COMMAND", required=True)

    def add(name: str, action: Any, help_text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        parser.set_defaults(run=run, wallet_action=action)
        return parser

    p = add("new", _cmd_new, "create a key")
    p.add_argument("--name", default="default", help="key name (default %(default)s)")
    p.add_argument(
        "--insecure-no-passphrase",
        action="store_true",
        help="store the key unencrypted (anyone who can read the file can use it)",
    )
    add("list", _cmd_list, "list the wallet's keys and domains (refreshed from the node)")
    p = add("show", _cmd_show, "show a domain's owner, state and records")
    p.add_argument("domain")
    _verifying(p)
    p = add("history", _cmd_history, "show a domain's chain of transactions")
    p.add_argument("domain")
    _verifying(p)
    p = add("export-zone", _cmd_export, "write a domain's records as a zone file")
    p.add_argument("domain")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of printing")

    p = add(
        "register",
        _cmd_register,
        "register a free name (on a network with commit-reveal: "
        "commit, wait, reveal; run again to resume)",
    )
    p.add_argument("domain")
    p.add_argument(
        "--key", help=f"the owner key (default: the wallet's only key, else {DEFAULT_KEY!r})"
    )
    _records(p, required=False)
    _waiting(p)
    p = add("set", _cmd_set, "replace a domain's records")
    p.add_argument("domain")
    _records(p, required=False)
    p.add_argument("--clear", action="store_true", help="remove every record")
    _waiting(p)
    p = add("add", _cmd_add, "add records to a domain")
    p.add_argument("domain")
    _records(p, required=True)
    _waiting(p)
    p = add("remove", _cmd_remove, "remove records from a domain")
    p.add_argument("domain")
    _records(p, required=False)
    p.add_argument("--name", help="remove every record at this owner name (www, @)")
    p.add_argument("--type", help="with --name: only records of this type")
    _waiting(p)
    p = add("import-zone", _cmd_import, "replace a domain's records with a zone file's")
    p.add_argument("domain")
    p.add_argument("file", help="an RFC 1035 zone file ($ORIGIN, $TTL, ...), - for stdin")
    p.add_argument("--yes", action="store_true", help="do not ask before a file with no records "
                   "removes every record of the domain")  # fmt: skip
    _waiting(p)
    p = add("transfer", _cmd_transfer, "give a domain to another key")
    p.add_argument("domain")
    p.add_argument("--to", required=True, help="a key name of this wallet or a public key (hex)")
    _waiting(p)
    p = add("renew", _cmd_renew, "extend a domain's lease")
    p.add_argument("domain")
    _waiting(p)
    p = add("release", _cmd_release, "give a domain up (cannot be undone)")
    p.add_argument("domain")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _waiting(p)
    add_key_commands(add)  # backup, restore, rotate (ledgerdns/wallet/keycommands.py)
