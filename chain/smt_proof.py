"""Proofs of a key's value (or absence) in the state tree, and their verification.

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

from dataclasses import dataclass

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
