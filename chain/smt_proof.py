"""The state tree's definition, for verifiers: nodes and their hashes, the
reference `root_of`, and proofs of a key's value (or absence) with their
verification. The stored tree and its updates are in `chain.smt`.

A proof for key k is the sibling hashes on the path from the root down to the
depth where the path ends, plus what was found there: nothing (an EMPTY
subtree: exclusion), a leaf with another key (exclusion), or k's own leaf
(inclusion). The tree itself is in `chain.smt`.

Wire form, a framed `Kind.PROOF` object::

    [kind, version, depth, sibling_bitmap, [sibling hashes], found_key, found_value_hash]

- `depth` (0..256) is the number of levels walked, one sibling per level;
- `sibling_bitmap` has ceil(depth / 8) bytes, bit i (MSB first, as in keys)
  set when the sibling at level i is not EMPTY; unused trailing bits are zero;
- the sibling hashes are the non-EMPTY ones, from the root down, one per set bit;
- `found_key` and `found_value_hash` are both empty (nothing found) or both 32 bytes.

Decoding is strict: any inconsistency is refused with `InvalidUpdate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from hashlib import sha256 as _sha256
from typing import NamedTuple

from chain.crypto import sha256
from chain.encoding import Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason

KEY_SIZE = 32
EMPTY = bytes(32)
MAX_DEPTH = 256
# The largest possible encoding: 256 non-EMPTY siblings and a found leaf.
MAX_PROOF_SIZE = 1 + 1 + 1 + 3 + (2 + 32) + 3 + MAX_DEPTH * (2 + 32) + 2 * (2 + 32)


def key_bit(key: bytes, index: int) -> int:
    """Bit `index` of `key`, most significant bit of byte 0 first."""
    return (key[index >> 3] >> (7 - (index & 7))) & 1


def leaf_hash(key: bytes, value_hash: bytes) -> bytes:
    """The hash of the leaf holding `key` -> `value_hash`."""
    return sha256(b"\x00" + key + value_hash)


# -- nodes --

LEAF = 0
INNER = 1
NODE_SIZE = 72


class Node(NamedTuple):
    """A stored node: ``(LEAF, key, value_hash)`` or ``(INNER, left, right)``."""

    tag: int
    a: bytes
    b: bytes


def node_hash(node: Node | None) -> bytes:
    """A node's hash: ``sha256(bytes([tag]) + a + b)``; EMPTY for no node."""
    if node is None:
        return EMPTY
    return _sha256((b"\x01" if node.tag else b"\x00") + node.a + node.b).digest()


# A node's canonical encoding has one fixed layout: array(5), kind, version, tag,
# then two 32-byte byte strings. Building and checking it by hand is ~5x faster
# than the generic codec and accepts exactly the same bytes (a test checks
# both directions); anything else falls through to the strict `Reader`.
_HEADS = tuple(frame(Kind.TREE_NODE, tag, b"", b"")[:4] for tag in (LEAF, INNER))
_BYTES32 = b"\x58\x20"


def encode_node(node: Node) -> bytes:
    """The node's stored form, ``[Kind.TREE_NODE, VERSION, tag, a, b]`` (72 bytes)."""
    return _HEADS[node.tag] + _BYTES32 + node.a + _BYTES32 + node.b


def decode_node(data: bytes) -> Node:
    """Decode `encode_node` strictly.

    Raises:
        InvalidUpdate: anything else.
    """
    if (
        len(data) == NODE_SIZE
        and data[:4] in _HEADS
        and data[4:6] == _BYTES32
        and data[38:40] == _BYTES32
    ):
        return Node(data[3], data[6:38], data[40:])
    return decode_node_slow(data)


def decode_node_slow(data: bytes) -> Node:
    """`decode_node` through the generic strict reader (the reference)."""
    reader = Reader.open(data, Kind.TREE_NODE, "tree node", fields=3, max_size=NODE_SIZE)
    tag = reader.uint("tag", maximum=INNER)
    a = reader.bytes("a", size=KEY_SIZE)
    b = reader.bytes("b", size=KEY_SIZE)
    reader.done()
    return Node(tag, a, b)


# -- the reference root --


def check_key(key: bytes) -> None:
    """Raise ValueError unless `key` is a 32-byte tree key."""
    if type(key) is not bytes or len(key) != KEY_SIZE:
        raise ValueError("a tree key is 32 bytes")


def check_value(value: bytes | None) -> None:
    """Raise ValueError unless `value` is a 32-byte value hash or None (a delete)."""
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
        check_key(key)
        if value is None:
            raise ValueError("a value hash is 32 bytes")
        check_value(value)
    return _subtree_root(sorted(items.items()), 0)


def _subtree_root(items: list[tuple[bytes, bytes]], depth: int) -> bytes:
    if not items:
        return EMPTY
    if len(items) == 1:
        return leaf_hash(items[0][0], items[0][1])
    left = [item for item in items if not key_bit(item[0], depth)]
    right = [item for item in items if key_bit(item[0], depth)]
    return sha256(b"\x01" + _subtree_root(left, depth + 1) + _subtree_root(right, depth + 1))


def _bad(message: str) -> InvalidUpdate:
    return InvalidUpdate(RejectReason.BAD_PROOF, message)


@dataclass(frozen=True, slots=True, kw_only=True)
class Proof:
    """Where a key's path through the tree ends, and the siblings on the way.

    Attributes:
        siblings: one hash per level from the root down (EMPTY included).
        found_key: the key of the leaf where the path ends, or b"" if it ends
            in an empty subtree.
        found_value_hash: that leaf's value hash, or b"".
    """

    siblings: tuple[bytes, ...]
    found_key: bytes = b""
    found_value_hash: bytes = b""

    def __post_init__(self) -> None:
        if type(self.siblings) is not tuple or len(self.siblings) > MAX_DEPTH:
            raise _bad(f"at most {MAX_DEPTH} siblings, as a tuple")
        for sibling in self.siblings:
            if type(sibling) is not bytes or len(sibling) != KEY_SIZE:
                raise _bad("a sibling hash is 32 bytes")
        if type(self.found_key) is not bytes or type(self.found_value_hash) is not bytes:
            raise _bad("found key and value hash are bytes")
        sizes = (len(self.found_key), len(self.found_value_hash))
        if sizes not in ((0, 0), (KEY_SIZE, KEY_SIZE)):
            raise _bad("found key and value hash must both be empty or both 32 bytes")

    @property
    def depth(self) -> int:
        """How many levels the path goes down."""
        return len(self.siblings)

    def to_bytes(self) -> bytes:
        """The canonical wire form."""
        bitmap = bytearray((self.depth + 7) // 8)
        hashes: list[bytes] = []
        for level, sibling in enumerate(self.siblings):
            if sibling != EMPTY:
                bitmap[level >> 3] |= 0x80 >> (level & 7)
                hashes.append(sibling)
        return frame(
            Kind.PROOF,
            self.depth,
            bytes(bitmap),
            list(hashes),
            self.found_key,
            self.found_value_hash,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Proof:
        """Decode `to_bytes` strictly.

        Raises:
            InvalidUpdate: the bytes are not a well-formed, consistent proof.
        """
        reader = Reader.open(data, Kind.PROOF, "proof", fields=5, max_size=MAX_PROOF_SIZE)
        depth = reader.uint("depth", maximum=MAX_DEPTH)
        bitmap = reader.bytes("sibling_bitmap", size=(depth + 7) // 8)
        hashes = reader.array("siblings", maximum=depth)
        found_key = reader.bytes("found_key", maximum=KEY_SIZE)
        found_value_hash = reader.bytes("found_value_hash", maximum=KEY_SIZE)
        reader.done()
        if depth & 7 and bitmap[-1] & (0xFF >> (depth & 7)):
            raise _bad("bits past the depth are set in the sibling bitmap")
        siblings: list[bytes] = []
        remaining = iter(hashes)
        for level in range(depth):
            if not key_bit(bitmap, level):
                siblings.append(EMPTY)
                continue
            sibling = next(remaining, None)
            if type(sibling) is not bytes or len(sibling) != KEY_SIZE or sibling == EMPTY:
                raise _bad(f"sibling {level}: expected a non-EMPTY 32-byte hash")
            siblings.append(sibling)
        if next(remaining, None) is not None:
            raise _bad("more sibling hashes than bits set in the bitmap")
        return cls(siblings=tuple(siblings), found_key=found_key, found_value_hash=found_value_hash)


def verify_proof(root: bytes, key: bytes, value_hash: bytes | None, proof: Proof) -> bool:
    """Whether `proof` shows that the tree with `root` maps `key` to `value_hash`.

    Args:
        root: the trusted root hash.
        key: the 32-byte key asked about.
        value_hash: the claimed value hash, or None to claim `key` is absent.
        proof: the proof, e.g. from `Proof.from_bytes`.

    Returns:
        True only if the proof is consistent with the claim and hashes to `root`.
    """
    if len(root) != KEY_SIZE or len(key) != KEY_SIZE:
        return False
    depth = proof.depth
    if proof.found_key:
        if value_hash is None:
            # Exclusion by another leaf, which must lie on key's path.
            if proof.found_key == key or not _same_prefix(proof.found_key, key, depth):
                return False
        elif proof.found_key != key or proof.found_value_hash != value_hash:
            return False
        node = leaf_hash(proof.found_key, proof.found_value_hash)
    else:
        if value_hash is not None:
            return False
        node = EMPTY
    for level in range(depth - 1, -1, -1):
        sibling = proof.siblings[level]
        if key_bit(key, level):
            node = sha256(b"\x01" + sibling + node)
        else:
            node = sha256(b"\x01" + node + sibling)
    return node == root


def _same_prefix(a: bytes, b: bytes, bits: int) -> bool:
    """Whether `a` and `b` agree on their first `bits` bits."""
    whole, rest = divmod(bits, 8)
    if a[:whole] != b[:whole]:
        return False
    return rest == 0 or (a[whole] ^ b[whole]) >> (8 - rest) == 0
