"""The client side of proofs over DNS: ask a node for an answer and its proof (issue 16).

For the light resolver (``ledgerdns resolver``) and the tools: build a query
carrying the proof option (`chain.dns_proof.PROOF_OPTION_CODE`), send it over
UDP, and when the reply comes back truncated (a proof rarely fits 1232 bytes)
ask again over TCP, as RFC 7766 says a client does. The reply is returned
parsed (dnslib) with the decoded `ProofAnswer`, NOT verified: that is
`chain.dns_proof.verify_answer`'s job, with the caller's trusted genesis.

Light on purpose: dnslib, trio and the chain's pure modules only, never
libp2p (its import alone costs over a second), so a resolver starts fast.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import dnslib
import trio

from chain.dns_proof import MAX_OPTION_BYTES, PROOF_OPTION_CODE, ProofAnswer, ProofRequest
from chain.errors import InvalidUpdate, NetworkError, RejectReason

# What we tell the node we can take over UDP: the DNS Flag Day size.
UDP_PAYLOAD = 1232
MAX_TCP_MESSAGE = 65535
_FLAG_TC = 0x0200


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofReply:
    """A node's reply to a proof query, parsed but not verified.

    Attributes:
        record: the whole DNS reply.
        proof: the decoded option data, None if the reply carried no option (a
            node that does not serve proofs, a name outside the ledger, a refusal).
        tcp: whether the reply came over TCP.
    """

    record: dnslib.DNSRecord
    proof: ProofAnswer | None
    tcp: bool


def make_query(
    qname: str,
    qtype: int | str,
    request: ProofRequest,
    *,
    msg_id: int | None = None,
    payload: int = UDP_PAYLOAD,
) -> bytes:
    """A query for `qname`/`qtype` with the proof option holding `request`.

    Args:
        qname: the question name (text).
        qtype: the type, as a number or a name (``"A"``).
        request: what the client already has (`ProofRequest.following`).
        msg_id: the message ID (default: random).
        payload: the UDP payload size we say we take (RFC 6891).
    """
    rtype = dnslib.QTYPE.reverse[qtype] if isinstance(qtype, str) else qtype
    query = dnslib.DNSRecord(
        dnslib.DNSHeader(id=secrets.randbelow(65536) if msg_id is None else msg_id, rd=0),
        q=dnslib.DNSQuestion(qname, rtype),
    )
    option = dnslib.EDNSOption(PROOF_OPTION_CODE, request.to_bytes())
    query.add_ar(dnslib.EDNS0(udp_len=payload, opts=[option]))
    return bytes(query.pack())


def parse_reply(data: bytes, *, tcp: bool = False) -> ProofReply:
    """The reply `data`, with its proof option decoded.

    Raises:
        InvalidUpdate: MALFORMED, the message or the option's data does not parse
            (or there are two proof options).
    """
    try:
        record = dnslib.DNSRecord.parse(data)
    except (dnslib.DNSError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise InvalidUpdate(RejectReason.MALFORMED, f"the reply does not parse: {exc}") from None
    found = [
        opt.data
        for rr in record.ar
        if rr.rtype == dnslib.QTYPE.OPT
        for opt in rr.rdata
        if opt.code == PROOF_OPTION_CODE
    ]
    if len(found) > 1:
        raise InvalidUpdate(RejectReason.MALFORMED, "the reply carries two proof options")
    proof = None
    if found:
        if len(found[0]) > MAX_OPTION_BYTES:
            raise InvalidUpdate(RejectReason.OVERSIZE, "the proof option is too large")
        proof = ProofAnswer.from_bytes(bytes(found[0]))
    return ProofReply(record=record, proof=proof, tcp=tcp)


def _check_matches(query: bytes, reply: bytes) -> None:
    """The reply must answer our question: same ID, a response, and our question echoed.

    Raises:
        InvalidUpdate: MALFORMED.
    """
    if len(reply) < 12 or reply[:2] != query[:2] or not reply[2] & 0x80:
        raise InvalidUpdate(RejectReason.MALFORMED, "the reply is not a response to our query")
    if reply[4:6] == b"\x00\x00":
        return  # no question echoed: a rejection (FORMERR) of a message it could not read
    question_end = 12 + query[12:].index(b"\x00") + 5
    if reply[12:question_end].lower() != query[12:question_end].lower():
        raise InvalidUpdate(RejectReason.MALFORMED, "the reply answers another question")


def _truncated(reply: bytes) -> bool:
    return bool(int.from_bytes(reply[2:4], "big") & _FLAG_TC)


# -- with trio (the resolver) --


async def fetch_proof(
    host: str,
    port: int,
    qname: str,
    qtype: int | str,
    request: ProofRequest,
    *,
    timeout_s: float = 2.0,
    tcp_only: bool = False,
    payload: int = UDP_PAYLOAD,
) -> ProofReply:
    """Ask ``host:port`` for `qname`/`qtype` with its proof: UDP first, TCP when truncated.

    Args:
        host, port: the node's DNS address.
        qname, qtype: the question.
        request: what the client already has (`ProofRequest.following`).
        timeout_s: how long to wait for each transport's reply.
        tcp_only: skip UDP (a client that knows its proofs never fit).
        payload: the UDP size we say we take; the node truncates past it.

    Raises:
        NetworkError: no reply within `timeout_s` (per transport), or a socket error.
        InvalidUpdate: the reply is malformed or answers another query.
    """
    query = make_query(qname, qtype, request, payload=payload)
    address = (host, port)
    if not tcp_only:
        reply = await _bounded(udp_exchange(address, query), address, "UDP", timeout_s)
        _check_matches(query, reply)
        if not _truncated(reply):
            return parse_reply(reply)
    reply = await _bounded(tcp_exchange(address, query), address, "TCP", timeout_s)
    _check_matches(query, reply)
    return parse_reply(reply, tcp=True)


async def _bounded(
    exchange: Coroutine[Any, Any, bytes], address: tuple[str, int], transport: str, timeout_s: float
) -> bytes:
    """`exchange`'s reply within `timeout_s`, its failures as `NetworkError`."""
    where = f"dns {address[0]}:{address[1]}"
    with trio.move_on_after(timeout_s):
        try:
            return await exchange
        except (OSError, trio.BrokenResourceError, ClosedEarly) as exc:
            raise NetworkError(f"{where} over {transport}: {exc}") from None
    raise NetworkError(f"{where}: no {transport} reply within {timeout_s:g} s")


class ClosedEarly(Exception):
    """The TCP connection closed before the whole reply came."""


async def udp_exchange(address: tuple[str, int], query: bytes) -> bytes:
    """Send `query` to `address` over UDP; the first datagram from it with the query's ID.

    A connected socket reads nothing from other addresses; a datagram with another
    ID (a late reply to an earlier query) is skipped. The caller bounds the time.

    Raises:
        OSError: the socket failed.
    """
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
        await sock.connect(address)
        await sock.send(query)
        while True:
            data = await sock.recv(MAX_TCP_MESSAGE)
            if data[:2] == query[:2]:
                return data


async def tcp_exchange(address: tuple[str, int], query: bytes) -> bytes:
    """Send `query` to `address` over TCP (2-byte length prefix); the reply. The caller bounds the time.

    Raises:
        OSError, trio.BrokenResourceError: the connection failed.
        ClosedEarly: it closed before the whole reply.
    """
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(len(query).to_bytes(2, "big") + query)
        buffer = bytearray()
        while len(buffer) < 2 or len(buffer) < 2 + int.from_bytes(buffer[:2], "big"):
            chunk = await stream.receive_some(MAX_TCP_MESSAGE)
            if not chunk:
                raise ClosedEarly("the TCP connection closed before the whole reply")
            buffer.extend(chunk)
        return bytes(buffer[2 : 2 + int.from_bytes(buffer[:2], "big")])


# -- blocking (tools, tests) --


def fetch_proof_sync(
    host: str,
    port: int,
    qname: str,
    qtype: int | str,
    request: ProofRequest,
    *,
    timeout_s: float = 2.0,
    tcp_only: bool = False,
    payload: int = UDP_PAYLOAD,
) -> ProofReply:
    """`fetch_proof` with blocking sockets, for scripts and tests.

    Raises:
        NetworkError: no reply within `timeout_s`, or a socket error.
        InvalidUpdate: the reply is malformed or answers another query.
    """
    query = make_query(qname, qtype, request, payload=payload)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        if not tcp_only:
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                udp.settimeout(timeout_s)
                udp.connect((host, port))
                udp.send(query)
                reply = udp.recv(MAX_TCP_MESSAGE)
            _check_matches(query, reply)
            if not _truncated(reply):
                return parse_reply(reply)
        with socket.create_connection((host, port), timeout=timeout_s) as tcp:
            tcp.sendall(len(query).to_bytes(2, "big") + query)
            size = int.from_bytes(_recv_exactly(tcp, 2), "big")
            reply = _recv_exactly(tcp, size)
    except OSError as exc:  # socket.timeout is one
        raise NetworkError(f"dns {host}:{port}: {exc or 'timed out'}") from None
    _check_matches(query, reply)
    return parse_reply(reply, tcp=True)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise NetworkError("the TCP connection closed early")
        data.extend(chunk)
    return bytes(data)
