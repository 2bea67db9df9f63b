"""Wallet keys on disk, encrypted with a passphrase.

Each key is one JSON file, ``keys/<name>.json``, mode 0600, in a wallet
directory of mode 0700::

    {"version": 1, "name": "default", "public_key": "02ab...",
     "encryption": {"kdf": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "...",
                    "cipher": "aes-256-gcm", "nonce": "..."},
     "secret": "<hex of the AES-GCM ciphertext of the 32-byte secp256k1 secret>"}

The secret is sealed with AES-256-GCM under a key derived from the passphrase
by scrypt (both from `cryptography`); the name and public key are bound to it
as associated data, so a wrong passphrase or an edited file fails to open
instead of yielding a wrong key. The public key is stored in clear so that the
wallet can tell which domains it owns without asking for the passphrase.
A key made with ``--insecure-no-passphrase`` has ``"encryption": null`` and
the secret in clear.

A key derived from the wallet's seed (``ledgerdns.wallet.seed``) also says where
it came from, ``"derivation": {"seed": "<seed id>", "index": 3}``, so that
``wallet backup`` knows which keys the mnemonic restores and which need the
encrypted export file. Keys rotated off a domain are listed in ``retired.json``
(kept, never deleted: see ``ledgerdns.wallet.rotate``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from chain.crypto import PrivateKey, PublicKey
from chain.errors import InvalidUpdate
from ledgerdns.wallet.errors import (
    BadInput,
    CorruptKeyFile,
    KeyExists,
    UnknownKey,
    WrongPassphrase,
)

FORMAT_VERSION = 1
SCRYPT_N = 2**15  # about 0.1 s per unlock: cheap for a user, costly for a guesser
SCRYPT_R = 8
SCRYPT_P = 1
_KEY_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_AAD_PREFIX = b"ledgerdns wallet key v1\x00"


def validate_key_name(name: str) -> str:
    """Check a key name (``default``, ``work-2``): lower-case letters, digits, ``_.-``.

    Raises:
        BadInput: the name is not allowed.
    """
    if _KEY_NAME.fullmatch(name) is None:
        raise BadInput(
            f"key name {name!r} is not allowed: use 1..64 lower-case letters, digits, "
            "'_', '.' or '-', starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class Derivation:
    """Where a derived key comes from: the seed's id and the key's index under it."""

    seed: str
    index: int

    def to_json(self) -> dict[str, Any]:
        """The ``derivation`` object of a key file."""
        return {"seed": self.seed, "index": self.index}

    @classmethod
    def from_json(cls, doc: object) -> Derivation | None:
        """Read a ``derivation`` object (None when absent or not understood)."""
        if not isinstance(doc, dict):
            return None
        seed, index = doc.get("seed"), doc.get("index")
        if not isinstance(seed, str) or not isinstance(index, int) or index < 0:
            return None
        return cls(seed=seed, index=index)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the wallet knows about a key without its passphrase."""

    name: str
    public_key: PublicKey
    encrypted: bool
    derivation: Derivation | None = None


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _aad(name: str, public_key: bytes) -> bytes:
    return _AAD_PREFIX + name.encode() + b"\x00" + public_key


# -- sealing: scrypt + AES-256-GCM, shared by key files, the seed file and export files --


def seal(
    plain: bytes, passphrase: str | None, aad: bytes, *, scrypt_n: int = SCRYPT_N
) -> tuple[dict[str, Any] | None, str]:
    """Encrypt `plain` under `passphrase`: the ``encryption`` object and the secret's hex.

    With `passphrase` None the secret is returned in clear and ``encryption`` is None.
    """
    if passphrase is None:
        return None, plain.hex()
    salt, nonce = os.urandom(16), os.urandom(12)
    sealing_key = _derive(passphrase, salt, scrypt_n, SCRYPT_R, SCRYPT_P)
    sealed = AESGCM(sealing_key).encrypt(nonce, plain, aad)
    encryption = {
        "kdf": "scrypt",
        "n": scrypt_n,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": salt.hex(),
        "cipher": "aes-256-gcm",
        "nonce": nonce.hex(),
    }
    return encryption, sealed.hex()


def unseal(encryption: object, secret: object, passphrase: str | None, aad: bytes, what: str) -> bytes:
    """Decrypt what `seal` made.

    Args:
        encryption: the ``encryption`` object (None: the secret is in clear).
        secret: the secret's hex.
        passphrase: the passphrase (ignored for a secret in clear).
        aad: the associated data it was sealed with.
        what: how to name the secret in errors (``key 'default'``).

    Raises:
        WrongPassphrase: the passphrase does not open it (or none was given), or it was altered.
        CorruptKeyFile: the document is damaged or uses an unknown scheme.
    """
    try:
        raw = bytes.fromhex(secret) if isinstance(secret, str) else None
        if raw is None:
            raise ValueError("no secret")
        if encryption is None:
            return raw
        if not isinstance(encryption, dict):
            raise ValueError("bad encryption object")
        if encryption.get("kdf") != "scrypt" or encryption.get("cipher") != "aes-256-gcm":
            raise CorruptKeyFile(f"{what}: unknown encryption {encryption!r}")
        if passphrase is None:
            raise WrongPassphrase(f"{what} is encrypted: a passphrase is needed")
        sealing_key = _derive(
            passphrase, bytes.fromhex(encryption["salt"]), int(encryption["n"]),
            int(encryption["r"]), int(encryption["p"]),
        )  # fmt: skip
        return AESGCM(sealing_key).decrypt(bytes.fromhex(encryption["nonce"]), raw, aad)
    except InvalidTag:
        raise WrongPassphrase(f"wrong passphrase for {what}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptKeyFile(f"{what} is damaged: {exc}") from None


def write_private(path: Path, text: str, *, replace: bool) -> None:
    """Write `text` to `path` (0600), synced; atomically replacing it, or never (`replace` False).

    Raises:
        FileExistsError: `replace` is False and `path` exists.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the name is taken: never overwrite a secret
    finally:
        tmp.unlink(missing_ok=True)


class Keystore:
    """The keys of one wallet directory.

    Args:
        root: the wallet directory (created 0700 on first write).
        scrypt_n: scrypt cost for new keys (tests lower it; files record their own).
    """

    def __init__(self, root: Path, *, scrypt_n: int = SCRYPT_N) -> None:
        self.root = root
        self.scrypt_n = scrypt_n

    @property
    def key_dir(self) -> Path:
        """Where the key files are."""
        return self.root / "keys"

    def _path(self, name: str) -> Path:
        return self.key_dir / f"{validate_key_name(name)}.json"

    # -- listing --

    def names(self) -> list[str]:
        """The names of the keys in the wallet, sorted."""
        if not self.key_dir.is_dir():
            return []
        return sorted(p.stem for p in self.key_dir.glob("*.json") if _KEY_NAME.fullmatch(p.stem))

    def info(self, name: str) -> KeyInfo:
        """The public part of key `name`.

        Raises:
            UnknownKey: there is no such key.
            CorruptKeyFile: the file cannot be read.
        """
        doc = self._read(name)
        return KeyInfo(
            name=name,
            public_key=self._public_key(doc, name),
            encrypted=doc.get("encryption") is not None,
            derivation=Derivation.from_json(doc.get("derivation")),
        )

    def keys(self) -> list[KeyInfo]:
        """Every key's public part, sorted by name."""
        return [self.info(name) for name in self.names()]

    def find(self, public_key: bytes) -> str | None:
        """The name of the key with `public_key`, or None if the wallet has none."""
        for info in self.keys():
            if info.public_key == public_key:
                return info.name
        return None

    # -- creating and unlocking --

    def check_new(self, name: str) -> None:
        """Raise `KeyExists` if `name` is taken (before a passphrase is asked for)."""
        if self._path(name).exists():
            raise KeyExists(f"a key named {name!r} already exists in {self.root}")

    def create(
        self,
        name: str,
        key: PrivateKey,
        passphrase: str | None,
        *,
        derivation: Derivation | None = None,
    ) -> KeyInfo:
        """Store `key` as `name`, encrypted with `passphrase` (None: in clear).

        Args:
            name: the key's name.
            key: the key.
            passphrase: its passphrase; None stores it in clear.
            derivation: where a key derived from the wallet's seed comes from.

        Raises:
            KeyExists: a key of that name is already stored.
        """
        path = self._path(name)
        public_key = key.public_key
        encryption, secret = seal(
            key.to_bytes(), passphrase, _aad(name, public_key), scrypt_n=self.scrypt_n
        )
        doc: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "name": name,
            "public_key": bytes(public_key).hex(),
            "encryption": encryption,
            "secret": secret,
        }
        if derivation is not None:
            doc["derivation"] = derivation.to_json()
        self._write_new(path, json.dumps(doc, indent=2) + "\n", name)
        return KeyInfo(
            name=name, public_key=public_key, encrypted=passphrase is not None,
            derivation=derivation,
        )  # fmt: skip

    def unlock(self, name: str, passphrase: str | None) -> PrivateKey:
        """Decrypt key `name`.

        Args:
            name: the key.
            passphrase: its passphrase (ignored for a key stored in clear).

        Raises:
            UnknownKey: there is no such key.
            WrongPassphrase: the passphrase does not open it (or none was given).
            CorruptKeyFile: the file is damaged.
        """
        doc = self._read(name)
        public_key = self._public_key(doc, name)
        plain = unseal(
            doc.get("encryption"), doc.get("secret"), passphrase, _aad(name, public_key),
            f"key {name!r}",
        )  # fmt: skip
        try:
            key = PrivateKey.from_bytes(plain)
        except InvalidUpdate as exc:
            raise CorruptKeyFile(f"key file {self._path(name)} is damaged: {exc}") from None
        if key.public_key != public_key:
            raise CorruptKeyFile(f"key file {self._path(name)}: secret and public key differ")
        return key

    # -- retired keys --

    @property
    def retired_path(self) -> Path:
        """The list of keys rotated off a domain."""
        return self.root / "retired.json"

    def retired(self) -> dict[str, list[dict[str, Any]]]:
        """Each retired key's rotations (domain, successor key, height), by key name.

        Raises:
            CorruptKeyFile: the file exists but cannot be read.
        """
        try:
            doc = json.loads(self.retired_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CorruptKeyFile(f"cannot read {self.retired_path}: {exc}") from None
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, dict):
            raise CorruptKeyFile(f"{self.retired_path} is not a list of retired keys")
        return {str(k): [e for e in v if isinstance(e, dict)] for k, v in keys.items()
                if isinstance(v, list)}  # fmt: skip

    def retire(self, name: str, entry: dict[str, Any]) -> None:
        """Record that key `name` was rotated off a domain (`entry` says which and for what).

        The key file itself is kept: the old key still proves the domain's history
        and may own other domains.
        """
        retired = self.retired()
        entries = [e for e in retired.get(name, []) if e.get("domain") != entry.get("domain")]
        retired[name] = [*entries, entry]
        self._save_retired(retired)

    def _save_retired(self, retired: dict[str, list[dict[str, Any]]]) -> None:
        text = json.dumps({"version": FORMAT_VERSION, "keys": retired}, indent=2, sort_keys=True)
        write_private(self.retired_path, text + "\n", replace=True)

    # -- files --

    def _read(self, name: str) -> dict[str, Any]:
        path = self._path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            known = ", ".join(self.names()) or "none; create one with `ledgerdns wallet new`"
            raise UnknownKey(f"no key named {name!r} in {self.root} (keys: {known})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CorruptKeyFile(f"cannot read key file {path}: {exc}") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CorruptKeyFile(f"key file {path} is not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
            raise CorruptKeyFile(f"key file {path}: unknown format")
        return doc

    def _public_key(self, doc: dict[str, Any], name: str) -> PublicKey:
        try:
            raw = bytes.fromhex(doc["public_key"])
        except (KeyError, TypeError, ValueError):
            raise CorruptKeyFile(f"key file {self._path(name)}: bad public_key") from None
        return PublicKey(raw)

    def _write_new(self, path: Path, text: str, name: str) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.key_dir.mkdir(mode=0o700, exist_ok=True)
        try:
            write_private(path, text, replace=False)
        except FileExistsError:
            raise KeyExists(f"a key named {name!r} already exists in {self.root}") from None
