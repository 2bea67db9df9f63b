"""Checking one domain's state with nothing but a certified header and a proof.

A light client (a wallet, a resolver that does not keep the chain) holds the
genesis parameters: the validator set, `chain_id` and the genesis hash that
every precommit signature covers. Given a header, the commit certificate of that header,
a domain's claimed state (or a claim that it is absent) and a state-tree proof,
`verify_domain_state` decides whether the claim is what the finalized chain
says at that height. `DomainProof` bundles the four pieces for transport.

The validator set can change (chain/validators.py). Every header commits to the
set of its own height and of the next, so a client that trusts the genesis set
follows it through each change with `follow_validator_set`: for each change, the
header just before it starts, certified by the set the client already trusts,
names the new set's hash, and the new roster must hash to it (and keep more than
a third of the old set in every quorum, the step rule). Heights between changes
need no headers at all.

A valid proof may still be old: a node that is behind, or one hiding newer
blocks, serves a genuinely certified header of an earlier height. Given the
caller's clock (`now_ms`) and a bound (`max_age_ms`), the check also refuses a
header dated more than the bound before now (STALE_PROOF), and, with a clock,
one dated more than `FUTURE_SLACK_MS` after it. On a network whose genesis sets
a heartbeat the head is never much older than one heartbeat even when idle, so
`default_max_age_ms` gives a bound that tells "nothing changed" from "this node
is hiding blocks"; without a heartbeat an idle head legitimately gets old and
there is no default (issue 13). Nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chain.block import BlockHeader
from chain.encoding import Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.params import ChainParams
from chain.quorum import CommitCertificate, ValidatorSet
from chain.smt_proof import MAX_PROOF_SIZE, Proof, verify_proof
from chain.state import DomainState, domain_key
from chain.tx import MAX_TX_BYTES
from chain.validators import Roster, check_step

BUNDLE_MAX_BYTES = 512 + 32 * 1024 + MAX_TX_BYTES + MAX_PROOF_SIZE + 256

# A certified header may be dated at most this far after the verifier's clock:
# clocks differ, and validators accept blocks up to 15 s ahead of theirs. Further
# ahead, a header would look fresh for that much longer than it is.
FUTURE_SLACK_MS = 60_000
# What `default_max_age_ms` allows beyond two heartbeats: a failed round or two
# before the heartbeat block is finalized, propagation, clock differences.
HEARTBEAT_SLACK_MS = 60_000


def default_max_age_ms(params: ChainParams) -> int | None:
    """The freshness bound a light client of this network should use by default.

    With a heartbeat (`consensus.heartbeat_ms` > 0) an idle network still
    finalizes an empty block about every heartbeat, so a newest certified header
    older than two heartbeats plus `HEARTBEAT_SLACK_MS` comes from a node that is
    behind or hiding blocks. Without one (0) an idle network's head may be any
    age, so there is no default bound (None).
    """
    heartbeat = params.consensus.heartbeat_ms
    return 2 * heartbeat + HEARTBEAT_SLACK_MS if heartbeat > 0 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainProof:
    """A header, its certificate, a domain's state (None: absent) and the tree proof."""

    domain: str
    header: BlockHeader
    certificate: CommitCertificate
    state: DomainState | None
    proof: Proof

    def to_bytes(self) -> bytes:
        """Wire form: ``[Kind.PROOF, 1, domain, header, certificate, state or b"", proof]``.

        (The inner tree proof is itself a framed `Kind.PROOF`; the outer one has
        five fields and the inner four, so the two can never be confused.)
        """
        state = b"" if self.state is None else self.state.to_bytes()
        return frame(
            Kind.PROOF,
            self.domain,
            self.header.to_bytes(),
            self.certificate.to_bytes(),
            state,
            self.proof.to_bytes(),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> DomainProof:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed input.
        """
        r = Reader.open(data, Kind.PROOF, "domain_proof", fields=5, max_size=BUNDLE_MAX_BYTES)
        domain = r.text("domain", maximum=253)
        header = BlockHeader.from_bytes(r.bytes("header", maximum=512))
        certificate = CommitCertificate.from_bytes(r.bytes("certificate", maximum=32 * 1024))
        state_bytes = r.bytes("state", maximum=MAX_TX_BYTES)
        proof = Proof.from_bytes(r.bytes("proof", maximum=MAX_PROOF_SIZE))
        r.done()
        state = DomainState.from_bytes(state_bytes) if state_bytes else None
        return cls(domain=domain, header=header, certificate=certificate, state=state, proof=proof)

    def verify(
        self,
        params: ChainParams,
        *,
        now_ms: int | None = None,
        max_age_ms: int | None = None,
        validators: ValidatorSet | None = None,
    ) -> DomainState | None:
        """`verify_domain_state` on the bundle against the genesis `params`; returns the proven state.

        `now_ms`, `max_age_ms` and `validators` are as in `verify_domain_state`.
        """
        verify_domain_state(
            params=params,
            validators=validators,
            header=self.header,
            certificate=self.certificate,
            domain=self.domain,
            state=self.state,
            proof=self.proof,
            now_ms=now_ms,
            max_age_ms=max_age_ms,
        )
        return self.state


def verify_domain_state(
    *,
    params: ChainParams,
    header: BlockHeader,
    certificate: CommitCertificate,
    domain: str,
    state: DomainState | None,
    proof: Proof,
    now_ms: int | None = None,
    max_age_ms: int | None = None,
    validators: ValidatorSet | None = None,
) -> None:
    """Check that `domain` has exactly `state` (None: was never registered) at `header`.

    `validators`: the set of the header's height when it is not the genesis set
    (followed there by `follow_validator_set`).

    `params` are the trusted genesis's: its validators must have certified
    `header` on its network (same `chain_id` and genesis hash). Freshness is
    checked last, so a STALE_PROOF is a genuine proof of old state.

    Args:
        now_ms: the verifier's clock (unix ms). With it, a header dated more than
            `FUTURE_SLACK_MS` after it is refused (BAD_TIME).
        max_age_ms: with `now_ms`, refuse a header dated more than this before
            it (STALE_PROOF). None: any age (see `default_max_age_ms`).

    Raises:
        InvalidUpdate: WRONG_CHAIN, BAD_VALIDATORS, NO_QUORUM, BAD_SIGNATURE,
            BAD_VOTE, BAD_PROOF, BAD_TIME or STALE_PROOF, saying which check failed.
        ValueError: `max_age_ms` without `now_ms`, or negative.
    """
    if max_age_ms is not None and (now_ms is None or max_age_ms < 0):
        raise ValueError("max_age_ms needs now_ms and must not be negative")
    verify_header(params=params, header=header, certificate=certificate, validators=validators)
    if state is not None and state.domain != domain:
        raise InvalidUpdate(RejectReason.BAD_PROOF, f"state is for {state.domain}, not {domain}")
    value_hash = None if state is None else state.value_hash()
    if not verify_proof(header.state_root, domain_key(domain), value_hash, proof):
        raise InvalidUpdate(
            RejectReason.BAD_PROOF, f"{domain}: the proof does not match the header's state_root"
        )
    if now_ms is not None:
        check_fresh(header, now_ms, max_age_ms)


def verify_header(
    *,
    params: ChainParams,
    header: BlockHeader,
    certificate: CommitCertificate,
    validators: ValidatorSet | None = None,
) -> None:
    """Check that `validators` (default: the genesis set) certified `header` on `params`' network.

    The first half of `verify_domain_state`, for a caller that proves several
    things against one header (chain/dns_proof.py) and checks freshness itself
    (`check_fresh`) once the proofs are checked.

    Raises:
        InvalidUpdate: WRONG_CHAIN, BAD_VALIDATORS, BAD_VOTE, NO_QUORUM, BAD_SIGNATURE.
    """
    validators = params.validators if validators is None else validators
    chain_id = params.chain_id
    if header.chain_id != chain_id:
        raise InvalidUpdate(RejectReason.WRONG_CHAIN, f"header is for network {header.chain_id!r}")
    if header.validators_hash != validators.hash():
        raise InvalidUpdate(RejectReason.BAD_VALIDATORS, "header names another validator set")
    if certificate.height != header.height:
        raise InvalidUpdate(RejectReason.BAD_VOTE, "certificate is for another height")
    certificate.verify(validators, chain_id, header.hash, genesis_hash=params.genesis_hash)


def check_fresh(header: BlockHeader, now_ms: int, max_age_ms: int | None) -> None:
    """Refuse a header dated too far after `now_ms` (BAD_TIME) or more than `max_age_ms` before it.

    Raises:
        InvalidUpdate: BAD_TIME or STALE_PROOF.
    """
    age_ms = now_ms - header.time_ms
    if -age_ms > FUTURE_SLACK_MS:
        # An honest quorum does not date blocks a minute ahead; the clock here may be slow.
        raise InvalidUpdate(
            RejectReason.BAD_TIME,
            f"the certified header at height {header.height} is dated {-age_ms / 1000:.1f} s "
            f"after this clock (at most {FUTURE_SLACK_MS / 1000:g} s allowed): check the clock",
            penalty=0,
        )
    if max_age_ms is not None and age_ms > max_age_ms:
        raise InvalidUpdate(
            RejectReason.STALE_PROOF,
            f"the certified header at height {header.height} is {age_ms / 1000:.1f} s old, "
            f"over the {max_age_ms / 1000:g} s bound: the node is behind or hiding newer blocks",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SetChange:
    """One change of the validator set, as a light client checks it.

    Attributes:
        header: the header of the last height before the change (`next_validators_hash`
            names the new set).
        certificate: that header's commit certificate.
        roster: the new set, with names.
    """

    header: BlockHeader
    certificate: CommitCertificate
    roster: Roster

    @property
    def from_height(self) -> int:
        """The first height the new set decides."""
        return self.header.height + 1


def follow_validator_set(
    params: ChainParams,
    changes: Sequence[SetChange],
    *,
    trusted: tuple[int, ValidatorSet] | None = None,
) -> list[tuple[int, ValidatorSet]]:
    """Check each change against the set before it, from genesis (or `trusted`) on.

    Args:
        params: the trusted genesis's parameters.
        changes: every change since the trusted set, oldest first.
        trusted: ``(from_height, set)`` already followed (default: genesis, from 1).

    Returns:
        ``(from_height, set)`` of the trusted set and every checked change, oldest first.

    Raises:
        InvalidUpdate: a change out of order, a header not certified by the set
            the client trusts for its height, a roster that is not the one the
            header names, or a step that breaks the step rule.
    """
    start, current = trusted if trusted is not None else (1, params.validators)
    out = [(start, current)]
    for change in changes:
        header = change.header
        if change.from_height <= start:
            raise InvalidUpdate(
                RejectReason.BAD_VALIDATORS, f"set change at {change.from_height} is out of order"
            )
        if header.chain_id != params.chain_id:
            raise InvalidUpdate(
                RejectReason.WRONG_CHAIN, f"header is for network {header.chain_id!r}"
            )
        if header.validators_hash != current.hash():
            raise InvalidUpdate(
                RejectReason.BAD_VALIDATORS,
                f"the header at {header.height} names a set the client did not follow there "
                "(a change is missing from the history)",
            )
        if change.certificate.height != header.height:
            raise InvalidUpdate(RejectReason.BAD_VOTE, "certificate is for another height")
        change.certificate.verify(
            current, params.chain_id, header.hash, genesis_hash=params.genesis_hash
        )
        new = change.roster.validators
        if new.hash() != header.next_validators_hash:
            raise InvalidUpdate(
                RejectReason.BAD_VALIDATORS,
                f"the roster from {change.from_height} is not the set its header names",
            )
        check_step(current, new)
        start, current = change.from_height, new
        out.append((start, current))
    return out


def set_for(followed: Sequence[tuple[int, ValidatorSet]], header: BlockHeader) -> ValidatorSet:
    """The followed set that decides `header`, checked against the header's own `validators_hash`.

    Raises:
        InvalidUpdate: BAD_VALIDATORS, the header names a set the client did not
            follow to its height (the node showed no history up to there).
    """
    found = followed[0][1]
    for start, validators in followed:
        if start <= header.height:
            found = validators
    if header.validators_hash != found.hash():
        raise InvalidUpdate(
            RejectReason.BAD_VALIDATORS,
            f"the header at {header.height} names a validator set the client has not followed "
            "there (the node's set history is missing a change)",
        )
    return found


def validators_for(
    params: ChainParams, header: BlockHeader, changes: Callable[[], Sequence[SetChange]]
) -> ValidatorSet:
    """The set to check `header`'s certificate with: the genesis set, or the one followed to it.

    `changes` is called only when the header names another set than genesis's
    (a node's ``GET /v1/validators/history``, decoded).

    Raises:
        InvalidUpdate: a change does not verify, or the changes do not reach the header's set.
    """
    if header.validators_hash == params.validators.hash():
        return params.validators
    return set_for(follow_validator_set(params, changes()), header)
