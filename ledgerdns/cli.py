"""The `ledgerdns` command line.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from chain.crypto import PrivateKey, PublicKey, validate_public_key
from chain.errors import ConfigError, InvalidUpdate, LedgerError
from chain.genesis import Genesis, make_single_validator_genesis
from chain.lightclient import default_max_age_ms
from chain.names import normalize_name
from chain.params import PUBLIC_NAME_LIFETIME_S, PUBLIC_NAMING, NamingParams
from chain.quorum import ValidatorSet
from ledgerdns import status as status_cli
from ledgerdns import validator_cli
from ledgerdns.clock import SYSTEM_CLOCK
from ledgerdns.console import emit_json, make_console
from ledgerdns.explorer import cli as explorer_cli
from ledgerdns.keyfiles import create_key, load_key
from ledgerdns.node import cli as node_cli
from ledgerdns.node.config import read_genesis
from ledgerdns.resolver import cli as resolver_cli
from ledgerdns.wallet import cli as wallet_cli

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
# A new network makes an empty block at least this often when idle, so light clients
# (wallet --verify, the explorer) can tell an idle chain from a node hiding blocks.
DEFAULT_HEARTBEAT_S = 60
MAX_HEARTBEAT_S = 24 * 3600


def _genesis_check(args: argparse.Namespace, out: Console) -> int:
    genesis = read_genesis(Path(args.file))
    p = genesis.params
    if args.json:
        emit_json(out, _genesis_json(args.file, genesis))
        return EXIT_OK
    table = Table(title=f"{args.file}: valid", show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_row("chain id", p.chain_id)
    table.add_row("genesis hash", genesis.hash().hex())
    table.add_row("TLDs", ", ".join(p.tlds))
    table.add_row("validators", f"{p.validators.n} (quorum {p.validators.quorum})")
    for name, key in zip(genesis.validator_names, p.validators.keys, strict=True):
        table.add_row(f"  {name}", bytes(key).hex())
    table.add_row("name lifetime", f"{p.name_lifetime_s} s" if p.name_lifetime_s else "never expires")
    bound = default_max_age_ms(p)
    table.add_row(
        "heartbeat",
        f"{p.consensus.heartbeat_ms / 1000:g} s (light clients refuse state over {bound / 1000:g} s old)"
        if bound is not None
        else "none (an idle network makes no blocks; light clients cannot bound staleness)",
    )
    table.add_row("records per name", f"{p.record_limits.max_records}, {p.record_limits.max_bytes} bytes")
    table.add_row("registration", _naming_text(p.naming))
    table.add_row("genesis domains", str(len(genesis.domains)))
    table.add_row(
        "nameservers",
        ", ".join(p.nameservers) if p.nameservers else "none (each node names itself: --dns-name)",
    )
    out.print(table)
    return EXIT_OK


def _naming_text(naming: NamingParams) -> str:
    if not naming.commit_reveal:
        return "direct (no commit-reveal, no stamp: dev networks only)"
    limits = (f"; per block {naming.max_block_commits or 'any'} commits, "
              f"{naming.max_block_registrations or 'any'} registrations")  # fmt: skip
    stamp = (f"stamp {naming.stamp_count} x {naming.stamp_work} Argon2id evaluations of "
             f"{naming.stamp_memory_kib} KiB" if naming.stamp_work else "no stamp")  # fmt: skip
    return (f"commit-reveal: reveal {naming.reveal_delay} to {naming.reveal_window} heights after "
            f"the commit; {stamp}{limits}")  # fmt: skip


def _genesis_json(path: str, genesis: Genesis) -> dict[str, object]:
    p = genesis.params
    bound = default_max_age_ms(p)
    return {
        "ok": True,
        "file": path,
        "chain_id": p.chain_id,
        "genesis_hash": genesis.hash().hex(),
        "tlds": list(p.tlds),
        "validators": [
            {"name": name, "public_key": bytes(key).hex()}
            for name, key in zip(genesis.validator_names, p.validators.keys, strict=True)
        ],
        "quorum": p.validators.quorum,
        "name_lifetime_s": p.name_lifetime_s,
        "heartbeat_ms": p.consensus.heartbeat_ms,
        "default_max_staleness_s": None if bound is None else bound / 1000,
        "max_records": p.record_limits.max_records,
        "max_recordset_bytes": p.record_limits.max_bytes,
        "naming": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(p.naming).items()},
        "genesis_domains": len(genesis.domains),
        "nameservers": list(p.nameservers),
    }


def load_or_create_key(path: Path) -> PrivateKey:
    """Read a PEM key file (only its owner may read it), or create one readable by its owner only."""
    return load_key(path) if path.exists() else create_key(path)


def _parse_validator(text: str) -> tuple[str, PublicKey]:
    name, sep, key = text.partition("=")
    if not sep or not name:
        raise ConfigError(f"expected NAME=PUBLIC_KEY_HEX, got {text!r}", key="--validator")
    try:
        return name, validate_public_key(bytes.fromhex(key))
    except (ValueError, InvalidUpdate) as exc:
        raise ConfigError(f"{name}: not a compressed secp256k1 public key ({exc})", key="--validator") from None


def _genesis_new(args: argparse.Namespace, out: Console) -> int:
    target = Path(args.out)
    if target.exists() and not args.force:
        raise ConfigError(f"{target} exists; pass --force to replace it")
    try:
        tlds = tuple(normalize_name(t) for t in args.tld)
    except InvalidUpdate as exc:
        raise ConfigError(str(exc), key="--tld") from None
    validators = [_parse_validator(v) for v in args.validator or ()]
    if args.key_file:
        key = load_or_create_key(Path(args.key_file))
        validators.insert(0, (args.name, key.public_key))
    if not validators:
        raise ConfigError("name at least one validator: --key-file FILE or --validator NAME=PUBKEY")
    names = [name for name, _ in validators]
    if len(set(names)) != len(names) or len({k for _, k in validators}) != len(validators):
        raise ConfigError("validator names and keys must be unique", key="--validator")
    if not 0 <= args.heartbeat_s <= MAX_HEARTBEAT_S:
        raise ConfigError(f"must be between 0 and {MAX_HEARTBEAT_S} seconds", key="--heartbeat-s")
    base = make_single_validator_genesis(
        validators[0][1], genesis_time_ms=SYSTEM_CLOCK.now_ms(), chain_id=args.chain_id, tlds=tlds
    )
    consensus = dataclasses.replace(base.params.consensus, heartbeat_ms=round(args.heartbeat_s * 1000))
    genesis = dataclasses.replace(
        base,
        params=dataclasses.replace(
            base.params, validators=ValidatorSet(tuple(k for _, k in validators)), consensus=consensus,
            naming=_naming_flags(args), name_lifetime_s=_lifetime_flag(args),
            nameservers=_nameserver_flags(args),
        ),
        validator_names=tuple(names),
    )  # fmt: skip
    genesis = Genesis.from_json(genesis.to_json())  # every check a loaded file gets
    target.write_text(genesis.to_json())
    out.print(f"wrote {target} (chain {genesis.chain_id}, {len(validators)} validators, "
              f"genesis hash {genesis.hash().hex()[:16]}…)")
    if args.key_file:
        out.print(f"validator key: {args.key_file}")
    return EXIT_OK


def _nameserver_flags(args: argparse.Namespace) -> tuple[str, ...]:
    """``--nameserver`` as the genesis loader reads ``nameservers`` (its checks, the flag's name)."""
    try:
        return Genesis.nameservers_from_json(args.nameserver or [])
    except ConfigError as exc:
        raise ConfigError(str(exc).split(": ", 1)[-1], key="--nameserver") from None


def _lifetime_flag(args: argparse.Namespace) -> int:
    days = args.name_lifetime_days
    if days is None:
        return PUBLIC_NAME_LIFETIME_S
    if not 0 <= days <= 100 * 365:
        raise ConfigError("must be between 0 and 36500 days", key="--name-lifetime-days")
    return int(days * 86400)


def _naming_flags(args: argparse.Namespace) -> NamingParams:
    """The naming rules from the flags: the public defaults, or direct registration with
    ``--reveal-delay 0`` (then no window, stamp or limits unless given)."""
    direct = args.reveal_delay == 0
    base = NamingParams() if direct else PUBLIC_NAMING
    values = dataclasses.asdict(base)
    for name in ("reveal_delay", "reveal_window", "stamp_work", "stamp_count", "stamp_memory_kib",
                 "stamp_passes", "max_block_commits", "max_block_registrations"):  # fmt: skip
        given = getattr(args, name)
        if given is not None:
            values[name] = given
    if args.stamp_short_factors is not None:
        try:
            factors = [int(x) for x in args.stamp_short_factors.split(",") if x.strip()]
        except ValueError:
            raise ConfigError("a comma-separated list of integers", key="--stamp-short-factors") from None
        values["stamp_short_factors"] = factors
    doc = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    try:  # the genesis loader's own checks, naming the flag's key
        return Genesis.naming_from_json(doc, heartbeat_ms=round(args.heartbeat_s * 1000))
    except ConfigError as exc:
        flag = (exc.key or "naming").removeprefix("naming.").split("[")[0].replace("_", "-")
        raise ConfigError(str(exc).split(": ", 1)[-1], key=f"--{flag}") from None


def _key_new(args: argparse.Namespace, out: Console) -> int:
    path = Path(args.file)
    if path.exists():
        raise ConfigError(f"{path} exists; a validator key is never overwritten")
    key = load_or_create_key(path)
    out.print(bytes(key.public_key).hex())
    return EXIT_OK


def _key_show(args: argparse.Namespace, out: Console) -> int:
    path = Path(args.file)
    try:
        key = PrivateKey.from_pem(path.read_bytes())
    except InvalidUpdate as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if args.json:
        emit_json(out, {"ok": True, "file": str(path), "public_key": bytes(key.public_key).hex()})
        return EXIT_OK
    out.print(bytes(key.public_key).hex())
    return EXIT_OK


def _naming_arguments(new: argparse.ArgumentParser) -> None:
    """`genesis new`'s naming flags (docs/naming.md); each defaults to the public rules."""
    p = PUBLIC_NAMING
    group = new.add_argument_group(
        "naming rules", "how names are claimed (docs/naming.md); the defaults are a public "
        "network's: commit-reveal, a ~9 CPU-second proof-of-work stamp a name, a one-year lifetime"
    )  # fmt: skip
    def flag(name: str, help_text: str, kind: type = int) -> None:
        group.add_argument(f"--{name}", type=kind, default=None, metavar="N", help=help_text)

    flag("name-lifetime-days", f"a name lapses this long after its registration or renewal "
         f"(default {PUBLIC_NAME_LIFETIME_S // 86400}; 0 = never)", float)
    flag("reveal-delay", f"heights between a commit's block and its reveal (default {p.reveal_delay}); "
         "0 = names are registered directly, without commit-reveal or stamp (dev networks only: "
         "anyone who sees a registration can take the name first)")
    flag("reveal-window", f"heights after its commit's block until which a reveal is accepted "
         f"(default {p.reveal_window})")
    flag("stamp-work", f"expected Argon2id evaluations per sub-stamp for a long name "
         f"(default {p.stamp_work}; 0 = no stamp)")
    flag("stamp-count", f"sub-stamps per stamp: the cost spreads by 1/sqrt(N) (default {p.stamp_count})")
    flag("stamp-memory-kib", f"Argon2id memory per evaluation (default {p.stamp_memory_kib})")
    flag("stamp-passes", f"Argon2id passes (default {p.stamp_passes})")
    group.add_argument(
        "--stamp-short-factors", default=None, metavar="F1,F2,...",
        help="work multipliers for labels of 1, 2, ... characters (default "
        f"{','.join(map(str, p.stamp_short_factors))}; '' = none)",
    )  # fmt: skip
    flag("max-block-commits", f"commits per block (default {p.max_block_commits}; 0 = no limit)")
    flag("max-block-registrations", f"registrations per block (default {p.max_block_registrations}; "
         "0 = no limit)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render --help in docs)."""
    parser = argparse.ArgumentParser(
        prog="ledgerdns",
        description="A peer-to-peer DNS ledger: signed per-domain hash chains, BFT-finalized "
        "blocks, standard DNS answers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    genesis = commands.add_parser("genesis", help="create and check network genesis files")
    sub = genesis.add_subparsers(dest="genesis_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a genesis file and print its summary and hash")
    check.add_argument("file", help="path to a genesis JSON file")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(run=_genesis_check)
    new = sub.add_parser(
        "new", help="make a fresh genesis for one or more validators"
    )
    new.add_argument("--key-file", help="this machine's validator key (PEM); created 0600 if missing")
    new.add_argument("--name", default="validator-0", help="the --key-file validator's name (default %(default)s)")
    new.add_argument("--validator", action="append", metavar="NAME=PUBKEY",
                     help="another validator: its name and public key (from `ledgerdns key show`); repeatable")
    new.add_argument("--out", required=True, help="where to write the genesis JSON")
    new.add_argument("--chain-id", default="ledgerdns-devnet", help="network name (default %(default)s)")
    new.add_argument("--tld", action="append", default=None, help="ledger TLD, repeatable (default p2p)")
    new.add_argument(
        "--heartbeat-s", type=float, default=DEFAULT_HEARTBEAT_S, metavar="SECONDS",
        help="when idle, make an empty block this often (default %(default)s; 0 = never). A light "
        "client (wallet show --verify, the explorer) then refuses a proof older than two "
        "heartbeats + 60 s: on an idle network the newest block is still recent, so an old one "
        "means the node is behind or hiding blocks. With 0 an idle network makes no blocks and "
        "clients cannot tell that apart from a node hiding them",
    )  # fmt: skip
    new.add_argument(
        "--nameserver", action="append", default=None, metavar="HOST",
        help="the network's public nameserver host name, repeatable (up to 13; the first is the "
        "SOA MNAME): every node answers this NS set for each TLD and domain, whatever its "
        "--dns-name. Without it each node names itself",
    )  # fmt: skip
    _naming_arguments(new)
    new.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    new.set_defaults(run=_genesis_new)
    keys = commands.add_parser("key", help="create validator keys and show their public keys")
    ksub = keys.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    knew = ksub.add_parser("new", help="create a validator key file (0600) and print its public key")
    knew.add_argument("file", help="where to write the PEM key (must not exist)")
    knew.set_defaults(run=_key_new)
    kshow = ksub.add_parser("show", help="print a key file's public key (for genesis --validator)")
    kshow.add_argument("file", help="a PEM key file")
    kshow.add_argument("--json", action="store_true", help="print one JSON object")
    kshow.set_defaults(run=_key_show)
    node_cli.register(commands)
    wallet_cli.register(commands)
    explorer_cli.register(commands)
    status_cli.register(commands)
    validator_cli.register(commands)
    resolver_cli.register(commands)
    return parser


def _version() -> str:
    """The installed package's version (its metadata), or "unknown" when run uninstalled."""
    try:
        return importlib.metadata.version("ledgerdns")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _chosen_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The (sub)command's own parser that `args` came through: the deepest one chosen."""
    for action in parser._actions:  # argparse has no public walk of its subparsers
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            chosen = action.choices.get(name) if isinstance(name, str) else None
            if chosen is not None:
                return _chosen_parser(chosen, args)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ledgerdns` console script."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the subcommand, with its usage (argparse would print the top level's)
        _chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "tld", "absent") is None:
        args.tld = ["p2p"]
    out = make_console()
    err = make_console(stderr=True)
    try:
        code: int = args.run(args, out)
    except (LedgerError, OSError) as exc:
        return report_error(exc, out, err, as_json=getattr(args, "json", False))
    return code


def report_error(exc: LedgerError | OSError, out: Console, err: Console, *, as_json: bool) -> int:
    """The one place an error becomes output: one line on stderr, or one JSON object; the exit code.

    Every error ledgerdns raises on purpose is a `LedgerError`, which says its
    ``code`` (the JSON ``error`` word) and ``exit_code`` (2 for a usage or
    configuration mistake, 1 otherwise); an `OSError` is a failure (1). One
    that carries a ``data`` dict (a refused proof) adds it to the JSON object.
    """
    code, status = (exc.code, exc.exit_code) if isinstance(exc, LedgerError) else ("error", EXIT_FAILURE)
    if as_json:
        data = getattr(exc, "data", None)
        emit_json(out, {**(data if isinstance(data, dict) else {}),
                        "ok": False, "error": code, "message": str(exc)})  # fmt: skip
    else:
        err.print(Text("error: ", style="red") + Text(str(exc)), highlight=False, soft_wrap=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
