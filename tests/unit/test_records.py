"""Records: canonical wire rdata, CBOR, zone-file text, and the record-set rules."""

from __future__ import annotations

import struct

import pytest

from chain.encoding import decode, encode
from chain.errors import ConfigError, InvalidUpdate, RejectReason
from chain.rdata import _Fields
from chain.records import (
    Record,
    RecordLimits,
    RType,
    canonical_record_set,
    records_from_cbor,
    records_to_cbor,
    validate_record_set,
)
from tests.strategies import wire_name

ORIGIN = "alice.p2p"
BIG = RecordLimits(max_records=100, max_bytes=100_000)


def rec(line: str) -> Record:
    return Record.from_text(line, origin=ORIGIN)


def reason_of(exc_info: pytest.ExceptionInfo[InvalidUpdate]) -> RejectReason:
    return exc_info.value.reason


# -- construction from wire rdata --

MX_MAIL = struct.pack("!H", 10) + wire_name("mail.alice.p2p")


@pytest.mark.parametrize(
    ("rtype", "rdata"),
    [
        (RType.A, bytes([10, 0, 0, 1])),
        (RType.AAAA, bytes(15) + b"\x01"),
        (RType.NS, wire_name("ns1.example.com")),
        (RType.CNAME, wire_name("_acme-challenge.example.com")),
        (RType.MX, MX_MAIL),
        (RType.MX, b"\x00\x00\x00"),  # null MX (RFC 7505)
        (RType.SRV, struct.pack("!HHH", 1, 2, 5060) + wire_name("sip.alice.p2p")),
        (RType.SRV, struct.pack("!HHH", 0, 0, 0) + b"\x00"),  # no such service
        (RType.TXT, b"\x00"),  # one empty string
        (RType.TXT, b"\x02hi\xff" + bytes(255)),  # any bytes, 255 at most per string
        (RType.CAA, b"\x80\x05issueletsencrypt.org"),
        (RType.CAA, b"\x00\x05iodef"),  # empty value
        (RType.A, bytes(4)),
    ],
)
def test_record_accepts_canonical_rdata(rtype: RType, rdata: bytes) -> None:
    record = Record(name="www", rtype=rtype, ttl=300, rdata=rdata)
    assert record.rdata == rdata


def test_record_accepts_an_int_type_and_stores_the_enum() -> None:
    record = Record(name="www", rtype=1, ttl=0, rdata=bytes(4))  # type: ignore[arg-type]
    assert record.rtype is RType.A


LONG_NAME = ".".join(["a" * 63] * 4)  # 255 bytes


@pytest.mark.parametrize(
    ("rtype", "rdata", "fragment"),
    [
        (RType.A, bytes(3), "must be 4 bytes, got 3"),
        (RType.A, bytes(5), "must be 4 bytes"),
        (RType.AAAA, bytes(4), "AAAA rdata must be 16 bytes, got 4"),
        (RType.NS, b"", "does not parse"),
        (RType.NS, b"\x00", "root"),
        (RType.NS, b"\x03ns1\x07example", "does not parse"),
        (RType.NS, wire_name("ns1.example.com") + b"\x00", "does not end"),
        (RType.NS, wire_name("NS1.example.com"), "lower-case"),
        (RType.NS, wire_name("_ns.example.com"), "hyphens"),
        (RType.NS, b"\x03a.b\x00", "not a host name label"),
        (RType.NS, b"\x02\xc3\xa9\x00", "not a host name label"),
        (RType.NS, b"\x02\xff\xfe\x00", "does not parse"),
        (RType.NS, b"\x40" + b"a" * 64 + b"\x00", "does not parse"),
        (RType.NS, b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00", "does not parse"),
        (RType.CNAME, b"\x01a\xc0\x00", "does not parse"),  # a pointer loop
        (RType.CNAME, b"\xc0\x00", "does not parse"),  # a pointer to itself
        (RType.CNAME, wire_name("*.example.com"), "letters"),
        (RType.MX, b"\x00\x0a", "does not parse"),
        (RType.MX, b"\x00\x0a\x01a\xc0\x00", "canonical form"),
        (RType.SRV, b"\x00\x01\x00\x02\x00", "does not parse"),
        (RType.TXT, b"", "at least one string"),
        (RType.TXT, b"\x05ab", "does not parse"),
        (RType.CAA, b"\x00", "does not parse"),
        (RType.CAA, b"\x00\x00x", "tag"),
        (RType.CAA, b"\x00\x10" + b"a" * 16, "tag"),
        (RType.CAA, b"\x00\x05Issuex", "tag"),
        (RType.CAA, b"\x00\x03a-bx", "tag"),
        (RType.CAA, b"\x00\x05issue\xff", "does not parse"),
    ],
)
def test_record_rejects_bad_rdata(rtype: RType, rdata: bytes, fragment: str) -> None:
    with pytest.raises(InvalidUpdate) as info:
        Record(name="www", rtype=rtype, ttl=300, rdata=rdata)
    assert reason_of(info) == RejectReason.BAD_RECORD
    assert str(info.value).startswith(f"bad-record: www: {rtype.name}")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"rtype": 13}, RejectReason.BAD_RECORD),  # HINFO
        ({"rtype": True}, RejectReason.BAD_RECORD),
        ({"rtype": "A"}, RejectReason.BAD_RECORD),
        ({"ttl": -1}, RejectReason.BAD_RECORD),
        ({"ttl": 2**31}, RejectReason.BAD_RECORD),
        ({"ttl": True}, RejectReason.BAD_RECORD),
        ({"ttl": "300"}, RejectReason.BAD_RECORD),
        ({"rdata": bytearray(4)}, RejectReason.BAD_RECORD),
        ({"name": "WWW"}, RejectReason.BAD_NAME),
        ({"name": "www."}, RejectReason.BAD_NAME),
        ({"name": ""}, RejectReason.BAD_NAME),
        ({"name": b"www"}, RejectReason.BAD_NAME),
    ],
)
def test_record_rejects_bad_fields(fields: dict[str, object], reason: RejectReason) -> None:
    values: dict[str, object] = {"name": "www", "rtype": RType.A, "ttl": 300, "rdata": bytes(4)}
    values.update(fields)
    with pytest.raises(InvalidUpdate) as info:
        Record(**values)  # type: ignore[arg-type]
    assert reason_of(info) == reason


def test_record_rejects_oversized_rdata() -> None:
    with pytest.raises(InvalidUpdate, match="over 65535"):
        Record(name="@", rtype=RType.TXT, ttl=1, rdata=(b"\xff" + bytes(255)) * 257)


def test_unsupported_type_is_named_in_the_message() -> None:
    with pytest.raises(InvalidUpdate, match="unsupported record type 13"):
        Record(name="www", rtype=13, ttl=1, rdata=b"")  # type: ignore[arg-type]


# -- CBOR --


def test_cbor_form_and_round_trip() -> None:
    record = rec("www 300 A 10.0.0.1")
    assert record.to_cbor() == ["www", 1, 300, bytes([10, 0, 0, 1])]
    assert Record.from_cbor(decode(encode(record.to_cbor()), max_size=1000)) == record


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (["www", 1, 300], RejectReason.MALFORMED),
        (["www", 1, 300, bytes(4), 0], RejectReason.MALFORMED),
        (b"www", RejectReason.MALFORMED),
        ([b"www", 1, 300, bytes(4)], RejectReason.MALFORMED),
        (["www", "A", 300, bytes(4)], RejectReason.MALFORMED),
        (["www", 1, 300, "1.2.3.4"], RejectReason.MALFORMED),
        (["www", -1, 300, bytes(4)], RejectReason.OVERSIZE),
        (["www", 65536, 300, bytes(4)], RejectReason.OVERSIZE),
        (["a" * 254, 1, 300, bytes(4)], RejectReason.OVERSIZE),
        (["www", 1, 300, bytes(65536)], RejectReason.OVERSIZE),
        (["www", 13, 300, bytes(4)], RejectReason.BAD_RECORD),
        (["www", 1, 2**31, bytes(4)], RejectReason.BAD_RECORD),
        (["www", 1, 300, bytes(5)], RejectReason.BAD_RECORD),
        (["WWW", 1, 300, bytes(4)], RejectReason.BAD_NAME),
    ],
)
def test_from_cbor_rejects(value: object, reason: RejectReason) -> None:
    with pytest.raises(InvalidUpdate) as info:
        Record.from_cbor(value)  # type: ignore[arg-type]
    assert reason_of(info) == reason


def test_records_cbor_round_trip_and_limit() -> None:
    records = (rec("@ A 1.2.3.4"), rec("www A 1.2.3.4"))
    value = decode(encode(records_to_cbor(records)), max_size=1000)
    assert records_from_cbor(value, max_records=2) == records
    with pytest.raises(InvalidUpdate) as info:
        records_from_cbor(value, max_records=1)
    assert reason_of(info) == RejectReason.TOO_MANY_RECORDS
    with pytest.raises(InvalidUpdate) as info:
        records_from_cbor(b"", max_records=1)
    assert reason_of(info) == RejectReason.MALFORMED
    with pytest.raises(InvalidUpdate) as info:
        records_from_cbor([["www"]], max_records=1)
    assert reason_of(info) == RejectReason.MALFORMED


# -- zone-file text --


@pytest.mark.parametrize(
    ("line", "name", "rtype", "ttl", "rdata"),
    [
        ("www 300 A 10.0.0.1", "www", RType.A, 300, bytes([10, 0, 0, 1])),
        ("www A 1.2.3.4", "www", RType.A, 300, bytes([1, 2, 3, 4])),
        ("www IN 60 A 1.2.3.4", "www", RType.A, 60, bytes([1, 2, 3, 4])),
        ("www in a 1.2.3.4 ; comment", "www", RType.A, 300, bytes([1, 2, 3, 4])),
        ("www 1h30m A 1.2.3.4\n", "www", RType.A, 5400, bytes([1, 2, 3, 4])),
        ("www.alice.p2p. A 1.2.3.4", "www", RType.A, 300, bytes([1, 2, 3, 4])),
        ("ALICE.P2P. A 1.2.3.4", "@", RType.A, 300, bytes([1, 2, 3, 4])),
        ("* A 1.2.3.4", "*", RType.A, 300, bytes([1, 2, 3, 4])),
        ("Bücher AAAA ::1", "xn--bcher-kva", RType.AAAA, 300, bytes(15) + b"\x01"),
        ("v6 AAAA 2001:DB8::1", "v6", RType.AAAA, 300, bytes.fromhex("20010db8" + "0" * 22 + "01")),
        ("@ 3600 IN MX 10 mail", "@", RType.MX, 3600, MX_MAIL),
        ("@ MX 10 mail.alice.p2p.", "@", RType.MX, 300, MX_MAIL),
        ("@ MX 10 MAIL", "@", RType.MX, 300, MX_MAIL),
        ("@ MX 0 .", "@", RType.MX, 300, b"\x00\x00\x00"),
        ("sub NS ns1.sub", "sub", RType.NS, 300, wire_name("ns1.sub.alice.p2p")),
        ("sub NS @", "sub", RType.NS, 300, wire_name("alice.p2p")),
        ("www CNAME Bücher.example.", "www", RType.CNAME, 300, wire_name("xn--bcher-kva.example")),
        ("_acme-challenge CNAME _acme.other.p2p.", "_acme-challenge", RType.CNAME, 300,
         wire_name("_acme.other.p2p")),
        ("_sip._tcp 300 SRV 10 5 5060 sip", "_sip._tcp", RType.SRV, 300,
         struct.pack("!HHH", 10, 5, 5060) + wire_name("sip.alice.p2p")),
        ('@ TXT "hello world" "two"', "@", RType.TXT, 300, b"\x0bhello world\x03two"),
        ("@ TXT hello", "@", RType.TXT, 300, b"\x05hello"),
        ('@ TXT ""', "@", RType.TXT, 300, b"\x00"),
        ('@ TXT "a\\"b\\\\c\\065\\255"', "@", RType.TXT, 300, b'\x07a"b\\cA\xff'),
        ('@ TXT "café"', "@", RType.TXT, 300, b"\x05caf\xc3\xa9"),
        ('@ TXT "semi;colon"', "@", RType.TXT, 300, b"\x0asemi;colon"),
        ('@ CAA 0 issue "letsencrypt.org"', "@", RType.CAA, 300, b"\x00\x05issueletsencrypt.org"),
        ("@ CAA 128 ISSUE ;", "@", RType.CAA, 300, None),
        ("@ CAA 128 ISSUE x", "@", RType.CAA, 300, b"\x80\x05issuex"),
    ],
)  # fmt: skip
def test_from_text(line: str, name: str, rtype: RType, ttl: int, rdata: bytes | None) -> None:
    if rdata is None:  # the comment swallowed the value
        with pytest.raises(InvalidUpdate):
            rec(line)
        return
    assert rec(line) == Record(name=name, rtype=rtype, ttl=ttl, rdata=rdata)


def test_from_text_default_ttl() -> None:
    assert Record.from_text("www A 1.2.3.4", origin=ORIGIN, default_ttl=60).ttl == 60


@pytest.mark.parametrize(
    ("line", "reason", "fragment"),
    [
        ("", RejectReason.BAD_RECORD, "empty"),
        ("; only a comment", RejectReason.BAD_RECORD, "empty"),
        ("www", RejectReason.BAD_RECORD, "type is missing"),
        ("www 300 IN", RejectReason.BAD_RECORD, "type is missing"),
        ("www HINFO a b", RejectReason.BAD_RECORD, "unsupported record type 'HINFO'"),
        ("www TYPE1 1.2.3.4", RejectReason.BAD_RECORD, "unsupported record type"),
        ("www 300 CH A 1.2.3.4", RejectReason.BAD_RECORD, "class CH"),
        ("www HS A 1.2.3.4", RejectReason.BAD_RECORD, "class HS"),
        ("www 2147483648 A 1.2.3.4", RejectReason.BAD_RECORD, "TTL"),
        ("www 99999999999999999999999 A 1.2.3.4", RejectReason.BAD_RECORD, "TTL"),
        ("www A 1.2.3", RejectReason.BAD_RECORD, "not an IPv4 address"),
        ("www A 1.2.3.256", RejectReason.BAD_RECORD, "not an IPv4 address"),
        ("www A 01.2.3.4", RejectReason.BAD_RECORD, "not an IPv4 address"),
        ("www A ::1", RejectReason.BAD_RECORD, "not an IPv4 address"),
        ("www A 1.2.3.4 5.6.7.8", RejectReason.BAD_RECORD, "one address"),
        ('www A "1.2.3.4"', RejectReason.BAD_RECORD, "not valid"),
        ("www AAAA 1.2.3.4", RejectReason.BAD_RECORD, "not an IPv6 address"),
        ("www AAAA 1:2", RejectReason.BAD_RECORD, "not an IPv6 address"),
        ("www AAAA fe80::1%eth0", RejectReason.BAD_RECORD, "not valid"),
        ("www MX mail", RejectReason.BAD_RECORD, "takes a preference"),
        ("www MX ten mail", RejectReason.BAD_RECORD, "not a number"),
        ("www MX -1 mail", RejectReason.BAD_RECORD, "not a number"),
        ("www MX 65536 mail", RejectReason.BAD_RECORD, "out of range"),
        ("www MX 10 mail_x", RejectReason.BAD_RECORD, "target"),
        ("www MX 10 a..b", RejectReason.BAD_RECORD, "target"),
        ("www NS .", RejectReason.BAD_RECORD, "root"),
        ("www NS ns..", RejectReason.BAD_RECORD, "not a name"),
        ('www NS "ns1"', RejectReason.BAD_RECORD, "not a name"),
        ("www CNAME *.example.com.", RejectReason.BAD_RECORD, "target"),
        ("www CNAME " + "a." * 125 + "a", RejectReason.BAD_RECORD, "253"),
        ("www SRV 1 2 sip", RejectReason.BAD_RECORD, "takes priority"),
        ("www SRV 1 2 70000 sip", RejectReason.BAD_RECORD, "port 70000 is out of range"),
        ("www TXT", RejectReason.BAD_RECORD, "one or more strings"),
        ('www TXT "open', RejectReason.BAD_RECORD, "not closed"),
        ("www TXT \\", RejectReason.BAD_RECORD, "lone backslash"),
        ('www TXT "\\256"', RejectReason.BAD_RECORD, "not a byte value"),
        ("www TXT " + "x" * 256, RejectReason.BAD_RECORD, "split it"),
        ("www CAA 0 issue", RejectReason.BAD_RECORD, "flags, tag and value"),
        ("www CAA 256 issue x", RejectReason.BAD_RECORD, "out of range"),
        ("www CAA 0 is-sue x", RejectReason.BAD_RECORD, "tag"),
        ("www CAA 0 abcdefghijklmnop x", RejectReason.BAD_RECORD, "tag"),
        ('www CAA 0 issue "\\255"', RejectReason.BAD_RECORD, "UTF-8"),
        ("www A 1.2.3.4\nwww A 5.6.7.8", RejectReason.BAD_RECORD, "one line"),
        ("www A 1.2.3.4\ud800", RejectReason.BAD_RECORD, "surrogate"),
        ("www.bob.p2p. A 1.2.3.4", RejectReason.BAD_NAME, "not at or under"),
        ("alice.p2p.evil. A 1.2.3.4", RejectReason.BAD_NAME, "not at or under"),
        ('"www" A 1.2.3.4', RejectReason.BAD_NAME, "quoted"),
        ("a..b A 1.2.3.4", RejectReason.BAD_NAME, "empty label"),
        ("www.* A 1.2.3.4", RejectReason.BAD_NAME, "label"),
        (".".join(["a" * 63] * 4) + " A 1.2.3.4", RejectReason.BAD_NAME, "253"),
    ],
)
def test_from_text_rejects(line: str, reason: RejectReason, fragment: str) -> None:
    with pytest.raises(InvalidUpdate) as info:
        rec(line)
    assert reason_of(info) == reason
    assert fragment in str(info.value)


def test_from_text_requires_a_canonical_origin() -> None:
    with pytest.raises(InvalidUpdate) as info:
        Record.from_text("www A 1.2.3.4", origin="Alice.p2p")
    assert reason_of(info) == RejectReason.BAD_NAME


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("www 300 A 10.0.0.1", "www 300 IN A 10.0.0.1"),
        ("v6 AAAA 2001:db8:0:0:0:0:0:1", "v6 300 IN AAAA 2001:db8::1"),
        ("sub NS ns1.sub", "sub 300 IN NS ns1.sub.alice.p2p."),
        ("www CNAME alice.p2p.", "www 300 IN CNAME alice.p2p."),
        ("@ 3600 IN MX 10 mail", "@ 3600 IN MX 10 mail.alice.p2p."),
        ("@ MX 0 .", "@ 300 IN MX 0 ."),
        ("_sip._tcp 300 SRV 10 5 5060 sip", "_sip._tcp 300 IN SRV 10 5 5060 sip.alice.p2p."),
        ('@ TXT "hello world" "two"', '@ 300 IN TXT "hello world" "two"'),
        ('@ TXT "q\\"b\\\\ caf\\195\\169 \\009"', '@ 300 IN TXT "q\\"b\\\\ café \\009"'),
        ('@ TXT "\\255\\000x"', '@ 300 IN TXT "\\255\\000x"'),
        ('@ CAA 0 issue "letsencrypt.org"', '@ 300 IN CAA 0 issue "letsencrypt.org"'),
        ("* 0 A 1.2.3.4", "* 0 IN A 1.2.3.4"),
    ],
)
def test_to_text_round_trips(line: str, text: str) -> None:
    record = rec(line)
    assert record.to_text(ORIGIN) == text
    assert rec(text) == record
    assert text.endswith(record.rdata_text())


def test_to_text_checks_the_owner_fits_the_origin() -> None:
    record = Record(name=".".join(["a" * 63] * 3), rtype=RType.A, ttl=1, rdata=bytes(4))
    with pytest.raises(InvalidUpdate) as info:
        record.to_text("a" * 60 + ".p2p")
    assert reason_of(info) == RejectReason.BAD_NAME


# -- record sets --


def rset(*lines: str) -> tuple[Record, ...]:
    return canonical_record_set(rec(line) for line in lines)


def test_canonical_record_set_sorts_and_dedups() -> None:
    records = [rec("www A 2.2.2.2"), rec("@ TXT x"), rec("www A 1.1.1.1"), rec("@ A 1.1.1.1")]
    result = canonical_record_set([*records, rec("www A 2.2.2.2")])
    assert [r.to_text(ORIGIN) for r in result] == [
        "@ 300 IN A 1.1.1.1",
        '@ 300 IN TXT "x"',
        "www 300 IN A 1.1.1.1",
        "www 300 IN A 2.2.2.2",
    ]
    assert validate_record_set(result, BIG) == result
    assert canonical_record_set([rec("www 60 A 1.1.1.1"), rec("www 90 A 1.1.1.1")]) == (
        rec("www 90 A 1.1.1.1"),
    )


def test_validate_rejects_unsorted_and_duplicate_sets() -> None:
    a, b = rec("a A 1.1.1.1"), rec("b A 1.1.1.1")
    with pytest.raises(InvalidUpdate, match="canonical order") as info:
        validate_record_set([b, a], BIG)
    assert reason_of(info) == RejectReason.NON_CANONICAL
    with pytest.raises(InvalidUpdate, match="duplicate") as info:
        validate_record_set([a, a], BIG)
    assert reason_of(info) == RejectReason.NON_CANONICAL
    with pytest.raises(InvalidUpdate, match="duplicate") as info:
        validate_record_set([a, rec("a 60 A 1.1.1.1")], BIG)  # differs only in TTL
    assert reason_of(info) == RejectReason.NON_CANONICAL
    # types sort by number, not name: A (1) before TXT (16) before AAAA (28)
    ordered = (rec("a A 1.1.1.1"), rec("a TXT x"), rec("a AAAA ::1"))
    assert validate_record_set(ordered, BIG) == ordered


def test_validate_limits() -> None:
    records = rset("a A 1.1.1.1", "b A 1.1.1.1", "c A 1.1.1.1")
    size = sum(len(encode(r.to_cbor())) for r in records)
    assert validate_record_set(records, RecordLimits(max_records=3, max_bytes=size)) == records
    with pytest.raises(InvalidUpdate) as info:
        validate_record_set(records, RecordLimits(max_records=2, max_bytes=size))
    assert reason_of(info) == RejectReason.TOO_MANY_RECORDS
    with pytest.raises(InvalidUpdate) as info:
        validate_record_set(records, RecordLimits(max_records=3, max_bytes=size - 1))
    assert reason_of(info) == RejectReason.RECORDS_TOO_LARGE
    assert validate_record_set((), RecordLimits(max_records=0, max_bytes=0)) == ()


@pytest.mark.parametrize(("key", "value"), [("max_records", -1), ("max_bytes", "10")])
def test_record_limits_are_checked(key: str, value: object) -> None:
    fields: dict[str, object] = {"max_records": 1, "max_bytes": 1, key: value}
    with pytest.raises(ConfigError, match=key):
        RecordLimits(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "lines",
    [
        ("@ NS ns1.example.com.", "@ NS ns2.example.com.", "ns1 A 1.1.1.1", "x.y AAAA ::1"),
        ("sub NS ns1.sub", "ns1.sub A 1.1.1.1", "a.b.sub AAAA ::1", "www A 1.1.1.1"),
        ("sub NS ns1.sub", "*.sub A 1.1.1.1", "@ MX 10 mail", "other TXT x"),
        ("www CNAME alice.p2p.", "@ A 1.1.1.1", "x.www A 1.1.1.1"),
        ("www 60 A 1.1.1.1", "www 60 A 2.2.2.2", "www 90 AAAA ::1"),
        ("@ MX 10 a", "@ A 1.1.1.1", "@ TXT x", "@ CAA 0 issue x", "_s._tcp SRV 1 1 1 a"),
    ],
)
def test_validate_accepts(lines: tuple[str, ...]) -> None:
    records = rset(*lines)
    assert validate_record_set(records, BIG) == records


@pytest.mark.parametrize(
    ("lines", "reason", "fragment"),
    [
        (("www 60 A 1.1.1.1", "www 90 A 2.2.2.2"), RejectReason.BAD_RECORD, "one TTL"),
        (("@ CNAME other.p2p.",), RejectReason.CNAME_CONFLICT, "apex"),
        (("www CNAME a.p2p.", "www A 1.1.1.1"), RejectReason.CNAME_CONFLICT, "only record"),
        (("www CNAME a.p2p.", "www TXT x"), RejectReason.CNAME_CONFLICT, "only record"),
        (("www CNAME a.p2p.", "www CNAME b.p2p."), RejectReason.CNAME_CONFLICT, "only record"),
        (("@ NS ns.example.", "@ A 1.1.1.1"), RejectReason.BAD_RECORD, "@ may hold only NS and DS"),
        (
            ("@ NS ns.example.", "@ MX 10 mail"),
            RejectReason.BAD_RECORD,
            "@ may hold only NS and DS",
        ),
        (("@ NS ns.example.", "www TXT x"), RejectReason.BAD_RECORD, "only A/AAAA glue"),
        (("@ NS ns.example.", "sub NS ns.example."), RejectReason.BAD_RECORD, "glue, not NS"),
        (("@ NS ns.example.", "www CNAME a.p2p."), RejectReason.BAD_RECORD, "glue, not CNAME"),
        (("sub NS ns.example.", "sub A 1.1.1.1"), RejectReason.BAD_RECORD, "only NS"),
        (("sub NS ns.example.", "sub TXT x"), RejectReason.BAD_RECORD, "only NS"),
        (("sub NS ns.example.", "a.sub TXT x"), RejectReason.BAD_RECORD, "below the delegation"),
        (("sub NS ns.example.", "a.b.sub MX 1 m"), RejectReason.BAD_RECORD, "'sub'"),
        (("sub NS ns.example.", "a.sub NS ns.example."), RejectReason.BAD_RECORD, "below"),
        (("sub NS ns.example.", "*.sub TXT x"), RejectReason.BAD_RECORD, "below"),
        (("sub NS ns.example.", "a.sub CNAME x.p2p."), RejectReason.BAD_RECORD, "below"),
    ],
)
def test_validate_rejects(lines: tuple[str, ...], reason: RejectReason, fragment: str) -> None:
    records = rset(*lines)
    with pytest.raises(InvalidUpdate) as info:
        validate_record_set(records, BIG)
    assert reason_of(info) == reason
    assert fragment in str(info.value)


def test_names_that_only_share_a_suffix_are_not_below_a_cut() -> None:
    records = rset("sub NS ns.example.", "xsub TXT x", "sub.x TXT y")
    assert validate_record_set(records, BIG) == records


# -- fast paths (same outcome as the full checks) --


@pytest.mark.parametrize(("rtype", "size"), [(RType.A, 4), (RType.AAAA, 16)])
def test_address_rdata_needs_no_dnslib_parse(rtype: RType, size: int) -> None:
    import random

    from chain.rdata import _decode_rdata, _parse_wire

    rng = random.Random(size)
    samples = [bytes(size), b"\xff" * size] + [rng.randbytes(size) for _ in range(200)]
    for rdata in samples:  # dnslib accepts every one unchanged, so skipping it is exact
        assert _decode_rdata(rtype, rdata, "@") == _parse_wire(rtype, rdata, "@") == _Fields()
        assert Record(name="@", rtype=rtype, ttl=1, rdata=rdata).rdata_text()


def test_size_bound_is_never_below_the_encoded_size() -> None:
    from chain.records import _size_bound

    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    big_txt = b"".join(bytes([255]) + b"x" * 255 for _ in range(255))
    records = [
        rec("@ 0 A 1.2.3.4"),
        Record(name=longest, rtype=RType.CAA, ttl=2**31 - 1, rdata=b"\x00\x05issuex"),
        Record(name="t", rtype=RType.TXT, ttl=2**31 - 1, rdata=big_txt),
    ]
    for record in records:
        assert len(encode(record.to_cbor())) <= _size_bound([record])
