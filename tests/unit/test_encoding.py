"""The canonical encoding: strict decoding of everything outside sends us."""

from __future__ import annotations

import pytest

from chain.encoding import Kind, Reader, decode, encode, frame
from chain.errors import InvalidUpdate, RejectReason


def test_frame_is_deterministic_cbor() -> None:
    assert frame(Kind.TX_BODY, b"ab", 1).hex() == "840101426162" + "01"
    assert frame(Kind.TX, b"ab", 1).hex() == "840202426162" + "01"  # a kind at version 2
    assert encode([1, b"ab", "x", [2, 3]]).hex() == "84014261626178820203"


@pytest.mark.parametrize(
    ("hex_bytes", "reason"),
    [
        ("8401426162617882020300", RejectReason.NON_CANONICAL),  # trailing byte
        ("1801", RejectReason.NON_CANONICAL),  # 1 encoded in two bytes
        ("9f01ff", RejectReason.MALFORMED),  # indefinite-length array
        ("c24101", RejectReason.NON_CANONICAL),  # bignum tag for a small int
        ("c11a00000001", RejectReason.MALFORMED),  # epoch date tag
        ("f93c00", RejectReason.MALFORMED),  # half float
        ("f5", RejectReason.MALFORMED),  # true
        ("f6", RejectReason.MALFORMED),  # null
        ("a10102", RejectReason.MALFORMED),  # map
        ("5bffffffffffffffff", RejectReason.MALFORMED),  # huge declared length
        ("81" * 20 + "01", RejectReason.MALFORMED),  # nesting too deep
        ("d81c81d81d00", RejectReason.MALFORMED),  # shared reference cycle
        ("62ff00", RejectReason.MALFORMED),  # invalid UTF-8
        ("", RejectReason.MALFORMED),
    ],
)
def test_decode_rejects(hex_bytes: str, reason: RejectReason) -> None:
    with pytest.raises(InvalidUpdate) as info:
        decode(bytes.fromhex(hex_bytes), max_size=1024)
    assert info.value.reason == reason


def test_decode_size_cap() -> None:
    with pytest.raises(InvalidUpdate) as info:
        decode(encode(b"x" * 100), max_size=50)
    assert info.value.reason == RejectReason.OVERSIZE


def test_reader_checks_kind_version_and_fields() -> None:
    data = frame(Kind.VOTE, 7, b"k")
    r = Reader.open(data, Kind.VOTE, "vote", fields=2, max_size=100)
    assert r.uint("a", maximum=10) == 7
    assert r.bytes("b", size=1) == b"k"
    r.done()
    with pytest.raises(InvalidUpdate, match="wrong object kind"):
        Reader.open(data, Kind.TX, "tx", fields=2, max_size=100)
    with pytest.raises(InvalidUpdate) as info:
        Reader.open(encode([int(Kind.VOTE), 1, 7, b"k"]), Kind.VOTE, "vote", fields=2, max_size=100)
    assert info.value.reason == RejectReason.UNKNOWN_VERSION  # votes are at version 2
    with pytest.raises(InvalidUpdate) as info:
        Reader.open(encode([int(Kind.HEADER), 1, 7]), Kind.HEADER, "header", fields=1, max_size=100)
    assert info.value.reason == RejectReason.UNKNOWN_VERSION  # headers are at version 2 (issue 15)
    with pytest.raises(InvalidUpdate, match="expected 5 fields"):
        Reader.open(data, Kind.VOTE, "vote", fields=3, max_size=100)


@pytest.mark.parametrize(
    ("value", "call", "reason"),
    [
        ([-1], lambda r: r.uint("x"), RejectReason.OVERSIZE),
        ([11], lambda r: r.uint("x", maximum=10), RejectReason.OVERSIZE),
        (["s"], lambda r: r.uint("x"), RejectReason.MALFORMED),
        ([b"abc"], lambda r: r.bytes("x", size=2), RejectReason.MALFORMED),
        ([b"abc"], lambda r: r.bytes("x", maximum=2), RejectReason.OVERSIZE),
        ([1], lambda r: r.bytes("x"), RejectReason.MALFORMED),
        (["abc"], lambda r: r.text("x", maximum=2), RejectReason.OVERSIZE),
        ([[1, 2, 3]], lambda r: r.array("x", maximum=2), RejectReason.OVERSIZE),
        ([b"x"], lambda r: r.array("x", maximum=2), RejectReason.MALFORMED),
    ],
)
def test_reader_field_errors(value: list, call, reason: RejectReason) -> None:  # type: ignore[no-untyped-def, type-arg]
    with pytest.raises(InvalidUpdate) as info:
        call(Reader(value, "obj", fields=1))
    assert info.value.reason == reason
    assert "obj.x" in str(info.value)
