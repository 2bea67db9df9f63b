"""Checking one domain's state with nothing but a certified header and a proof.

A light client (a wallet, a resolver that does not keep the chain) holds the
genesis parameters: the validator set, `chain_id` and the genesis hash that
every precommit signature covers. Given a header, the commit certificate of that header,
a domain's claimed state (or a claim that it is absent) and a state-tree proof,
`verify_domain_state` decides whether the claim is what the finalized chain
says at that height. `DomainProof` bundles the four pieces for transport.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.block import BlockHeader
from chain.encoding import Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.params import ChainParams
from chain.quorum import CommitCertificate
from chain.smt_proof import MAX_PROOF_SIZE, Proof, verify_proof
from chain.state import DomainState, domain_key
from chain.tx import MAX_TX_BYTES

BUNDLE_MAX_BYTES = 512 + 32 * 1024 + MAX_TX_BYTES + MAX_PROOF_SIZE + 256


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

    def verify(self, params: ChainParams) -> DomainState | None:
        """`verify_domain_state` on the bundle against the genesis `params`; returns the proven state."""
        verify_domain_state(
            params=params,
            header=self.header,
            certificate=self.certificate,
            domain=self.domain,
            state=self.state,
            proof=self.proof,
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
) -> None:
    """Check that `domain` has exactly `state` (None: was never registered) at `header`.

    `params` are the trusted genesis's: its validators must have certified
    `header` on its network (same `chain_id` and genesis hash).

    Raises:
        InvalidUpdate: WRONG_CHAIN, BAD_VALIDATORS, NO_QUORUM, BAD_SIGNATURE,
            BAD_VOTE or BAD_PROOF, saying which check failed.
    """
    validators, chain_id = params.validators, params.chain_id
    if header.chain_id != chain_id:
        raise InvalidUpdate(RejectReason.WRONG_CHAIN, f"header is for network {header.chain_id!r}")
    if header.validators_hash != validators.hash():
        raise InvalidUpdate(RejectReason.BAD_VALIDATORS, "header names another validator set")
    if certificate.height != header.height:
        raise InvalidUpdate(RejectReason.BAD_VOTE, "certificate is for another height")
    certificate.verify(validators, chain_id, header.hash, genesis_hash=params.genesis_hash)
    if state is not None and state.domain != domain:
        raise InvalidUpdate(RejectReason.BAD_PROOF, f"state is for {state.domain}, not {domain}")
    value_hash = None if state is None else state.value_hash()
    if not verify_proof(header.state_root, domain_key(domain), value_hash, proof):
        raise InvalidUpdate(
            RejectReason.BAD_PROOF, f"{domain}: the proof does not match the header's state_root"
        )
