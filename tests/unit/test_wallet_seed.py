"""The wallet seed: BIP-39 words, the documented key derivation (docs/wallet.md), the seed file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from chain.crypto import PrivateKey
from ledgerdns.wallet.errors import KeyExists, WrongPassphrase
from ledgerdns.wallet.keystore import Keystore
from ledgerdns.wallet.passphrase import ENV_PASSPHRASE, PassphraseSource
from ledgerdns.wallet.seed import (
    BadChecksum,
    BadMnemonic,
    Seed,
    SeedExists,
    SeedFile,
    create_key,
    derive_key,
    derived_name,
    entropy_from_words,
    next_index,
    seed_from_entropy,
    seed_id,
)

FAST_N = 2**10
ZERO_WORDS = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
LEGAL_WORDS = "legal winner thank year wave sausage worth useful legal winner thank yellow"

# The test vectors of docs/wallet.md ("Key derivation"): keep the two in step.
VECTORS = [
    (
        bytes(16),
        "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc1"
        "9a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4",
        "56254b282e8de16c",
        [
            ("3d1c74472888bb9f0c5b2c0381ef73e97e889c70a6d6683c7c519c0e30e51472",
             "038b6c5137313509ac4f19e1c01bd909c59dc4f4de361fd18b80f254ef25b00b6e"),
            ("bd5444226470b523aff330cbf4e6144d2cc9cba572e4203323bf719e96a6198a",
             "028b32da5d66df4b0947212fc3498d0058ca2ba6ffe25f0540bf5ae6a673d81a52"),
        ],
    ),
    (
        bytes.fromhex("7f" * 16),
        "878386efb78845b3355bd15ea4d39ef97d179cb712b77d5c12b6be415fffeffe"
        "5f377ba02bf3f8544ab800b955e51fbff09828f682052a20faa6addbbddfb096",
        "8844db10ce0e2147",
        [
            ("e4be779a098f6ed583dbbb0225262d948ccf23051496bb567ee274800d09748d",
             "02b20fba9eed731cda77f86312e1713f71a47b5c4556ca6a746d9b207fe87dff0c"),
            ("9cb4d61bb587235b1c2fa10df65ccff6681f93e23749bd58733ff8d4ecd71e2e",
             "03761742771e93af400d90d3fc55cc1442b9c1a54d6d799576dbfbd3c6bc3f0e6c"),
        ],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("entropy", "seed_hex", "sid", "keys"), VECTORS)
def test_derivation_vectors(entropy: bytes, seed_hex: str, sid: str, keys: list[tuple[str, str]]) -> None:
    seed = seed_from_entropy(entropy)
    assert seed.hex() == seed_hex  # BIP-39's own value for these words and an empty passphrase
    assert seed_id(seed) == sid
    for index, (secret, public) in enumerate(keys):
        key = derive_key(seed, index)
        assert key.to_bytes().hex() == secret
        assert bytes(key.public_key).hex() == public


def test_words_round_trip_and_are_forgiving_about_spacing() -> None:
    assert entropy_from_words(ZERO_WORDS) == bytes(16)
    assert entropy_from_words("  LEGAL winner\nthank year wave sausage worth useful legal winner thank yellow\n") == bytes.fromhex("7f" * 16)
    seed = Seed(entropy=bytes(16))
    assert seed.words == ZERO_WORDS and seed.id == "56254b282e8de16c"
    assert derived_name(0) == "default" and derived_name(3) == "key-3"


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (ZERO_WORDS.replace("about", "abuot"), BadMnemonic, "word 12, 'abuot', is not a BIP-39"),
        (ZERO_WORDS.replace("about", "abou"), BadMnemonic, "did you mean 'about'"),
        (ZERO_WORDS.replace("about", "zoo"), BadChecksum, "checksum"),
        (LEGAL_WORDS.replace("thank year", "year thank"), BadChecksum, "two are swapped"),
        (" ".join(ZERO_WORDS.split()[:11]), BadMnemonic, "11 words given"),
        ("", BadMnemonic, "0 words given"),
    ],
)
def test_bad_words_say_what_is_wrong(text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        entropy_from_words(text)


def test_seed_file_is_sealed_private_and_written_once(tmp_path: Path) -> None:
    seeds = SeedFile(tmp_path / "w", scrypt_n=FAST_N)
    seed = Seed(entropy=bytes(16))
    seeds.create(seed, "pass")
    text = seeds.path.read_text()
    assert stat.S_IMODE(seeds.path.stat().st_mode) == 0o600
    assert "abandon" not in text and bytes(16).hex() not in text
    assert json.loads(text)["id"] == seed.id == seeds.id() and seeds.encrypted()
    assert seeds.unlock("pass") == seed
    with pytest.raises(WrongPassphrase):
        seeds.unlock("nope")
    with pytest.raises(SeedExists):
        seeds.create(Seed(entropy=bytes.fromhex("7f" * 16)), "pass")
    assert seeds.unlock("pass") == seed


def test_create_key_makes_a_seed_then_derives_in_order(tmp_path: Path) -> None:
    keys = Keystore(tmp_path / "w", scrypt_n=FAST_N)
    source = PassphraseSource({ENV_PASSPHRASE: "pw"}, prompt=None)
    first, made = create_key(keys, source, "default", insecure=False)
    assert made and first.encrypted and first.derivation is not None
    seed = SeedFile(keys.root).unlock("pw")
    assert first.derivation.seed == seed.id and first.derivation.index == 0
    second, made = create_key(keys, source, "cold", insecure=True)
    assert not made and not second.encrypted and second.derivation is not None
    assert second.derivation.index == 1 == next_index(keys, seed.id) - 1
    assert keys.unlock("cold", None).to_bytes() == derive_key(seed.seed, 1).to_bytes()
    assert keys.info("cold").derivation == second.derivation  # read back from the file
    with pytest.raises(KeyExists):
        create_key(keys, source, "cold", insecure=True)
    # A key made without the seed (an older wallet, an import) is not counted.
    keys.create("old", PrivateKey.generate(b"random"), None)
    assert keys.info("old").derivation is None and next_index(keys, seed.id) == 2


def test_wrong_seed_passphrase_makes_no_key(tmp_path: Path) -> None:
    keys = Keystore(tmp_path / "w", scrypt_n=FAST_N)
    create_key(keys, PassphraseSource({ENV_PASSPHRASE: "pw"}, prompt=None), "default", insecure=False)
    with pytest.raises(WrongPassphrase, match="wallet seed"):
        create_key(keys, PassphraseSource({ENV_PASSPHRASE: "bad"}, prompt=None), "two", insecure=False)
    assert keys.names() == ["default"]
