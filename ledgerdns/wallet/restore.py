"""``wallet restore``: a wallet again, from its words or from an export file.

Restoring never overwrites or removes anything: a directory that already holds a
wallet is refused unless ``--force``, and even then a key already present is
left as it is, a taken name gets a ``-restored`` suffix, and a different seed is
refused outright (a wallet has one seed; restore into another directory).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import RenderableType

from chain.crypto import PrivateKey
from ledgerdns.wallet.backup import METADATA_FILES, read_export, seed_of
from ledgerdns.wallet.context import Outcome, Wallet
from ledgerdns.wallet.errors import UsageError, WalletError
from ledgerdns.wallet.keystore import Derivation, write_private
from ledgerdns.wallet.seed import Seed, SeedExists, derived_name, entropy_from_words

MAX_KEYS = 1000


class WalletExists(WalletError):
    """The target directory already holds a wallet."""

    code = "wallet-exists"


def _check_target(wallet: Wallet, force: bool) -> None:
    if force:
        return
    names = wallet.keystore.names()
    if names or seed_of(wallet).exists():
        held = f"{len(names)} key(s)" + (" and a seed" if seed_of(wallet).exists() else "")
        raise WalletExists(
            f"{wallet.root} already holds a wallet ({held}); restore into a new "
            "--wallet-dir, or pass --force to add the restored keys to it (nothing is "
            "overwritten)"
        )


def _adopt_seed(wallet: Wallet, seed: Seed, insecure: bool) -> str | None:
    """Make `seed` the wallet's seed (or check it already is); the passphrase for the keys."""
    seeds = seed_of(wallet)
    if seeds.exists():
        if seeds.id() != seed.id:
            raise SeedExists(
                f"{wallet.root} has a different seed ({seeds.id()}, not {seed.id}); a wallet has "
                "one seed: restore into another --wallet-dir"
            )
        if seeds.encrypted():
            passphrase = wallet.passphrases.for_seed()
            seeds.unlock(passphrase)  # the right one, or WrongPassphrase before anything is written
            return None if insecure else passphrase
        return None if insecure else wallet.passphrases.for_new("default")
    new = None if insecure else wallet.passphrases.for_new("default")
    seeds.create(seed, new)
    return new


def _store(
    wallet: Wallet,
    name: str,
    key: PrivateKey,
    passphrase: str | None,
    derivation: Derivation | None,
) -> dict[str, Any]:
    """Add one key unless the wallet has it; its line of the report."""
    entry: dict[str, Any] = {
        "public_key": bytes(key.public_key).hex(),
        "index": None if derivation is None else derivation.index,
    }
    present = wallet.keystore.find(key.public_key)
    if present is not None:
        return {**entry, "name": present, "status": "present"}
    taken = set(wallet.keystore.names())
    free, n = name, 1
    while free in taken:
        free = f"{name}-restored" + ("" if n == 1 else f"-{n}")
        n += 1
    wallet.keystore.create(free, key, passphrase, derivation=derivation)
    return {**entry, "name": free, "status": "restored"}


def restore_words(
    wallet: Wallet, words: str, count: int, *, force: bool, insecure: bool
) -> Outcome:
    """Restore the first `count` keys derived from the words, and the seed itself.

    Raises:
        BadMnemonic, BadChecksum: the words are wrong (before anything is asked or written).
        WalletExists: the directory holds a wallet and `force` is False.
        SeedExists: it holds a wallet with a different seed.
    """
    if not 1 <= count <= MAX_KEYS:
        raise UsageError(f"--keys must be between 1 and {MAX_KEYS}")
    _check_target(wallet, force)
    seed = Seed(entropy=entropy_from_words(words))
    passphrase = _adopt_seed(wallet, seed, insecure)
    keys = []
    for index in range(count):
        key, derivation = seed.key(index)
        keys.append(_store(wallet, derived_name(index), key, passphrase, derivation))
    note = ("the words restore keys, not the list of your domains: "
            "`ledgerdns wallet show DOMAIN` tracks a domain again")  # fmt: skip
    return _outcome(wallet, "mnemonic", seed.id, keys, [], note)


def restore_file(wallet: Wallet, path: Path, *, force: bool, insecure: bool) -> Outcome:
    """Restore every key, the seed and the bookkeeping from an export file.

    Raises:
        BadExportFile: the file is not an export file or is damaged.
        WrongPassphrase: its passphrase is wrong.
        WalletExists, SeedExists: as for `restore_words`.
    """
    _check_target(wallet, force)
    export = read_export(path, lambda: wallet.passphrases.for_export(str(path), new=False))
    if export.seed is not None:
        passphrase = _adopt_seed(wallet, export.seed, insecure)
    else:
        passphrase = None if insecure else wallet.passphrases.for_new("default")
    keys = [
        _store(wallet, k.name, k.key, passphrase, Derivation.from_json(k.derivation))
        for k in export.keys
    ]
    written = []
    for name in METADATA_FILES:
        target = wallet.root / name
        if name in export.metadata and not target.exists():
            write_private(target, json.dumps(export.metadata[name], indent=2) + "\n", replace=False)
            written.append(name)
    seed_id = None if export.seed is None else export.seed.id
    return _outcome(wallet, "file", seed_id, keys, written, None)


def _outcome(
    wallet: Wallet,
    source: str,
    seed_id: str | None,
    keys: list[dict[str, Any]],
    written: list[str],
    note: str | None,
) -> Outcome:
    data: dict[str, Any] = {
        "ok": True,
        "action": "restored",
        "from": source,
        "wallet": str(wallet.root),
        "seed": seed_id,
        "keys": keys,
        "metadata": written,
    }
    show: list[RenderableType] = []
    for k in keys:
        number = "" if k["index"] is None else f" (#{k['index']})"
        if k["status"] == "restored":
            show.append(f"restored key {k['name']!r}{number}: {k['public_key']}")
        else:
            show.append(f"key{number} {k['public_key'][:16]}… is already here as {k['name']!r}")
    if written:
        show.append(f"restored {', '.join(written)}")
    if note:
        data["note"] = note
        show.append(note)
    return Outcome(data=data, show=show)
