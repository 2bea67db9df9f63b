"""Properties of records: every encoding round-trips; decoders raise only InvalidUpdate."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chain.encoding import decode, encode
from chain.errors import InvalidUpdate
from chain.names import (
    absolute_name,
    normalize_name,
    normalize_relative_name,
    relative_name,
    validate_domain,
)
from chain.records import (
    Record,
    RecordLimits,
    RType,
    canonical_record_set,
    records_from_cbor,
    records_to_cbor,
    validate_record_set,
)
from tests.strategies import (
    domains,
    mutations,
    record_sets,
    records,
    relative_names,
    zone_lines,
)

ORIGIN = "alice.p2p"
MAX_RECORD_BYTES = 70_000
LIMITS = RecordLimits(max_records=64, max_bytes=1_000_000)


@settings(max_examples=100)
@given(records())
def test_cbor_round_trip(record: Record) -> None:
    data = encode(record.to_cbor())
    assert Record.from_cbor(decode(data, max_size=MAX_RECORD_BYTES)) == record


@settings(max_examples=100)
@given(records(), domains())
def test_text_round_trip(record: Record, origin: str) -> None:
    line = record.to_text(origin)
    assert Record.from_text(line, origin=origin) == record
    assert Record.from_text(line, origin=origin, default_ttl=7) == record  # the TTL is explicit


@settings(max_examples=30)
@given(record_sets())
def test_generated_record_sets_are_valid_and_round_trip(records: tuple[Record, ...]) -> None:
    assert validate_record_set(records, LIMITS) == records
    assert canonical_record_set(reversed(records)) == records
    value = decode(encode(records_to_cbor(records)), max_size=LIMITS.max_bytes)
    assert records_from_cbor(value, max_records=LIMITS.max_records) == records


@settings(max_examples=50)
@given(st.lists(records(names=st.sampled_from(["@", "www", "*"])), max_size=6))
def test_canonical_record_set_is_sorted_unique_and_idempotent(items: list[Record]) -> None:
    result = canonical_record_set(items)
    keys = [(r.name, int(r.rtype), r.rdata) for r in result]
    assert keys == sorted(set(keys))
    assert canonical_record_set(result) == result
    assert {(r.name, r.rtype, r.rdata) for r in items} == {
        (r.name, r.rtype, r.rdata) for r in result
    }


@settings(max_examples=50)
@given(relative_names(), domains())
def test_absolute_and_relative_names_are_inverse(name: str, domain: str) -> None:
    assert validate_domain(domain, {"p2p"}) == domain
    assert normalize_name(domain) == domain
    assert relative_name(absolute_name(name, domain), domain) == name


@settings(max_examples=150)
@given(st.text(max_size=30))
def test_normalizing_is_idempotent_and_raises_only_invalid_update(text: str) -> None:
    for normalize in (normalize_name, normalize_relative_name):
        try:
            name = normalize(text)
        except InvalidUpdate:
            continue
        assert normalize(name) == name


def _decode_record(data: bytes) -> None:
    try:
        Record.from_cbor(decode(data, max_size=MAX_RECORD_BYTES))
    except InvalidUpdate:
        pass


@settings(max_examples=200)
@given(st.binary(max_size=64))
def test_decoding_random_bytes_raises_only_invalid_update(data: bytes) -> None:
    _decode_record(data)


@settings(max_examples=100)
@given(records().flatmap(lambda r: mutations(encode(r.to_cbor()))))
def test_decoding_mutated_records_raises_only_invalid_update(data: bytes) -> None:
    _decode_record(data)


@settings(max_examples=150)
@given(st.sampled_from(list(RType)), records().flatmap(lambda r: mutations(r.rdata)))
def test_mutated_rdata_raises_only_invalid_update(rtype: RType, rdata: bytes) -> None:
    try:
        record = Record(name="www", rtype=rtype, ttl=60, rdata=rdata)
    except InvalidUpdate:
        return
    # whatever is accepted is canonical: it prints and parses back to itself
    assert Record.from_text(record.to_text(ORIGIN), origin=ORIGIN) == record


@settings(max_examples=200)
@given(zone_lines())
def test_from_text_raises_only_invalid_update(line: str) -> None:
    try:
        record = Record.from_text(line, origin=ORIGIN)
    except InvalidUpdate:
        return
    assert Record.from_text(record.to_text(ORIGIN), origin=ORIGIN) == record


@settings(max_examples=50)
@given(st.lists(records(names=st.sampled_from(["@", "www", "a.sub", "sub"])), max_size=6))
def test_validate_record_set_raises_only_invalid_update(items: list[Record]) -> None:
    try:
        validate_record_set(canonical_record_set(items), LIMITS)
    except InvalidUpdate:
        pass
