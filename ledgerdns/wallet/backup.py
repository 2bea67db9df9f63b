"""``wallet backup``: the seed's words, or an encrypted export file of the whole wallet.

The words restore the keys derived from the wallet's seed and nothing else;
``backup`` says which keys they cover and names the ones they do not (keys made
before seeds, keys restored from an export file of another wallet), which need
the export file. The export file holds every secret (the seed's entropy and each
key), the key names, and the wallet's bookkeeping (``domains.json``,
``retired.json``, ``rotations.json``), sealed as one JSON document with
scrypt + AES-256-GCM (`keystore.seal`) under its own passphrase::

    {"format": "ledgerdns-wallet-export", "version": 1,
     "encryption": {"kdf": "scrypt", ..., "cipher": "aes-256-gcm", "nonce": "..."},
     "payload": "<hex of the sealed payload>"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from chain.crypto import PrivateKey
from chain.errors import InvalidUpdate
from ledgerdns.wallet.context import Outcome, Wallet
from ledgerdns.wallet.errors import CorruptKeyFile, UsageError, WalletError, WrongPassphrase
from ledgerdns.wallet.keystore import KeyInfo, seal, unseal, write_private
from ledgerdns.wallet.seed import Seed, SeedFile

EXPORT_FORMAT = "ledgerdns-wallet-export"
EXPORT_VERSION = 1
_EXPORT_AAD = b"ledgerdns wallet export v1\x00"
METADATA_FILES = ("domains.json", "retired.json", "rotations.json")


class NoSeed(WalletError):
    """The wallet has no seed, so there are no words to show."""

    code = "no-seed"


class NoWallet(WalletError):
    """There is no wallet in the directory."""

    code = "no-wallet"


class BadExportFile(WalletError):
    """The file is not a wallet export file, or it is damaged."""

    code = "bad-export-file"


@dataclass(frozen=True, slots=True)
class ExportedKey:
    """One key of an export file."""

    name: str
    key: PrivateKey
    derivation: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Export:
    """The opened contents of an export file."""

    seed: Seed | None
    keys: tuple[ExportedKey, ...]
    metadata: dict[str, Any]


def seed_of(wallet: Wallet) -> SeedFile:
    """The wallet's seed file (with the keystore's scrypt cost)."""
    return SeedFile(wallet.root, scrypt_n=wallet.keystore.scrypt_n)


def _unlock_seed(wallet: Wallet, seeds: SeedFile) -> tuple[Seed, str | None]:
    passphrase = wallet.passphrases.for_seed() if seeds.encrypted() else None
    return seeds.unlock(passphrase), passphrase


# -- the words --


def show_words(wallet: Wallet) -> Outcome:
    """The seed's words, which keys they restore, and which they do not."""
    seeds, keys = seed_of(wallet), wallet.keystore.keys()
    if not seeds.exists():
        if not keys:
            raise NoWallet(f"there is no wallet in {wallet.root}; `ledgerdns wallet new` makes one")
        raise NoSeed(
            f"this wallet has no seed: its {len(keys)} key(s) were made before wallets had one, "
            "so no words can restore them. Write an encrypted export file instead: "
            "`ledgerdns wallet backup --out FILE`"
        )
    seed, _ = _unlock_seed(wallet, seeds)
    covered = sorted(
        (k for k in keys if k.derivation is not None and k.derivation.seed == seed.id),
        key=lambda k: k.derivation.index if k.derivation else 0,
    )
    for info in covered:  # never promise a key the words would not give back
        assert info.derivation is not None
        if seed.key(info.derivation.index)[0].public_key != info.public_key:
            raise CorruptKeyFile(f"key {info.name!r} is not the key its file says it derives from")
    others = [k for k in keys if k not in covered]
    count = 1 + max((k.derivation.index for k in covered if k.derivation), default=-1)
    data: dict[str, Any] = {
        "ok": True,
        "kind": "mnemonic",
        "mnemonic": seed.words,
        "seed": seed.id,
        "keys_to_restore": count,
        "covered": [_key_json(k) for k in covered],
        "not_covered": [_key_json(k) for k in others],
        "restore": f"ledgerdns wallet restore --keys {max(count, 1)}",
    }
    return Outcome(data=data, show=_words_lines(seed.words, covered, others, count))


def _key_json(info: KeyInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "public_key": bytes(info.public_key).hex(),
        "index": None if info.derivation is None else info.derivation.index,
    }


def _words_lines(
    words: str, covered: list[KeyInfo], others: list[KeyInfo], count: int
) -> list[RenderableType]:
    table = Table(title="the wallet's words", show_header=False)
    listed = words.split()
    half = (len(listed) + 1) // 2
    for i in range(half):
        right = f"{i + half + 1:2}. {listed[i + half]}" if i + half < len(listed) else ""
        table.add_row(Text(f"{i + 1:2}. {listed[i]}"), Text(right))
    lines: list[RenderableType] = [table, Text(
        "write them down in this order and keep them offline: anyone who has them can move "
        "your domains", style="bold",
    )]  # fmt: skip
    names = ", ".join(f"{k.name} (#{k.derivation.index})" for k in covered if k.derivation)
    lines.append(
        f"they restore {len(covered)} key(s): {names or 'none yet'}; "
        f"restore with `ledgerdns wallet restore --keys {max(count, 1)}` "
        "(restored keys are named default, key-1, key-2, ...)"
    )
    if others:
        lines.append(Text(
            f"NOT restored by these words: {', '.join(k.name for k in others)} (made before "
            "the seed, or imported). Back them up with `ledgerdns wallet backup --out FILE`, "
            "an encrypted export file of the whole wallet.",
            style="bold yellow",
        ))  # fmt: skip
    return lines


# -- the export file --


def write_export(wallet: Wallet, out: Path, *, force: bool) -> Outcome:
    """Write every secret and the wallet's bookkeeping to `out`, sealed with its own passphrase."""
    if out.exists() and not force:
        raise UsageError(f"{out} exists; pass --force to replace it")
    keys = wallet.keystore.keys()
    seeds = seed_of(wallet)
    if not keys and not seeds.exists():
        raise NoWallet(f"there is no wallet in {wallet.root}; nothing to export")
    seed, known = _unlock_seed(wallet, seeds) if seeds.exists() else (None, None)
    exported = []
    for info in keys:
        exported.append({
            "name": info.name,
            "public_key": bytes(info.public_key).hex(),
            "secret": _unlock(wallet, info, known).to_bytes().hex(),
            "derivation": None if info.derivation is None else info.derivation.to_json(),
        })  # fmt: skip
    payload = {
        "seed": None if seed is None else {"id": seed.id, "entropy": seed.entropy.hex()},
        "keys": exported,
        "metadata": _metadata(wallet.root),
    }
    passphrase = wallet.passphrases.for_export(str(out), new=True)
    encryption, sealed = seal(
        json.dumps(payload).encode(), passphrase, _EXPORT_AAD, scrypt_n=wallet.keystore.scrypt_n
    )
    doc = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "encryption": encryption,
           "payload": sealed}  # fmt: skip
    write_private(out, json.dumps(doc, indent=2) + "\n", replace=force)
    data = {"ok": True, "kind": "file", "path": str(out), "keys": len(exported),
            "seed": None if seed is None else seed.id}  # fmt: skip
    return Outcome(data=data, show=[
        f"wrote {len(exported)} key(s){' and the seed' if seed else ''} to {out}, encrypted "
        "with its passphrase; restore with `ledgerdns wallet restore --from FILE`",
    ])  # fmt: skip


def _unlock(wallet: Wallet, info: KeyInfo, known: str | None) -> PrivateKey:
    """Open a key, trying the seed's passphrase first (new keys share it), then asking."""
    if not info.encrypted:
        return wallet.keystore.unlock(info.name, None)
    if known is not None:
        try:
            return wallet.keystore.unlock(info.name, known)
        except WrongPassphrase:
            pass
    return wallet.keystore.unlock(info.name, wallet.passphrases.for_unlock(info.name))


def _metadata(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in METADATA_FILES:
        try:
            out[name] = json.loads((root / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise WalletError(f"cannot read {root / name}: {exc}") from None
    return out


def read_export(path: Path, passphrase_for: Any) -> Export:
    """Open an export file.

    Args:
        path: the file.
        passphrase_for: called with no argument to get the passphrase (after the
            file was found to be an export file, so a wrong path asks nothing).

    Raises:
        BadExportFile: the file is not an export file, or is damaged.
        WrongPassphrase: the passphrase does not open it (or it was altered).
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no file {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadExportFile(f"{path} is not a wallet export file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise BadExportFile(f"{path} is not a wallet export file (made by `wallet backup --out`)")
    if doc.get("version") != EXPORT_VERSION:
        raise BadExportFile(f"{path}: export format version {doc.get('version')!r} is not known")
    try:
        plain = unseal(doc.get("encryption"), doc.get("payload"), passphrase_for(), _EXPORT_AAD,
                       f"the export file {path}")  # fmt: skip
    except CorruptKeyFile as exc:
        raise BadExportFile(str(exc)) from None
    try:
        return _export_from_json(json.loads(plain))
    except (KeyError, TypeError, ValueError, InvalidUpdate) as exc:
        raise BadExportFile(f"{path}: the payload is damaged: {exc}") from None


def _export_from_json(payload: dict[str, Any]) -> Export:
    seed_doc = payload["seed"]
    seed = None
    if seed_doc is not None:
        seed = Seed(entropy=bytes.fromhex(seed_doc["entropy"]))
        if seed.id != seed_doc["id"]:
            raise ValueError("the seed does not match its id")
    keys = []
    for entry in payload["keys"]:
        key = PrivateKey.from_bytes(bytes.fromhex(entry["secret"]))
        if bytes(key.public_key).hex() != entry["public_key"]:
            raise ValueError(f"key {entry['name']!r}: secret and public key differ")
        keys.append(ExportedKey(name=str(entry["name"]), key=key, derivation=entry["derivation"]))
    metadata = payload.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError("metadata is not an object")
    return Export(seed=seed, keys=tuple(keys), metadata=metadata)
