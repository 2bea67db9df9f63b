"""The wallet keystore: encrypted key files, their modes, and passphrase handling."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from chain.crypto import PrivateKey
from ledgerdns.wallet.errors import (
    BadInput,
    CorruptKeyFile,
    KeyExists,
    NoPassphrase,
    UnknownKey,
    WalletError,
    WrongPassphrase,
)
from ledgerdns.wallet.keystore import SCRYPT_N, Keystore
from ledgerdns.wallet.passphrase import ENV_PASSPHRASE, PassphraseSource

KEY = PrivateKey.generate(b"wallet unit test key 0")
FAST_N = 2**10  # scrypt cost for tests; real keys use SCRYPT_N


def store(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "wallet", scrypt_n=FAST_N)


def test_round_trip_with_passphrase(tmp_path: Path) -> None:
    keys = store(tmp_path)
    info = keys.create("default", KEY, "s3cret")
    assert info.public_key == KEY.public_key and info.encrypted
    assert keys.unlock("default", "s3cret").to_bytes() == KEY.to_bytes()
    assert keys.names() == ["default"]
    assert keys.find(KEY.public_key) == "default"
    assert keys.find(PrivateKey.generate(b"other").public_key) is None


def test_secret_is_not_stored_in_clear(tmp_path: Path) -> None:
    keys = store(tmp_path)
    keys.create("default", KEY, "s3cret")
    text = (keys.key_dir / "default.json").read_text()
    assert KEY.to_bytes().hex() not in text and "s3cret" not in text
    doc = json.loads(text)
    assert doc["encryption"]["kdf"] == "scrypt" and doc["encryption"]["n"] == FAST_N
    assert doc["public_key"] == bytes(KEY.public_key).hex()
    assert Keystore(tmp_path).scrypt_n == SCRYPT_N


def test_files_are_private(tmp_path: Path) -> None:
    keys = store(tmp_path)
    keys.create("default", KEY, "s3cret")
    assert stat.S_IMODE(keys.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(keys.key_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys.key_dir / "default.json").stat().st_mode) == 0o600
    assert [p.name for p in keys.key_dir.iterdir()] == ["default.json"]  # no temp file left


@pytest.mark.parametrize("given", ["wrong", "S3cret", "", None])
def test_wrong_passphrase(tmp_path: Path, given: str | None) -> None:
    keys = store(tmp_path)
    keys.create("default", KEY, "s3cret")
    with pytest.raises(WrongPassphrase):
        keys.unlock("default", given)


def test_insecure_key_needs_no_passphrase(tmp_path: Path) -> None:
    keys = store(tmp_path)
    info = keys.create("open", KEY, None)
    assert not info.encrypted and not keys.info("open").encrypted
    assert keys.unlock("open", None).public_key == KEY.public_key
    assert keys.unlock("open", "ignored").public_key == KEY.public_key


def test_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    keys = store(tmp_path)
    keys.create("default", KEY, "one")
    with pytest.raises(KeyExists):
        keys.check_new("default")
    with pytest.raises(KeyExists):
        keys.create("default", PrivateKey.generate(b"other"), "two")
    assert keys.unlock("default", "one").public_key == KEY.public_key


def test_unknown_and_bad_key_names(tmp_path: Path) -> None:
    keys = store(tmp_path)
    keys.create("work", KEY, None)
    with pytest.raises(UnknownKey, match="keys: work"):
        keys.unlock("home", None)
    for bad in ("", "../evil", "UPPER", "a b", "-x"):
        with pytest.raises(BadInput):
            keys.info(bad)


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    keys = store(tmp_path)
    keys.create("default", KEY, "s3cret")
    path = keys.key_dir / "default.json"
    doc = json.loads(path.read_text())
    doc["public_key"] = bytes(PrivateKey.generate(b"attacker").public_key).hex()
    path.write_text(json.dumps(doc))
    with pytest.raises(WrongPassphrase):  # the public key is bound to the ciphertext
        keys.unlock("default", "s3cret")
    path.write_text("{not json")
    with pytest.raises(CorruptKeyFile):
        keys.unlock("default", "s3cret")


def test_passphrase_from_environment() -> None:
    source = PassphraseSource({ENV_PASSPHRASE: "from env"}, prompt=None)
    assert source.for_unlock("default") == "from env"
    assert source.for_new("default") == "from env"
    with pytest.raises(NoPassphrase, match="insecure-no-passphrase"):
        PassphraseSource({ENV_PASSPHRASE: ""}, prompt=None).for_new("default")


def test_passphrase_prompt_twice_on_new() -> None:
    answers = iter(["one", "one", "one", "two"])
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return next(answers)

    source = PassphraseSource({}, prompt=prompt)
    assert source.for_new("default") == "one"
    assert len(asked) == 2
    with pytest.raises(WalletError, match="differ"):
        source.for_new("default")


def test_no_terminal_and_no_environment() -> None:
    with pytest.raises(NoPassphrase, match=ENV_PASSPHRASE):
        PassphraseSource({}, prompt=None).for_unlock("default")
