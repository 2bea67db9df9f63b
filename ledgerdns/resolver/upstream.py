"""Asking one ledger node for an answer and its proof, over plain DNS.

The query carries the proof option (`chain.dns_proof.PROOF_OPTION_CODE`) with
a `ProofRequest`; the reply's OPT record carries the `ProofAnswer`. UDP first
(EDNS payload 1232, the DNS Flag Day size), TCP when the reply is truncated,
as any DNS client does; the caller may skip UDP for an upstream whose proofs
did not fit it before (`ledgerdns.resolver.verifier.TCP_FIRST_S`). The reply is matched to the query by source address
(a connected socket), ID and question; nothing in it is trusted yet: that is
`chain.dns_proof.verify_answer`'s job.
"""

from __future__ import annotations

import secrets

import dnslib
import trio

from chain.dns_proof import MAX_OPTION_BYTES, PROOF_OPTION_CODE
from ledgerdns.dns.proof_query import ClosedEarly, tcp_exchange, udp_exchange
from ledgerdns.dns.result import Labels, QType
from ledgerdns.dns.wire import EDNS_PAYLOAD

Address = tuple[str, int]


class UpstreamError(Exception):
    """One upstream gave no usable reply.

    Attributes:
        reason: a short stable word (``timeout``, ``unreachable``, ``malformed``,
            ``no-proof``, ``rcode``).
        unreachable: nothing came back at all (as opposed to a bad reply).
    """

    def __init__(self, reason: str, detail: str, *, unreachable: bool = False) -> None:
        super().__init__(detail)
        self.reason = reason
        self.unreachable = unreachable


def make_query(msg_id: int, qname: Labels, qtype: int, request: bytes) -> bytes:
    """A query for `qname`/`qtype` (class IN, RD=0) asking for the proof with `request`."""
    message = dnslib.DNSRecord(
        dnslib.DNSHeader(id=msg_id, rd=0),
        q=dnslib.DNSQuestion(dnslib.DNSLabel(qname), qtype),
    )
    message.add_ar(
        dnslib.EDNS0(udp_len=EDNS_PAYLOAD, opts=[dnslib.EDNSOption(PROOF_OPTION_CODE, request)])
    )
    return bytes(message.pack())


async def ask(
    address: Address, qname: Labels, qtype: int, request: bytes, *, tcp_first: bool = False
) -> tuple[bytes, bool]:
    """The proof option's data in `address`'s reply to `qname`/`qtype`.

    The caller bounds the time (`trio.move_on_after`).

    Args:
        tcp_first: skip UDP (the upstream's proofs came truncated before).

    Returns:
        The option's data, and whether a UDP reply came truncated (TC=1).

    Raises:
        UpstreamError: no reply, a reply that is not one to this query, or one
            without the proof option.
    """
    msg_id = secrets.randbelow(65536)
    query = make_query(msg_id, qname, qtype, request)
    try:
        if not tcp_first:
            reply = _parse(await udp_exchange(address, query), msg_id, qname, qtype)
            if not reply.header.tc:
                return _proof_option(reply), False
        reply = _parse(await tcp_exchange(address, query), msg_id, qname, qtype)
    except OSError as exc:
        raise UpstreamError("unreachable", exc.strerror or str(exc), unreachable=True) from None
    except trio.BrokenResourceError as exc:
        raise UpstreamError("unreachable", str(exc) or "the connection broke", unreachable=True) from None
    except ClosedEarly as exc:
        raise UpstreamError("malformed", str(exc)) from None
    return _proof_option(reply), not tcp_first


def _parse(data: bytes, msg_id: int, qname: Labels, qtype: int) -> dnslib.DNSRecord:
    try:
        reply = dnslib.DNSRecord.parse(data)
    except (dnslib.DNSError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise UpstreamError("malformed", f"the reply does not parse as DNS: {exc}") from None
    if reply.header.id != msg_id or not reply.header.qr:
        raise UpstreamError("malformed", "the reply is not a response to our query")
    questions = [(tuple(q.qname.label), q.qtype) for q in reply.questions]
    wanted = (tuple(label.lower() for label in qname), qtype)
    if [(tuple(label.lower() for label in name), t) for name, t in questions] != [wanted]:
        raise UpstreamError("malformed", "the reply answers another question")
    return reply


def _proof_option(reply: dnslib.DNSRecord) -> bytes:
    found = [
        option.data
        for rr in reply.ar
        if rr.rtype == QType.OPT
        for option in rr.rdata
        if option.code == PROOF_OPTION_CODE
    ]
    if len(found) != 1:
        rcode = dnslib.RCODE.get(reply.header.rcode)
        raise UpstreamError(
            "no-proof",
            f"the reply ({rcode}) carries {len(found)} proof options, not one: "
            "not a ledgerdns node, or one too old to prove its answers",
        )
    data = found[0]
    if len(data) > MAX_OPTION_BYTES:  # cannot happen: the length field is 16 bits
        raise UpstreamError("malformed", "the proof option is oversized")
    return bytes(data)
