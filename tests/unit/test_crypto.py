"""Keys and signatures: both libraries agree, and malleable or broken signatures fail."""

from __future__ import annotations

import hashlib

import coincurve
import ecdsa
import pytest

from chain.crypto import (
    HALF_ORDER,
    ORDER,
    PrivateKey,
    sha256,
    validate_public_key,
    verify,
    verify_slow,
)
from chain.errors import InvalidUpdate, RejectReason

# Published in docs/protocol.md.
VECTOR_SECRET = bytes.fromhex("01" * 32)
VECTOR_MESSAGE = b"ledgerdns test vector"


def _keys(n: int) -> list[PrivateKey]:
    return [PrivateKey.generate(bytes([i]) * 32) for i in range(n)]


def test_signature_matches_libsecp256k1_rfc6979() -> None:
    """An independent implementation (libsecp256k1 via coincurve) makes the same signature."""
    for key in _keys(8) + [PrivateKey.from_bytes(VECTOR_SECRET)]:
        digest = sha256(VECTOR_MESSAGE)
        ours = key.sign_digest(digest)
        theirs = coincurve.PrivateKey(key.to_bytes()).sign_recoverable(digest, hasher=None)[:64]
        assert ours == theirs
        assert key.sign_digest_native(digest) == ours  # the validators' fast path
        assert key.public_key == coincurve.PrivateKey(key.to_bytes()).public_key.format(True)


def test_both_verifiers_agree_on_good_and_bad() -> None:
    for key in _keys(6):
        digest = sha256(key.public_key)
        sig = key.sign_digest(digest)
        other = sha256(b"other")
        flipped = bytes([sig[0] ^ 1]) + sig[1:]
        for pub, s, d, expected in [
            (key.public_key, sig, digest, True),
            (key.public_key, sig, other, False),
            (key.public_key, flipped, digest, False),
            (_keys(7)[6].public_key, sig, digest, False),
        ]:
            assert verify(pub, s, d) is expected
            assert verify_slow(pub, s, d) is expected


def test_high_s_is_rejected_by_both() -> None:
    key = _keys(1)[0]
    digest = sha256(b"m")
    sig = key.sign_digest(digest)
    s = int.from_bytes(sig[32:], "big")
    assert s <= HALF_ORDER
    high = sig[:32] + (ORDER - s).to_bytes(32, "big")
    # The high-S twin is mathematically valid ECDSA...
    vk = ecdsa.VerifyingKey.from_string(key.public_key, curve=ecdsa.SECP256k1)
    assert vk.verify_digest(high, digest)
    # ...and still refused: no malleability.
    assert not verify(key.public_key, high, digest)
    assert not verify_slow(key.public_key, high, digest)


@pytest.mark.parametrize(
    "sig",
    [
        b"",
        b"\x00" * 64,
        b"\x01" * 63,
        b"\x01" * 65,
        ORDER.to_bytes(32, "big") + b"\x00" * 31 + b"\x01",
    ],
    ids=["empty", "zero", "truncated", "long", "r-equals-n"],
)
def test_broken_signatures_rejected(sig: bytes) -> None:
    key = _keys(1)[0]
    assert not verify(key.public_key, sig, sha256(b"m"))
    assert not verify_slow(key.public_key, sig, sha256(b"m"))


def test_wrong_curve_key_is_refused() -> None:
    p256 = ecdsa.SigningKey.generate(curve=ecdsa.NIST256p)
    with pytest.raises(InvalidUpdate) as info:
        PrivateKey.from_pem(p256.to_pem())
    assert info.value.reason == RejectReason.BAD_KEY
    # A P-256 point is (almost surely) not on secp256k1, and a signature by it never verifies.
    point = p256.get_verifying_key().to_string("compressed")
    digest = sha256(b"m")
    sig = p256.sign_digest_deterministic(digest, sigencode=ecdsa.util.sigencode_string_canonize)
    assert not verify(point, sig, digest)
    assert not verify_slow(point, sig, digest)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x02" * 32, b"\x04" + b"\x01" * 32, b"\x02" + b"\xff" * 32, b"\x05" + b"\x01" * 32],
)
def test_bad_public_keys(data: bytes) -> None:
    with pytest.raises(InvalidUpdate) as info:
        validate_public_key(data)
    assert info.value.reason == RejectReason.BAD_KEY


def test_pem_round_trip_and_secret_bounds() -> None:
    key = _keys(1)[0]
    assert PrivateKey.from_pem(key.to_pem()).public_key == key.public_key
    assert PrivateKey.from_bytes(key.to_bytes()).public_key == key.public_key
    for secret in (b"\x00" * 32, ORDER.to_bytes(32, "big"), b"\x01" * 31):
        with pytest.raises(InvalidUpdate):
            PrivateKey.from_bytes(secret)
    with pytest.raises(InvalidUpdate):
        PrivateKey.from_pem(b"-----BEGIN EC PRIVATE KEY-----\nnope\n-----END EC PRIVATE KEY-----\n")


def test_remembered_signatures_stay_exact_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from chain import crypto

    monkeypatch.setattr(crypto, "_verified", bytearray(4 * crypto.MEMO_SIZE))  # 4 slots
    key = PrivateKey.generate(b"cache")
    digests = [sha256(bytes([i])) for i in range(6)]
    sigs = [key.sign_digest(d) for d in digests]
    for d, s in zip(digests, sigs, strict=True):
        assert crypto.verify(key.public_key, s, d)
        assert crypto.verify(key.public_key, s, d)  # the remembered answer
        assert not crypto.verify(key.public_key, s, sha256(b"other"))  # never a false yes
        assert not crypto.verify(key.public_key, s + b"\x00", d[:-1])  # sizes checked first
    assert crypto.verified_memo_bytes() == 4 * crypto.MEMO_SIZE
    assert bytes(crypto._verified) != bytes(4 * crypto.MEMO_SIZE)  # something is remembered
    other = PrivateKey.generate(b"cache 2")
    assert not crypto.verify(other.public_key, sigs[5], digests[5])


def test_the_signature_memo_is_fixed_in_bytes_however_many_are_checked() -> None:
    """Issue 21: the memo takes its 2 MiB at import and not one byte more, however full."""
    import tracemalloc

    from chain import crypto

    key = PrivateKey.generate(b"memo bound")
    digests = [sha256(i.to_bytes(4, "big")) for i in range(1_000)]
    sigs = [key.sign_digest_native(d) for d in digests]
    assert crypto.verified_memo_bytes() == crypto.VERIFIED_SLOTS * crypto.MEMO_SIZE <= 2 * 2**20
    tracemalloc.start(1)
    try:
        before = tracemalloc.take_snapshot()
        for d, s in zip(digests, sigs, strict=True):
            assert crypto.verify(key.public_key, s, d)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    crypto_file = crypto.__file__
    grown = sum(
        stat.size_diff
        for stat in after.compare_to(before, "filename")
        if stat.traceback[0].filename == crypto_file
    )
    assert grown <= 0  # nothing kept per signature
    assert crypto.verified_memo_bytes() == crypto.VERIFIED_SLOTS * crypto.MEMO_SIZE
    table, size = bytes(crypto._verified), crypto.MEMO_SIZE
    remembered = 0
    for d, s in zip(digests, sigs, strict=True):
        memo = hashlib.sha256(key.public_key + s + d).digest()
        at = (int.from_bytes(memo[:4], "little") % crypto.VERIFIED_SLOTS) * size
        remembered += table[at : at + size] == memo
    assert remembered >= 0.95 * len(digests)  # a direct-mapped table keeps most of them


def test_native_signing_matches_ecdsa_on_many_digests() -> None:
    key = PrivateKey.generate(b"native")
    for i in range(200):
        digest = sha256(i.to_bytes(4, "big"))
        assert key.sign_digest_native(digest) == key.sign_digest(digest)
    with pytest.raises(ValueError):
        key.sign_digest_native(b"short")
