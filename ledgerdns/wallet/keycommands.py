"""The ``wallet backup``, ``wallet restore`` and ``wallet rotate`` commands: their options and help.

`add_commands` is called once by `ledgerdns.wallet.cli.register` with its
``add(name, action, help)`` helper, so these commands share the wallet's global
options, ``--json`` and error handling.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledgerdns.wallet.backup import show_words, write_export
from ledgerdns.wallet.context import Outcome, Wallet
from ledgerdns.wallet.errors import NoPassphrase, UsageError
from ledgerdns.wallet.restore import MAX_KEYS, restore_file, restore_words
from ledgerdns.wallet.rotate import rotate
from ledgerdns.wallet.writes import domain_argument

DEFAULT_ROTATE_WAIT_S = 120.0
MAX_ROTATE_WAIT_S = 3600.0

Add = Callable[[str, Any, str], argparse.ArgumentParser]


def _path(text: str) -> Path:
    return Path(os.path.expanduser(text))


def _cmd_backup(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    if args.out is None:
        if args.force:
            raise UsageError("--force goes with --out")
        return show_words(wallet)
    return write_export(wallet, _path(args.out), force=args.force)


def read_words(source: str | None) -> str:
    """The mnemonic: from a file, ``-`` for stdin, else asked on the terminal (not echoed).

    Raises:
        UsageError: the file cannot be read.
        UsageError: no file was named and there is no terminal to ask on.
        NoPassphrase: the prompt was interrupted.
    """
    if source is None:
        if not sys.stdin.isatty():
            raise UsageError(
                "give the words with --words-file FILE (- reads stdin), or run in a terminal"
            )
        try:
            return getpass.getpass("the wallet's words, separated by spaces (not shown): ")
        except (EOFError, KeyboardInterrupt):
            raise NoPassphrase("no words given") from None
    try:
        return sys.stdin.read() if source == "-" else _path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the words from {source}: {exc}") from None


def _cmd_restore(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    if args.source is not None:
        if args.words_file is not None or args.keys is not None:
            raise UsageError("--from restores everything in the file: --words-file and --keys "
                             "go with a restore from words")  # fmt: skip
        return restore_file(wallet, _path(args.source), force=args.force,
                            insecure=args.insecure_no_passphrase)  # fmt: skip
    return restore_words(
        wallet, read_words(args.words_file), 1 if args.keys is None else args.keys, force=args.force,
        insecure=args.insecure_no_passphrase,
    )  # fmt: skip


def _cmd_rotate(wallet: Wallet, args: argparse.Namespace) -> Outcome:
    if not 0 <= args.wait <= MAX_ROTATE_WAIT_S:
        raise UsageError(f"--wait must be between 0 and {MAX_ROTATE_WAIT_S:g} seconds")
    return rotate(wallet, domain_argument(args.domain), args.new_key, float(args.wait))


_BACKUP = """\
Without --out: show the wallet seed's words (BIP-39, 12 words) and which keys they
restore. Every key made by `wallet new` or `wallet rotate` since the wallet got its
seed is derived from it; keys made before that (or restored from an export file of
another wallet) are NOT, and are named so. For those, and to keep key names and the
domain list too, write an encrypted export file with --out.

examples:
  ledgerdns wallet backup                      # words on screen: write them on paper
  ledgerdns wallet backup --out wallet.backup  # every key, sealed with a passphrase
                                               # (LEDGERDNS_BACKUP_PASSPHRASE, else asked twice)
"""

_RESTORE = """\
Restore a wallet into --wallet-dir from its words or from an export file. A directory
that already holds a wallet is refused unless --force; even then nothing there is
overwritten or removed (a key already present is kept, a taken name gets -restored).
The restored keys are sealed with a new passphrase (LEDGERDNS_PASSPHRASE, else asked).

examples:
  ledgerdns wallet --wallet-dir ~/new restore --keys 3          # words asked on the terminal
  ledgerdns wallet --wallet-dir ~/new restore --words-file - < words.txt
  ledgerdns wallet --wallet-dir ~/new restore --from wallet.backup
"""

_ROTATE = """\
Move DOMAIN to a new key of this wallet: derive a new key from the seed, have the
current key sign a transfer of DOMAIN to it, wait until a finalized block holds it,
and only then retire the old key for DOMAIN (it is kept, never deleted). If the
transfer is not final in --wait seconds nothing is retired: run the same command
again to resume (it never makes a second new key for a rotation in progress).

example:
  ledgerdns wallet rotate alice.p2p            # new key alice.p2p-1
"""


def add_commands(add: Add) -> None:
    """Register ``backup``, ``restore`` and ``rotate`` with the wallet parser's `add` helper."""
    p = add("backup", _cmd_backup, "show the seed's words, or write an encrypted export file")
    p.description, p.formatter_class = _BACKUP, argparse.RawDescriptionHelpFormatter
    p.add_argument("--out", metavar="FILE", help="write an encrypted export file of the "
                   "whole wallet instead of showing the words")  # fmt: skip
    p.add_argument("--force", action="store_true", help="with --out: replace an existing FILE")

    p = add("restore", _cmd_restore, "restore a wallet from its words or an export file")
    p.description, p.formatter_class = _RESTORE, argparse.RawDescriptionHelpFormatter
    p.add_argument("--from", dest="source", metavar="FILE",
                   help="an export file written by `backup --out` (else: restore from words)")
    p.add_argument("--words-file", metavar="FILE", help="read the words from FILE (- for "
                   "stdin) instead of asking on the terminal")  # fmt: skip
    p.add_argument("--keys", type=int, metavar="N", help="how many derived keys to restore "
                   f"(default 1; `backup` says how many; at most {MAX_KEYS})")  # fmt: skip
    p.add_argument("--force", action="store_true",
                   help="add to a wallet already in --wallet-dir (never overwrites a key)")
    p.add_argument("--insecure-no-passphrase", action="store_true",
                   help="store the restored keys unencrypted")

    p = add("rotate", _cmd_rotate, "move a domain to a new key of this wallet")
    p.description, p.formatter_class = _ROTATE, argparse.RawDescriptionHelpFormatter
    p.add_argument("domain")
    p.add_argument("--new-key", metavar="NAME",
                   help="name of the new key (default DOMAIN-1, or the next free number)")
    p.add_argument("--wait", type=float, default=DEFAULT_ROTATE_WAIT_S, metavar="SECONDS",
                   help="how long to wait for the transfer to be final (default %(default)g, "
                   f"at most {MAX_ROTATE_WAIT_S:g})")  # fmt: skip
