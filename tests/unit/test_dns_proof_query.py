"""The client helper's message side (no sockets): the query it builds and the reply it parses."""

from __future__ import annotations

import dnslib
import pytest

from chain.dns_proof import PROOF_OPTION_CODE, ProofRequest
from chain.errors import InvalidUpdate
from ledgerdns.dns.proof_query import make_query, parse_reply
from ledgerdns.dns.wire import Query, parse_query


def test_the_query_carries_the_option_and_passes_the_servers_reader() -> None:
    data = make_query("www.alice.p2p", "A", ProofRequest(known_from=7), msg_id=99)
    record = dnslib.DNSRecord.parse(data)
    assert record.header.id == 99 and str(record.q.qname) == "www.alice.p2p."
    (opt,) = [rr for rr in record.ar if rr.rtype == dnslib.QTYPE.OPT]
    (option,) = opt.rdata
    assert option.code == PROOF_OPTION_CODE
    assert ProofRequest.from_bytes(bytes(option.data)) == ProofRequest(known_from=7)
    assert isinstance(parse_query(data), Query)


def test_a_reply_without_the_option_has_no_proof() -> None:
    query = dnslib.DNSRecord.parse(make_query("alice.p2p", 1, ProofRequest()))
    reply = parse_reply(bytes(query.reply().pack()))
    assert reply.proof is None and not reply.tcp


def test_a_reply_with_a_garbage_option_is_refused() -> None:
    query = dnslib.DNSRecord.parse(make_query("alice.p2p", 1, ProofRequest()))
    reply = query.reply()
    reply.add_ar(dnslib.EDNS0(opts=[dnslib.EDNSOption(PROOF_OPTION_CODE, b"\x83\x01")]))
    with pytest.raises(InvalidUpdate):
        parse_reply(bytes(reply.pack()))
    with pytest.raises(InvalidUpdate):
        parse_reply(b"\x00\x01\x80")
