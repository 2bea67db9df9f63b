"""The memory-hard proof-of-work stamp a name commit carries (issue 15, docs/naming.md).

A stamp is `k` distinct nonces (u64 big-endian, strictly ascending), each of
which makes ``Argon2id(seed || nonce)`` fall under the target of the declared
`work`: its first 8 bytes, read as a big-endian integer ``v``, must satisfy
``v * work < 2**64`` (probability ~1/work per try). The seed binds the stamp
to the network, the name (through the commitment) and the owner key:
``seed = SHA-256([31, 1, genesis_hash, commitment, owner, work])``.

k sub-stamps instead of one make the cost of a stamp the sum of k geometric
draws: its mean is ``k * work`` evaluations and its spread ``1/sqrt(k)`` of
that, where a single search would as often take twice the mean as half (GNS
revocations do the same with 32 proofs). A verifier evaluates k hashes, the
miner ``k * work`` on average: the work factor alone sets the ratio.
"""

from __future__ import annotations

from collections.abc import Callable

from argon2.low_level import Type, hash_secret_raw

from chain.crypto import sha256
from chain.encoding import Kind, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.params import NamingParams

NONCE_SIZE = 8
MAX_STAMP_COUNT = 64
MAX_WORK = 2**40
# Argon2's salt: constant, since the seed already binds network, name and owner.
_SALT = b"ledgerdns-stamp1"
_TARGET = 2**64

Progress = Callable[[int, int], None]
"""Called as ``progress(evaluations, sub_stamps_found)`` while a stamp is searched."""


def stamp_seed(genesis_hash: bytes, commitment: bytes, owner: bytes, work: int) -> bytes:
    """What every sub-stamp of a commit's stamp hashes along with its nonce."""
    return sha256(frame(Kind.STAMP_INPUT, genesis_hash, commitment, owner, work))


def renewal_seed(genesis_hash: bytes, domain: str, owner: bytes, prev: bytes, work: int) -> bytes:
    """What a renewal's sub-stamps hash: bound to the name, its owner and its chain's head.

    The head (`prev`) changes with every step of the name's chain, so a renewal
    stamp serves one renewal only: a name held for years costs a stamp a lifetime.
    """
    return sha256(frame(Kind.RENEWAL_STAMP_INPUT, genesis_hash, domain, bytes(owner), prev, work))


def evaluate(seed: bytes, nonce: int, params: NamingParams) -> bytes:
    """One Argon2id evaluation of `seed` and `nonce` under the network's cost settings."""
    return hash_secret_raw(
        seed + nonce.to_bytes(NONCE_SIZE, "big"),
        _SALT,
        time_cost=params.stamp_passes,
        memory_cost=params.stamp_memory_kib,
        parallelism=1,
        hash_len=32,
        type=Type.ID,
    )


def meets(digest: bytes, work: int) -> bool:
    """Whether an evaluation's digest is under the target of `work`."""
    return int.from_bytes(digest[:8], "big") * work < _TARGET


def nonces_of(stamp: bytes) -> list[int]:
    """The nonces of a stamp's bytes (`stamp` holds a whole number of them)."""
    return [
        int.from_bytes(stamp[i : i + NONCE_SIZE], "big") for i in range(0, len(stamp), NONCE_SIZE)
    ]


def verify_stamp(stamp: bytes, seed: bytes, work: int, params: NamingParams) -> None:
    """Check a stamp against its seed and declared work (k Argon2id evaluations).

    A declared work of 0 takes an empty stamp. Cheap shape checks come first, and
    the first failing sub-stamp ends the check, so a forged stamp costs one evaluation.

    Raises:
        InvalidUpdate: `BAD_STAMP`.
    """
    if work == 0:
        if stamp:
            raise InvalidUpdate(RejectReason.BAD_STAMP, "a stamp of work 0 is empty")
        return
    count = params.stamp_count
    if len(stamp) != count * NONCE_SIZE:
        raise InvalidUpdate(
            RejectReason.BAD_STAMP, f"a stamp holds {count} nonces of {NONCE_SIZE} bytes"
        )
    nonces = nonces_of(stamp)
    if any(b <= a for a, b in zip(nonces, nonces[1:], strict=False)):
        raise InvalidUpdate(RejectReason.BAD_STAMP, "stamp nonces must be strictly ascending")
    for nonce in nonces:
        if not meets(evaluate(seed, nonce, params), work):
            raise InvalidUpdate(
                RejectReason.BAD_STAMP,
                f"sub-stamp {nonce} does not meet work {work} for this name, owner and network",
            )


def solve_stamp(
    seed: bytes,
    work: int,
    params: NamingParams,
    *,
    progress: Progress | None = None,
    report_every: int = 64,
) -> bytes:
    """Search the stamp for `seed` at `work` (``stamp_count * work`` evaluations on average).

    Deterministic: nonces are tried from 0 upwards, so an interrupted search
    started again finds the same stamp.

    Args:
        seed: `stamp_seed` of the commit.
        work: the declared work (0: the empty stamp).
        params: the network's stamp settings.
        progress: told about every `report_every` evaluations and every sub-stamp found.
        report_every: how often `progress` hears of evaluations.
    """
    if work == 0:
        return b""
    found: list[int] = []
    nonce = 0
    while len(found) < params.stamp_count:
        if meets(evaluate(seed, nonce, params), work):
            found.append(nonce)
            if progress is not None:
                progress(nonce + 1, len(found))
        elif progress is not None and (nonce + 1) % report_every == 0:
            progress(nonce + 1, len(found))
        nonce += 1
    return b"".join(n.to_bytes(NONCE_SIZE, "big") for n in found)
