"""State snapshots: the whole state at a certified height, in chunks that each verify alone.

A snapshot of height h is a `Manifest` and ``2**depth`` chunks (issue 17, state sync).

- The state tree is cut at `depth`: chunk ``i`` holds every leaf whose key starts with
  the `depth` bits of ``i``, in key order, with the bytes each leaf's value hash is the
  SHA-256 of (a domain's state, or a naming entry: commit, claim, validator proposal or
  schedule). A domain's item carries its name (its key is ``sha256(name)``); any other
  item carries its 32-byte tree key.
- The manifest lists, for each chunk, what its subtree is in the compressed tree: empty,
  one leaf, or an inner node, with its hash (`entries`). `root_from_entries` rebuilds the
  state root from them, which must be the `state_root` of the snapshot block's header;
  that header is certified by its commit certificate, and the set that signed it is
  followed from genesis through every validator-set change (`chain.lightclient`), whose
  blocks, certificates and rosters the manifest carries too.
- So a chunk is checked on its own (`verify_chunk`): its leaves must rebuild exactly its
  entry. A peer serving a bad chunk is caught at that chunk.

Nothing here trusts the peer: the genesis and the certificates are enough.

Wire forms (framed, `chain.encoding`)::

    SnapshotManifest: [kind, 1, height, block, certificate, depth, entries, [[block, certificate, roster], ...]]
    SnapshotChunk:    [kind, 1, height, index, [[id, value], ...]]
    ManifestRequest:  [kind, 1]
    ChunkRequest:     [kind, 1, height, index]

`entries` is ``2**depth`` records of 33 bytes: a tag (0 empty, 1 one leaf, 2 inner node)
and the subtree's hash (EMPTY for an empty one).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256 as _sha256

from chain.block import MAX_BLOCK_BYTES_HARD, Block, BlockHeader
from chain.encoding import CborValue, Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.keys import make_tree_node_key
from chain.lightclient import SetChange, follow_validator_set, set_for, verify_header
from chain.params import ChainParams
from chain.quorum import CommitCertificate
from chain.smt import child_path
from chain.smt_proof import EMPTY, INNER, KEY_SIZE, LEAF, Node, encode_node, node_hash
from chain.tx import MAX_DOMAIN, MAX_TX_BYTES
from chain.validators import Roster

CHUNK_LEAVES = 2048  # the leaves a chunk holds on average (~300 KiB of one-record domains)
MAX_DEPTH = 16  # 65,536 chunks: 134 M leaves at the average above
ENTRY_SIZE = 33
TAG_EMPTY, TAG_LEAF, TAG_INNER = 0, 1, 2
MAX_CHUNK_ITEMS = 1 << 16
MAX_CHUNK_BYTES = 12 << 20
MAX_CHANGES = 4096
MAX_MANIFEST_BYTES = 15 << 20
_DOMAIN_KIND = bytes([Kind.DOMAIN_STATE])  # a one-byte CBOR uint: kinds below 24
_NAMING_KINDS = frozenset(
    bytes([0x18, k]) for k in (Kind.NAME_COMMIT, Kind.NAME_CLAIM, Kind.VALIDATOR_PROPOSAL, Kind.VALIDATOR_SCHEDULE)
)  # fmt: skip


def _bad(message: str) -> InvalidUpdate:
    return InvalidUpdate(RejectReason.BAD_PROOF, message)


def chunk_depth(leaves: int) -> int:
    """The depth to cut a tree of `leaves` leaves at: chunks of about `CHUNK_LEAVES`."""
    depth = 0
    while leaves > CHUNK_LEAVES << depth and depth < MAX_DEPTH:
        depth += 1
    return depth


def chunk_path(depth: int, index: int) -> bytes:
    """The tree path (`chain.keys.make_tree_node_key`) of chunk `index` at `depth`."""
    size = (depth + 7) // 8
    return (index << (8 * size - depth)).to_bytes(size, "big") if depth else b""


def chunk_of(key: bytes, depth: int) -> int:
    """The chunk a tree key falls in."""
    return int.from_bytes(key[:4], "big") >> (32 - depth) if depth else 0


# -- messages --


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """What a snapshot is: its height's block and certificate, the cut, the set changes."""

    height: int
    block: bytes
    certificate: bytes
    depth: int
    entries: bytes
    changes: tuple[
        tuple[bytes, bytes, bytes], ...
    ]  # (block before the change, its certificate, roster)

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        changes: list[CborValue] = [list(change) for change in self.changes]
        return frame(
            Kind.SNAPSHOT_MANIFEST,
            self.height, self.block, self.certificate, self.depth, self.entries, changes,
        )  # fmt: skip

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed input.
        """
        r = Reader.open(
            data, Kind.SNAPSHOT_MANIFEST, "manifest", fields=6, max_size=MAX_MANIFEST_BYTES
        )
        height = r.uint("height", maximum=2**63 - 1)
        block = r.bytes("block", maximum=MAX_BLOCK_BYTES_HARD)
        certificate = r.bytes("certificate", maximum=32 * 1024)
        depth = r.uint("depth", maximum=MAX_DEPTH)
        entries = r.bytes("entries", size=ENTRY_SIZE << depth)
        changes = []
        for i, item in enumerate(r.array("changes", maximum=MAX_CHANGES)):
            cr = Reader(item, f"manifest.changes[{i}]", fields=3)
            changes.append((
                cr.bytes("block", maximum=MAX_BLOCK_BYTES_HARD),
                cr.bytes("certificate", maximum=32 * 1024),
                cr.bytes("roster", maximum=64 * 1024),
            ))  # fmt: skip
        r.done()
        return cls(
            height=height, block=block, certificate=certificate, depth=depth, entries=entries,
            changes=tuple(changes),
        )  # fmt: skip

    def snapshot_id(self) -> bytes:
        """What two peers' manifests share when they offer the same chunks.

        Certificates differ from node to node (each holds the precommits it saw),
        so they are not part of it.
        """
        header_hash = _sha256(self.block).digest()
        return _sha256(
            frame(Kind.SNAPSHOT_MANIFEST, self.height, header_hash, self.depth, self.entries)
        ).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """One chunk's items: ``(id, value bytes)`` in tree-key order."""

    height: int
    index: int
    items: tuple[tuple[bytes, bytes], ...]

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        items: list[CborValue] = [list(i) for i in self.items]
        return frame(Kind.SNAPSHOT_CHUNK, self.height, self.index, items)

    @classmethod
    def from_bytes(cls, data: bytes) -> Chunk:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed input.
        """
        r = Reader.open(data, Kind.SNAPSHOT_CHUNK, "chunk", fields=3, max_size=MAX_CHUNK_BYTES)
        height = r.uint("height", maximum=2**63 - 1)
        index = r.uint("index", maximum=(1 << MAX_DEPTH) - 1)
        raw = r.array("items", maximum=MAX_CHUNK_ITEMS)
        r.done()
        items = []
        for item in raw:
            if type(item) is not list or len(item) != 2:
                raise InvalidUpdate(RejectReason.MALFORMED, "chunk item: expected [id, value]")
            ident, value = item
            if type(ident) is not bytes or type(value) is not bytes:
                raise InvalidUpdate(RejectReason.MALFORMED, "chunk item: expected two byte strings")
            if not 0 < len(ident) <= MAX_DOMAIN or not 0 < len(value) <= MAX_TX_BYTES:
                raise InvalidUpdate(RejectReason.OVERSIZE, "chunk item: id or value out of bounds")
            items.append((ident, value))
        return cls(height=height, index=index, items=tuple(items))


@dataclass(frozen=True, slots=True)
class ManifestRequest:
    """Ask a peer for the manifest of its latest snapshot."""

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        return frame(Kind.SNAPSHOT_MANIFEST_REQUEST)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkRequest:
    """Ask a peer for one chunk of its snapshot at `height`."""

    height: int
    index: int

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        return frame(Kind.SNAPSHOT_CHUNK_REQUEST, self.height, self.index)


def decode_snapshot_request(data: bytes) -> ManifestRequest | ChunkRequest:
    """Decode a snapshot request of either kind.

    Raises:
        InvalidUpdate: malformed or an unknown request.
    """
    if len(data) >= 3 and data[2] == Kind.SNAPSHOT_MANIFEST_REQUEST:
        Reader.open(
            data, Kind.SNAPSHOT_MANIFEST_REQUEST, "manifest_request", fields=0, max_size=16
        ).done()
        return ManifestRequest()
    r = Reader.open(data, Kind.SNAPSHOT_CHUNK_REQUEST, "chunk_request", fields=2, max_size=64)
    request = ChunkRequest(
        height=r.uint("height", maximum=2**63 - 1),
        index=r.uint("index", maximum=(1 << MAX_DEPTH) - 1),
    )
    r.done()
    return request


# -- checking a manifest --


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedManifest:
    """A manifest whose header is certified by the set followed from genesis."""

    manifest: Manifest
    block: Block
    certificate: CommitCertificate
    rosters: tuple[tuple[int, Roster], ...]  # the rosters that started after genesis's
    change_blocks: tuple[tuple[int, bytes, bytes], ...]  # (height, block, certificate)

    @property
    def header(self) -> BlockHeader:
        """The snapshot block's header."""
        return self.block.header


def verify_manifest(params: ChainParams, manifest: Manifest) -> VerifiedManifest:
    """Check a manifest against the genesis: set changes, certificate, state root.

    Raises:
        InvalidUpdate: which check failed (BAD_PROOF: the entries do not make the
            certified state root).
    """
    block = Block.from_bytes(manifest.block)
    header = block.header
    if header.height != manifest.height or manifest.height < 1:
        raise _bad(f"manifest of height {manifest.height} carries the block of {header.height}")
    if not block.body_matches_header():
        raise InvalidUpdate(RejectReason.BAD_TX_ROOT, "the snapshot block's transactions")
    certificate = CommitCertificate.from_bytes(manifest.certificate)
    changes, change_blocks, rosters = [], [], []
    for block_bytes, cert_bytes, roster_bytes in manifest.changes:
        change_block = Block.from_bytes(block_bytes)
        change = SetChange(
            header=change_block.header,
            certificate=CommitCertificate.from_bytes(cert_bytes),
            roster=Roster.from_bytes(roster_bytes),
        )
        if change.from_height > manifest.height + 1 or not change_block.body_matches_header():
            raise _bad(f"set change at {change.from_height} is past the snapshot")
        changes.append(change)
        change_blocks.append((change_block.height, block_bytes, cert_bytes))
        rosters.append((change.from_height, change.roster))
    followed = follow_validator_set(params, changes)
    verify_header(
        params=params, header=header, certificate=certificate, validators=set_for(followed, header)
    )
    following = [v for start, v in followed if start <= manifest.height + 1][-1]
    if header.next_validators_hash != following.hash():
        raise _bad("the snapshot header names a next set the manifest does not show")
    if root_from_entries(manifest.entries, manifest.depth) != header.state_root:
        raise _bad(f"the manifest's entries do not make the state root at {manifest.height}")
    return VerifiedManifest(
        manifest=manifest, block=block, certificate=certificate,
        rosters=tuple(rosters), change_blocks=tuple(change_blocks),
    )  # fmt: skip


def entry_at(entries: bytes, index: int) -> tuple[int, bytes]:
    """``(tag, hash)`` of chunk `index`."""
    at = ENTRY_SIZE * index
    return entries[at], entries[at + 1 : at + ENTRY_SIZE]


def root_from_entries(entries: bytes, depth: int) -> bytes:
    """The state root the chunk entries make (EMPTY for no leaves).

    Raises:
        InvalidUpdate: an entry with an unknown tag, or a hash that contradicts it.
    """
    tops: list[Node | None] = [None] * (1 << depth)
    return upper_tree(entries, depth, tops, None)[1]


def upper_tree(
    entries: bytes,
    depth: int,
    tops: Sequence[Node | None],
    out: list[tuple[bytes, bytes]] | None,
) -> tuple[int, bytes]:
    """Combine the chunk entries up to the root: ``(tag, root hash)``.

    With `out`, also puts there the stored nodes at depths ``0..depth`` (chunk
    tops from `tops`, as `verify_chunk` found them; a lone leaf moves up to
    where it is alone, as `chain.smt` stores it).
    """

    def combine(level: int, lo: int, hi: int) -> tuple[int, bytes, int, Node | None]:
        # -> (tag, hash, a chunk index under it, its top node when known)
        if hi - lo == 1:
            tag, digest = entry_at(entries, lo)
            if tag > TAG_INNER or (tag == TAG_EMPTY) != (digest == EMPTY):
                raise _bad(f"snapshot entry {lo} is malformed")
            top = tops[lo]
            if out is not None and tag != TAG_EMPTY and (top is None or node_hash(top) != digest):
                raise _bad(f"chunk {lo} is missing or does not match its entry")
            return tag, digest, lo, top
        mid = (lo + hi) // 2
        left, right = combine(level + 1, lo, mid), combine(level + 1, mid, hi)
        if left[0] == TAG_EMPTY and right[0] in (TAG_EMPTY, TAG_LEAF):
            return right
        if right[0] == TAG_EMPTY and left[0] == TAG_LEAF:
            return left
        if out is not None:
            for child in (left, right):
                if child[0] != TAG_EMPTY:
                    place(child, level + 1)
        node = Node(INNER, left[1], right[1])
        return TAG_INNER, _sha256(b"\x01" + left[1] + right[1]).digest(), lo, node

    def place(child: tuple[int, bytes, int, Node | None], level: int) -> None:
        assert out is not None and child[3] is not None
        path = chunk_path(depth, child[2])[: (level + 7) // 8]
        if level % 8:
            path = path[:-1] + bytes([path[-1] & (0xFF << (8 - level % 8)) & 0xFF])
        out.append((make_tree_node_key(level, path), encode_node(child[3])))

    root = combine(0, 0, 1 << depth)
    if out is not None and root[0] != TAG_EMPTY:
        place(root, 0)
    return root[0], root[1]


# -- checking a chunk --


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedChunk:
    """A chunk that rebuilt its entry: what to store."""

    index: int
    top: Node | None  # the subtree's top node (placed by `upper_tree`)
    nodes: list[tuple[bytes, bytes]]  # tree nodes strictly below the cut
    domains: list[tuple[str, bytes]]  # name -> state bytes
    naming: list[tuple[bytes, bytes]]  # tree key -> naming entry bytes


def verify_chunk(manifest: Manifest, chunk: Chunk) -> VerifiedChunk:
    """Check `chunk` against its entry in `manifest`; the nodes and values it stores.

    Raises:
        InvalidUpdate: BAD_PROOF when the chunk is not exactly the leaves of its
            subtree at the manifest's height (a wrong, missing, extra or reordered item).
    """
    depth, index = manifest.depth, chunk.index
    if chunk.height != manifest.height or index >= 1 << depth:
        raise _bad(f"chunk {index} of height {chunk.height} is not in this snapshot")
    keys: list[bytes] = []
    hashes: list[bytes] = []
    domains: list[tuple[str, bytes]] = []
    naming: list[tuple[bytes, bytes]] = []
    for ident, value in chunk.items:
        if value[1:2] == _DOMAIN_KIND:
            try:
                name = ident.decode("ascii")
            except UnicodeDecodeError:
                raise _bad(f"chunk {index}: a domain item's name is not ASCII") from None
            key = _sha256(ident).digest()
            domains.append((name, value))
        elif value[1:3] in _NAMING_KINDS and len(ident) == KEY_SIZE:
            key = ident
            naming.append((key, value))
        else:
            raise _bad(f"chunk {index}: an item is neither a domain state nor a naming entry")
        if keys and key <= keys[-1]:
            raise _bad(f"chunk {index}: items out of tree-key order")
        keys.append(key)
        hashes.append(_sha256(value).digest())
    if keys and (chunk_of(keys[0], depth) != index or chunk_of(keys[-1], depth) != index):
        raise _bad(f"chunk {index}: an item belongs to another chunk")
    nodes: list[tuple[bytes, bytes]] = []
    top, digest = _build(keys, hashes, 0, len(keys), depth, chunk_path(depth, index), nodes)
    tag = TAG_EMPTY if top is None else (TAG_LEAF if top.tag == LEAF else TAG_INNER)
    if (tag, digest) != entry_at(manifest.entries, index):
        raise _bad(f"chunk {index} does not match the snapshot's state root")
    return VerifiedChunk(index=index, top=top, nodes=nodes, domains=domains, naming=naming)


def _build(
    keys: list[bytes],
    hashes: list[bytes],
    lo: int,
    hi: int,
    depth: int,
    path: bytes,
    out: list[tuple[bytes, bytes]],
) -> tuple[Node | None, bytes]:
    """The compressed subtree of ``keys[lo:hi]`` at (`depth`, `path`); its nodes below go to `out`."""
    if lo == hi:
        return None, EMPTY
    if hi - lo == 1:
        leaf = Node(LEAF, keys[lo], hashes[lo])
        return leaf, _sha256(b"\x00" + keys[lo] + hashes[lo]).digest()
    if depth >= 256:
        raise _bad("two items with one key")
    below = depth + 1
    paths = (child_path(path, depth, 0), child_path(path, depth, 1))
    mid = bisect_left(keys, paths[1].ljust(KEY_SIZE, b"\x00"), lo, hi)
    digests = []
    for side, s_lo, s_hi in ((0, lo, mid), (1, mid, hi)):
        child, child_hash = _build(keys, hashes, s_lo, s_hi, below, paths[side], out)
        if child is not None:
            out.append((make_tree_node_key(below, paths[side]), encode_node(child)))
        digests.append(child_hash)
    top = Node(INNER, digests[0], digests[1])
    return top, _sha256(b"\x01" + digests[0] + digests[1]).digest()


def item_key(ident: bytes, value: bytes) -> bytes:
    """The tree key of a snapshot item: ``sha256(name)`` for a domain, else the id itself."""
    return _sha256(ident).digest() if value[1:2] == _DOMAIN_KIND else ident


def make_chunk(
    height: int, depth: int, index: int, items: list[tuple[bytes, bytes, bytes]]
) -> tuple[Chunk, bytes]:
    """Chunk `index` from its ``(tree key, id, value)`` items (any order) and its 33-byte entry."""
    items.sort()
    keys = [key for key, _, _ in items]
    hashes = [_sha256(value).digest() for _, _, value in items]
    top, digest = _build(keys, hashes, 0, len(keys), depth, chunk_path(depth, index), [])
    tag = TAG_EMPTY if top is None else (TAG_LEAF if top.tag == LEAF else TAG_INNER)
    chunk = Chunk(height=height, index=index, items=tuple((i, v) for _, i, v in items))
    return chunk, bytes([tag]) + digest
