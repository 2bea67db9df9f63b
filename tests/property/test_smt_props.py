"""The state tree against a dict model, and its proof decoder against garbage."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chain import keys
from chain.crypto import sha256
from chain.errors import InvalidUpdate
from chain.smt import EMPTY, Proof, SparseMerkleTree, root_of, verify_proof
from chain.store import MemoryStore, WriteBatch

# Keys that share long prefixes (down to the last bit) as well as random ones,
# so deep chains, collapses and root-level leaves all happen.
_POOL = [
    bytes(32),
    bytes(31) + b"\x01",
    bytes(31) + b"\x02",
    bytes(16) + b"\x80" + bytes(15),
    b"\x80" + bytes(31),
    b"\xff" * 32,
    b"\xff" * 31 + b"\xfe",
    *(sha256(bytes([i])) for i in range(10)),
]

tree_keys = st.one_of(st.sampled_from(_POOL), st.binary(min_size=32, max_size=32))
value_hashes = st.binary(min_size=32, max_size=32)
changes = st.dictionaries(tree_keys, st.one_of(st.none(), value_hashes), max_size=12)
# Each block is one or two `update` calls into the same WriteBatch.
blocks = st.lists(st.lists(changes, min_size=1, max_size=2), min_size=1, max_size=6)


def _nodes(store: MemoryStore) -> list[tuple[bytes, bytes]]:
    return list(store.iterate(keys.TREE_NODE))


def _fresh_nodes(model: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    store = MemoryStore()
    batch = WriteBatch()
    SparseMerkleTree(store).update(batch, model)
    store.write(batch)
    return _nodes(store)


@settings(max_examples=60, deadline=None)
@given(blocks=blocks, probes=st.lists(tree_keys, max_size=4))
def test_tree_matches_the_model(
    blocks: list[list[dict[bytes, bytes | None]]], probes: list[bytes]
) -> None:
    store = MemoryStore()
    tree = SparseMerkleTree(store)
    model: dict[bytes, bytes] = {}
    for block in blocks:
        batch = WriteBatch()
        for part in block:
            root = tree.update(batch, part)
            for key, value in part.items():
                if value is None:
                    model.pop(key, None)
                else:
                    model[key] = value
            assert root == tree.root(batch) == root_of(model)
        store.write(batch)
        assert tree.root() == root_of(model)
        # Path-addressed storage holds exactly the current tree: no garbage.
        assert _nodes(store) == _fresh_nodes(model)

    root = tree.root()
    for key, value in model.items():
        assert tree.get(key) == value
        proof = Proof.from_bytes(tree.prove(key).to_bytes())
        assert verify_proof(root, key, value, proof)
        assert not verify_proof(root, key, None, proof)
        assert not verify_proof(root, key, sha256(value), proof)
    for key in [*probes, *_POOL]:
        if key in model:
            continue
        assert tree.get(key) is None
        proof = Proof.from_bytes(tree.prove(key).to_bytes())
        assert verify_proof(root, key, None, proof)
        assert not verify_proof(root, key, sha256(key), proof)


proofs = st.builds(
    lambda siblings, leaf: Proof(
        siblings=tuple(siblings), found_key=leaf[0], found_value_hash=leaf[1]
    ),
    st.lists(st.one_of(st.just(EMPTY), value_hashes), max_size=40),
    st.one_of(st.just((b"", b"")), st.tuples(value_hashes, value_hashes)),
)


@settings(max_examples=100, deadline=None)
@given(proof=proofs)
def test_proof_round_trips(proof: Proof) -> None:
    assert Proof.from_bytes(proof.to_bytes()) == proof


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_only_invalid_update(data: bytes) -> None:
    try:
        Proof.from_bytes(data)
    except InvalidUpdate:
        pass


@settings(max_examples=200, deadline=None)
@given(proof=proofs, position=st.integers(min_value=0), byte=st.integers(0, 255))
def test_mutated_proofs_raise_only_invalid_update(proof: Proof, position: int, byte: int) -> None:
    wire = bytearray(proof.to_bytes())
    wire[position % len(wire)] = byte
    try:
        decoded = Proof.from_bytes(bytes(wire))
    except InvalidUpdate:
        return
    assert decoded.to_bytes() == bytes(wire)  # anything accepted is canonical
