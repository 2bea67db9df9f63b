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

The node format and hashes, the reference `root_of` and proofs live in
`chain.smt_proof` (everything a verifier needs); this module re-exports the
public ones.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from hashlib import sha256 as _sha256

from chain.errors import InvalidUpdate, StorageError
from chain.keys import make_tree_node_key
from chain.smt_proof import (
    EMPTY,
    INNER,
    KEY_SIZE,
    LEAF,
    Node,
    Proof,
    check_key,
    check_value,
    decode_node,
    encode_node,
    key_bit,
    leaf_hash,
    node_hash,
    root_of,
    verify_proof,
)
from chain.store import KVStore, WriteBatch

__all__ = [
    "EMPTY",
    "KEY_SIZE",
    "MAX_CACHE_LEVELS",
    "Proof",
    "SparseMerkleTree",
    "child_path",
    "leaf_hash",
    "root_of",
    "verify_proof",
]

_ROOT_KEY = make_tree_node_key(0, b"")
# The most levels a node cache may keep (2**24 - 1 nodes, far more than enough).
MAX_CACHE_LEVELS = 24


def _decode_stored(storage_key: bytes, data: bytes) -> Node:
    try:
        return decode_node(data)
    except InvalidUpdate as exc:
        raise StorageError(f"corrupt tree node {storage_key.hex()}: {exc}") from exc


def _mismatch(storage_key: bytes) -> StorageError:
    return StorageError(f"tree node {storage_key.hex()} is missing or does not match")


def child_path(path: bytes, depth: int, bit: int) -> bytes:
    """The path of the child on side `bit` of the node at `depth` with `path`."""
    shift = depth & 7
    if shift == 0:
        return path + (b"\x80" if bit else b"\x00")
    if not bit:
        return path
    return path[:-1] + bytes([path[-1] | (0x80 >> shift)])


class SparseMerkleTree:
    """The state map, kept in a `KVStore` and changed through `WriteBatch`es.

    Every read first looks at the batch it is given (if any), so several
    updates into one uncommitted batch compose.

    ``cache_levels=n`` also keeps nodes of the top `n` levels of the committed
    tree in memory (at most ``2**n - 1``), so updates skip the store read and
    decode of the hot upper levels. The cache holds what the store holds: it is
    filled by store reads and, through `committed`, by what this tree's updates
    wrote once their batch is in the store; a batch thrown away never reaches
    it. A cached node is used only where its parent holds its hash, and the root
    always comes from the batch or the store, so even an entry gone stale (a
    write the tree was not told about) is just a miss. 0 keeps no cache.
    """

    __slots__ = ("_cache", "_levels", "_staged", "_store")

    def __init__(self, store: KVStore, *, cache_levels: int = 0) -> None:
        if type(cache_levels) is not int or not 0 <= cache_levels <= MAX_CACHE_LEVELS:
            raise ValueError(f"cache_levels must be an integer in 0..{MAX_CACHE_LEVELS}")
        self._store = store
        self._levels = cache_levels
        # storage key -> node hash + encoded node, for committed nodes at depth
        # < _levels. Plain bytes, so the garbage collector never walks the cache.
        self._cache: dict[bytes, bytes] = {}
        # storage key -> cache entry, for the nodes `update` last wrote at depth
        # < _levels (in any batch; as bounded as the cache): `committed` keeps
        # those its batch holds.
        self._staged: dict[bytes, bytes] = {}

    # -- public API --

    def root(self, batch: WriteBatch | None = None) -> bytes:
        """The current root hash (EMPTY for an empty tree)."""
        return self._root(batch)[1]

    def get(self, key: bytes, batch: WriteBatch | None = None) -> bytes | None:
        """The value hash stored under `key`, or None.

        Raises:
            ValueError: `key` is not 32 bytes.
            StorageError: the stored tree is inconsistent.
        """
        check_key(key)
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
        check_key(key)
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
            check_key(key)
            check_value(value)
        old, old_hash = self._root(batch)
        if not changes:
            return old_hash
        ordered = sorted(changes.items())
        run = _Update(self, batch, [key for key, _ in ordered], [value for _, value in ordered])
        new, new_hash = run.apply(0, b"", old, 0, len(ordered))
        if new_hash != old_hash:
            run.write(_ROOT_KEY, 0, new, new_hash)
        return new_hash

    def committed(self, batch: WriteBatch) -> None:
        """Refresh the node cache from `batch`, which the store now holds."""
        cache = self._cache
        for storage_key, entry in self._staged.items():
            found, data = batch.pending(storage_key)
            if not found:
                continue  # written by a batch that was thrown away
            if data is not None and entry.endswith(data):
                cache[storage_key] = entry
            else:  # deleted, or last written by another batch than this one
                cache.pop(storage_key, None)
        self._staged.clear()

    # -- reads --

    def _root(self, batch: WriteBatch | None) -> tuple[Node | None, bytes]:
        """The root node (None for an empty tree) and its hash."""
        found, data = (False, None) if batch is None else batch.pending(_ROOT_KEY)
        if not found:
            data = self._store.get(_ROOT_KEY)
        if data is None:
            return None, EMPTY
        node = _decode_stored(_ROOT_KEY, data)
        return node, node_hash(node)

    def _load(
        self, batch: WriteBatch | None, depth: int, storage_key: bytes, expected: bytes
    ) -> Node:
        """The node at `storage_key` (at `depth`), which its parent says hashes to `expected`."""
        if batch is not None:
            found, data = batch.pending(storage_key)
            if found:
                if data is not None:
                    node = _decode_stored(storage_key, data)
                    if node_hash(node) == expected:
                        return node
                raise _mismatch(storage_key)
        entry = self._cache.get(storage_key)
        # An entry is the node's hash, then its 72-byte encoding (`encode_node`).
        if entry is not None and entry.startswith(expected):
            return Node(entry[35], entry[38:70], entry[72:])
        data = self._store.get(storage_key)
        if data is None:
            raise _mismatch(storage_key)
        node = _decode_stored(storage_key, data)
        if node_hash(node) != expected:
            raise _mismatch(storage_key)
        if depth < self._levels:
            self._cache[storage_key] = expected + encode_node(node)
        return node

    def _descend(
        self, batch: WriteBatch | None, key: bytes
    ) -> tuple[Node | None, int, list[bytes]]:
        """Walk `key`'s path to where it ends: (leaf or None, depth, sibling hashes)."""
        node = self._root(batch)[0]
        depth = 0
        path = b""
        siblings: list[bytes] = []
        while node is not None and node.tag == INNER:
            bit = key_bit(key, depth)
            child, sibling = (node.b, node.a) if bit else (node.a, node.b)
            siblings.append(sibling)
            path = child_path(path, depth, bit)
            depth += 1
            slot = make_tree_node_key(depth, path)
            node = None if child == EMPTY else self._load(batch, depth, slot, child)
        return node, depth, siblings


class _Update:
    """One `update` call: the sorted changes and the batch their writes go into.

    `apply` recurses down the tree once for all the changes, splitting the
    sorted keys at each level, so a node shared by many changed keys is read
    and hashed once; below the last split, `_one` follows a single key's path.
    """

    __slots__ = ("_batch", "_keys", "_levels", "_staged", "_tree", "_values")

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
        self._levels = tree._levels
        self._staged = tree._staged

    def write(self, storage_key: bytes, depth: int, node: Node | None, digest: bytes) -> None:
        """Put `node` (which hashes to `digest`) at `storage_key`, or delete it for None."""
        if node is None:
            self.delete(storage_key, depth)
            return
        data = encode_node(node)
        self._batch.put(storage_key, data)
        if depth < self._levels:
            self._staged[storage_key] = digest + data

    def delete(self, storage_key: bytes, depth: int) -> None:
        """Delete the node at `storage_key`."""
        self._batch.delete(storage_key)
        if depth < self._levels:
            self._staged[storage_key] = b""

    def apply(
        self, depth: int, path: bytes, node: Node | None, lo: int, hi: int
    ) -> tuple[Node | None, bytes]:
        """Apply changes ``lo:hi`` to the subtree at (`depth`, `path`) whose top is `node`.

        Writes every changed position strictly below (`depth`, `path`) and
        returns the new top node and its hash; the caller writes the top
        position itself, because a lone leaf may still move further up.
        """
        if hi - lo == 1 and self._values[lo] is not None:
            return self._one(depth, path, node, lo)
        if node is None or node.tag == LEAF:
            items = _merge(node, self._keys, self._values, lo, hi)
            return self._build(depth, path, items, 0, len(items))
        below = depth + 1
        paths = (child_path(path, depth, 0), child_path(path, depth, 1))
        slots = (make_tree_node_key(below, paths[0]), make_tree_node_key(below, paths[1]))
        mid = bisect_left(self._keys, paths[1].ljust(KEY_SIZE, b"\x00"), lo, hi)
        old = (node.a, node.b)
        news: list[Node | None] = [None, None]
        hashes = [node.a, node.b]
        for side, s_lo, s_hi in ((0, lo, mid), (1, mid, hi)):
            if s_lo < s_hi:
                child = None
                if old[side] != EMPTY:
                    child = self._tree._load(self._batch, below, slots[side], old[side])
                news[side], hashes[side] = self.apply(below, paths[side], child, s_lo, s_hi)
        top = self._join(below, slots, news, hashes, (lo < mid, mid < hi))
        keep = top is not None and top.tag == INNER
        for side in (0, 1):
            if keep and hashes[side] != old[side]:
                self.write(slots[side], below, news[side], hashes[side])
            elif not keep and old[side] != EMPTY:
                self.delete(slots[side], below)
        return top, node_hash(top)

    def _one(self, depth: int, path: bytes, node: Node | None, i: int) -> tuple[Node | None, bytes]:
        """`apply` for one change that sets a value (the common case), as a loop.

        Walks down key `i`'s path, places the leaf, then rebuilds the path upwards
        exactly as `apply` and `_join` would with one touched side.
        """
        key = self._keys[i]
        trail: list[tuple[int, bytes, int, bytes, bytes]] = []
        while node is not None and node.tag == INNER:
            bit = key_bit(key, depth)
            child, sibling = (node.b, node.a) if bit else (node.a, node.b)
            path = child_path(path, depth, bit)
            depth += 1
            slot = make_tree_node_key(depth, path)
            trail.append((depth, slot, bit, sibling, child))
            node = None if child == EMPTY else self._tree._load(self._batch, depth, slot, child)
        items = _merge(node, self._keys, self._values, i, i + 1)
        top, top_hash = self._build(depth, path, items, 0, len(items))
        for below, slot, bit, sibling, child in reversed(trail):
            assert top is not None  # setting a value never empties a subtree
            if sibling == EMPTY and top.tag == LEAF:
                if child != EMPTY:  # a lone leaf moves up (only under a malformed node)
                    self.delete(slot, below)
                continue
            if top_hash != child:
                self.write(slot, below, top, top_hash)
            left, right = (sibling, top_hash) if bit else (top_hash, sibling)
            top = Node(INNER, left, right)
            top_hash = _sha256(b"\x01" + left + right).digest()
        return top, top_hash

    def _join(
        self,
        below: int,
        slots: tuple[bytes, bytes],
        news: list[Node | None],
        hashes: list[bytes],
        touched: tuple[bool, bool],
    ) -> Node | None:
        """The node above two new children: internal, a lone leaf moved up, or None."""
        if hashes[0] != EMPTY and hashes[1] != EMPTY:
            return Node(INNER, hashes[0], hashes[1])
        side = 1 if hashes[0] == EMPTY else 0
        if hashes[side] == EMPTY:
            return None
        only = news[side]
        if not touched[side]:
            only = self._tree._load(self._batch, below, slots[side], hashes[side])
        assert only is not None  # its hash is not EMPTY
        if only.tag == LEAF:
            return only
        return Node(INNER, hashes[0], hashes[1])

    def _build(
        self, depth: int, path: bytes, items: list[tuple[bytes, bytes]], lo: int, hi: int
    ) -> tuple[Node | None, bytes]:
        """Build a fresh subtree of ``items[lo:hi]``; no node existed below its top."""
        if lo == hi:
            return None, EMPTY
        if hi - lo == 1:
            leaf = Node(LEAF, items[lo][0], items[lo][1])
            return leaf, _sha256(b"\x00" + leaf.a + leaf.b).digest()
        below = depth + 1
        paths = (child_path(path, depth, 0), child_path(path, depth, 1))
        mid = bisect_left(items, (paths[1].ljust(KEY_SIZE, b"\x00"),), lo, hi)
        hashes = []
        for side, s_lo, s_hi in ((0, lo, mid), (1, mid, hi)):
            child, child_hash = self._build(below, paths[side], items, s_lo, s_hi)
            if child is not None:
                self.write(make_tree_node_key(below, paths[side]), below, child, child_hash)
            hashes.append(child_hash)
        top = Node(INNER, hashes[0], hashes[1])
        return top, _sha256(b"\x01" + hashes[0] + hashes[1]).digest()


def _merge(
    node: Node | None, keys: list[bytes], values: list[bytes | None], lo: int, hi: int
) -> list[tuple[bytes, bytes]]:
    """The live items of a subtree that is a lone leaf (or empty) after the changes."""
    items = [(keys[i], value) for i in range(lo, hi) if (value := values[i]) is not None]
    if node is not None:
        position = bisect_left(keys, node.a, lo, hi)
        if position == hi or keys[position] != node.a:
            items.insert(bisect_left(items, (node.a,)), (node.a, node.b))
    return items
