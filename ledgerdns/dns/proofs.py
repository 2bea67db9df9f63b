"""The node's side of proofs over DNS: the `ProofAnswer` for one question (chain/dns_proof.py).

Built from the finalized head at the moment the DNS answer is built (both in
one synchronous call, so they describe the same block): the head header and
its certificate, the validator-set changes the client lacks, and the state
proof of the domain that owns the question name. Never cached: every block
moves the head, and a proof of the previous one is one block stale.

Set changes are rare and each costs a block read to build, so the ones built
are kept (a few hundred bytes each, one per change since genesis).
"""

from __future__ import annotations

from typing import Protocol

from chain.block import read_block_frame
from chain.dns_proof import (
    MAX_CHANGES,
    ProofAnswer,
    ProofRequest,
    StateProof,
    domain_of,
)
from chain.lightclient import DomainProof, SetChange
from chain.quorum import CommitCertificate
from chain.validators import Roster
from ledgerdns.dns.resolve import ZoneSource, zone_serial
from ledgerdns.dns.result import Labels


class ProofSource(ZoneSource, Protocol):
    """What proofs read besides the zone: the proofs, rosters and certificates (`chain.ledger.Ledger`)."""

    def prove_domain(self, domain: str) -> DomainProof:
        """A domain's state (or absence) at the head, with the head's header and certificate."""

    def rosters(self) -> list[tuple[int, Roster]]:
        """Every roster since genesis with its first height, scheduled ones included."""

    def get_block_bytes(self, height: int) -> bytes:
        """The stored block at `height`."""

    def get_certificate(self, height: int) -> CommitCertificate:
        """The commit certificate of the block at `height`."""


class ProofBuilder:
    """Builds `ProofAnswer`s from the finalized ledger.

    Args:
        source: the ledger.
    """

    __slots__ = ("_changes", "_source")

    def __init__(self, source: ProofSource) -> None:
        self._source = source
        self._changes: dict[int, SetChange] = {}  # by first height of the new set

    def answer(self, request: ProofRequest, qname: Labels, *, budget: int) -> ProofAnswer | None:
        """The proof of the answer for `qname` (lower-case, under a ledger TLD) at the head.

        Args:
            request: what the client has.
            qname: the question name.
            budget: the most bytes the encoded answer may take; set changes are
                left out (``more_changes``) to fit it.

        Returns:
            The answer, or None when even without set changes it does not fit
            (or the chain has no certified block yet).
        """
        source = self._source
        head = source.head
        if head.height == 0:
            return None  # genesis only: nothing is certified yet
        domain = domain_of(qname, source.params.tlds)
        domains: tuple[StateProof, ...] = ()
        if domain is None:
            certificate = source.get_certificate(head.height)
        else:
            proof = source.prove_domain(domain)
            certificate = proof.certificate
            serial = 0 if proof.state is None else zone_serial(source, proof.state)
            domains = (
                StateProof(domain=domain, state=proof.state, proof=proof.proof, serial=serial),
            )
        changes = self._changes_after(request.known_from, head.height)
        more = len(changes) > MAX_CHANGES
        answer = ProofAnswer(
            header=head,
            certificate=certificate,
            changes=tuple(changes[:MAX_CHANGES]),
            more_changes=more,
            domains=domains,
        )
        return _fit(answer, budget)

    def _changes_after(self, known_from: int, head: int) -> list[SetChange]:
        """The changes starting after `known_from` whose announcing block is final, oldest first."""
        out = []
        for start, roster in self._source.rosters()[1:]:  # the first is genesis's: not a change
            if start <= known_from or start - 1 > head:
                continue
            change = self._changes.get(start)
            if change is None:
                header, _ = read_block_frame(self._source.get_block_bytes(start - 1))
                change = SetChange(
                    header=header,
                    certificate=self._source.get_certificate(start - 1),
                    roster=roster,
                )
                self._changes[start] = change
            out.append(change)
        return out


def _fit(answer: ProofAnswer, budget: int) -> ProofAnswer | None:
    """`answer` with as many of its set changes as fit in `budget` bytes, None if none do."""
    size = len(answer.to_bytes())
    if size <= budget:
        return answer
    if not answer.changes:
        return None
    changes = list(answer.changes)
    while changes:
        # Each change left out saves at least its own encoded parts.
        dropped = changes.pop()
        size -= len(dropped.header.to_bytes()) + len(dropped.certificate.to_bytes())
        size -= len(dropped.roster.to_bytes())
        if size <= budget:
            break
    trimmed = ProofAnswer(
        header=answer.header,
        certificate=answer.certificate,
        changes=tuple(changes),
        more_changes=True,
        domains=answer.domains,
    )
    return trimmed if len(trimmed.to_bytes()) <= budget else None
