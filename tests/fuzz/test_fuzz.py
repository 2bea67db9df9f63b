"""Fuzz targets under Hypothesis, on a CI budget, plus replay of the kept corpus.

Each target (`tests.fuzz.targets`) gets random bytes, and valid encodings (the
corpus seeds) mutated: bytes flipped, inserted, deleted or duplicated, cut
short, spliced with another seed, and for the CBOR messages one field changed
at any depth, so most inputs get past the first checks. The long runs are
``python tools/fuzz.py`` (atheris); whatever they find is fixed and then kept
in ``tests/fuzz/corpus/<target>/``, replayed here on every run.
"""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.rdata import RType
from tests.fuzz.targets import CORPUS_ROOT, TARGETS, TIME_LIMIT_S, Target
from tests.fuzz.world import seeds, world
from tests.property.test_decoders_props import structural_mutations
from tests.strategies import rdata, wire_name, zone_lines

# About a second per target on one core: the whole file stays well under 40 s.
CI = settings(
    max_examples=150,
    deadline=int(TIME_LIMIT_S * 1000),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

_CBOR_TARGETS = frozenset(
    name
    for name in TARGETS
    if not name.startswith("dns_") and name not in ("rpc_body", "zone_file")
)
_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x18, 0x19, 0x1A, 0x1B, 0x40, 0x58, 0x5F, 0x9F, 0xC0)


@cache
def _seeds(name: str) -> tuple[bytes, ...]:
    return tuple(seeds(name))


@cache
def _all_seeds() -> tuple[bytes, ...]:
    return tuple(s for name in TARGETS for s in _seeds(name))


@st.composite
def _byte_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with one to six byte-level edits (AFL-style)."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["bit", "byte", "insert", "delete", "dup", "truncate", "splice"]))
        pos = draw(st.integers(0, len(out)))
        at = min(pos, len(out) - 1)
        if op == "bit" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and out:
            out[at] = draw(st.sampled_from(_INTERESTING) | st.integers(0, 255))
        elif op == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and out:
            del out[at : at + draw(st.integers(1, 16))]
        elif op == "dup" and out:
            out[pos:pos] = out[at : at + draw(st.integers(1, 64))]
        elif op == "truncate":
            del out[pos:]
        elif op == "splice":
            other = draw(st.sampled_from(_all_seeds()))
            cut = draw(st.integers(0, len(other)))
            out[pos:] = other[cut:]
    return bytes(out)


_JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["00", "zz", "0" * 64, "nan", "inf", "1e400", "-1", " 12", "60.0001"]),
    st.lists(st.text(max_size=8), max_size=3),
)


@st.composite
def _json_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """A seed JSON document with a field replaced, removed or added."""
    doc = json.loads(data)
    keys = sorted(doc)
    op = draw(st.sampled_from(["replace", "delete", "add"]))
    if op == "delete" and keys:
        del doc[draw(st.sampled_from(keys))]
    elif op == "replace" and keys:
        doc[draw(st.sampled_from(keys))] = draw(_JSON_VALUES)
    else:
        doc[draw(st.sampled_from(["tx", "txs", "wire", "txid", "bundle", "domain", "wait"]))] = (
            draw(_JSON_VALUES)
        )
    return json.dumps(doc).encode()


@st.composite
def _zone_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """A seed zone file with lines replaced by, or added from, zone-like lines."""
    lines = data.decode().splitlines()
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(lines)))
        line = draw(zone_lines())
        if draw(st.booleans()) and pos < len(lines):
            lines[pos] = line
        else:
            lines.insert(pos, line)
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@st.composite
def _dns_header_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """A seed message with its flags and section counts rewritten."""
    flags = draw(st.integers(0, 0xFFFF) | st.sampled_from([0x0100, 0x2800, 0x7800, 0x0000]))
    counts = [draw(st.integers(0, 3) | st.integers(0, 0xFFFF)) for _ in range(4)]
    header = data[:2] + flags.to_bytes(2) + b"".join(c.to_bytes(2) for c in counts)
    return header + data[12:]


_UPDATE_OWNERS = ("", "www", "mail", "new", "sub", "ns1.sub", "*.wild", "loop1", "a.b.c")
_UPDATE_TYPES = (*[int(t) for t in RType], 6, 12, 0, 255, 252, 250, 41, 65535)


@st.composite
def _update_rr(draw: st.DrawFn, apex: str) -> bytes:
    owner = draw(st.sampled_from(_UPDATE_OWNERS))
    name = "example.com" if draw(st.integers(0, 9)) == 0 else ".".join(filter(None, [owner, apex]))
    rtype = draw(st.sampled_from([int(t) for t in RType]) | st.sampled_from(_UPDATE_TYPES))
    rclass = draw(st.sampled_from([1, 1, 255, 254, 3]))
    ttl = draw(st.sampled_from([0, 0, 300, 2**31 - 1, 2**32 - 1]))
    if rclass in (254, 255) and draw(st.booleans()):
        body = b""
    elif rtype in set(RType):
        body = draw(rdata(RType(rtype)))
    else:
        body = draw(st.binary(max_size=24))
    fixed = rtype.to_bytes(2) + rclass.to_bytes(2) + ttl.to_bytes(4) + len(body).to_bytes(2)
    return wire_name(name) + fixed + body


@st.composite
def _dns_update_messages(draw: st.DrawFn) -> bytes:
    """RFC 2136 UPDATE messages built field by field, mostly for the registered zone."""
    apex = draw(st.sampled_from(["alice.p2p", "alice.p2p", "big.p2p", "other.p2p", "p2p"]))
    prerequisites = draw(st.lists(_update_rr(apex), max_size=2) | st.just([]))
    updates = draw(st.lists(_update_rr(apex), max_size=4))
    header = (
        (7).to_bytes(2)
        + (5 << 11).to_bytes(2)
        + b"".join(n.to_bytes(2) for n in (1, len(prerequisites), len(updates), 0))
    )
    zone = wire_name(apex) + (6).to_bytes(2) + draw(st.sampled_from([1, 1, 3])).to_bytes(2)
    return header + zone + b"".join(prerequisites) + b"".join(updates)


def _cbor_structural(data: bytes) -> st.SearchStrategy[bytes]:
    try:
        cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError):
        return st.just(data)
    return structural_mutations(data)


def inputs(target: Target) -> st.SearchStrategy[bytes]:
    """Random bytes, and the target's seeds mutated in the ways that suit its format."""
    base = st.sampled_from(_seeds(target.name))
    strategies = [
        st.binary(max_size=512),
        base.flatmap(_byte_mutations),
        base.flatmap(_byte_mutations),
    ]
    if target.name in _CBOR_TARGETS:
        strategies.append(base.flatmap(_cbor_structural))
    elif target.name == "rpc_body":
        strategies.append(base.flatmap(_json_mutations))
    elif target.name == "zone_file":
        strategies.append(base.flatmap(_zone_mutations))
        strategies.append(st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")))
    else:
        strategies.append(base.flatmap(_dns_header_mutations))
    if target.name == "dns_update":
        strategies.append(_dns_update_messages())
    return st.one_of(strategies)


targets = pytest.mark.parametrize("target", TARGETS.values(), ids=lambda t: t.name)


@pytest.fixture(scope="module", autouse=True)
def _built_world() -> None:
    world()  # built once, outside any example's deadline


@targets
@CI
@given(data=st.data())
def test_target_survives_fuzzing(target: Target, data: st.DataObject) -> None:
    target.run(data.draw(inputs(target), label="input"))


# -- the kept corpus --


def _corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS_ROOT.glob("*/*") if p.is_file())


def test_every_target_has_a_corpus() -> None:
    for name in TARGETS:
        assert any((CORPUS_ROOT / name).iterdir()), f"tests/fuzz/corpus/{name} is empty"
    assert {p.name for p in CORPUS_ROOT.iterdir() if p.is_dir()} <= set(TARGETS)


@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name[:16]}")
def test_corpus_replays(path: Path) -> None:
    target = TARGETS[path.parent.name]
    started = time.perf_counter()
    target.run(path.read_bytes())
    elapsed = time.perf_counter() - started
    assert elapsed < TIME_LIMIT_S * 2, f"{path}: {elapsed:.2f} s (a hang)"
