"""Zone files for one domain: RFC 1035 syntax in, canonical records out, and back."""

from __future__ import annotations

import pytest

from chain.records import Record, canonical_record_set
from ledgerdns.wallet.errors import BadInput
from ledgerdns.wallet.zonefile import read_zone, write_zone, zone_entries

DOMAIN = "alice.p2p"

ZONE = """\
; a zone as a DNS operator writes it
$ORIGIN alice.p2p.
$TTL 1h
@       IN  SOA ns1 hostmaster (
                2024010101 ; serial
                3600 600 86400 300 )
        IN  NS  ns1.example.com.
www     300 IN A 10.0.0.1   ; explicit TTL
        A   10.0.0.2        ; owner and TTL carried over
mail.alice.p2p. MX ( 10
                     mx )
txt     TXT "a ; (not a comment)" "b\\"q"
_sip._tcp SRV 10 5 5060 sip.example.com.
$ORIGIN sub.alice.p2p.
host    AAAA 2001:db8::1
@       CAA 0 issue "letsencrypt.org"
"""


def texts(records: tuple[Record, ...]) -> list[str]:
    return [r.to_text(DOMAIN) for r in records]


def test_reads_directives_comments_and_parentheses() -> None:
    zone = read_zone(ZONE, DOMAIN)
    assert texts(zone.records) == [
        "@ 3600 IN NS ns1.example.com.",
        "www 300 IN A 10.0.0.1",
        "www 3600 IN A 10.0.0.2",
        "mail 3600 IN MX 10 mx.alice.p2p.",
        'txt 3600 IN TXT "a ; (not a comment)" "b\\"q"',
        "_sip._tcp 3600 IN SRV 10 5 5060 sip.example.com.",
        "host.sub 3600 IN AAAA 2001:db8::1",
        'sub 3600 IN CAA 0 issue "letsencrypt.org"',
    ]
    assert len(zone.skipped) == 1 and "line 4" in zone.skipped[0]


def test_round_trip() -> None:
    records = canonical_record_set(read_zone(ZONE, DOMAIN).records)
    text = write_zone(DOMAIN, records, header=["exported"])
    assert text.startswith("; exported\n$ORIGIN alice.p2p.\n")
    assert read_zone(text, DOMAIN).records == records
    assert write_zone(DOMAIN, read_zone(text, DOMAIN).records, header=["exported"]) == text


def test_empty_zone_round_trips() -> None:
    assert read_zone(write_zone(DOMAIN, ()), DOMAIN).records == ()


def test_default_origin_and_ttl() -> None:
    zone = read_zone("www A 10.0.0.1\n@ 60 TXT hi\n", DOMAIN)
    assert texts(zone.records) == ["www 300 IN A 10.0.0.1", '@ 60 IN TXT "hi"']


def test_relative_origin_is_under_the_current_one() -> None:
    zone = read_zone("$ORIGIN lab\nx A 10.0.0.1\n", DOMAIN)
    assert texts(zone.records) == ["x.lab 300 IN A 10.0.0.1"]


def test_entries_keep_quoted_spaces() -> None:
    text = 't TXT ( "a  b" ; c\n "d" )\n'
    (entry,) = zone_entries(text)
    assert entry.line == 1 and not entry.blank_owner
    assert entry.text == 't TXT   "a  b" "d"'
    assert texts(read_zone(text, DOMAIN).records) == ['t 300 IN TXT "a  b" "d"']


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("www A 10.0.0.1\n( A 10.0.0.2\n", "never closed"),
        ("www A 10.0.0.1 )\n", "without a matching"),
        ('t TXT "open\n', "not closed"),
        ("  A 10.0.0.1\n", "no owner"),
        ("www.bob.p2p. A 10.0.0.1\n", "not at or under"),
        ("$ORIGIN bob.p2p.\nwww A 10.0.0.1\n", "line 2"),
        ("$INCLUDE other.zone\n", "not supported"),
        ("$TTL soon\n", "$TTL"),
        ("www A 10.0.0.300\n", "line 1: 'www A 10.0.0.300'"),
        ("www IN HINFO a b\n", "line 1"),
        ("www CH A 10.0.0.1\n", "class"),
    ],
)
def test_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace("$", r"\$")):
        read_zone(text, DOMAIN)
