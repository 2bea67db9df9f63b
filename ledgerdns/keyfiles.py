"""Key files: PEM keys (validator, ``ledgerdns key``) and the signing keys DNS UPDATE uses.

A key file must be readable by its owner only; one that group or others can
read is refused (`check_private`), with the chmod that fixes it. The DNS
UPDATE signing keys (``[dns.update] keys`` in ``node.toml``) are loaded here by
the composition root, which hands the updater the keys, never the paths.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from chain.crypto import PrivateKey
from chain.errors import ConfigError, InvalidUpdate
from ledgerdns.wallet.errors import WalletError, WrongPassphrase
from ledgerdns.wallet.keystore import Keystore
from ledgerdns.wallet.passphrase import ENV_PASSPHRASE


def check_private(path: Path) -> None:
    """Refuse a file that group or others can read (a key, a token).

    Raises:
        ConfigError: it is, with the chmod that fixes it.
        OSError: it cannot be examined (FileNotFoundError if missing).
    """
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )


def load_key(path: Path) -> PrivateKey:
    """A PEM key that only its owner can read.

    Raises:
        ConfigError: unreadable, not a key, or readable by others.
    """
    try:
        check_private(path)
        return PrivateKey.from_pem(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such key file") from None
    except (OSError, InvalidUpdate) as exc:
        raise ConfigError(f"{path}: not a usable key ({exc})") from None


def create_key(path: Path) -> PrivateKey:
    """A new key (from ``os.urandom``) written 0600 to `path` (which must not exist)."""
    key = PrivateKey.generate(os.urandom(32))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.to_pem())
    return key


def load_signer(tsig_name: str, path: Path) -> PrivateKey:
    """The signing key mapped to TSIG key `tsig_name`.

    Either a wallet key file (``WALLET_DIR/keys/NAME.json``, as ``ledgerdns
    wallet new`` writes it; an encrypted one is opened with the passphrase in
    ``$LEDGERDNS_PASSPHRASE``) or a PEM key file (``ledgerdns key new``); either
    way only its owner may be able to read it.

    Raises:
        ConfigError: missing, unreadable, not a key, readable by group or
            others, or encrypted with no (or the wrong) passphrase; the error
            names the setting (``dns.update.keys."NAME"``).
    """
    where = f'dns.update.keys."{tsig_name}"'
    try:
        if path.suffix != ".json":
            return load_key(path)
        check_private(path)
        passphrase = os.environ.get(ENV_PASSPHRASE)
        return Keystore(path.parent.parent).unlock(path.stem, passphrase)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such key file", key=where) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", key=where) from None
    except WalletError as exc:
        hint = f" (set {ENV_PASSPHRASE})" if isinstance(exc, WrongPassphrase) else ""
        raise ConfigError(f"{exc}{hint}", key=where) from None
    except ConfigError as exc:
        raise ConfigError(str(exc), key=where) from None


def load_signers(keys: Mapping[str, Path]) -> dict[str, PrivateKey]:
    """Every signing key of ``[dns.update] keys`` (TSIG key name → key file), loaded.

    Raises:
        ConfigError: a key file is not usable (see `load_signer`).
    """
    return {name: load_signer(name, path) for name, path in keys.items()}
