"""The wallet's seed: a BIP-39 mnemonic, and the keys derived from it.

A wallet made by this version has one seed, ``seed.json`` in the wallet
directory, and every key it creates (``new``, ``rotate``) is derived from it:

1. the BIP-39 entropy (16 bytes: 12 words) is what ``backup`` shows as words;
2. the BIP-39 seed is ``PBKDF2-HMAC-SHA512(words, "mnemonic", 2048)`` (64 bytes,
   no BIP-39 passphrase), computed by the `mnemonic` package;
3. key ``i`` is ``HKDF-SHA256(ikm=seed, salt=KEY_SALT, info=i (4 bytes, big
   endian) || counter (1 byte), length=32)`` read as a big-endian secp256k1
   secret, taking the first counter (from 0) whose value is in ``[1, n)``
   (the `cryptography` package's HKDF, RFC 5869).

So the words alone give back every derived key; docs/wallet.md argues the
choice and lists test vectors. The seed file is sealed like a key file (scrypt
+ AES-256-GCM, `keystore.seal`) and written once, never replaced: the next
free index is found from the key files.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from mnemonic import Mnemonic

from chain.crypto import ORDER, PrivateKey
from ledgerdns.wallet.errors import BadInput, CorruptKeyFile, WalletError
from ledgerdns.wallet.keystore import (
    SCRYPT_N,
    Derivation,
    KeyInfo,
    Keystore,
    seal,
    unseal,
    write_private,
)
from ledgerdns.wallet.passphrase import PassphraseSource

FORMAT_VERSION = 1
ENTROPY_BYTES = 16  # 12 words: 128 bits, the security level of secp256k1 itself
WORD_COUNTS = (12, 15, 18, 21, 24)
KEY_SALT = b"ledgerdns wallet key v1"
_ID_PREFIX = b"ledgerdns seed id v1\x00"
_AAD = b"ledgerdns wallet seed v1\x00"
MAX_INDEX = 2**31 - 1
_WORDS = Mnemonic("english")


class BadMnemonic(BadInput):
    """The words are not a BIP-39 mnemonic (a word is not in the list, or the count is wrong)."""

    code = "bad-mnemonic"


class BadChecksum(BadInput):
    """The words are BIP-39 words but fail their checksum."""

    code = "bad-checksum"


class SeedExists(WalletError):
    """The wallet already has a (different) seed."""

    code = "seed-exists"


# -- words --


def words_from_entropy(entropy: bytes) -> str:
    """The BIP-39 English words of `entropy` (16..32 bytes)."""
    return str(_WORDS.to_mnemonic(entropy))


def entropy_from_words(text: str) -> bytes:
    """Check a mnemonic typed by a person and return its entropy.

    Case, extra spaces and line breaks do not matter.

    Raises:
        BadMnemonic: a word is not a BIP-39 English word, or there are not 12..24 of them.
        BadChecksum: the words fail the checksum (a word is wrong, or two are swapped).
    """
    words = unicodedata.normalize("NFKD", text).lower().split()
    if len(words) not in WORD_COUNTS:
        raise BadMnemonic(
            f"{len(words)} words given: a mnemonic has 12, 15, 18, 21 or 24 words"
        )
    for position, word in enumerate(words, 1):
        if word not in _WORDS.wordlist:
            raise BadMnemonic(f"word {position}, {word!r}, is not a BIP-39 English word{_hint(word)}")
    phrase = " ".join(words)
    if not _WORDS.check(phrase):
        raise BadChecksum(
            "the words fail their checksum: one of them is wrong or two are swapped; "
            "check each against your backup"
        )
    return bytes(_WORDS.to_entropy(phrase))


def _hint(word: str) -> str:
    # BIP-39 words are unique in their first four letters, so a prefix names one word.
    by_prefix = [w for w in _WORDS.wordlist if len(word) >= 4 and w.startswith(word[:4])]
    close = by_prefix or difflib.get_close_matches(word, _WORDS.wordlist, n=3, cutoff=0.75)
    return f" (did you mean {' or '.join(repr(w) for w in close)}?)" if close else ""


# -- derivation --


def seed_from_entropy(entropy: bytes) -> bytes:
    """The 64-byte BIP-39 seed of the words for `entropy` (empty BIP-39 passphrase)."""
    return bytes(Mnemonic.to_seed(words_from_entropy(entropy), passphrase=""))


def seed_id(seed: bytes) -> str:
    """A short public name for a seed (16 hex digits), recorded in each derived key file."""
    return hashlib.sha256(_ID_PREFIX + seed).digest()[:8].hex()


def derive_key(seed: bytes, index: int) -> PrivateKey:
    """Key number `index` (0 .. 2**31 - 1) of `seed`, as the module docstring says."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"key index {index} out of range")
    for counter in range(256):
        info = index.to_bytes(4, "big") + bytes([counter])
        okm = HKDF(algorithm=hashes.SHA256(), length=32, salt=KEY_SALT, info=info).derive(seed)
        if 1 <= int.from_bytes(okm, "big") < ORDER:
            return PrivateKey.from_bytes(okm)
    raise AssertionError("no valid secret in 256 tries")  # probability about 2**-32000


# -- the seed file --


@dataclass(frozen=True, slots=True)
class Seed:
    """An unlocked seed."""

    entropy: bytes

    @property
    def words(self) -> str:
        """The mnemonic."""
        return words_from_entropy(self.entropy)

    @property
    def seed(self) -> bytes:
        """The 64-byte BIP-39 seed."""
        return seed_from_entropy(self.entropy)

    @property
    def id(self) -> str:
        """The seed's public id."""
        return seed_id(self.seed)

    def key(self, index: int) -> tuple[PrivateKey, Derivation]:
        """Key `index` and the derivation to record with it."""
        seed = self.seed
        return derive_key(seed, index), Derivation(seed=seed_id(seed), index=index)


class SeedFile:
    """``seed.json`` of one wallet directory.

    Args:
        root: the wallet directory.
        scrypt_n: scrypt cost for a new seed file (tests lower it).
    """

    def __init__(self, root: Path, *, scrypt_n: int = SCRYPT_N) -> None:
        self.path = root / "seed.json"
        self.scrypt_n = scrypt_n

    def exists(self) -> bool:
        """Whether the wallet has a seed."""
        return self.path.exists()

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CorruptKeyFile(f"cannot read the seed file {self.path}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
            raise CorruptKeyFile(f"seed file {self.path}: unknown format")
        if not isinstance(doc.get("id"), str):
            raise CorruptKeyFile(f"seed file {self.path}: no id")
        return doc

    def id(self) -> str:
        """The seed's id, without unlocking it."""
        return str(self._read()["id"])

    def encrypted(self) -> bool:
        """Whether the seed is sealed with a passphrase."""
        return self._read().get("encryption") is not None

    def create(self, seed: Seed, passphrase: str | None) -> None:
        """Store `seed` (encrypted with `passphrase`; None: in clear). Never replaces one.

        Raises:
            SeedExists: the wallet already has a seed.
        """
        sid = seed.id
        encryption, secret = seal(
            seed.entropy, passphrase, _AAD + sid.encode(), scrypt_n=self.scrypt_n
        )
        doc = {"version": FORMAT_VERSION, "id": sid, "words": len(seed.words.split()),
               "encryption": encryption, "secret": secret}  # fmt: skip
        try:
            write_private(self.path, json.dumps(doc, indent=2) + "\n", replace=False)
        except FileExistsError:
            raise SeedExists(f"{self.path} already exists: a wallet has one seed") from None

    def unlock(self, passphrase: str | None) -> Seed:
        """Decrypt the seed.

        Raises:
            WrongPassphrase: the passphrase does not open it.
            CorruptKeyFile: the file is damaged.
        """
        doc = self._read()
        sid = str(doc["id"])
        entropy = unseal(
            doc.get("encryption"), doc.get("secret"), passphrase, _AAD + sid.encode(),
            "the wallet seed",
        )  # fmt: skip
        if len(entropy) not in (16, 20, 24, 28, 32):
            raise CorruptKeyFile(f"seed file {self.path}: bad entropy length")
        seed = Seed(entropy=entropy)
        if seed.id != sid:
            raise CorruptKeyFile(f"seed file {self.path}: the secret does not match the id")
        return seed


def next_index(keystore: Keystore, sid: str) -> int:
    """The first index of seed `sid` no key file of the wallet uses."""
    used = [
        k.derivation.index for k in keystore.keys()
        if k.derivation is not None and k.derivation.seed == sid
    ]  # fmt: skip
    return max(used, default=-1) + 1


def derived_name(index: int) -> str:
    """The name `restore` gives derived key `index`: ``default`` for 0, else ``key-INDEX``."""
    return "default" if index == 0 else f"key-{index}"


def create_key(
    keystore: Keystore, passphrases: PassphraseSource, name: str, *, insecure: bool
) -> tuple[KeyInfo, bool]:
    """Derive the wallet's next key from its seed and store it as `name`.

    A wallet without a seed (a new one, or one made before seeds) gets one now,
    sealed with the same passphrase as the key. With a seed, its passphrase
    (asked once) also seals the new key.

    Returns:
        The new key, and whether a seed was made for it (then the user has words
        to write down).

    Raises:
        KeyExists: `name` is taken.
        WrongPassphrase: the seed's passphrase is wrong.
    """
    keystore.check_new(name)  # before asking for a passphrase
    seeds = SeedFile(keystore.root, scrypt_n=keystore.scrypt_n)
    made = not seeds.exists()
    if made:
        passphrase = None if insecure else passphrases.for_new(name)
        seed = Seed(entropy=os.urandom(ENTROPY_BYTES))
        seeds.create(seed, passphrase)
    else:
        seed_passphrase = passphrases.for_seed() if seeds.encrypted() else None
        seed = seeds.unlock(seed_passphrase)
        passphrase = None if insecure else seed_passphrase or passphrases.for_new(name)
    key, derivation = seed.key(next_index(keystore, seed.id))
    return keystore.create(name, key, passphrase, derivation=derivation), made
