"""The state tree: shapes, storage, proofs and strict proof decoding."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from chain import keys
from chain.crypto import sha256
from chain.encoding import VERSION, Kind, encode, frame
from chain.errors import InvalidUpdate, StorageError
from chain.smt import EMPTY, Proof, SparseMerkleTree, leaf_hash, root_of, verify_proof
from chain.smt_proof import MAX_PROOF_SIZE, key_bit
from chain.store import MemoryStore, WriteBatch

K0 = bytes(32)
K_RIGHT = b"\x80" + bytes(31)  # differs from K0 at bit 0
K_LAST = bytes(31) + b"\x01"  # differs from K0 at bit 255 only
V1 = sha256(b"one")
V2 = sha256(b"two")
V3 = sha256(b"three")


def _inner(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def _tree(
    items: Mapping[bytes, bytes | None] | None = None,
) -> tuple[MemoryStore, SparseMerkleTree]:
    store = MemoryStore()
    tree = SparseMerkleTree(store)
    if items:
        _commit(store, tree, items)
    return store, tree


def _commit(
    store: MemoryStore, tree: SparseMerkleTree, changes: Mapping[bytes, bytes | None]
) -> bytes:
    batch = WriteBatch()
    root = tree.update(batch, changes)
    store.write(batch)
    return root


def _nodes(store: MemoryStore) -> dict[bytes, bytes]:
    return dict(store.iterate(keys.TREE_NODE))


def _node_key(depth: int, path: bytes) -> bytes:
    return keys.make_tree_node_key(depth, path)


# -- shapes and roots --


def test_key_bits_are_msb_first() -> None:
    assert [key_bit(b"\x80\x01" + bytes(30), i) for i in (0, 1, 7, 8, 15)] == [1, 0, 0, 0, 1]


def test_empty_tree() -> None:
    store, tree = _tree()
    assert tree.root() == EMPTY == root_of({})
    assert tree.get(K0) is None
    proof = tree.prove(K0)
    assert proof == Proof(siblings=())
    assert verify_proof(EMPTY, K0, None, proof)
    assert not verify_proof(EMPTY, K0, V1, proof)
    assert _nodes(store) == {}


def test_one_key_is_a_leaf_at_the_root() -> None:
    store, tree = _tree({K0: V1})
    assert tree.root() == leaf_hash(K0, V1) == sha256(b"\x00" + K0 + V1) == root_of({K0: V1})
    assert list(_nodes(store)) == [_node_key(0, b"")]
    assert tree.get(K0) == V1
    assert tree.get(K_RIGHT) is None


def test_two_keys_differing_at_bit_0() -> None:
    store, tree = _tree({K0: V1, K_RIGHT: V2})
    expected = _inner(leaf_hash(K0, V1), leaf_hash(K_RIGHT, V2))
    assert tree.root() == expected == root_of({K0: V1, K_RIGHT: V2})
    assert sorted(_nodes(store)) == sorted(
        [_node_key(0, b""), _node_key(1, b"\x00"), _node_key(1, b"\x80")]
    )
    assert _nodes(store)[_node_key(1, b"\x80")] == frame(Kind.TREE_NODE, 0, K_RIGHT, V2)
    assert _nodes(store)[_node_key(0, b"")] == frame(
        Kind.TREE_NODE, 1, leaf_hash(K0, V1), leaf_hash(K_RIGHT, V2)
    )


def test_two_keys_differing_at_bit_255() -> None:
    store, tree = _tree({K0: V1, K_LAST: V2})
    node = _inner(leaf_hash(K0, V1), leaf_hash(K_LAST, V2))
    for _ in range(255):
        node = _inner(node, EMPTY)
    assert tree.root() == node == root_of({K0: V1, K_LAST: V2})
    assert len(_nodes(store)) == 256 + 2  # internal nodes at depths 0..255, two leaves
    proof = tree.prove(K_LAST)
    assert proof.depth == 256
    assert proof.siblings[:255] == (EMPTY,) * 255
    assert verify_proof(node, K_LAST, V2, Proof.from_bytes(proof.to_bytes()))
    assert len(proof.to_bytes()) < 200  # EMPTY siblings cost one bit each


def test_insert_update_delete_back_to_empty() -> None:
    store, tree = _tree()
    model: dict[bytes, bytes] = {}
    steps: list[dict[bytes, bytes | None]] = [
        {K0: V1},
        {K_RIGHT: V2, K_LAST: V3},
        {K0: V2},
        {K_LAST: None},
        {K_RIGHT: None, K_LAST: V1},
        {K0: None},
        {K_LAST: None},
    ]
    for changes in steps:
        root = _commit(store, tree, changes)
        for key, value in changes.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        assert root == tree.root() == root_of(model)
        assert _nodes(store) == _nodes(_tree(dict(model))[0])  # no garbage left behind
    assert tree.root() == EMPTY
    assert _nodes(store) == {}


def test_deleting_a_missing_key_or_rewriting_a_value_writes_nothing() -> None:
    _, tree = _tree({K0: V1, K_RIGHT: V2})
    root = tree.root()
    batch = WriteBatch()
    assert tree.update(batch, {K_LAST: None, K0: V1, b"\x40" + bytes(31): None}) == root
    assert tree.update(batch, {}) == root
    assert len(batch) == 0


def test_lone_leaf_moves_up_when_its_neighbours_go() -> None:
    deep = {K0: V1, K_LAST: V2, b"\x00\x80" + bytes(30): V3, K_RIGHT: V1}
    store, tree = _tree(deep)
    _commit(store, tree, {K_LAST: None, b"\x00\x80" + bytes(30): None})
    assert _nodes(store) == _nodes(_tree({K0: V1, K_RIGHT: V1})[0])
    assert tree.prove(K0).depth == 1


def test_two_updates_into_one_batch_compose() -> None:
    store, tree = _tree({K0: V1})
    batch = WriteBatch()
    tree.update(batch, {K_RIGHT: V2, K_LAST: V3})
    assert tree.get(K_LAST, batch) == V3
    assert tree.get(K_LAST) is None  # nothing reaches the store before write
    root = tree.update(batch, {K_LAST: None, K0: V3})
    assert root == tree.root(batch) == root_of({K0: V3, K_RIGHT: V2})
    store.write(batch)
    assert tree.root() == root
    assert _nodes(store) == _nodes(_tree({K0: V3, K_RIGHT: V2})[0])


@pytest.mark.parametrize(
    "changes",
    [{b"short": V1}, {K0: b"short"}, {"k" * 32: V1}, {K0: "v" * 32}],
)
def test_update_refuses_wrong_sizes(changes: dict[bytes, bytes | None]) -> None:
    _, tree = _tree()
    with pytest.raises(ValueError):
        tree.update(WriteBatch(), changes)


def test_corrupt_storage_is_a_storage_error() -> None:
    _, tree = _tree({K0: V1, K_RIGHT: V2})
    batch = WriteBatch()
    batch.put(_node_key(1, b"\x80"), frame(Kind.TREE_NODE, 0, K_RIGHT, V3))  # wrong hash
    with pytest.raises(StorageError):
        tree.get(K_RIGHT, batch)
    batch.put(_node_key(0, b""), b"\x85garbage")
    with pytest.raises(StorageError):
        tree.root(batch)


# -- node encoding --


@pytest.mark.parametrize("tag", [0, 1])
def test_node_fast_codec_matches_the_generic_one(tag: int) -> None:
    from chain.smt_proof import Node as _Node
    from chain.smt_proof import decode_node as _decode
    from chain.smt_proof import decode_node_slow as _decode_slow
    from chain.smt_proof import encode_node as _encode

    node = _Node(tag, V1, V2)
    data = _encode(node)
    assert data == frame(Kind.TREE_NODE, tag, V1, V2)
    assert len(data) == 72
    assert _decode(data) == _decode_slow(data) == node
    with pytest.raises(InvalidUpdate):
        _decode(frame(Kind.TREE_NODE, 2, V1, V2))
    with pytest.raises(InvalidUpdate):
        _decode(data[:-1] + b"")


# -- proofs --


def _proof_cases() -> list[tuple[str, dict[bytes, bytes | None], bytes, bytes | None]]:
    mid = b"\x40" + bytes(31)
    items: dict[bytes, bytes | None] = {K0: V1, K_RIGHT: V2, K_LAST: V3}
    return [
        ("inclusion", items, K_RIGHT, V2),
        ("inclusion-deep", items, K_LAST, V3),
        ("exclusion-empty", {K0: V1, K_LAST: V2, K_RIGHT: V3}, mid, None),
        ("exclusion-other-leaf", {K0: V1, K_RIGHT: V2}, mid, None),
        ("exclusion-root-leaf", {K0: V1}, K_RIGHT, None),
        ("exclusion-empty-tree", {}, K0, None),
    ]


@pytest.mark.parametrize(
    ("items", "key", "value"),
    [case[1:] for case in _proof_cases()],
    ids=[c[0] for c in _proof_cases()],
)
def test_proof_verifies_and_any_change_breaks_it(
    items: dict[bytes, bytes | None], key: bytes, value: bytes | None
) -> None:
    _, tree = _tree(items)
    root = tree.root()
    proof = tree.prove(key)
    if value is None and proof.found_key:
        assert proof.found_key != key
    wire = proof.to_bytes()
    assert Proof.from_bytes(wire) == proof
    assert verify_proof(root, key, value, proof)
    # The wrong claim, value or root fails.
    assert not verify_proof(root, key, V1 if value is None else None, proof)
    assert not verify_proof(root, key, sha256(b"other"), proof)
    assert not verify_proof(sha256(root), key, value, proof)
    if value is not None:
        assert not verify_proof(root, sha256(key), value, proof)
    # Flipping any bit of any byte either fails to decode or fails to verify.
    for index in range(len(wire)):
        for flip in (0x01, 0x80):
            tampered = wire[:index] + bytes([wire[index] ^ flip]) + wire[index + 1 :]
            try:
                decoded = Proof.from_bytes(tampered)
            except InvalidUpdate:
                continue
            assert not verify_proof(root, key, value, decoded), (index, flip)


def test_exclusion_by_a_leaf_off_the_path_is_refused() -> None:
    _, tree = _tree({K0: V1, K_RIGHT: V2})
    proof = tree.prove(K0)
    forged = Proof(siblings=proof.siblings, found_key=K_RIGHT, found_value_hash=V2)
    assert not verify_proof(tree.root(), K0, None, forged)


def test_verify_refuses_wrong_sizes() -> None:
    _, tree = _tree({K0: V1})
    proof = tree.prove(K0)
    assert not verify_proof(tree.root()[:31], K0, V1, proof)
    assert not verify_proof(tree.root(), K0[:31], V1, proof)


def test_largest_proof_fits_the_limit() -> None:
    proof = Proof(siblings=(V1,) * 256, found_key=K0, found_value_hash=V2)
    wire = proof.to_bytes()
    assert len(wire) == MAX_PROOF_SIZE
    assert Proof.from_bytes(wire) == proof


def _proof_fields(
    depth: object = 2,
    bitmap: object = b"\x40",
    hashes: object = None,
    found_key: object = b"",
    found_value: object = b"",
) -> list[object]:
    return [depth, bitmap, [V1] if hashes is None else hashes, found_key, found_value]


def _framed(*fields: object) -> bytes:
    return encode([int(Kind.PROOF), VERSION, *fields])  # type: ignore[list-item]


BAD_PROOFS: dict[str, bytes] = {
    "empty": b"",
    "not-cbor": b"\xff\xff",
    "not-array": encode(b"proof"),
    "wrong-kind": encode([int(Kind.TREE_NODE), VERSION, *_proof_fields()]),  # type: ignore[list-item]
    "wrong-version": encode([int(Kind.PROOF), 99, *_proof_fields()]),  # type: ignore[list-item]
    "too-few-fields": _framed(*_proof_fields()[:4]),
    "too-many-fields": _framed(*_proof_fields(), b""),
    "depth-257": _framed(*_proof_fields(depth=257, bitmap=bytes(33), hashes=[])),
    "depth-negative": _framed(*_proof_fields(depth=-1)),
    "depth-text": _framed(*_proof_fields(depth="2")),
    "bitmap-too-long": _framed(*_proof_fields(bitmap=b"\x40\x00")),
    "bitmap-too-short": _framed(*_proof_fields(depth=9, bitmap=b"\x40")),
    "bitmap-past-depth": _framed(*_proof_fields(bitmap=b"\x60", hashes=[V1, V2])),
    "fewer-hashes": _framed(*_proof_fields(bitmap=b"\xc0")),
    "more-hashes": _framed(*_proof_fields(hashes=[V1, V2])),
    "empty-hash-listed": _framed(*_proof_fields(hashes=[EMPTY])),
    "short-hash": _framed(*_proof_fields(hashes=[V1[:31]])),
    "hash-not-bytes": _framed(*_proof_fields(hashes=[1])),
    "hashes-not-array": _framed(*_proof_fields(hashes=V1)),
    "found-key-only": _framed(*_proof_fields(found_key=K0)),
    "found-value-only": _framed(*_proof_fields(found_value=V1)),
    "found-key-short": _framed(*_proof_fields(found_key=K0[:31], found_value=V1)),
    "found-key-long": _framed(*_proof_fields(found_key=K0 + b"\x00", found_value=V1)),
    "trailing-byte": _framed(*_proof_fields()) + b"\x00",
    "non-canonical-int": _framed(*_proof_fields()).replace(
        b"\x87\x08\x01\x02", b"\x87\x08\x01\x18\x02"
    ),
    "oversize": _framed(*_proof_fields(hashes=[V1] * 300)),
}


@pytest.mark.parametrize("data", BAD_PROOFS.values(), ids=BAD_PROOFS.keys())
def test_decode_rejects_garbage(data: bytes) -> None:
    with pytest.raises(InvalidUpdate):
        Proof.from_bytes(data)


def test_decode_accepts_the_reference_shape() -> None:
    proof = Proof.from_bytes(_framed(*_proof_fields()))
    assert proof.siblings == (EMPTY, V1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"siblings": (V1[:31],)},
        {"siblings": [V1]},
        {"siblings": (EMPTY,) * 257},
        {"siblings": (), "found_key": K0},
        {"siblings": (), "found_key": "k" * 32, "found_value_hash": V1},
    ],
)
def test_proof_validates_itself(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidUpdate):
        Proof(**kwargs)  # type: ignore[arg-type]


# -- node cache --


def _keys(n: int) -> list[bytes]:
    return [sha256(b"key" + i.to_bytes(4, "big")) for i in range(n)]


def _commit_cached(
    store: MemoryStore, tree: SparseMerkleTree, changes: Mapping[bytes, bytes | None]
) -> bytes:
    batch = WriteBatch()
    root = tree.update(batch, changes)
    store.write(batch)
    tree.committed(batch)
    return root


def _assert_cache_matches_store(tree: SparseMerkleTree, store: MemoryStore) -> None:
    cache: dict[bytes, bytes] = tree._cache
    for storage_key, entry in cache.items():
        assert store.get(storage_key) == entry[32:]
        assert sha256(entry[35:36] + entry[38:70] + entry[72:]) == entry[:32]


@pytest.mark.parametrize("levels", [1, 5, 24])
def test_cached_tree_agrees_with_a_cold_one_over_many_commits(levels: int) -> None:
    import random

    store = MemoryStore()
    tree = SparseMerkleTree(store, cache_levels=levels)
    rng = random.Random(levels)
    keys_ = _keys(300)
    model: dict[bytes, bytes] = {}
    for step in range(40):
        changes: dict[bytes, bytes | None] = {
            key: None if rng.random() < 0.3 else sha256(bytes([step]) + key)
            for key in rng.sample(keys_, rng.randint(1, 40))
        }
        root = _commit_cached(store, tree, changes)
        for key, value in changes.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        cold = SparseMerkleTree(store)
        assert root == tree.root() == cold.root() == root_of(model)
        for key in rng.sample(keys_, 8):
            assert tree.get(key) == cold.get(key) == model.get(key)
            assert tree.prove(key) == cold.prove(key)
        _assert_cache_matches_store(tree, store)
    assert 0 < len(tree._cache) < 2**levels


def test_a_discarded_batch_never_reaches_the_cache() -> None:
    store = MemoryStore()
    tree = SparseMerkleTree(store, cache_levels=24)
    keys_ = _keys(64)
    _commit_cached(store, tree, dict.fromkeys(keys_, V1))
    before = dict(tree._cache)
    proposal = WriteBatch()  # built, read through, then thrown away
    tree.update(proposal, {**dict.fromkeys(keys_[:20], V2), K_LAST: V3, keys_[30]: None})
    assert tree.get(keys_[0], proposal) == V2
    assert tree.get(K_LAST, proposal) == V3
    assert tree._cache == before
    assert tree.get(keys_[0]) == V1
    model = {**dict.fromkeys(keys_, V1), keys_[1]: V3}
    assert _commit_cached(store, tree, {keys_[1]: V3}) == root_of(model)
    _assert_cache_matches_store(tree, store)
    assert tree.root() == SparseMerkleTree(store).root() == root_of(model)


def test_a_write_the_cache_is_not_told_about_only_costs_misses() -> None:
    store = MemoryStore()
    tree = SparseMerkleTree(store, cache_levels=24)
    keys_ = _keys(64)
    _commit_cached(store, tree, dict.fromkeys(keys_, V1))
    _commit(store, SparseMerkleTree(store), {keys_[0]: V2, keys_[1]: None})  # untold
    model = {**dict.fromkeys(keys_[2:], V1), keys_[0]: V2}
    assert tree.root() == root_of(model)
    assert tree.get(keys_[0]) == V2
    assert tree.get(keys_[1]) is None
    assert verify_proof(tree.root(), keys_[1], None, tree.prove(keys_[1]))
    assert _commit_cached(store, tree, {keys_[2]: V3}) == root_of({**model, keys_[2]: V3})


def test_cache_levels_are_checked_and_zero_keeps_nothing() -> None:
    for bad in (-1, 25, True, 1.0):
        with pytest.raises(ValueError):
            SparseMerkleTree(MemoryStore(), cache_levels=bad)  # type: ignore[arg-type]
    store = MemoryStore()
    tree = SparseMerkleTree(store)
    _commit_cached(store, tree, dict.fromkeys(_keys(16), V1))
    assert tree._cache == {}


def test_one_change_per_subtree_writes_what_a_fresh_build_holds() -> None:
    # Below the last split a change takes the single-key path (`_Update._one`):
    # updates, inserts next to a leaf (K_LAST splits from K0 only at bit 255)
    # and inserts into an empty side must leave exactly the fresh tree's nodes.
    keys_ = _keys(40)
    model = dict.fromkeys(keys_, V1)
    store, tree = _tree(model)
    for key, value in [(keys_[3], V2), (K0, V1), (K_LAST, V2), (K_RIGHT, V3), (K0, V3)]:
        root = _commit(store, tree, {key: value})
        model[key] = value
        assert root == root_of(model)
        assert _nodes(store) == _nodes(_tree(model)[0])


def test_the_node_cache_holds_at_most_the_top_levels() -> None:
    store = MemoryStore()
    tree = SparseMerkleTree(store, cache_levels=4)
    keys_ = _keys(600)
    for start in range(0, 600, 50):  # a tree far wider than 4 levels
        _commit_cached(store, tree, dict.fromkeys(keys_[start : start + 50], V1))
        for key in keys_[:start:7]:
            assert tree.get(key) == V1  # reads fill the cache too
        assert len(tree._cache) <= 2**4 - 1
        assert tree._staged == {}
    assert len(tree._cache) == 2**4 - 1  # full: every node of the top 4 levels
    assert all(
        int.from_bytes(key[len(keys.TREE_NODE) : len(keys.TREE_NODE) + 2], "big") < 4
        for key in tree._cache
    )
