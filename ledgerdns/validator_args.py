"""The command line of ``ledgerdns validator``: its parser and the checks of its arguments.

Pure: nothing here reads a node. A bad argument is a `UsageError` (exit 2)
whose message says what was expected.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ecdsa

from chain.crypto import PrivateKey, PublicKey, validate_public_key
from chain.errors import InvalidUpdate
from ledgerdns.wallet.errors import BadInput, UsageError

DEFAULT_NODE_DIR = "~/.ledgerdns/node"
DEFAULT_WAIT_S = 30.0
MAX_WAIT_S = 60.0  # the RPC's limit
MIN_ID_PREFIX = 8  # hex digits of a proposal id that pick it among the pending ones
_HEX = set("0123456789abcdefABCDEF")
_KEY_HELP = (
    "the new key: 66 hex digits (a compressed public key, as `ledgerdns key show` prints) "
    "or a PEM key file (public or private; only the public key is used)"
)


def _bad_key(text: str, why: str) -> BadInput:
    return BadInput(
        f"PUBKEY {text!r}: {why}; give 66 hex digits (02… or 03…, from `ledgerdns key show "
        "FILE`) or the path of a PEM key file"
    )


def public_key_argument(text: str) -> PublicKey:
    """A public key given as hex, or as a PEM public or private key file.

    Raises:
        BadInput: neither, or not a point on secp256k1.
    """
    if text and set(text) <= _HEX:
        if len(text) != 66:
            raise _bad_key(text, f"{len(text)} hex digits, not 66")
        try:
            return validate_public_key(bytes.fromhex(text))
        except InvalidUpdate as exc:
            raise _bad_key(text, str(exc.args[0])) from None
    path = Path(text).expanduser()
    if not path.is_file():
        raise _bad_key(text, "not hex, and no such file")
    try:
        content = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad_key(text, f"cannot read it ({exc})") from None
    if content and set(content) <= _HEX:
        return public_key_argument(content)
    if "PRIVATE KEY" in content:
        try:
            return PrivateKey.from_pem(content).public_key
        except InvalidUpdate as exc:
            raise _bad_key(text, str(exc.args[0])) from None
    try:
        point = ecdsa.VerifyingKey.from_pem(content)
        return validate_public_key(bytes(point.to_string("compressed")))
    except (ValueError, ecdsa.der.UnexpectedDER, ecdsa.MalformedPointError, InvalidUpdate):
        raise _bad_key(text, "the file holds no secp256k1 PEM key") from None


def proposal_argument(text: str) -> str:
    """A proposal id (64 hex digits) or a prefix of at least 8, lower-cased.

    Raises:
        BadInput: not hex, or too short, or too long.
    """
    if not text or not set(text) <= _HEX:
        raise BadInput(f"PROPOSAL_ID {text!r} is not hex (the id `validator propose` printed)")
    if not MIN_ID_PREFIX <= len(text) <= 64:
        raise BadInput(
            f"PROPOSAL_ID {text!r}: give the 64 hex digits `validator propose` printed "
            f"(or at least the first {MIN_ID_PREFIX})"
        )
    return text.lower()


def wait_argument(args: argparse.Namespace) -> float | None:
    """How long to wait for the block (None: do not wait).

    Raises:
        UsageError: out of range.
    """
    if args.no_wait:
        return None
    if not 0 <= args.wait <= MAX_WAIT_S:
        raise UsageError(f"--wait must be between 0 and {MAX_WAIT_S:g} seconds")
    return float(args.wait)


# -- the parser --


def _common(parser: argparse.ArgumentParser, *, here: bool) -> None:
    """The options every command takes; `here` False for the copies on each subcommand."""
    default: Any = None if here else argparse.SUPPRESS
    parser.add_argument("--node", default=default, metavar="DATA_DIR",
                        help=f"the node running in this data directory (default {DEFAULT_NODE_DIR})")
    parser.add_argument("--rpc", default=default, metavar="URL", help="the node's RPC URL instead")
    parser.add_argument("--token-file", default=default, metavar="FILE",
                        help="RPC token file (the node's DATA_DIR/rpc.token), with --rpc")
    parser.add_argument("--json", action="store_true", default=False if here else argparse.SUPPRESS,
                        help="print one JSON object")  # fmt: skip


def _signing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--validator-key", required=True, metavar="PEM",
        help="your validator key file (PEM, readable by you only; `ledgerdns key new` made it): "
        "it must be in the set deciding the next block",
    )  # fmt: skip
    parser.add_argument(
        "--wait", type=float, default=DEFAULT_WAIT_S, metavar="SECONDS",
        help=f"how long to wait for the block that makes it final (default %(default)g, at most "
        f"{MAX_WAIT_S:g})",
    )  # fmt: skip
    parser.add_argument("--no-wait", action="store_true", help="send and return at once")


_DESCRIPTION = (
    "Change the validator set on chain. A validator proposes a change (add, remove or rotate "
    "a validator's key); the others approve it; once approvals from more than two thirds of the "
    "set are final in block H, the new set decides from height H+2. Each command signs with "
    "--validator-key, sends through a node (--node DATA_DIR, or --rpc URL --token-file FILE), "
    "and waits for the block. Step by step: docs/operations.md, 'Changing the validator set'."
)


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    run: Callable[[argparse.Namespace, Any], int],
) -> None:
    """Add ``validator`` (propose, approve, list) to the main parser; `run` runs each."""
    top = commands.add_parser("validator", help="propose, approve and list validator-set changes",
                              description=_DESCRIPTION)  # fmt: skip
    _common(top, here=True)
    common = argparse.ArgumentParser(add_help=False)
    _common(common, here=False)
    sub = top.add_subparsers(dest="validator_command", metavar="COMMAND", required=True)
    propose = sub.add_parser(
        "propose", help="propose adding, removing or re-keying a validator",
        description="Propose a change of the validator set, signed by your validator key. It "
        "prints the proposal id; your own approval counts. With one validator it takes effect "
        "at once (two heights on); otherwise the others approve it (`validator approve ID`).",
    )  # fmt: skip
    actions = propose.add_subparsers(dest="change_action", metavar="CHANGE", required=True)
    for action, text in (("add", "add a validator NAME with key PUBKEY"),
                         ("remove", "remove the validator NAME"),
                         ("rotate", "give the validator NAME the new key PUBKEY")):  # fmt: skip
        one = actions.add_parser(action, parents=[common], help=text, description=text)
        one.add_argument("name", metavar="NAME",
                         help="the validator's name (1 to 64 of A-Z a-z 0-9 . _ -)")
        if action != "remove":
            one.add_argument("pubkey", metavar="PUBKEY", help=_KEY_HELP)
        _signing(one)
        one.set_defaults(run=run)
    approve = sub.add_parser(
        "approve", parents=[common], help="approve a pending proposal",
        description="Approve a pending change, signed by your validator key. Once approvals of "
        "more than two thirds of the set are final in block H, the change takes effect at H+2.",
    )  # fmt: skip
    approve.add_argument("proposal_id", metavar="PROPOSAL_ID",
                         help="the id `validator propose` printed (or its first 8+ hex digits)")
    _signing(approve)
    approve.set_defaults(run=run)
    listing = sub.add_parser(
        "list", parents=[common], help="the set in force, pending changes and the set's history",
        description="List the validators deciding the next block, the pending proposals with "
        "their approvals, and every set since genesis (changes scheduled included).",
    )  # fmt: skip
    listing.set_defaults(run=run)
