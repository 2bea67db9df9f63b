"""The authenticated state map: a compressed sparse Merkle tree over 256-bit keys.

Definition (the protocol's; `root_of` is the executable form):

- Keys are 32 bytes (the ledger uses sha256(domain name)); values are 32-byte
  value hashes. Bit i of a key is bit (7 - i % 8) of byte i // 8 (MSB first);
  bit 0 chooses the root's child (0 = left).
- EMPTY = 32 zero bytes is the hash of an empty subtree; the root of an empty
  tree is EMPTY.
- leaf hash = sha256(b"\\x00" + key + value_hash);
  internal hash = sha256(b"\\x01" + left + right).
- A subtree holding exactly one leaf is represented by that leaf, placed at the
  subtree's top (so a leaf sits at the shallowest depth where its key prefix is
  unique; an internal node always has >= 2 leaves below it).

Storage: a node lives at ``make_tree_node_key(depth, path)``, `path` being the
first `depth` bits of every key below it, so an update overwrites nodes in
place and deletes the ones that disappear: the store holds exactly the current
tree. Empty subtrees are not stored. A node's value is the framed object
``[Kind.TREE_NODE, VERSION, tag, a, b]`` where

- a leaf has ``tag = 0``, ``a = key``, ``b = value_hash``;
- an internal node has ``tag = 1``, ``a = left hash``, ``b = right hash``

(always 72 bytes), so a node's hash is ``sha256(bytes([tag]) + a + b)``.
Every node read below the root is checked against the hash its parent holds.

Proofs are described in `chain.smt_proof`; this module re-exports them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import NamedTuple

from chain.crypto import sha256
from chain.encoding import Kind, Reader, frame
from chain.errors import InvalidUpdate, StorageError
from chain.keys import make_tree_node_key
from chain.smt_proof import (
    EMPTY,
    KEY_SIZE,
    Proof,
    key_bit,
    leaf_hash,
    verify_proof,
)
from chain.store import KVStore, WriteBatch

__all__ = [
    "EMPTY",
    "KEY_SIZE",
    "Proof",
    "SparseMerkleTree",
    "leaf_hash",
    "root_of",
    "verify_proof",
]

_LEAF = 0
_INNER = 1
_NODE_SIZE = 72
_ROOT_KEY = make_tree_node_key(0, b"")


class _Node(NamedTuple):
    """A stored node: ``(0, key, value_hash)`` or ``(1, left, right)``."""

    tag: int
    a: bytes
    b: bytes


def _hash(node: _Node | None) -> bytes:
    if node is None:
        return EMPTY
    return sha256(b"\x01" + node.a + node.b if node.tag else b"\x00" + node.a + node.b)


# A node's canonical encoding has one fixed layout: array(5), kind, version, tag,
# then two 32-byte byte strings. Building and checking it by hand is ~5x faster
# than the generic codec and accepts exactly the same bytes (a test checks
# both directions); anything else falls through to the strict `Reader`.
_HEADS = tuple(frame(Kind.TREE_NODE, tag, b"", b"")[:4] for tag in (_LEAF, _INNER))
_BYTES32 = b"\x58\x20"


def _encode(node: _Node) -> bytes:
    return _HEADS[node.tag] + _BYTES32 + node.a + _BYTES32 + node.b


def _decode(data: bytes) -> _Node:
    if (
        len(data) == _NODE_SIZE
        and data[:4] in _HEADS
        and data[4:6] == _BYTES32
        and data[38:40] == _BYTES32
    ):
        return _Node(data[3], data[6:38], data[40:])
    return _decode_slow(data)


def _decode_slow(data: bytes) -> _Node:
    reader = Reader.open(data, Kind.TREE_NODE, "tree node", fields=3, max_size=_NODE_SIZE)
    tag = reader.uint("tag", maximum=_INNER)
    a = reader.bytes("a", size=KEY_SIZE)
    b = reader.bytes("b", size=KEY_SIZE)
    reader.done()
    return _Node(tag, a, b)


def _child_path(path: bytes, depth: int, bit: int) -> bytes:
    """The path of the child on side `bit` of the node at `depth` with `path`."""
    shift = depth & 7
    if shift == 0:
        return path + (b"\x80" if bit else b"\x00")
    if not bit:
        return path
    return path[:-1] + bytes([path[-1] | (0x80 >> shift)])


def _check_key(key: bytes) -> None:
    if type(key) is not bytes or len(key) != KEY_SIZE:
        raise ValueError("a tree key is 32 bytes")


def _check_value(value: bytes | None) -> None:
    if value is not None and (type(value) is not bytes or len(value) != KEY_SIZE):
        raise ValueError("a value hash is 32 bytes")


def root_of(items: Mapping[bytes, bytes]) -> bytes:
    """The root of the tree holding `items`, computed from scratch (the reference).

    Args:
        items: key -> value hash, both 32 bytes.

    Returns:
        The 32-byte root hash.

    Raises:
        ValueError: a key or value is not 32 bytes.
    """
    for key, value in items.items():
        _check_key(key)
        if value is None:
            raise ValueError("a value hash is 32 bytes")
        _check_value(value)
    return _subtree_root(sorted(items.items()), 0)


def _subtree_root(items: list[tuple[bytes, bytes]], depth: int) -> bytes:
    if not items:
        return EMPTY
    if len(items) == 1:
        return leaf_hash(items[0][0], items[0][1])
    left = [item for item in items if not key_bit(item[0], depth)]
    right = [item for item in items if key_bit(item[0], depth)]
    return sha256(b"\x01" + _subtree_root(left, depth + 1) + _subtree_root(right, depth + 1))


class SparseMerkleTree:
    """The state map, kept in a `KVStore` and changed through `WriteBatch`es.

    Every read first looks at the batch it is given (if any), so several
    updates into one uncommitted batch compose.
    """

    __slots__ = ("_store",)

    def __init__(self, store: KVStore) -> None:
        self._store = store

    # -- public API --

    def root(self, batch: WriteBatch | None = None) -> bytes:
        """The current root hash (EMPTY for an empty tree)."""
        return _hash(self._read(batch, _ROOT_KEY))

    def get(self, key: bytes, batch: WriteBatch | None = None) -> bytes | None:
        """The value hash stored under `key`, or None.

        Raises:
            ValueError: `key` is not 32 bytes.
            StorageError: the stored tree is inconsistent.
        """
        _check_key(key)
        node, _, _ = self._descend(batch, key)
        if node is not None and node.a == key:
            return node.b
        return None

    def prove(self, key: bytes, batch: WriteBatch | None = None) -> Proof:
        """A proof of `key`'s value hash, or of its absence, against `root()`.

        Raises:
            ValueError: `key` is not 32 bytes.
            StorageError: the stored tree is inconsistent.
        """
        _check_key(key)
        node, _, siblings = self._descend(batch, key)
        if node is None:
            return Proof(siblings=tuple(siblings))
        return Proof(siblings=tuple(siblings), found_key=node.a, found_value_hash=node.b)

    def update(self, batch: WriteBatch, changes: Mapping[bytes, bytes | None]) -> bytes:
        """Apply key -> value hash changes (None deletes) in one pass; return the new root.

        Node writes go into `batch`; nothing is written to the store. Deleting a
        missing key is a no-op.

        Raises:
            ValueError: a key or value hash is not 32 bytes.
            StorageError: the stored tree is inconsistent.
        """
        for key, value in changes.items():
            _check_key(key)
            _check_value(value)
        old = self._read(batch, _ROOT_KEY)
        if not changes:
            return _hash(old)
        ordered = sorted(changes.items())
        run = _Update(self, batch, [key for key, _ in ordered], [value for _, value in ordered])
        new, new_hash = run.apply(0, b"", old, 0, len(ordered))
        if new_hash != _hash(old):
            run.write(_ROOT_KEY, new)
        return new_hash

    # -- reads --

    def _read(self, batch: WriteBatch | None, storage_key: bytes) -> _Node | None:
        if batch is not None:
            found, data = batch.pending(storage_key)
            if not found:
                data = self._store.get(storage_key)
        else:
            data = self._store.get(storage_key)
        if data is None:
            return None
        try:
            return _decode(data)
        except InvalidUpdate as exc:
            raise StorageError(f"corrupt tree node {storage_key.hex()}: {exc}") from exc

    def _load(self, batch: WriteBatch | None, depth: int, path: bytes, expected: bytes) -> _Node:
        """The node at (`depth`, `path`), which its parent says hashes to `expected`."""
        storage_key = make_tree_node_key(depth, path)
        node = self._read(batch, storage_key)
        if node is None or _hash(node) != expected:
            raise StorageError(f"tree node {storage_key.hex()} is missing or does not match")
        return node

    def _descend(
        self, batch: WriteBatch | None, key: bytes
    ) -> tuple[_Node | None, int, list[bytes]]:
        """Walk `key`'s path to where it ends: (leaf or None, depth, sibling hashes)."""
        node = self._read(batch, _ROOT_KEY)
        depth = 0
        path = b""
        siblings: list[bytes] = []
        while node is not None and node.tag == _INNER:
            bit = key_bit(key, depth)
            child, sibling = (node.b, node.a) if bit else (node.a, node.b)
            siblings.append(sibling)
            path = _child_path(path, depth, bit)
            depth += 1
            node = None if child == EMPTY else self._load(batch, depth, path, child)
        return node, depth, siblings


class _Update:
    """One `update` call: the sorted changes and the batch their writes go into.

    `apply` recurses down the tree once for all the changes, splitting the
    sorted keys at each level, so a node shared by many changed keys is read
    and hashed once.
    """

    __slots__ = ("_batch", "_keys", "_tree", "_values")

    def __init__(
        self,
        tree: SparseMerkleTree,
        batch: WriteBatch,
        keys: list[bytes],
        values: list[bytes | None],
    ) -> None:
        self._tree = tree
        self._batch = batch
        self._keys = keys
        self._values = values

    def write(self, storage_key: bytes, node: _Node | None) -> None:
        """Put `node` at `storage_key`, or delete the key for None."""
        if node is None:
            self._batch.delete(storage_key)
        else:
            self._batch.put(storage_key, _encode(node))

    def apply(
        self, depth: int, path: bytes, node: _Node | None, lo: int, hi: int
    ) -> tuple[_Node | None, bytes]:
        """Apply changes ``lo:hi`` to the subtree at (`depth`, `path`) whose top is `node`.

        Writes every changed position strictly below (`depth`, `path`) and
        returns the new top node and its hash; the caller writes the top
        position itself, because a lone leaf may still move further up.
        """
        if node is None or node.tag == _LEAF:
            items = _merge(node, self._keys, self._values, lo, hi)
            return self._build(depth, path, items, 0, len(items))
        paths = (_child_path(path, depth, 0), _child_path(path, depth, 1))
        mid = bisect_left(self._keys, paths[1].ljust(KEY_SIZE, b"\x00"), lo, hi)
        old = (node.a, node.b)
        news: list[_Node | None] = [None, None]
        hashes = [node.a, node.b]
        for side, s_lo, s_hi in ((0, lo, mid), (1, mid, hi)):
            if s_lo < s_hi:
                child = None
                if old[side] != EMPTY:
                    child = self._tree._load(self._batch, depth + 1, paths[side], old[side])
                news[side], hashes[side] = self.apply(depth + 1, paths[side], child, s_lo, s_hi)
        top = self._join(depth, paths, news, hashes, (lo < mid, mid < hi))
        keep = top is not None and top.tag == _INNER
        for side in (0, 1):
            if keep and hashes[side] != old[side]:
                self.write(make_tree_node_key(depth + 1, paths[side]), news[side])
            elif not keep and old[side] != EMPTY:
                self._batch.delete(make_tree_node_key(depth + 1, paths[side]))
        return top, _hash(top)

    def _join(
        self,
        depth: int,
        paths: tuple[bytes, bytes],
        news: list[_Node | None],
        hashes: list[bytes],
        touched: tuple[bool, bool],
    ) -> _Node | None:
        """The node above two new children: internal, a lone leaf moved up, or None."""
        if hashes[0] != EMPTY and hashes[1] != EMPTY:
            return _Node(_INNER, hashes[0], hashes[1])
        side = 1 if hashes[0] == EMPTY else 0
        if hashes[side] == EMPTY:
            return None
        only = news[side]
        if not touched[side]:
            only = self._tree._load(self._batch, depth + 1, paths[side], hashes[side])
        assert only is not None  # its hash is not EMPTY
        if only.tag == _LEAF:
            return only
        return _Node(_INNER, hashes[0], hashes[1])

    def _build(
        self, depth: int, path: bytes, items: list[tuple[bytes, bytes]], lo: int, hi: int
    ) -> tuple[_Node | None, bytes]:
        """Build a fresh subtree of ``items[lo:hi]``; no node existed below its top."""
        if lo == hi:
            return None, EMPTY
        if hi - lo == 1:
            leaf = _Node(_LEAF, items[lo][0], items[lo][1])
            return leaf, _hash(leaf)
        paths = (_child_path(path, depth, 0), _child_path(path, depth, 1))
        mid = bisect_left(items, (paths[1].ljust(KEY_SIZE, b"\x00"),), lo, hi)
        hashes = []
        for side, s_lo, s_hi in ((0, lo, mid), (1, mid, hi)):
            child, child_hash = self._build(depth + 1, paths[side], items, s_lo, s_hi)
            if child is not None:
                self._batch.put(make_tree_node_key(depth + 1, paths[side]), _encode(child))
            hashes.append(child_hash)
        top = _Node(_INNER, hashes[0], hashes[1])
        return top, _hash(top)


def _merge(
    node: _Node | None, keys: list[bytes], values: list[bytes | None], lo: int, hi: int
) -> list[tuple[bytes, bytes]]:
    """The live items of a subtree that is a lone leaf (or empty) after the changes."""
    items = [(keys[i], value) for i in range(lo, hi) if (value := values[i]) is not None]
    if node is not None:
        position = bisect_left(keys, node.a, lo, hi)
        if position == hi or keys[position] != node.a:
            items.insert(bisect_left(items, (node.a,)), (node.a, node.b))
    return items
