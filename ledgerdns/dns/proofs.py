"""The node's side of proofs over DNS: the `ProofAnswer` for one question (chain/dns_proof.py).

Built from the finalized head at the moment the DNS answer is built (both in
one synchronous call, so they describe the same block): the head header and
its certificate, the validator-set changes the client lacks, and the state
proof of the domain that owns the question name. Never cached: every block
moves the head, and a proof of the previous one is one block stale.

What every answer at one head shares is encoded once: the header and its
certificate (until the head moves), and each set change (set changes are rare
and each costs a block read to build, so the ones built are kept: a few
hundred bytes each, one per change since genesis).
"""

from __future__ import annotations

from typing import Protocol

from chain.block import read_block_frame
from chain.dns_proof import (
    MAX_CHANGES,
    ProofAnswer,
    ProofRequest,
    StateProof,
    change_to_cbor,
    domain_of,
    encode_answer,
)
from chain.encoding import CborValue
from chain.lightclient import SetChange
from chain.quorum import CommitCertificate
from chain.smt_proof import Proof
from chain.state import domain_key
from chain.validators import Roster
from ledgerdns.dns.resolve import ZoneSource, zone_serial
from ledgerdns.dns.result import Labels


class StateProver(Protocol):
    """The committed state tree (`chain.smt.SparseMerkleTree`)."""

    def prove(self, key: bytes) -> Proof:
        """The proof of `key` (present or absent) against the committed root."""


class ProofSource(ZoneSource, Protocol):
    """What proofs read besides the zone: the tree, rosters and certificates (`chain.ledger.Ledger`)."""

    @property
    def tree(self) -> StateProver:
        """The state tree of the finalized head."""

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

    __slots__ = ("_changes", "_head", "_source")

    def __init__(self, source: ProofSource) -> None:
        self._source = source
        # by first height of the new set: the change's [header, certificate, roster] bytes
        self._changes: dict[int, list[CborValue]] = {}
        self._head: tuple[int, bytes, bytes] = (-1, b"", b"")  # height, header, certificate

    def answer(self, request: ProofRequest, qname: Labels, *, budget: int) -> ProofAnswer | None:
        """`answer_bytes`, decoded (for tests and tools)."""
        data = self.answer_bytes(request, qname, budget=budget)
        return None if data is None else ProofAnswer.from_bytes(data)

    def answer_bytes(self, request: ProofRequest, qname: Labels, *, budget: int) -> bytes | None:
        """The proof of the answer for `qname` (lower-case, under a ledger TLD) at the head, encoded.

        Args:
            request: what the client has.
            qname: the question name.
            budget: the most bytes the encoded answer may take; set changes are
                left out (``more_changes``) to fit it.

        Returns:
            The option data, or None when even without set changes it does not
            fit (or the chain has no certified block yet).
        """
        source = self._source
        height = source.head.height
        if height == 0:
            return None  # genesis only: nothing is certified yet
        domain = domain_of(qname, source.params.tlds)
        domains: list[list[CborValue]] = []
        if domain is not None:
            # What `Ledger.prove_domain` reads, without decoding the head's certificate again.
            state = source.get_domain(domain)
            serial = 0 if state is None else zone_serial(source, state)
            tree_proof = source.tree.prove(domain_key(domain))
            item = StateProof(domain=domain, state=state, proof=tree_proof, serial=serial)
            domains.append(item.to_cbor())
        _, header, certificate = self._head_parts(height)
        changes = self._changes_after(request.known_from, height)
        more = len(changes) > MAX_CHANGES
        del changes[MAX_CHANGES:]
        while True:
            data = encode_answer(
                header=header, certificate=certificate, changes=changes, more_changes=more,
                domains=domains,
            )  # fmt: skip
            if len(data) <= budget:
                return data
            if not changes:
                return None
            # Leave out the newest changes: the client follows the rest and asks again.
            excess = len(data) - budget
            while changes and excess > 0:
                excess -= sum(len(part) for part in changes.pop() if isinstance(part, bytes))
            more = True

    def _head_parts(self, height: int) -> tuple[int, bytes, bytes]:
        """The head's header and certificate bytes, encoded once per head."""
        if self._head[0] != height:
            header = self._source.head
            certificate = self._source.get_certificate(header.height)
            self._head = (header.height, header.to_bytes(), certificate.to_bytes())
        return self._head

    def _changes_after(self, known_from: int, head: int) -> list[list[CborValue]]:
        """The changes starting after `known_from` whose announcing block is final, oldest first."""
        out = []
        for start, roster in self._source.rosters()[1:]:  # the first is genesis's: not a change
            if start <= known_from or start - 1 > head:
                continue
            change = self._changes.get(start)
            if change is None:
                header, _ = read_block_frame(self._source.get_block_bytes(start - 1))
                certificate = self._source.get_certificate(start - 1)
                change = change_to_cbor(
                    SetChange(header=header, certificate=certificate, roster=roster)
                )
                self._changes[start] = change
            out.append(change)
        return out
