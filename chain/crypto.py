"""ECDSA over secp256k1 with SHA-256: keys, signing and the one `verify` function.

Public keys are 33-byte SEC1 compressed points. Signatures are 64 bytes,
``r || s`` big-endian, with low S (s <= n/2) required, so a signature cannot be
malleated into a second valid one. Signing uses the `ecdsa` package (RFC 6979
deterministic nonces); verification uses `coincurve` (libsecp256k1), about 30
times faster. `verify_slow` is the same check done by `ecdsa`; a test proves
the two agree.
"""

from __future__ import annotations

import hashlib
from typing import NewType

import coincurve
import ecdsa
from coincurve._libsecp256k1 import ffi as _ffi
from coincurve._libsecp256k1 import lib as _lib
from coincurve.context import GLOBAL_CONTEXT
from ecdsa.util import sigdecode_string, sigencode_string_canonize

from chain.errors import InvalidUpdate, RejectReason

PublicKey = NewType("PublicKey", bytes)
Signature = NewType("Signature", bytes)

CURVE = ecdsa.SECP256k1
ORDER: int = CURVE.order
HALF_ORDER = ORDER // 2
PUBLIC_KEY_SIZE = 33
SIGNATURE_SIZE = 64
DIGEST_SIZE = 32


def sha256(data: bytes) -> bytes:
    """SHA-256 of `data`."""
    return hashlib.sha256(data).digest()


class PrivateKey:
    """A secp256k1 signing key (the wallet's and the validator's)."""

    __slots__ = ("_key",)

    def __init__(self, key: ecdsa.SigningKey) -> None:
        if key.curve != CURVE:
            raise InvalidUpdate(RejectReason.BAD_KEY, "key is not on secp256k1")
        self._key = key

    @classmethod
    def generate(cls, entropy: bytes) -> PrivateKey:
        """The key derived from the caller's `entropy` (the core reads no randomness).

        For a real key pass 32 bytes from the OS (``os.urandom(32)``); fixed
        bytes give the same key every time, which tests and dev chains use.
        """
        secret = int.from_bytes(sha256(entropy), "big") % (ORDER - 1) + 1
        return cls(ecdsa.SigningKey.from_secret_exponent(secret, CURVE, hashfunc=hashlib.sha256))

    @classmethod
    def from_bytes(cls, secret: bytes) -> PrivateKey:
        """Load a 32-byte big-endian secret."""
        if len(secret) != 32:
            raise InvalidUpdate(RejectReason.BAD_KEY, "a secret key is 32 bytes")
        value = int.from_bytes(secret, "big")
        if not 1 <= value < ORDER:
            raise InvalidUpdate(RejectReason.BAD_KEY, "secret out of range")
        return cls(ecdsa.SigningKey.from_secret_exponent(value, CURVE, hashfunc=hashlib.sha256))

    def to_bytes(self) -> bytes:
        """The 32-byte secret. Handle with care."""
        return bytes(self._key.to_string())

    @classmethod
    def from_pem(cls, pem: bytes | str) -> PrivateKey:
        """Load a PEM private key (SEC1 or PKCS#8, possibly for another curve: refused)."""
        try:
            key = ecdsa.SigningKey.from_pem(pem, hashfunc=hashlib.sha256)
        except (ValueError, ecdsa.der.UnexpectedDER, ecdsa.MalformedPointError) as exc:
            raise InvalidUpdate(RejectReason.BAD_KEY, f"not a usable PEM key: {exc}") from None
        return cls(key)

    def to_pem(self) -> bytes:
        """PEM (SEC1) encoding of the key, unencrypted."""
        return bytes(self._key.to_pem())

    @property
    def public_key(self) -> PublicKey:
        """The 33-byte compressed public key."""
        return PublicKey(bytes(self._key.get_verifying_key().to_string("compressed")))

    def sign_digest(self, digest: bytes) -> Signature:
        """Sign a 32-byte digest deterministically (RFC 6979) with low S."""
        if len(digest) != DIGEST_SIZE:
            raise ValueError("digest must be 32 bytes")
        sig = self._key.sign_digest_deterministic(
            digest, hashfunc=hashlib.sha256, sigencode=sigencode_string_canonize
        )
        return Signature(bytes(sig))

    def sign_digest_native(self, digest: bytes) -> Signature:
        """`sign_digest` done by libsecp256k1: the same bytes, about 100 times faster.

        A validator signs two votes (and sometimes a proposal) per height; with
        the pure-Python `ecdsa` that is milliseconds on the path every block
        waits for. libsecp256k1 also uses RFC 6979 nonces and always returns low
        S, so the signature is identical (tests/unit/test_crypto.py checks it).
        """
        if len(digest) != DIGEST_SIZE:
            raise ValueError("digest must be 32 bytes")
        ctx = GLOBAL_CONTEXT.ctx
        sig = _ffi.new("secp256k1_ecdsa_signature *")
        secret = self.to_bytes()
        if not _lib.secp256k1_ecdsa_sign(ctx, sig, digest, secret, _ffi.NULL, _ffi.NULL):
            raise InvalidUpdate(RejectReason.BAD_KEY, "libsecp256k1 refused the key")
        out = _ffi.new("unsigned char[64]")
        _lib.secp256k1_ecdsa_signature_serialize_compact(ctx, out, sig)
        return Signature(bytes(_ffi.buffer(out, 64)))

    def sign(self, message: bytes) -> Signature:
        """Sign SHA-256(message)."""
        return self.sign_digest(sha256(message))


def validate_public_key(data: bytes) -> PublicKey:
    """Check that `data` is a compressed point on secp256k1.

    Raises:
        InvalidUpdate: with reason BAD_KEY.
    """
    if len(data) != PUBLIC_KEY_SIZE or data[0] not in (2, 3):
        raise InvalidUpdate(RejectReason.BAD_KEY, "a public key is 33 bytes, compressed")
    try:
        coincurve.PublicKey(data)
    except ValueError:
        raise InvalidUpdate(RejectReason.BAD_KEY, "not a point on secp256k1") from None
    return PublicKey(data)


def _split(signature: bytes) -> tuple[int, int] | None:
    if len(signature) != SIGNATURE_SIZE:
        return None
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < ORDER and 0 < s <= HALF_ORDER):
        return None
    return r, s


# The good-signature memo: a direct-mapped table of SHA-256(key || signature || digest)
# in one preallocated bytearray, so its memory is fixed from import on (issue 21):
# VERIFIED_SLOTS x 32 bytes = 2 MiB, whatever the load. It was a dict of the 129-byte
# concatenations, ~240 B an entry: 65,536 of them (~15 MiB) filled over the first ten
# minutes or so of a node's life and read as growth. The slot is chosen by the
# memo digest's first bytes, and a new entry overwrites whatever held its slot, so a
# remembered signature may be forgotten early (one more check, ~50 µs), never the
# other way round: a hit needs all 32 bytes equal, the SHA-256 of three fixed-size
# fields. 65,536 slots keep most of a sync page checked ahead in a thread (1 MiB,
# a few thousand transactions: e^(-n/65536) of them survive n later entries).
# One slice assignment or read of a bytearray runs under the GIL: the sync thread
# and the event loop never see half an entry.
VERIFIED_SLOTS = 65_536  # a power of two
MEMO_SIZE = 32  # bytes a slot
_verified = bytearray(VERIFIED_SLOTS * MEMO_SIZE)


def verified_memo_bytes() -> int:
    """The good-signature memo's size in bytes: fixed, `VERIFIED_SLOTS` x `MEMO_SIZE`."""
    return len(_verified)


def forget_verified() -> None:
    """Empty the good-signature memo (tests; a slot of zeros matches no SHA-256 in practice)."""
    _verified[:] = bytes(len(_verified))


def verify(public_key: bytes, signature: bytes, digest: bytes) -> bool:
    """Whether `signature` is a valid low-S signature of `digest` by `public_key`.

    Good signatures are remembered in a fixed-size table (`VERIFIED_SLOTS`
    slots, newest wins a slot): a node checks the same transaction in the
    mempool, in a proposal and in the block, and the same vote in the gossip
    filter and in consensus.
    """
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False  # also keeps the memo's fields fixed-size (no two splits of one string)
    if len(digest) != DIGEST_SIZE:
        return False
    memo = hashlib.sha256(bytes(public_key) + signature + digest).digest()
    table = _verified
    at = (int.from_bytes(memo[:4], "little") & (len(table) // MEMO_SIZE - 1)) * MEMO_SIZE
    if table[at : at + MEMO_SIZE] == memo:
        return True
    if not _verify(public_key, signature, digest):
        return False
    table[at : at + MEMO_SIZE] = memo
    return True


def _verify(public_key: bytes, signature: bytes, digest: bytes) -> bool:
    parts = _split(signature)
    if parts is None or len(digest) != DIGEST_SIZE or len(public_key) != PUBLIC_KEY_SIZE:
        return False
    # libsecp256k1 directly: parsing the compact signature in C saves building a
    # DER string and a PublicKey object per check (about 20 µs of 75).
    ctx = GLOBAL_CONTEXT.ctx
    sig = _ffi.new("secp256k1_ecdsa_signature *")
    if not _lib.secp256k1_ecdsa_signature_parse_compact(ctx, sig, signature):
        return False
    pub = _ffi.new("secp256k1_pubkey *")
    if not _lib.secp256k1_ec_pubkey_parse(ctx, pub, public_key, PUBLIC_KEY_SIZE):
        return False
    return bool(_lib.secp256k1_ecdsa_verify(ctx, sig, digest, pub))


def verify_slow(public_key: bytes, signature: bytes, digest: bytes) -> bool:
    """The same check as `verify`, done by the pure-Python `ecdsa` package."""
    parts = _split(signature)
    if parts is None or len(digest) != DIGEST_SIZE or len(public_key) != PUBLIC_KEY_SIZE:
        return False
    try:
        key = ecdsa.VerifyingKey.from_string(public_key, curve=CURVE, hashfunc=hashlib.sha256)
        return bool(key.verify_digest(signature, digest, sigdecode=sigdecode_string))
    except (ecdsa.BadSignatureError, ecdsa.MalformedPointError, ValueError):
        return False


def require_signature(public_key: bytes, signature: bytes, digest: bytes, what: str) -> None:
    """Raise unless `verify` accepts the signature.

    Raises:
        InvalidUpdate: with reason BAD_SIGNATURE.
    """
    if not verify(public_key, signature, digest):
        raise InvalidUpdate(RejectReason.BAD_SIGNATURE, f"{what}: signature does not verify")
