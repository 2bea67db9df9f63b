"""Replies the resolver writes: from proven state, SERVFAIL with reasons, REFUSED.

A verified reply is the node's own: the same `ledgerdns.dns.answer.AnswerBuilder`
(and under it the pure `ledgerdns.dns.resolve.Resolver`) runs over a
`ProvenSource`, a zone source that holds nothing but what a proof established:
the certified header and one domain's state (or its proven absence). So
NXDOMAIN, NODATA, CNAME, wildcards and referrals come out exactly as a node
computes them. The header bits differ, because the resolver is not the
authority: AA=0, RA=1, and AD=1 (the proof checked).

A domain zone's SOA serial is the one value not proven: the height of the
block holding the domain's latest transaction, which the state tree does not
commit to, is the node's word (`chain.dns_proof.StateProof.serial`, checked
only to be possible). It changes the serial shown, never a record or an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

import dnslib

from chain.block import BlockHeader
from chain.dns_proof import VerifiedAnswer
from chain.errors import NotFound
from chain.params import ChainParams
from chain.state import DomainState
from ledgerdns.dns.answer import AnswerBuilder, Reply
from ledgerdns.dns.wire import (
    EDNS_PAYLOAD,
    FLAG_AA,
    HEADER_SIZE,
    Query,
    Rcode,
    reply_flags,
)
from ledgerdns.dns.zone import ZoneConfig

FLAG_RA = 0x0080
FLAG_AD = 0x0020
EDE_OPTION = 15  # RFC 8914
EDE_OTHER = 0
EDE_NO_REACHABLE_AUTHORITY = 22
_EDE_TEXT_MAX = 300  # bytes of EXTRA-TEXT per option: the whole reply stays well under 1232


class ProofScopeError(RuntimeError):
    """The lookup asked for a domain the proof does not cover (a bug in the resolver)."""


class ProvenSource:
    """A `ledgerdns.dns.resolve.ZoneSource` holding only what a proof established."""

    __slots__ = ("_proven", "params")

    def __init__(self, params: ChainParams, proven: VerifiedAnswer) -> None:
        self.params = params
        self._proven = proven

    @property
    def head(self) -> BlockHeader:
        """The certified header."""
        return self._proven.header

    def get_domain(self, domain: str) -> DomainState | None:
        """The proven state of `domain`.

        Raises:
            ProofScopeError: `domain` is not the one the proof covers.
        """
        if domain != self._proven.domain:
            raise ProofScopeError(f"the proof covers {self._proven.domain}, not {domain}")
        return self._proven.state

    def get_tx_location(self, txid: bytes) -> tuple[int, int]:
        """``(serial, 0)`` for the proven domain's head: the zone's SOA serial, as the node sent it.

        Raises:
            NotFound: not the proven domain's head.
        """
        state = self._proven.state
        if state is None or txid != state.head:
            raise NotFound(f"transaction {txid.hex()[:16]} is not the proven domain's head")
        return self._proven.serial, 0


def verified_reply(params: ChainParams, proven: VerifiedAnswer, query: Query) -> Reply:
    """The reply to `query` from `proven`, as a node would write it, with AA=0, RA=1, AD=1."""
    zone = ZoneConfig(nameservers=params.nameservers)  # the network's set, as its nodes answer
    reply = AnswerBuilder(ProvenSource(params, proven), zone).respond(query)
    truncated = None if reply.truncated is None else _resolver_flags(reply.truncated)
    return Reply(
        _resolver_flags(reply.full),
        truncated,
        reply.cacheable,
        reply.zone,
        reply.serial_bound,
        reply.expires_at,
    )


def _resolver_flags(message: bytes) -> bytes:
    flags = int.from_bytes(message[2:4], "big")
    flags = (flags & ~FLAG_AA) | FLAG_RA | FLAG_AD
    return message[:2] + flags.to_bytes(2, "big") + message[4:]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one upstream gave no answer the resolver could use.

    Attributes:
        upstream: ``HOST:PORT``.
        reason: a short stable word (``stale-proof``, ``bad-proof``, ``timeout``...).
        detail: one line for people.
        unreachable: a network failure (no answer at all), not a refused proof.
    """

    upstream: str
    reason: str
    detail: str
    unreachable: bool = False

    def to_text(self) -> str:
        """``upstream reason: detail``."""
        return f"{self.upstream} {self.reason}: {self.detail}"


def servfail_reply(query: Query, failures: list[Failure]) -> bytes:
    """SERVFAIL, with one Extended DNS Error (RFC 8914) per failed upstream.

    The EDE options need EDNS: a query without an OPT record gets a plain
    SERVFAIL (RFC 6891 forbids an OPT in the reply to it).
    """
    return _bare(query, Rcode.SERVFAIL, failures)


def refused_reply(query: Query) -> bytes:
    """REFUSED, RA=1: a name outside the ledger with no ``--forward`` resolver."""
    return _bare(query, Rcode.REFUSED, [])


def badvers_reply(query: Query) -> bytes:
    """BADVERS: an EDNS version above 0 (RFC 6891 6.1.3)."""
    return _bare(query, Rcode.BADVERS, [])


def _bare(query: Query, rcode: Rcode, failures: list[Failure]) -> bytes:
    flags = reply_flags(query.flags, rcode) | FLAG_RA
    message = dnslib.DNSRecord(
        dnslib.DNSHeader(id=query.id, bitmap=flags),
        questions=[dnslib.DNSQuestion(dnslib.DNSLabel(query.qname), query.qtype, query.qclass)],
    )
    if query.edns is not None:
        options = [dnslib.EDNSOption(EDE_OPTION, _ede(failure)) for failure in failures]
        message.add_ar(
            dnslib.EDNS0(
                udp_len=EDNS_PAYLOAD,
                ext_rcode=rcode >> 4,
                flags="do" if query.edns.do else "",
                opts=options,
            )
        )
    out = bytes(message.pack())
    # The question as the client spelled it (dnslib keeps label bytes as given).
    return out[:HEADER_SIZE] + query.qname_wire + out[HEADER_SIZE + len(query.qname_wire) :]


def _ede(failure: Failure) -> bytes:
    code = EDE_NO_REACHABLE_AUTHORITY if failure.unreachable else EDE_OTHER
    text = failure.to_text().encode("utf-8", "replace")[:_EDE_TEXT_MAX]
    return code.to_bytes(2, "big") + text.decode("utf-8", "ignore").encode("utf-8")
