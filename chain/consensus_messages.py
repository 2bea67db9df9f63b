"""What consensus sends and keeps besides votes: proposals, misbehaviour proofs, the signing guard.

Proposal sign bytes: ``[Kind.PROPOSAL, 2, chain_id, genesis_hash, height,
round, block_hash, pol_round + 1, proposer]`` (``pol_round`` is -1 when the
proposer has no proof-of-lock round, so the encoded value is 0). On the wire
the genesis hash is left out (the verifier supplies its own), the block bytes
replace the hash and the signature follows.

Two kinds of misbehaviour are provable from signed messages alone: `Evidence`
(two conflicting votes of one validator) and `InvalidProposal` (a proposal,
signed by its round's proposer, whose block breaks the ledger rules: anyone
with the chain up to the height before can re-run the check).

The `SignGuard` is the validator's memory of the last thing it signed. The
consensus state machine asks it before every signature, and emits the
guard's new bytes as an effect that the driver must make durable *before* it
sends the signed message, so a validator that crashes and restarts can never
sign two different things for one height, round and step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

from chain.block import MAX_BLOCK_BYTES_HARD, Block, read_block_frame
from chain.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, PrivateKey, PublicKey, sha256, verify
from chain.encoding import Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.quorum import MAX_VALIDATORS, VOTE_MAX_BYTES, ValidatorSet, Vote, VoteType
from chain.records import RecordLimits
from chain.tx import MAX_CHAIN_ID


class SignStep(IntEnum):
    """The order of signed messages within one height and round."""

    PROPOSAL = 0
    PREVOTE = 1
    PRECOMMIT = 2


def proposal_sign_bytes(
    chain_id: str,
    genesis_hash: bytes,
    height: int,
    round_: int,
    block_hash: bytes,
    pol_round: int,
    proposer: bytes,
) -> bytes:
    """The bytes whose SHA-256 a proposal signs."""
    assert len(genesis_hash) == 32, "a genesis hash is 32 bytes"  # local, never from a peer
    return frame(
        Kind.PROPOSAL,
        chain_id,
        genesis_hash,
        height,
        round_,
        block_hash,
        pol_round + 1,
        bytes(proposer),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    """A proposer's signed block for one height and round."""

    chain_id: str
    height: int
    round: int
    block: Block
    pol_round: int
    proposer: PublicKey
    signature: bytes

    def __post_init__(self) -> None:
        if self.pol_round < -1 or self.pol_round >= self.round:
            raise InvalidUpdate(RejectReason.BAD_VOTE, "proposal pol_round must be -1..round-1")
        if len(self.signature) != SIGNATURE_SIZE or len(self.proposer) != PUBLIC_KEY_SIZE:
            raise InvalidUpdate(RejectReason.BAD_VOTE, "proposal key or signature has a wrong size")
        if self.block.height != self.height:
            raise InvalidUpdate(RejectReason.BAD_HEIGHT, "proposal and block heights differ")

    def digest(self, genesis_hash: bytes) -> bytes:
        """What the signature covers on the network of `genesis_hash`."""
        return sha256(
            proposal_sign_bytes(
                self.chain_id,
                genesis_hash,
                self.height,
                self.round,
                self.block.hash,
                self.pol_round,
                self.proposer,
            )
        )

    def is_valid_signature(self, genesis_hash: bytes) -> bool:
        """Whether the proposer's signature verifies on the network of `genesis_hash`."""
        return verify(self.proposer, self.signature, self.digest(genesis_hash))

    @classmethod
    def create(
        cls,
        key: PrivateKey,
        *,
        chain_id: str,
        genesis_hash: bytes,
        round_: int,
        block: Block,
        pol_round: int,
    ) -> Proposal:
        """Sign a proposal (call only after the guard allowed it; `genesis_hash` is signed, not sent)."""
        digest = sha256(
            proposal_sign_bytes(
                chain_id, genesis_hash, block.height, round_, block.hash, pol_round, key.public_key
            )
        )
        return cls(
            chain_id=chain_id,
            height=block.height,
            round=round_,
            block=block,
            pol_round=pol_round,
            proposer=key.public_key,
            signature=key.sign_digest_native(digest),
        )

    def to_bytes(self) -> bytes:
        """Canonical wire bytes."""
        return frame(
            Kind.PROPOSAL,
            self.chain_id,
            self.height,
            self.round,
            self.block.to_bytes(),
            self.pol_round + 1,
            bytes(self.proposer),
            self.signature,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Proposal:
        """Decode strictly (the signature is checked by `is_valid_signature`).

        Raises:
            InvalidUpdate: malformed or non-canonical input.
        """
        return ProposalFrame.from_bytes(data).open()


@dataclass(frozen=True, slots=True)
class ProposalFrame:
    """A proposal decoded up to its block's header; the transactions are still bytes.

    The proposer signs the block hash, which is the header's hash, so `head`
    (the proposal with its block's header and no transactions) is enough to
    check who signed it (`validate_proposal_signer`) before paying for the
    body. `head` is for that check only: `open` gives the real proposal.
    """

    head: Proposal
    tx_items: tuple[bytes, ...]

    @classmethod
    def from_bytes(cls, data: bytes) -> ProposalFrame:
        """Decode a proposal's frame and its block's header, not its transactions.

        Raises:
            InvalidUpdate: malformed or non-canonical input.
        """
        r = Reader.open(
            data, Kind.PROPOSAL, "proposal", fields=7, max_size=MAX_BLOCK_BYTES_HARD + 512
        )
        chain_id = r.text("chain_id", maximum=MAX_CHAIN_ID)
        height = r.uint("height", maximum=2**63 - 1)
        round_ = r.uint("round", maximum=2**31 - 1)
        header, tx_items = read_block_frame(r.bytes("block", maximum=MAX_BLOCK_BYTES_HARD))
        head = Proposal(
            chain_id=chain_id,
            height=height,
            round=round_,
            block=Block(header=header, txs=()),
            pol_round=r.uint("pol_round", maximum=2**31) - 1,
            proposer=PublicKey(r.bytes("proposer", size=PUBLIC_KEY_SIZE)),
            signature=r.bytes("signature", size=SIGNATURE_SIZE),
        )
        r.done()
        return cls(head, tx_items)

    def open(self, *, limits: RecordLimits | None = None) -> Proposal:
        """The proposal with its transactions decoded.

        Raises:
            InvalidUpdate: a malformed transaction, or a record set over `limits`.
        """
        block = Block.from_parts(self.head.block.header, self.tx_items, limits=limits)
        return replace(self.head, block=block)


def validate_proposal_signer(
    proposal: Proposal, *, chain_id: str, genesis_hash: bytes, validators: ValidatorSet
) -> None:
    """That a proposal is for this network, from its round's proposer and signed by it.

    Needs only the block's header (see `ProposalFrame`). A proposal by anyone
    else can never count, so no honest node forwards one. A fresh block (no
    proof-of-lock round) must also name its signer as the header's `proposer`,
    which nothing else authenticates: the ledger only checks it is a validator,
    because a block locked in one round may be re-proposed by a later round's
    proposer (issue 13).

    Raises:
        InvalidUpdate: WRONG_CHAIN, BAD_PROPOSER or BAD_SIGNATURE.
    """
    if proposal.chain_id != chain_id:
        raise InvalidUpdate(RejectReason.WRONG_CHAIN, "proposal for another network")
    if proposal.proposer != validators.proposer(proposal.height, proposal.round):
        raise InvalidUpdate(RejectReason.BAD_PROPOSER, "proposal not from the round's proposer")
    if proposal.pol_round == -1 and proposal.block.header.proposer != proposal.proposer:
        raise InvalidUpdate(RejectReason.BAD_PROPOSER, "a fresh proposal's block names another proposer")
    if not proposal.is_valid_signature(genesis_hash):
        raise InvalidUpdate(RejectReason.BAD_SIGNATURE, "proposal signature is bad")


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """Two validly signed, conflicting votes by one validator at one height, round and type."""

    first: Vote
    second: Vote

    def __post_init__(self) -> None:
        a, b = self.first, self.second
        same_slot = (a.chain_id, a.vtype, a.height, a.round, a.validator) == (
            b.chain_id,
            b.vtype,
            b.height,
            b.round,
            b.validator,
        )
        if not same_slot or a.block_hash == b.block_hash:
            raise InvalidUpdate(RejectReason.BAD_VOTE, "evidence votes do not conflict")

    @classmethod
    def of(cls, a: Vote, b: Vote) -> Evidence:
        """Evidence in a canonical order (smaller block hash first), so it has one encoding."""
        first, second = (a, b) if a.block_hash < b.block_hash else (b, a)
        return cls(first=first, second=second)

    def verify(self, genesis_hash: bytes) -> None:
        """Check both signatures on the network of `genesis_hash`.

        Raises:
            InvalidUpdate: BAD_SIGNATURE.
        """
        first, second = self.first, self.second
        if not (first.is_valid_signature(genesis_hash) and second.is_valid_signature(genesis_hash)):
            raise InvalidUpdate(RejectReason.BAD_SIGNATURE, "evidence vote signature is bad")

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        return frame(Kind.EVIDENCE, self.first.to_bytes(), self.second.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> Evidence:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed input or votes that do not conflict.
        """
        r = Reader.open(data, Kind.EVIDENCE, "evidence", fields=2, max_size=1024)
        first = Vote.from_bytes(r.bytes("first", maximum=512))
        second = Vote.from_bytes(r.bytes("second", maximum=512))
        r.done()
        if first.block_hash >= second.block_hash:
            raise InvalidUpdate(RejectReason.NON_CANONICAL, "evidence votes out of order")
        return cls(first=first, second=second)


MAX_FAULT_REASON = 256  # UTF-8 bytes of an InvalidProposal's reason


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidProposal:
    """A validly signed proposal whose block fails the ledger's deterministic check.

    Only clock-independent failures qualify (see `chain.consensus.BlockJudge`):
    every honest node at that height holds the same chain, so each reaches the
    same verdict, and a third party can check it again from the stored chain.
    `reason` is the check's error text (the `RejectReason` code first).
    """

    proposal: Proposal
    reason: str

    def __post_init__(self) -> None:
        if not self.reason or len(self.reason.encode()) > MAX_FAULT_REASON:
            raise InvalidUpdate(
                RejectReason.MALFORMED, "invalid-proposal reason is empty or too long"
            )

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        return frame(Kind.INVALID_PROPOSAL, self.proposal.to_bytes(), self.reason)

    @classmethod
    def from_bytes(cls, data: bytes) -> InvalidProposal:
        """Decode strictly (the proposal's signature is checked by `proposal.is_valid_signature`).

        Raises:
            InvalidUpdate: malformed input.
        """
        r = Reader.open(
            data, Kind.INVALID_PROPOSAL, "invalid proposal", fields=2,
            max_size=MAX_BLOCK_BYTES_HARD + 1024 + MAX_FAULT_REASON,
        )  # fmt: skip
        proposal = Proposal.from_bytes(r.bytes("proposal", maximum=MAX_BLOCK_BYTES_HARD + 512))
        reason = r.text("reason", maximum=MAX_FAULT_REASON)
        r.done()
        return cls(proposal=proposal, reason=reason)


@dataclass(frozen=True, slots=True)
class SignGuard:
    """The last (height, round, step, block hash) this validator signed, and its lock.

    A signature is allowed when it is strictly later than the last one, or the
    very same message again (deterministic signing makes that the same bytes).
    The lock (round and block hash a validator precommitted at this height) is
    kept too: a validator that forgot its lock after a restart could help a
    Byzantine minority finalize a conflicting block.
    """

    height: int = 0
    round: int = -1
    step: int = -1
    block_hash: bytes = b""
    lock_round: int = -1
    lock_hash: bytes = b""

    def allows(self, height: int, round_: int, step: SignStep, block_hash: bytes) -> bool:
        """Whether signing this cannot conflict with anything signed before."""
        new = (height, round_, int(step))
        last = (self.height, self.round, self.step)
        if new != last:
            return new > last
        return block_hash == self.block_hash

    def after(self, height: int, round_: int, step: SignStep, block_hash: bytes) -> SignGuard:
        """The guard once this has been signed (a lock from an older height is dropped)."""
        if height != self.height:
            return SignGuard(height, round_, int(step), block_hash)
        return SignGuard(height, round_, int(step), block_hash, self.lock_round, self.lock_hash)

    def locked(self, round_: int, block_hash: bytes) -> SignGuard:
        """The guard with a new lock at its current height."""
        return SignGuard(self.height, self.round, self.step, self.block_hash, round_, block_hash)

    def to_bytes(self) -> bytes:
        """Canonical bytes, for the data directory."""
        return frame(
            Kind.SIGN_GUARD,
            self.height,
            self.round + 1,
            self.step + 1,
            self.block_hash,
            self.lock_round + 1,
            self.lock_hash,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SignGuard:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed input.
        """
        r = Reader.open(data, Kind.SIGN_GUARD, "guard", fields=6, max_size=160)
        guard = cls(
            r.uint("height", maximum=2**63 - 1),
            r.uint("round", maximum=2**31) - 1,
            r.uint("step", maximum=len(SignStep)) - 1,
            r.bytes("block_hash", maximum=32),
            r.uint("lock_round", maximum=2**31) - 1,
            r.bytes("lock_hash", maximum=32),
        )
        r.done()
        return guard


def vote_step(vtype: VoteType) -> SignStep:
    """The guard step of a vote type."""
    return SignStep.PREVOTE if vtype == VoteType.PREVOTE else SignStep.PRECOMMIT


MAX_RELAYED_VOTES = MAX_VALIDATORS  # one vote per validator and step is all a relay passes on


@dataclass(frozen=True, slots=True)
class RelayedVotes:
    """Other validators' votes, passed on together by their round's proposer (issue 20).

    Each vote keeps its own signature and is checked as if its signer had sent it;
    the relay adds nothing to trust, only saves messages: a validator sends its vote
    of round 0 to the round's proposer alone, which passes the votes on in batches,
    so a height costs each validator a handful of messages instead of two per
    validator. Wire: ``[Kind.RELAYED_VOTES, 1, [vote bytes, ...]]``.
    """

    votes: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        """Canonical bytes (each vote's own wire bytes inside)."""
        return frame(Kind.RELAYED_VOTES, list(self.votes))

    @classmethod
    def from_bytes(cls, data: bytes) -> RelayedVotes:
        """Decode strictly (the votes inside are decoded by the receiver).

        Raises:
            InvalidUpdate: malformed, empty, too many votes, or an item that is not bytes.
        """
        r = Reader.open(
            data, Kind.RELAYED_VOTES, "relayed_votes", fields=1,
            max_size=64 + MAX_RELAYED_VOTES * (VOTE_MAX_BYTES + 8),
        )  # fmt: skip
        items = r.array("votes", maximum=MAX_RELAYED_VOTES)
        r.done()
        if not items:
            raise InvalidUpdate(RejectReason.MALFORMED, "relayed_votes: empty")
        votes = []
        for i, item in enumerate(items):
            if type(item) is not bytes or len(item) > VOTE_MAX_BYTES:
                raise InvalidUpdate(RejectReason.MALFORMED, f"relayed_votes.votes[{i}]: expected vote bytes")
            assert isinstance(item, bytes)
            votes.append(item)
        return cls(tuple(votes))
