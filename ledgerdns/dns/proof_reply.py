"""Replies to queries that ask for a proof: the usual answer plus the proof option (issue 16).

A query whose OPT record carries the proof option (`chain.dns_proof`) gets the
reply every client gets, built fresh from the finalized head (never from the
reply cache or a UDP worker's table: the proof is of the head at this moment,
and the answer must be of the same head), with the option added to the
reply's OPT record holding the `ProofAnswer`.

Proofs take a kilobyte or more, past what most clients accept over UDP (1232
bytes), so over UDP a reply that does not fit goes out truncated (TC=1: the
header, the question and a bare OPT) and the client asks again over TCP
(RFC 7766), where the whole reply goes, up to 65,535 bytes; set changes the
client lacks are cut to fit (the answer then says ``more_changes``).

A proof option that does not decode gets FORMERR with an Extended DNS Error
(RFC 8914) saying why; a chain with nothing certified yet (genesis only), or
an answer too large even without set changes, gets SERVFAIL with one.
"""

from __future__ import annotations

import logging

import dnslib

from chain.dns_proof import PROOF_OPTION_CODE, ProofRequest
from chain.errors import InvalidUpdate
from ledgerdns.dns.answer import AnswerBuilder, pack_message, truncated_of
from ledgerdns.dns.proofs import ProofBuilder, ProofSource
from ledgerdns.dns.result import CLASS_IN
from ledgerdns.dns.wire import Query, Rcode

log = logging.getLogger(__name__)

MAX_MESSAGE = 65535
OPTION_HEADER = 4  # option code and length
EDE_OPTION = 15  # Extended DNS Errors, RFC 8914
EDE_OTHER = 0
EDE_NOT_READY = 14


def with_option(reply: bytes, code: int, data: bytes) -> bytes:
    """`reply`, whose last record is our OPT without options, with one option added to it.

    The OPT's RDLENGTH is its last two bytes: appending the option there and
    fixing that length saves encoding the whole message again.
    """
    assert reply[-11:-8] == b"\x00\x00\x29" and reply[-2:] == b"\x00\x00", "OPT is not last"
    option = code.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data
    return reply[:-2] + len(option).to_bytes(2, "big") + option


def ede(info_code: int, text: str) -> dnslib.EDNSOption:
    """An Extended DNS Error option (RFC 8914): the code and a short text for people."""
    return dnslib.EDNSOption(EDE_OPTION, info_code.to_bytes(2, "big") + text.encode()[:200])


class ProofResponder:
    """Answers proof queries from the ledger.

    Args:
        builder: builds the plain reply (the same `AnswerBuilder` the cache uses).
        source: the ledger the proofs are read from.
    """

    __slots__ = ("_builder", "_proofs", "_source")

    def __init__(self, builder: AnswerBuilder, source: ProofSource) -> None:
        self._builder = builder
        self._source = source
        self._proofs = ProofBuilder(source)

    def respond(self, query: Query, *, limit: int) -> bytes:
        """The reply to `query` (which carries the proof option), at most `limit` bytes if it can.

        Args:
            query: the parsed query; `query.edns.proof` holds the option data.
            limit: the most bytes the reply may take (the UDP limit, or 65535
                over TCP); a larger reply goes out truncated.
        """
        assert query.edns is not None and query.edns.proof  # the server routes only these here
        options = query.edns.proof
        if len(options) > 1:
            return self._formerr(query, "two proof options in one query")
        try:
            request = ProofRequest.from_bytes(options[0])
        except InvalidUpdate as exc:
            return self._formerr(query, f"proof option {PROOF_OPTION_CODE}: {exc}")
        message, res = self._builder.message(query)
        qname = tuple(label.lower() for label in query.qname)
        if res is None or query.qclass != CLASS_IN or not self._in_ledger(qname):
            return pack_message(message)  # BADVERS, CH, or a name no ledger state decides
        if self._source.head.height == 0:
            return self._builder.error(
                query, Rcode.SERVFAIL, [ede(EDE_NOT_READY, "no certified block yet: no proof")]
            )
        plain = pack_message(message)
        data = self._proofs.answer_bytes(
            request, qname, budget=MAX_MESSAGE - len(plain) - OPTION_HEADER
        )
        if data is None:
            log.warning("dns proof too large qname=%s", b".".join(qname)[:80])
            return self._builder.error(
                query,
                Rcode.SERVFAIL,
                [ede(EDE_OTHER, "the answer and its proof exceed 65535 bytes")],
            )
        if len(plain) + OPTION_HEADER + len(data) > limit:
            return pack_message(truncated_of(message))
        return with_option(plain, PROOF_OPTION_CODE, data)

    def _in_ledger(self, qname: tuple[bytes, ...]) -> bool:
        return self._builder.resolver.tld_of(qname) is not None

    def _formerr(self, query: Query, why: str) -> bytes:
        log.debug("dns proof option refused id=%d why=%s", query.id, why)
        return self._builder.error(query, Rcode.FORMERR, [ede(EDE_OTHER, why)])
