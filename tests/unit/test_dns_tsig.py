"""TSIG helpers of the DNS face: error names for logs, and how the query reader sees a signature."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.tsig
import pytest

from ledgerdns.dns.tsig import error_name
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
