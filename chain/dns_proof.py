"""Proofs over DNS: the EDNS0 option a client asks with and the node answers in (issue 16).

A light client (``ledgerdns resolver``) should trust no node: every answer it
accepts must be proven against the genesis it trusts. The proofs already exist
(`chain.lightclient`); this module carries them inside DNS itself, so a public
node needs to expose nothing but its DNS port.

The client puts `PROOF_OPTION_CODE` (from the local/experimental range
65001-65534 of RFC 6891 section 9) in its query's OPT record, holding a
`ProofRequest`: how far it has followed the validator set, so that the node
sends only the changes it lacks. The node answers as usual and adds the same
option to its reply's OPT record, holding a `ProofAnswer`: the certified head
header and its commit certificate, the validator-set changes since the
client's newest set, and the state-tree proof of the domain that owns the
question name (its state, or its absence). `verify_answer` checks all of it.

Which domain must be proven is decided by the client from the trusted genesis
alone (`domain_of`), the same way `ledgerdns.dns.resolve` decides it: the one
label directly under the longest ledger TLD the name lies under. Domains do not
nest (`chain.names.validate_domain`: a domain is exactly one label under a TLD,
and a TLD can never be registered), so there is never a closer candidate to
rule out; a name that is a TLD, or whose label under the TLD is not one the
ledger could hold, needs no state proof at all (its answer follows from the
genesis and the certified header). A node therefore cannot answer for a name
with the proof of another domain: the client never asks it which domain to
check.

Sizes are bounded everywhere: the option's data is at most 65,535 bytes (its
length field), and every list and nested object in it has its own limit, so a
hostile node cannot make the client allocate or verify without bound.

Wire forms (canonical CBOR, chain/encoding.py; docs/protocol.md section 8):
``[Kind.DNS_PROOF_REQUEST, 1, known_from]`` and
``[Kind.DNS_PROOF_ANSWER, 1, header, certificate, [[header, certificate,
roster], ...], more_changes, [[domain, state or b"", proof, serial], ...]]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chain.block import HEADER_MAX_BYTES, BlockHeader
from chain.encoding import CborValue, Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.lightclient import SetChange, check_fresh, follow_validator_set, set_for, verify_header
from chain.names import validate_domain
from chain.params import ChainParams
from chain.quorum import CommitCertificate, ValidatorSet
from chain.smt_proof import MAX_PROOF_SIZE, Proof, verify_proof
from chain.state import DomainState, domain_key
from chain.tx import MAX_TX_BYTES
from chain.validators import MAX_ROSTER_BYTES, Roster

# From the local/experimental range 65001-65534 (RFC 6891 section 9): no IANA
# assignment is needed, and no other software gives it a meaning on our port.
PROOF_OPTION_CODE = 65353
# An EDNS0 option's length is 16 bits: nothing in it can be larger.
MAX_OPTION_BYTES = 65535
MAX_REQUEST_BYTES = 64
MAX_CERTIFICATE_BYTES = 32 * 1024
# Set changes in one answer. A client further behind asks again (`more_changes`);
# each change costs it one certificate check, so this bounds its work per answer.
MAX_CHANGES = 64
# Domains proven in one answer: one today (names do not nest), room for later.
MAX_DOMAINS = 4
MAX_HEIGHT = 2**63 - 1

Followed = Sequence[tuple[int, ValidatorSet]]


def _malformed(message: str) -> InvalidUpdate:
    return InvalidUpdate(RejectReason.MALFORMED, message)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofRequest:
    """What the client says it already has.

    Attributes:
        known_from: the first height of the newest validator set the client has
            followed (1: the genesis set only). The node sends the changes that
            start after it.

    An empty option (zero bytes, as ``dig +ednsopt=65353`` sends) is the
    request of a client that knows only the genesis set.
    """

    known_from: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.known_from <= MAX_HEIGHT:
            raise _malformed(f"known_from must be in 1..{MAX_HEIGHT}, not {self.known_from}")

    @classmethod
    def following(cls, followed: Followed) -> ProofRequest:
        """The request of a client that has followed `followed` (oldest first)."""
        return cls(known_from=followed[-1][0] if followed else 1)

    def to_bytes(self) -> bytes:
        """``[Kind.DNS_PROOF_REQUEST, 1, known_from]``."""
        return frame(Kind.DNS_PROOF_REQUEST, self.known_from)

    @classmethod
    def from_bytes(cls, data: bytes) -> ProofRequest:
        """Decode strictly; b"" is the default request.

        Raises:
            InvalidUpdate: malformed, non-canonical or oversized bytes.
        """
        if not data:
            return cls()
        r = Reader.open(
            data, Kind.DNS_PROOF_REQUEST, "proof_request", fields=1, max_size=MAX_REQUEST_BYTES
        )
        known_from = r.uint("known_from", maximum=MAX_HEIGHT)
        r.done()
        if known_from == 0:
            raise _malformed("proof_request.known_from: heights start at 1")
        return cls(known_from=known_from)


@dataclass(frozen=True, slots=True, kw_only=True)
class StateProof:
    """One domain's state (None: never registered) and its state-tree proof.

    Attributes:
        domain: the canonical domain name.
        state: its state at the answer's header, None if absent.
        proof: the state-tree proof against the header's `state_root`.
        serial: the height of the block holding the domain's newest
            transaction (its zone's SOA serial, `ledgerdns.dns.resolve.zone_serial`;
            0 when absent or never updated since genesis). The node's word: the
            tree commits to the state, not to where its transaction lies. The
            verifier checks only that it is not past the header (nor set for an
            absent domain); it can change the SOA serial the client shows, never
            a record or an outcome.
    """

    domain: str
    state: DomainState | None
    proof: Proof
    serial: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.serial <= MAX_HEIGHT:
            raise _malformed(f"serial must be in 0..{MAX_HEIGHT}")

    def to_cbor(self) -> list[CborValue]:
        """``[domain, state bytes or b"", proof bytes, serial]``."""
        state = b"" if self.state is None else self.state.to_bytes()
        return [self.domain, state, self.proof.to_bytes(), self.serial]

    @classmethod
    def from_cbor(cls, item: CborValue) -> StateProof:
        """Decode one item of the answer's domain list.

        Raises:
            InvalidUpdate: malformed.
        """
        r = Reader(item, "proof_answer.domain", fields=4)
        domain = r.text("domain", maximum=253)
        state_bytes = r.bytes("state", maximum=MAX_TX_BYTES)
        proof = Proof.from_bytes(r.bytes("proof", maximum=MAX_PROOF_SIZE))
        serial = r.uint("serial", maximum=MAX_HEIGHT)
        r.done()
        state = DomainState.from_bytes(state_bytes) if state_bytes else None
        return cls(domain=domain, state=state, proof=proof, serial=serial)


def change_to_cbor(change: SetChange) -> list[CborValue]:
    """A set change as the answer lists it: ``[header, certificate, roster]`` (bytes each)."""
    return [change.header.to_bytes(), change.certificate.to_bytes(), change.roster.to_bytes()]


def encode_answer(
    *,
    header: bytes,
    certificate: bytes,
    changes: Sequence[list[CborValue]],
    more_changes: bool,
    domains: Sequence[list[CborValue]],
) -> bytes:
    """`ProofAnswer.to_bytes` from parts already encoded.

    A node answers many questions at one head: it encodes the header, the
    certificate and each set change once and assembles answers from the bytes.
    """
    return frame(
        Kind.DNS_PROOF_ANSWER, header, certificate, list(changes), int(more_changes), list(domains)
    )


def _change_from_cbor(item: CborValue) -> SetChange:
    r = Reader(item, "proof_answer.change", fields=3)
    header = BlockHeader.from_bytes(r.bytes("header", maximum=HEADER_MAX_BYTES))
    certificate = CommitCertificate.from_bytes(
        r.bytes("certificate", maximum=MAX_CERTIFICATE_BYTES)
    )
    roster = Roster.from_bytes(r.bytes("roster", maximum=MAX_ROSTER_BYTES))
    r.done()
    return SetChange(header=header, certificate=certificate, roster=roster)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofAnswer:
    """What the node puts in its reply's option: everything the client needs to check the answer.

    Attributes:
        header: the node's finalized head, which the DNS answer was computed at.
        certificate: the head's commit certificate.
        changes: the validator-set changes after the client's `known_from`, oldest
            first, up to the head (at most `MAX_CHANGES`, and what fits the message).
        more_changes: the node left out newer changes: follow these and ask again.
        domains: the proof of the domain owning the question name (empty when the
            name needs none: a TLD, or a label the ledger could not hold).
    """

    header: BlockHeader
    certificate: CommitCertificate
    changes: tuple[SetChange, ...] = ()
    more_changes: bool = False
    domains: tuple[StateProof, ...] = ()

    def __post_init__(self) -> None:
        if len(self.changes) > MAX_CHANGES or len(self.domains) > MAX_DOMAINS:
            raise InvalidUpdate(
                RejectReason.OVERSIZE,
                f"at most {MAX_CHANGES} set changes and {MAX_DOMAINS} domains per answer",
            )

    def to_bytes(self) -> bytes:
        """The option's data (see the module doc)."""
        return encode_answer(
            header=self.header.to_bytes(),
            certificate=self.certificate.to_bytes(),
            changes=[change_to_cbor(c) for c in self.changes],
            more_changes=self.more_changes,
            domains=[d.to_cbor() for d in self.domains],
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ProofAnswer:
        """Decode strictly (nothing is verified yet: see `verify_answer`).

        Raises:
            InvalidUpdate: malformed, non-canonical or oversized bytes.
        """
        r = Reader.open(
            data, Kind.DNS_PROOF_ANSWER, "proof_answer", fields=5, max_size=MAX_OPTION_BYTES
        )
        header = BlockHeader.from_bytes(r.bytes("header", maximum=HEADER_MAX_BYTES))
        certificate = CommitCertificate.from_bytes(
            r.bytes("certificate", maximum=MAX_CERTIFICATE_BYTES)
        )
        changes = tuple(_change_from_cbor(c) for c in r.array("changes", maximum=MAX_CHANGES))
        more = r.uint("more_changes", maximum=1)
        domains = tuple(StateProof.from_cbor(d) for d in r.array("domains", maximum=MAX_DOMAINS))
        r.done()
        return cls(
            header=header,
            certificate=certificate,
            changes=changes,
            more_changes=bool(more),
            domains=domains,
        )


def _labels_of(qname: str | Sequence[bytes]) -> tuple[bytes, ...]:
    if isinstance(qname, str):
        text = qname.removesuffix(".")
        if not text.isascii():
            raise InvalidUpdate(RejectReason.BAD_NAME, f"{qname[:64]!r}: a DNS name is ASCII")
        return tuple(label.encode() for label in text.split(".")) if text else ()
    return tuple(qname)


def domain_of(qname: str | Sequence[bytes], tlds: Sequence[str]) -> str | None:
    """The domain whose state decides the answer for `qname`, None when none does.

    Mirrors `ledgerdns.dns.resolve.Resolver`: the longest ledger TLD the name
    lies under, then the one label directly under it. None when `qname` is a TLD
    (its answer is synthesized from the header) or that label is not one the
    ledger could hold (NXDOMAIN by the rules alone).

    Args:
        qname: the question name, as text (a trailing dot allowed) or as labels
            (dnslib's ``DNSLabel.label``); compared case-insensitively.
        tlds: the trusted genesis's TLDs (`ChainParams.tlds`).

    Raises:
        InvalidUpdate: BAD_NAME, the name is not under any of `tlds` (no node can
            prove anything about it).
    """
    labels = tuple(label.lower() for label in _labels_of(qname))
    tld_labels = sorted((tuple(t.encode().split(b".")) for t in tlds), key=len, reverse=True)
    for tld in tld_labels:
        if len(labels) >= len(tld) and labels[len(labels) - len(tld) :] == tld:
            break
    else:
        raise InvalidUpdate(
            RejectReason.BAD_NAME, "the name is under none of the ledger's TLDs", penalty=0
        )
    if len(labels) == len(tld):
        return None
    try:
        name = b".".join(labels[len(labels) - len(tld) - 1 :]).decode("ascii")
        return validate_domain(name, tlds)
    except (UnicodeDecodeError, InvalidUpdate):
        return None


class IncompleteHistory(InvalidUpdate):
    """The answer's header needs set changes the node left for a later answer.

    Not a lie: the node sent at most `MAX_CHANGES` (or what fit the message) and
    said so (`more_changes`). The changes it did send were verified: keep
    `followed` and ask again with `ProofRequest.following(followed)`.

    Attributes:
        followed: the client's history extended with the verified changes.
        changes: those changes.
    """

    def __init__(self, followed: list[tuple[int, ValidatorSet]], changes: tuple[SetChange, ...]):
        super().__init__(
            RejectReason.BAD_VALIDATORS,
            f"the node sent {len(changes)} validator-set changes and has more: ask again "
            f"from height {followed[-1][0]}",
            penalty=0,
        )
        self.followed = followed
        self.changes = changes


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedAnswer:
    """What a verified `ProofAnswer` proves.

    Attributes:
        header: the certified header the answer is proven at (height, time).
        domain: the domain owning the question name (None: none needed, see `domain_of`).
        state: its proven state; None when it is proven absent (or `domain` is None).
        serial: the domain zone's SOA serial, the node's word (`StateProof.serial`).
        changes: the set changes newly verified in this answer, oldest first.
        followed: the client's set history including them: keep it for the next
            request (`ProofRequest.following`) and `verify_answer`.
    """

    header: BlockHeader
    domain: str | None
    state: DomainState | None
    serial: int
    changes: tuple[SetChange, ...]
    followed: list[tuple[int, ValidatorSet]]


def verify_answer(
    answer: ProofAnswer,
    *,
    params: ChainParams,
    known: Followed | None,
    qname: str | Sequence[bytes],
    now_ms: int,
    max_age_ms: int | None,
) -> VerifiedAnswer:
    """Check a node's proof of the answer for `qname` against the trusted genesis.

    In order: the set changes follow from the client's newest set, each
    certified by the set before it; the header is certified by the set of its
    height, on this network (chain_id and genesis hash); the answer proves
    exactly the domain `domain_of` names, its state (or absence) against the
    header's state root; and last the header is fresh (so a STALE_PROOF is a
    genuine proof of old state: an honest node that is behind, or one hiding
    newer blocks).

    Args:
        answer: the decoded option data of the reply.
        params: the trusted genesis's parameters.
        known: the client's followed set history, oldest first, as
            `chain.lightclient.follow_validator_set` (or a previous
            `VerifiedAnswer.followed`) returns it; None: the genesis set only.
        qname: the question name (text or labels).
        now_ms: the client's clock, unix milliseconds.
        max_age_ms: the oldest header accepted (None: any age;
            `chain.lightclient.default_max_age_ms` gives the network's default).

    Raises:
        IncompleteHistory: the header needs changes the node will send next time.
        InvalidUpdate: WRONG_CHAIN, BAD_VALIDATORS, BAD_VOTE, NO_QUORUM,
            BAD_SIGNATURE, BAD_PROOF, BAD_TIME, STALE_PROOF or BAD_NAME, saying
            which check failed.
    """
    history = list(known) if known else [(1, params.validators)]
    # The trusted entry comes back first: the full history is everything before it plus this.
    followed = history[:-1] + follow_validator_set(params, answer.changes, trusted=history[-1])
    try:
        validators = set_for(followed, answer.header)
    except InvalidUpdate:
        if answer.more_changes:
            raise IncompleteHistory(followed, answer.changes) from None
        raise
    verify_header(
        params=params, header=answer.header, certificate=answer.certificate, validators=validators
    )
    domain = domain_of(qname, params.tlds)
    state, serial = _check_domains(answer, domain)
    check_fresh(answer.header, now_ms, max_age_ms)
    return VerifiedAnswer(
        header=answer.header,
        domain=domain,
        state=state,
        serial=serial,
        changes=answer.changes,
        followed=followed,
    )


def _check_domains(answer: ProofAnswer, domain: str | None) -> tuple[DomainState | None, int]:
    """The proven state and serial of `domain`: the answer must prove it, and only it."""
    proven = [d.domain for d in answer.domains]
    wanted = [] if domain is None else [domain]
    if proven != wanted:
        raise InvalidUpdate(
            RejectReason.BAD_PROOF,
            f"the answer proves {proven or 'no domain'}, the name needs {wanted or 'none'}",
        )
    if domain is None:
        return None, 0
    item = answer.domains[0]
    header = answer.header
    if item.state is not None and item.state.domain != domain:
        raise InvalidUpdate(
            RejectReason.BAD_PROOF, f"state is for {item.state.domain}, not {domain}"
        )
    value_hash = None if item.state is None else item.state.value_hash()
    if not verify_proof(header.state_root, domain_key(domain), value_hash, item.proof):
        raise InvalidUpdate(
            RejectReason.BAD_PROOF, f"{domain}: the proof does not match the header's state_root"
        )
    if item.serial > header.height or (item.state is None and item.serial != 0):
        raise InvalidUpdate(
            RejectReason.BAD_PROOF, f"{domain}: serial {item.serial} is impossible at this header"
        )
    return item.state, item.serial
