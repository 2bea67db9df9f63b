"""Validator sets, votes and commit certificates.

`n` equal-weight validators tolerate ``f = (n - 1) // 3`` faulty ones; a
quorum is ``2n // 3 + 1`` distinct validators. A block is final when it
carries a certificate: precommit signatures of a quorum on its hash.

Vote sign bytes: ``[Kind.VOTE, 2, chain_id, genesis_hash, type, height,
round, block_hash, validator]`` (block_hash empty for nil); the signature is
over its SHA-256. The genesis hash is not sent with a vote: the verifier
supplies its own, so a vote from another network that shares the `chain_id`
does not verify. A certificate stores only ``(validator index, signature)``
pairs: each signature is checked against the precommit sign bytes rebuilt
from the certificate's height, round and block hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from chain.crypto import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    PrivateKey,
    PublicKey,
    sha256,
    validate_public_key,
    verify,
)
from chain.encoding import CborValue, Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.tx import MAX_CHAIN_ID

MAX_VALIDATORS = 256
VOTE_MAX_BYTES = 256


def quorum_size(n: int) -> int:
    """Votes needed to decide among `n` validators: floor(2n/3) + 1."""
    return 2 * n // 3 + 1


def max_faulty(n: int) -> int:
    """How many of `n` validators may be Byzantine: floor((n - 1) / 3)."""
    return (n - 1) // 3


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """The validators in genesis order (the order fixes indexes and proposer rotation)."""

    keys: tuple[PublicKey, ...]
    _index: dict[bytes, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.keys) <= MAX_VALIDATORS:
            raise InvalidUpdate(RejectReason.BAD_VALIDATORS, "need 1 to 256 validators")
        for key in self.keys:
            validate_public_key(key)
        index = {bytes(k): i for i, k in enumerate(self.keys)}
        if len(index) != len(self.keys):
            raise InvalidUpdate(RejectReason.BAD_VALIDATORS, "a validator key is listed twice")
        object.__setattr__(self, "_index", index)

    @property
    def n(self) -> int:
        """Number of validators."""
        return len(self.keys)

    @property
    def quorum(self) -> int:
        """Votes needed to decide."""
        return quorum_size(self.n)

    def index_of(self, key: bytes) -> int | None:
        """The index of `key`, or None if it is not a validator."""
        return self._index.get(bytes(key))

    def proposer(self, height: int, round_: int) -> PublicKey:
        """The proposer for a height and round (round-robin)."""
        return self.keys[(height + round_) % self.n]

    def hash(self) -> bytes:
        """SHA-256 of the framed key list (goes into every header)."""
        return sha256(frame(Kind.VALIDATOR_SET, [bytes(k) for k in self.keys]))


class VoteType(IntEnum):
    """Tendermint's two voting steps."""

    PREVOTE = 1
    PRECOMMIT = 2


def vote_sign_bytes(
    chain_id: str,
    genesis_hash: bytes,
    vtype: VoteType,
    height: int,
    round_: int,
    block_hash: bytes,
    validator: bytes,
) -> bytes:
    """The bytes whose SHA-256 a vote signs."""
    assert len(genesis_hash) == 32, "a genesis hash is 32 bytes"  # local, never from a peer
    return frame(
        Kind.VOTE, chain_id, genesis_hash, int(vtype), height, round_, block_hash, bytes(validator)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Vote:
    """A signed prevote or precommit; ``block_hash == b""`` is a vote for nil."""

    chain_id: str
    vtype: VoteType
    height: int
    round: int
    block_hash: bytes
    validator: PublicKey
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.block_hash) not in (0, 32):
            raise InvalidUpdate(RejectReason.BAD_VOTE, "vote block hash must be empty or 32 bytes")
        if len(self.validator) != PUBLIC_KEY_SIZE or len(self.signature) != SIGNATURE_SIZE:
            raise InvalidUpdate(RejectReason.BAD_VOTE, "vote key or signature has a wrong size")

    def digest(self, genesis_hash: bytes) -> bytes:
        """What the signature covers on the network of `genesis_hash`."""
        return sha256(
            vote_sign_bytes(
                self.chain_id,
                genesis_hash,
                self.vtype,
                self.height,
                self.round,
                self.block_hash,
                self.validator,
            )
        )

    @classmethod
    def create(
        cls,
        key: PrivateKey,
        *,
        chain_id: str,
        genesis_hash: bytes,
        vtype: VoteType,
        height: int,
        round_: int,
        block_hash: bytes,
    ) -> Vote:
        """Sign a vote with a validator key (`genesis_hash` is signed, not sent)."""
        sign_bytes = vote_sign_bytes(
            chain_id, genesis_hash, vtype, height, round_, block_hash, key.public_key
        )
        return cls(
            chain_id=chain_id,
            vtype=vtype,
            height=height,
            round=round_,
            block_hash=block_hash,
            validator=key.public_key,
            signature=key.sign_digest_native(sha256(sign_bytes)),
        )

    def is_valid_signature(self, genesis_hash: bytes) -> bool:
        """Whether the signature verifies under the vote's validator key on this network."""
        return verify(self.validator, self.signature, self.digest(genesis_hash))

    def to_bytes(self) -> bytes:
        """Canonical wire bytes."""
        return frame(
            Kind.VOTE,
            self.chain_id,
            int(self.vtype),
            self.height,
            self.round,
            self.block_hash,
            bytes(self.validator),
            self.signature,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Vote:
        """Decode strictly (the signature is not checked here).

        Raises:
            InvalidUpdate: malformed or non-canonical input.
        """
        r = Reader.open(data, Kind.VOTE, "vote", fields=7, max_size=VOTE_MAX_BYTES)
        chain_id = r.text("chain_id", maximum=MAX_CHAIN_ID)
        vtype = r.uint("type", maximum=2)
        if vtype == 0:
            raise InvalidUpdate(RejectReason.BAD_VOTE, "vote.type: 0 is not a vote type")
        vote = cls(
            chain_id=chain_id,
            vtype=VoteType(vtype),
            height=r.uint("height", maximum=2**63 - 1),
            round=r.uint("round", maximum=2**31 - 1),
            block_hash=r.bytes("block_hash", maximum=32),
            validator=PublicKey(r.bytes("validator", size=PUBLIC_KEY_SIZE)),
            signature=r.bytes("signature", size=SIGNATURE_SIZE),
        )
        r.done()
        return vote


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitCertificate:
    """Precommits of a quorum for one block: proof that the block is final."""

    height: int
    round: int
    block_hash: bytes
    signatures: tuple[tuple[int, bytes], ...]  # (validator index, signature), index ascending

    @classmethod
    def from_votes(cls, votes: Iterable[Vote], validators: ValidatorSet) -> CommitCertificate:
        """Collect precommits for one block into a certificate (no quorum check)."""
        votes = list(votes)
        if not votes:
            raise InvalidUpdate(RejectReason.NO_QUORUM, "no votes")
        first = votes[0]
        pairs: dict[int, bytes] = {}
        for vote in votes:
            same = (vote.height, vote.round, vote.block_hash)
            if vote.vtype != VoteType.PRECOMMIT or same != (first.height, first.round, first.block_hash):
                raise InvalidUpdate(RejectReason.BAD_VOTE, "votes are not precommits for one block")
            index = validators.index_of(vote.validator)
            if index is None:
                raise InvalidUpdate(RejectReason.UNKNOWN_VALIDATOR, "vote by a non-validator")
            pairs[index] = vote.signature
        return cls(
            height=first.height,
            round=first.round,
            block_hash=first.block_hash,
            signatures=tuple(sorted(pairs.items())),
        )

    def verify(
        self, validators: ValidatorSet, chain_id: str, block_hash: bytes, *, genesis_hash: bytes
    ) -> None:
        """Check the certificate finalizes `block_hash` on the network of `genesis_hash`.

        Raises:
            InvalidUpdate: NO_QUORUM, UNKNOWN_VALIDATOR, BAD_SIGNATURE or BAD_VOTE.
        """
        if self.block_hash != block_hash or len(block_hash) != 32:
            raise InvalidUpdate(RejectReason.BAD_VOTE, "certificate is for another block")
        last = -1
        for index, _ in self.signatures:
            if index <= last:
                raise InvalidUpdate(RejectReason.NON_CANONICAL, "certificate indexes not ascending")
            last = index
        if last >= validators.n:
            raise InvalidUpdate(RejectReason.UNKNOWN_VALIDATOR, f"validator index {last} unknown")
        if len(self.signatures) < validators.quorum:
            raise InvalidUpdate(
                RejectReason.NO_QUORUM,
                f"{len(self.signatures)} precommits, quorum is {validators.quorum} of {validators.n}",
            )
        for index, signature in self.signatures:
            key = validators.keys[index]
            digest = sha256(
                vote_sign_bytes(
                    chain_id,
                    genesis_hash,
                    VoteType.PRECOMMIT,
                    self.height,
                    self.round,
                    block_hash,
                    key,
                )
            )
            if not verify(key, signature, digest):
                raise InvalidUpdate(
                    RejectReason.BAD_SIGNATURE, f"certificate signature of validator {index} is bad"
                )

    def to_bytes(self) -> bytes:
        """Canonical wire bytes."""
        pairs: list[CborValue] = [[i, s] for i, s in self.signatures]
        return frame(Kind.CERTIFICATE, self.height, self.round, self.block_hash, pairs)

    @classmethod
    def from_bytes(cls, data: bytes) -> CommitCertificate:
        """Decode strictly (signatures are checked by `verify`).

        Raises:
            InvalidUpdate: malformed or non-canonical input.
        """
        r = Reader.open(data, Kind.CERTIFICATE, "certificate", fields=4, max_size=32 * 1024)
        height = r.uint("height", maximum=2**63 - 1)
        round_ = r.uint("round", maximum=2**31 - 1)
        block_hash = r.bytes("block_hash", size=32)
        items = r.array("signatures", maximum=MAX_VALIDATORS)
        r.done()
        pairs = []
        for item in items:
            pr = Reader(item, "certificate.signature", fields=2)
            pairs.append(
                (
                    pr.uint("index", maximum=MAX_VALIDATORS - 1),
                    pr.bytes("signature", size=SIGNATURE_SIZE),
                )
            )
        return cls(height=height, round=round_, block_hash=block_hash, signatures=tuple(pairs))
