"""TSIG helpers of the DNS face: error names for logs, and how the query reader sees a signature."""

from __future__ import annotations

from typing import cast

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import dns.tsig
import pytest

from ledgerdns.dns.settings import TsigKey
from ledgerdns.dns.tsig import Refusal, TsigRdata, error_name, make_keyring, sign_reply, verify
from ledgerdns.dns.wire import Query, Rcode, Rejection, parse_query

KEY = dns.tsig.Key("query.", b"secret-secret-secret", "hmac-sha256")


@pytest.mark.parametrize(
    ("error", "name"),
    [
        (dns.rcode.BADSIG, "badsig"),  # 16: dnspython's to_text says BADVERS
        (dns.rcode.BADKEY, "badkey"),
        (dns.rcode.BADTIME, "badtime"),
        (dns.rcode.BADTRUNC, "badtrunc"),
    ],
)
def test_tsig_errors_are_logged_by_their_own_name(error: dns.rcode.Rcode, name: str) -> None:
    assert error_name(error) == name


def _signed(use_edns: bool) -> tuple[bytes, bytes]:
    plain = dns.message.make_query("alice.p2p", "A", use_edns=0 if use_edns else False)
    unsigned = plain.to_wire()
    plain.use_tsig(KEY)
    return plain.to_wire(), unsigned


@pytest.mark.parametrize("use_edns", [False, True])
def test_a_signed_query_is_seen_and_its_signature_can_be_taken_off(use_edns: bool) -> None:
    wire, unsigned = _signed(use_edns)
    query = parse_query(wire)
    assert isinstance(query, Query) and query.signed and not query.plain
    assert query.without_tsig(wire) == unsigned
    stripped = parse_query(unsigned)
    assert isinstance(stripped, Query) and not stripped.signed and stripped.plain


def test_a_tsig_that_is_not_the_last_record_is_formerr() -> None:
    wire, _ = _signed(False)
    message = dns.message.from_wire(wire, keyring=False)
    assert message.tsig is not None
    # Put an A record after the TSIG record: RFC 8945 5.1 says FORMERR.
    tail = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01"
    arcount = int.from_bytes(wire[10:12]) + 1
    moved = wire[:10] + arcount.to_bytes(2) + wire[12:] + tail
    rejected = parse_query(moved)
    assert isinstance(rejected, Rejection) and rejected.rcode == Rcode.FORMERR


def _request(key: dns.tsig.Key) -> tuple[bytes, dns.message.Message]:
    query = dns.message.make_query("alice.p2p", "TXT", use_edns=0)
    query.use_tsig(key)
    wire = query.to_wire()
    return wire, dns.message.from_wire(wire, keyring=False)


def _time_signed(request: dns.message.Message) -> int:
    assert request.tsig is not None
    return int(cast(TsigRdata, request.tsig[0]).time_signed)


KEYRING = make_keyring({"query.": TsigKey("query.", "hmac-sha256", b"secret-secret-secret")})


def test_verify_takes_a_good_signature() -> None:
    wire, request = _request(KEY)
    verified = verify(wire, request, KEYRING, _time_signed(request))
    assert isinstance(verified, dns.message.Message) and verified.had_tsig


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (dns.tsig.Key("other.", b"secret-secret-secret", "hmac-sha256"), dns.rcode.BADKEY),
        (dns.tsig.Key("query.", b"not the secret", "hmac-sha256"), dns.rcode.BADSIG),
    ],
)
def test_verify_refuses_unsigned_with_the_error(key: dns.tsig.Key, error: dns.rcode.Rcode) -> None:
    wire, request = _request(key)
    refused = verify(wire, request, KEYRING, _time_signed(request))
    assert isinstance(refused, Refusal) and refused.error == error
    reply = dns.message.from_wire(refused.reply, keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH and reply.tsig is not None
    rdata = cast(TsigRdata, reply.tsig[0])
    assert rdata.error == error and rdata.mac == b""


def test_a_clock_more_than_300_s_off_is_badtime_signed() -> None:
    wire, request = _request(KEY)
    refused = verify(wire, request, KEYRING, _time_signed(request) + 301)
    assert isinstance(refused, Refusal) and refused.error == dns.rcode.BADTIME
    # Signed with the key (RFC 8945 5.2.3), unlike BADKEY and BADSIG.
    reply = dns.message.from_wire(refused.reply, keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH and reply.tsig is not None
    rdata = cast(TsigRdata, reply.tsig[0])
    assert rdata.error == dns.rcode.BADTIME and len(rdata.mac) == 32


def test_a_signed_reply_that_does_not_fit_goes_out_truncated_and_signed() -> None:
    wire, request = _request(KEY)
    verified = verify(wire, request, KEYRING, _time_signed(request))
    assert isinstance(verified, dns.message.Message)
    unsigned = dns.message.make_response(dns.message.from_wire(wire, keyring=False))
    for i in range(8):
        unsigned.answer.append(
            dns.rrset.from_text("alice.p2p.", 300, "IN", "TXT", f'"{i}" "{"x" * 200}"')
        )
    big = unsigned.to_wire(max_size=65535)
    signed = sign_reply(big, verified, 1232)
    assert len(big) > 1232 >= len(signed)
    reply = dns.message.from_wire(signed, keyring={KEY.name: KEY}, request_mac=verified.mac)
    assert reply.flags & dns.flags.TC and not reply.answer and reply.had_tsig
    whole = sign_reply(big, verified, 65535)
    reply = dns.message.from_wire(whole, keyring={KEY.name: KEY}, request_mac=verified.mac)
    assert len(reply.answer[0]) == 8 and not reply.flags & dns.flags.TC
