"""Every decoder: valid objects round-trip byte for byte, and garbage only ever
raises the decoder's one error family (`InvalidUpdate`; `ConfigError` for genesis).

Three kinds of garbage: random bytes (and random CBOR framed as the right kind),
byte-level mutations of valid encodings, and structural mutations (one field,
at any depth, including CBOR nested inside byte strings, replaced, removed or
added). A mutant that does decode must re-encode to exactly its own bytes:
one object, one encoding.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.block import Block, BlockHeader
from chain.crypto import sha256
from chain.encoding import VERSION, Kind, encode, version_of
from chain.errors import ConfigError, InvalidUpdate
from chain.genesis import Genesis, make_single_validator_genesis
from chain.ledger import Ledger
from chain.quorum import CommitCertificate, Vote
from chain.smt import Proof
from chain.snapshot import Chunk, Manifest
from chain.state import DomainState
from chain.store import MemoryStore
from chain.tx import Transaction, TxBody
from chain.validators import Roster, ValidatorChange
from tests.strategies import (
    GENESIS_KEYS,
    GENESIS_SIGNERS,
    block_headers,
    blocks,
    cbor_values,
    certificates,
    domain_states,
    geneses,
    mutations,
    proofs,
    rosters,
    transactions,
    tx_bodies,
    validator_changes,
    votes,
)
from tools.devchain import certify, register_tx

# This file's profile: a few dozen examples per codec and test keep it to seconds.
FEW = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SOME = settings(FEW, max_examples=30)
MANY = settings(FEW, max_examples=60)


@dataclass(frozen=True)
class Codec:
    name: str
    kind: Kind
    objects: st.SearchStrategy[Any]
    decode: Callable[[bytes], Any]

    def __str__(self) -> str:
        return self.name


@st.composite
def snapshot_chunks(draw: st.DrawFn) -> Chunk:
    items = draw(
        st.lists(
            st.tuples(st.binary(min_size=1, max_size=40), st.binary(min_size=1, max_size=80)),
            max_size=4,
        )
    )
    return Chunk(
        height=draw(st.integers(0, 2**63 - 1)),
        index=draw(st.integers(0, 65535)),
        items=tuple(items),
    )


@st.composite
def snapshot_manifests(draw: st.DrawFn) -> Manifest:
    depth = draw(st.integers(0, 2))
    change = st.tuples(st.binary(max_size=40), st.binary(max_size=40), st.binary(max_size=40))
    return Manifest(
        height=draw(st.integers(0, 2**63 - 1)), block=draw(st.binary(max_size=60)),
        certificate=draw(st.binary(max_size=60)), depth=depth,
        entries=draw(st.binary(min_size=33 << depth, max_size=33 << depth)),
        changes=tuple(draw(st.lists(change, max_size=2))),
    )  # fmt: skip


CODECS = [
    Codec("SnapshotChunk", Kind.SNAPSHOT_CHUNK, snapshot_chunks(), Chunk.from_bytes),
    Codec("SnapshotManifest", Kind.SNAPSHOT_MANIFEST, snapshot_manifests(), Manifest.from_bytes),
    Codec("TxBody", Kind.TX_BODY, tx_bodies(), TxBody.from_bytes),
    Codec("CommitBody", Kind.NAME_COMMIT_BODY, tx_bodies(forms=("commit",)), TxBody.from_bytes),
    Codec("RevealBody", Kind.NAME_REVEAL_BODY, tx_bodies(forms=("reveal",)), TxBody.from_bytes),
    Codec("RenewBody", Kind.NAME_RENEW_BODY, tx_bodies(forms=("renewal",)), TxBody.from_bytes),
    Codec(
        "ValidatorBody", Kind.VALIDATOR_TX_BODY, tx_bodies(forms=("validator",)), TxBody.from_bytes
    ),
    Codec("Transaction", Kind.TX, transactions(), Transaction.from_bytes),
    Codec("BlockHeader", Kind.HEADER, block_headers(), BlockHeader.from_bytes),
    Codec("Block", Kind.BLOCK, blocks(), Block.from_bytes),
    Codec("Vote", Kind.VOTE, votes(), Vote.from_bytes),
    Codec("CommitCertificate", Kind.CERTIFICATE, certificates(), CommitCertificate.from_bytes),
    Codec("DomainState", Kind.DOMAIN_STATE, domain_states(), DomainState.from_bytes),
    Codec("Proof", Kind.PROOF, proofs(), Proof.from_bytes),
    Codec(
        "ValidatorChange", Kind.VALIDATOR_CHANGE, validator_changes(), ValidatorChange.from_bytes
    ),
    Codec("Roster", Kind.ROSTER, rosters(), Roster.from_bytes),
]
codecs = pytest.mark.parametrize("codec", CODECS, ids=str)


def _decodes_canonically_or_refuses(codec: Codec, data: bytes) -> None:
    """The decoder's whole contract on arbitrary input."""
    try:
        obj = codec.decode(data)
    except InvalidUpdate:
        return
    assert obj.to_bytes() == data, "a decoded object must re-encode to its exact bytes"


# -- round trips --


@codecs
@SOME
@given(data=st.data())
def test_round_trip(codec: Codec, data: st.DataObject) -> None:
    obj = data.draw(codec.objects)
    raw = obj.to_bytes()
    back = codec.decode(raw)
    assert back == obj
    assert back.to_bytes() == raw
    assert cbor2.loads(raw)[:2] == [int(codec.kind), version_of(codec.kind)]


@SOME
@given(tx=transactions())
def test_transaction_identity_survives_the_wire(tx: Transaction) -> None:
    back = Transaction.from_bytes(tx.to_bytes())
    assert back.txid == tx.txid == sha256(tx.body.to_bytes())
    assert back.size == tx.size


@FEW
@given(block=blocks())
def test_block_hash_survives_the_wire(block: Block) -> None:
    back = Block.from_bytes(block.to_bytes())
    assert back.hash == block.hash == sha256(block.header.to_bytes())
    assert [tx.txid for tx in back.txs] == [tx.txid for tx in block.txs]


# -- garbage --
#
# Structural mutation: byte strings that hold canonical CBOR arrays (a block's
# header and transactions, a transaction's body) are opened up so that a field
# deep inside can change while every enclosing layer stays well formed.


@dataclass
class _Nested:
    items: list[Any]


def _explode(value: Any) -> Any:
    if isinstance(value, list):
        return [_explode(v) for v in value]
    if isinstance(value, bytes) and value[:1] and 0x80 <= value[0] <= 0x9B:
        try:
            inner = cbor2.loads(value)
        except (cbor2.CBORError, ValueError):
            return value
        if isinstance(inner, list) and encode(inner) == value:
            return _Nested(_explode(inner))
    return value


def _implode(value: Any) -> Any:
    if isinstance(value, _Nested):
        return encode(_implode(value.items))
    if isinstance(value, list):
        return [_implode(v) for v in value]
    return value


def _containers(value: Any, out: list[list[Any]]) -> list[list[Any]]:
    if isinstance(value, _Nested):
        value = value.items
    if isinstance(value, list):
        out.append(value)
        for item in value:
            _containers(item, out)
    return out


# Values at the edges of what fields accept: 64-bit and 63-bit limits, sizes
# one off, empty things, wrong types.
_EDGES = st.one_of(
    st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, -(2**64)]),
    st.sampled_from(
        [b"", b"\0", bytes(31), bytes(32), bytes(33), bytes(64), bytes(65), b"\x02" * 33]
    ),
    st.sampled_from(["", "a.p2p", "ledgerdns-devnet", "x" * 65]),
    st.builds(list),  # a fresh list: mutations may later insert into it
    cbor_values,
)


@st.composite
def structural_mutations(draw: st.DrawFn, raw: bytes) -> bytes:
    tree = _explode(cbor2.loads(raw))
    for _ in range(draw(st.integers(1, 2))):
        container = draw(st.sampled_from(_containers(tree, [])))
        op = draw(st.sampled_from(["replace", "replace", "delete", "insert"]))
        if op == "insert" or not container:
            container.insert(draw(st.integers(0, len(container))), draw(_EDGES))
        elif op == "delete":
            del container[draw(st.integers(0, len(container) - 1))]
        else:
            container[draw(st.integers(0, len(container) - 1))] = draw(_EDGES)
    return encode(_implode(tree))


@st.composite
def garbage(draw: st.DrawFn, codec: Codec) -> bytes:
    """Random bytes, random CBOR framed as `codec`'s kind, or a valid encoding mutated."""
    source = draw(st.sampled_from(["random", "framed", "bytes", "structure", "structure"]))
    if source == "random":
        return draw(st.binary(max_size=300))
    if source == "framed":
        version = draw(st.sampled_from([VERSION, VERSION, 0, 2, -1]))
        return encode([int(codec.kind), version, *draw(st.lists(cbor_values, max_size=10))])
    raw = draw(codec.objects).to_bytes()
    return draw(mutations(raw) if source == "bytes" else structural_mutations(raw))


@codecs
@MANY
@given(data=st.data())
def test_garbage_raises_only_invalid_update(codec: Codec, data: st.DataObject) -> None:
    _decodes_canonically_or_refuses(codec, data.draw(garbage(codec)))


# -- genesis --


def _parses_or_config_error(text: str) -> None:
    """`Genesis.from_json`'s contract: ConfigError, or a genesis that is fully usable."""
    try:
        genesis = Genesis.from_json(text)
    except ConfigError:
        return
    again = Genesis.from_json(genesis.to_json())
    assert again == genesis
    assert again.hash() == genesis.hash()


@FEW
@given(genesis=geneses())
def test_genesis_round_trip(genesis: Genesis) -> None:
    text = genesis.to_json()
    back = Genesis.from_json(text)
    assert back == genesis
    assert back.to_json() == text
    assert back.hash() == genesis.hash()


@FEW
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(repr)))
def test_random_text_raises_only_config_error(text: str) -> None:
    _parses_or_config_error(text)


@FEW
@given(data=st.data())
def test_mutated_genesis_text_raises_only_config_error(data: st.DataObject) -> None:
    raw = data.draw(geneses()).to_json().encode()
    _parses_or_config_error(data.draw(mutations(raw)).decode("utf-8", "replace"))


# JSON values a genesis field might be replaced with. Text excludes lone
# surrogates, which crash the loader today (see the xfail tests below).
_JSON_STRINGS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "p2p",
            "a.p2p",
            "A.p2p",
            "@ A 1.2.3.4",
            "www CNAME x.p2p.",
            "@ NS ns1",
            bytes(GENESIS_KEYS[0]).hex(),
            bytes(GENESIS_KEYS[1]).hex().upper(),
            "02" * 33,
        ]
    ),
)
_JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        _JSON_STRINGS,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_JSON_STRINGS, inner, max_size=4)
    ),
    max_leaves=6,
)


def _json_containers(value: Any, out: list[Any]) -> list[Any]:
    if isinstance(value, (list, dict)):
        out.append(value)
        for item in value.values() if isinstance(value, dict) else value:
            _json_containers(item, out)
    return out


@st.composite
def genesis_doc_mutations(draw: st.DrawFn) -> str:
    doc = json.loads(draw(geneses()).to_json())
    for _ in range(draw(st.integers(1, 3))):
        container = draw(st.sampled_from(_json_containers(doc, [])))
        op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if isinstance(container, dict):
            keys = sorted(container)
            if op == "add" or not keys:
                container[draw(_JSON_STRINGS)] = draw(_JSON_VALUES)
            elif op == "delete":
                del container[draw(st.sampled_from(keys))]
            else:
                container[draw(st.sampled_from(keys))] = draw(_JSON_VALUES)
        elif op == "add" or not container:
            container.insert(draw(st.integers(0, len(container))), draw(_JSON_VALUES))
        elif op == "delete":
            del container[draw(st.integers(0, len(container) - 1))]
        else:
            container[draw(st.integers(0, len(container) - 1))] = draw(_JSON_VALUES)
    return json.dumps(doc)


@SOME
@given(text=genesis_doc_mutations())
def test_structurally_mutated_genesis_raises_only_config_error(text: str) -> None:
    _parses_or_config_error(text)


# -- genesis loader regressions (bugs found by these tests, now fixed) --


def _fixed_genesis() -> Genesis:
    return make_single_validator_genesis(GENESIS_KEYS[0], genesis_time_ms=1_700_000_000_000)


def _genesis_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_fixed_genesis().to_json())
    return doc


def test_genesis_huge_integer_literal_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Genesis.from_json('{"format": ' + "1" * 5000 + "}")


def test_genesis_deep_nesting_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Genesis.from_json("[" * 100_000 + "]" * 100_000)


def test_genesis_surrogate_chain_id_is_a_config_error() -> None:
    doc = _genesis_doc()
    doc["chain_id"] = "\ud800"
    with pytest.raises(ConfigError):
        Genesis.from_json(json.dumps(doc))


def test_genesis_surrogate_validator_name_is_refused_or_hashable() -> None:
    doc = _genesis_doc()
    doc["validators"][0]["name"] = "\ud800"
    _parses_or_config_error(json.dumps(doc))


def test_genesis_out_of_range_time_is_a_config_error() -> None:
    text = replace(_fixed_genesis(), genesis_time_ms=2**63).to_json()
    try:
        loaded = Genesis.from_json(text)
    except ConfigError:
        return
    Ledger(MemoryStore(), loaded).initialize()  # InvalidUpdate: header time out of range


def test_genesis_lifetime_cannot_make_unreadable_states() -> None:
    """A lifetime past 2**63 - now gives expires_at values `DomainState.from_bytes` refuses."""
    doc = _genesis_doc()
    doc["names"]["lifetime_s"] = 2**63
    try:
        genesis = Genesis.from_json(json.dumps(doc))
    except ConfigError:
        return
    validator = GENESIS_SIGNERS[0]
    store = MemoryStore()
    ledger = Ledger(store, genesis)
    ledger.initialize()
    now_s = genesis.genesis_time_ms // 1000 + 1
    tx = register_tx(genesis, validator, "alice.p2p", valid_until=now_s + 60)
    block, _ = ledger.build_block([tx], time_ms=now_s * 1000, proposer=validator.public_key)
    ledger.apply_block(block, certify(ledger, block.hash, block.height, [validator]))
    reopened = Ledger(store, genesis)
    reopened.initialize()
    reopened.get_domain("alice.p2p")  # InvalidUpdate: state.expires_at out of range
