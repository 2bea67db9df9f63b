"""PTR, NAPTR, DS, SSHFP, TLSA, SVCB and HTTPS: presentation <-> wire, canonical checks, errors."""

from __future__ import annotations

import pytest

from chain.errors import InvalidUpdate, RejectReason
from chain.genesis import make_single_validator_genesis
from chain.records import Record, RecordLimits, RType, validate_record_set
from ledgerdns.api.codec import tx_from_json, tx_json
from tools.devchain import dev_key, register_tx

ORIGIN = "alice.p2p"
LIMITS = RecordLimits(max_records=64, max_bytes=100_000)
SHA256 = "0123456789abcdef" * 4  # 32 bytes in hex
SHA1 = "0123456789" * 4  # 20 bytes in hex
ALICE = "05616c6963650370327000"  # alice.p2p. on the wire


def _strings(*items: bytes) -> str:
    return b"".join(bytes([len(item)]) + item for item in items).hex()


def rec(line: str) -> Record:
    return Record.from_text(line, origin=ORIGIN)


# line as typed, the wire rdata (hex, independently written), the line as shown
ROUND_TRIPS = [
    ("www PTR web", "03776562" + ALICE, "www 300 IN PTR web.alice.p2p."),
    (
        "_http._tcp PTR Printer._http._tcp.",
        "077072696e746572055f68747470045f74637000",
        "_http._tcp 300 IN PTR printer._http._tcp.",
    ),
    (
        '@ NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp',
        "0064000a0153075349502b44325500045f736970045f756470" + ALICE,
        '@ 300 IN NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp.alice.p2p.',
    ),
    (
        '@ NAPTR 10 100 "u" "E2U+sip" "!^.*$!sip:info@alice.p2p!" .',
        "000a0064" + _strings(b"u", b"E2U+sip", b"!^.*$!sip:info@alice.p2p!") + "00",
        '@ 300 IN NAPTR 10 100 "u" "E2U+sip" "!^.*$!sip:info@alice.p2p!" .',
    ),
    (
        f"@ 3600 DS 12345 13 2 {SHA256.upper()}",
        "30390d02" + SHA256,
        f"@ 3600 IN DS 12345 13 2 {SHA256}",
    ),
    (f"host SSHFP 4 2 {SHA256}", "0402" + SHA256, f"host 300 IN SSHFP 4 2 {SHA256}"),
    (f"host SSHFP 1 1 {SHA1}", "0101" + SHA1, f"host 300 IN SSHFP 1 1 {SHA1}"),
    (
        f"_443._tcp.www TLSA 3 1 1 {SHA256[:32]} {SHA256[32:]}",
        "030101" + SHA256,
        f"_443._tcp.www 300 IN TLSA 3 1 1 {SHA256}",
    ),
    (
        "@ HTTPS 1 . alpn=h2,h3",
        "000100" + "00010006" + _strings(b"h2", b"h3"),
        '@ 300 IN HTTPS 1 . alpn="h2,h3"',
    ),
    (
        "www HTTPS 0 Cdn.Example.",
        "0000" + "0363646e076578616d706c6500",
        "www 300 IN HTTPS 0 cdn.example.",
    ),
    (
        "_dns SVCB 1 dns port=853 mandatory=port",
        "0001" + "03646e73" + ALICE + "000000020003" + "000300020355",
        '_dns 300 IN SVCB 1 dns.alice.p2p. mandatory="port" port="853"',
    ),
    (
        '@ HTTPS 1 @ ipv4hint="10.0.0.1,10.0.0.2" ipv6hint=2001:db8::1',
        "0001" + ALICE + "000400080a0000010a000002" + "0006001020010db8000000000000000000000001",
        '@ 300 IN HTTPS 1 alice.p2p. ipv4hint="10.0.0.1,10.0.0.2" ipv6hint="2001:db8::1"',
    ),
]


@pytest.mark.parametrize(("line", "wire", "shown"), ROUND_TRIPS)
def test_presentation_and_wire_round_trip(line: str, wire: str, shown: str) -> None:
    record = rec(line)
    assert record.rdata.hex() == wire
    assert record.to_text(ORIGIN) == shown
    assert rec(shown) == record
    again = Record(name=record.name, rtype=record.rtype, ttl=record.ttl, rdata=bytes.fromhex(wire))
    assert again == record


BAD_TEXT = [
    ("www PTR .", "PTR: the target cannot be the root"),
    ("www PTR a b", 'PTR: unexpected extra value "b"'),
    ("www PTR", "PTR takes one target name"),
    ("www PTR bad..name", "PTR: "),
    ('@ NAPTR 1 1 "u" "E2U+sip" "!^.*$!sip:x@y!" foo', "a regexp or a replacement, not both"),
    ('@ NAPTR 1 1 "u"', "NAPTR: expecting a string"),
    ("@ DS 1 13 2 0123", "DS: digest length inconsistent with digest type"),
    ("@ DS 1 13 2 zz", "DS: Non-hexadecimal digit found"),
    ("@ DS 70000 13 2 00", "DS: "),
    ("host SSHFP 4 2 00", "SSHFP: fingerprint length inconsistent"),
    ("_443._tcp TLSA 3 1 1 00", "TLSA: certificate association data length inconsistent"),
    ("_443._tcp TLSA 3 1 1", "TLSA: a value is missing"),
    ("@ HTTPS 1 . mandatory=alpn", "key 1 declared mandatory but not present"),
    ("@ HTTPS 1 . port=80 port=81", "duplicate key"),
    ("@ HTTPS 0 . alpn=h2", "parameters in AliasMode"),
    ("@ HTTPS 1 . port=99999", "not a uint16"),
    ("@ SVCB 1 . ech=bm90IGFuIGVjaA==", "invalid ECHConfigList"),
    ("@ SVCB 1 under_score.example.", "SVCB: target name 'under_score.example'"),
]


@pytest.mark.parametrize(("line", "message"), BAD_TEXT)
def test_bad_presentation_is_one_clear_error(line: str, message: str) -> None:
    with pytest.raises(InvalidUpdate) as info:
        rec(line)
    assert info.value.reason is RejectReason.BAD_RECORD
    text = str(info.value.args[0])
    assert message in text
    assert "\n" not in text and "Traceback" not in text


BAD_WIRE = [
    (RType.PTR, "0357575700", "may hold only lower-case"),  # WWW. upper-case
    (RType.PTR, "03777777", "does not parse"),  # no root label
    (RType.PTR, "00", "cannot be the root"),
    (RType.DS, "30390d63", "digest is empty"),  # digest type 99: any length but 0
    (RType.DS, "30390d02", "digest length inconsistent"),
    (RType.DS, "3039", "does not parse"),
    (RType.TLSA, "030100", "certificate data is empty"),
    (RType.SSHFP, "0402" + "00" * 31, "does not parse"),
    (RType.HTTPS, "0001000003000200500001000302683200", "does not parse"),  # keys out of order
    (RType.SVCB, "0001000003000200500003000201bb", "does not parse"),  # a key twice
    (RType.NAPTR, "000100010000000100", "does not parse"),  # regexp length past the end
]


@pytest.mark.parametrize(("rtype", "wire", "message"), BAD_WIRE)
def test_bad_wire_is_rejected(rtype: RType, wire: str, message: str) -> None:
    with pytest.raises(InvalidUpdate, match=message) as info:
        Record(name="x", rtype=rtype, ttl=1, rdata=bytes.fromhex(wire))
    assert info.value.reason is RejectReason.BAD_RECORD


def _set(*lines: str) -> tuple[Record, ...]:
    records = [rec(line) for line in lines]
    return tuple(sorted(records, key=lambda r: (r.name, int(r.rtype), r.rdata)))


def test_ds_goes_with_a_delegation() -> None:
    ds = f"DS 12345 13 2 {SHA256}"
    validate_record_set(_set("@ NS ns1.example.", f"@ {ds}"), LIMITS)
    validate_record_set(_set("sub NS ns1.example.", f"sub {ds}", "www A 10.0.0.1"), LIMITS)
    with pytest.raises(InvalidUpdate, match="DS record belongs to a delegation"):
        validate_record_set(_set(f"@ {ds}", "www A 10.0.0.1"), LIMITS)
    with pytest.raises(InvalidUpdate, match="DS record belongs to a delegation"):
        validate_record_set(_set(f"sub {ds}"), LIMITS)
    with pytest.raises(InvalidUpdate, match="may hold only NS and DS, not TLSA"):
        validate_record_set(_set("@ NS ns1.example.", f"@ TLSA 3 1 1 {SHA256}"), LIMITS)


def test_the_rpc_carries_every_type_as_zone_lines() -> None:
    # what the wallet, the explorer and `status` read: a transaction as JSON, records as lines
    genesis = make_single_validator_genesis(dev_key("rdtypes", 0).public_key, genesis_time_ms=1)
    records = _set(*(line for line, _, _ in ROUND_TRIPS if " DS " not in line))
    tx = register_tx(genesis, dev_key("rdtypes", 1), ORIGIN, records, valid_until=10)
    doc = tx_json(tx)
    assert {line.split()[3] for line in doc["records"]} >= {
        "PTR", "NAPTR", "SSHFP", "TLSA", "HTTPS", "SVCB"
    }  # fmt: skip
    assert tx_from_json(doc) == tx
