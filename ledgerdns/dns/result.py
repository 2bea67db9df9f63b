"""What a lookup returns: resource records and an outcome, before any wire format.

Names here are `Labels`: a tuple of label bytes, left to right, lower-case
(``(b"www", b"alice", b"p2p")``); the root is ``()``. Lower-casing is ASCII
only (``bytes.lower``), which is exactly DNS's case folding.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

Labels = tuple[bytes, ...]


class QType(IntEnum):
    """The DNS type numbers this package refers to (any other number is just "no data")."""

    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    PTR = 12
    MX = 15
    TXT = 16
    AAAA = 28
    SRV = 33
    NAPTR = 35
    OPT = 41
    DS = 43
    DNSKEY = 48
    SVCB = 64
    HTTPS = 65
    TSIG = 250
    IXFR = 251
    AXFR = 252
    ANY = 255
    CAA = 257


CLASS_IN = 1
CLASS_CH = 3


class Outcome(Enum):
    """How a question was answered (CoreDNS style: the result, apart from the reply)."""

    ANSWER = "answer"  # NOERROR with records (possibly a CNAME chain only)
    NODATA = "nodata"  # NOERROR, empty answer, SOA in authority
    NXDOMAIN = "nxdomain"  # the name does not exist; SOA in authority
    REFERRAL = "referral"  # a delegation: NS in authority, glue in additional, AA=0
    REFUSED = "refused"  # not a name (or class) this server answers for


@dataclass(frozen=True, slots=True)
class RR:
    """One resource record: owner, type, TTL, wire rdata (uncompressed) and class."""

    name: Labels
    rtype: int
    ttl: int
    rdata: bytes
    rclass: int = CLASS_IN


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolution:
    """The records and outcome for one question, plus what a cache needs to know.

    Attributes:
        outcome: see `Outcome`.
        authoritative: whether the reply sets AA.
        answer: the answer section (a CNAME chain comes first, in order).
        authority: the authority section (SOA for negative answers, NS for referrals).
        additional: the additional section: glue for a referral, the in-zone
            A/AAAA of the targets of MX, SRV, NS, SVCB and HTTPS answers.
        zone: the ledger domain the answer was read from, None for TLD-level
            answers and refusals.
        serial_bound: the reply holds a TLD's SOA, whose serial is the finalized
            height, so it is stale after any new block. (A domain zone's own
            SOA serial moves only with the domain, which `zone` already covers.)
        expires_at: the zone's expiry (unix seconds of block time), 0 for never.
    """

    outcome: Outcome
    authoritative: bool
    answer: tuple[RR, ...] = ()
    authority: tuple[RR, ...] = ()
    additional: tuple[RR, ...] = ()
    zone: str | None = None
    serial_bound: bool = False
    expires_at: int = 0


REFUSED = Resolution(outcome=Outcome.REFUSED, authoritative=False)


def labels_of(name: str) -> Labels:
    """The labels of a canonical ASCII name without trailing dot (``""`` is the root)."""
    return tuple(name.encode("ascii").split(b".")) if name else ()


def name_to_wire(name: Labels) -> bytes:
    """The uncompressed wire form of a name."""
    return b"".join(bytes((len(label),)) + label for label in name) + b"\x00"


def is_subdomain(name: Labels, parent: Labels) -> bool:
    """Whether `name` is `parent` or below it."""
    return len(name) >= len(parent) and name[len(name) - len(parent) :] == parent
