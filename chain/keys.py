"""Every storage key the ledger writes, in one table.

| prefix | key after the prefix              | value                                   |
|--------|-----------------------------------|-----------------------------------------|
| `M`    | meta name (ASCII)                 | see META_* below                        |
| `B`    | height, u64 big-endian            | block bytes (`Kind.BLOCK`)              |
| `H`    | block hash (32)                   | height, u64 big-endian                  |
| `C`    | height, u64 big-endian            | commit certificate (`Kind.CERTIFICATE`) |
| `T`    | txid (32)                         | height u64 BE + index u32 BE            |
| `D`    | domain name (ASCII)               | domain state (`Kind.DOMAIN_STATE`)      |
| `Y`    | domain, 0x00, seq u64 BE          | txid (32): the domain's hash chain      |
| `N`    | depth u16 BE, path bits           | state-tree node (`Kind.TREE_NODE`)      |
| `E`    | height u64 BE, round u32 BE, vote type u8, key | equivocation evidence (`Kind.EVIDENCE`) |
| `I`    | height u64 BE, round u32 BE, key  | invalid proposal (`Kind.INVALID_PROPOSAL`) |
| `L`    | (none: one key)                   | the validator's lock (`Kind.LOCK_RECORD`)  |
| `K`    | state-tree key (32)               | name commit or claim (`Kind.NAME_COMMIT`, `Kind.NAME_CLAIM`), validator proposal or schedule (`Kind.VALIDATOR_PROPOSAL`, `Kind.VALIDATOR_SCHEDULE`) |
| `X`    | height u64 BE, state-tree key (32) | empty: that `K` entry leaves the state at the start of that height |
| `V`    | from height u64 BE                | validator roster in force from there on (`Kind.ROSTER`); none for genesis |
| `P`    | state-tree key (32)               | empty: that `K` entry is a pending validator proposal |

Big-endian integers keep LevelDB's byte order equal to numeric order, so
"latest block" and "history of a domain" are single range scans.
`docs/storage-layout.md` repeats this table; change both together.
"""

from __future__ import annotations

import struct

META = b"M"
BLOCK = b"B"
BLOCK_HASH = b"H"
CERTIFICATE = b"C"
TX = b"T"
DOMAIN = b"D"
HISTORY = b"Y"
TREE_NODE = b"N"
EVIDENCE = b"E"
INVALID_PROPOSAL = b"I"
LOCK = b"L"  # one key: the locked proposal and its polka, for a restart mid-height
NAMING = b"K"  # commits and claims of commit-reveal registration (chain/commits.py)
NAMING_EXPIRY = b"X"  # which of them leave the state at a height
ROSTER = b"V"  # u64 BE from_height -> the validator roster from that height on (chain/validators.py)
PROPOSAL_INDEX = b"P"  # state-tree key of each pending validator proposal (which `K` entries they are)

META_HEAD = b"head"  # u64 BE: height of the last applied block (0 = genesis only)
META_GENESIS = b"genesis"  # genesis hash (32): the store belongs to this network
META_FORMAT = b"format"  # u32 BE: storage layout version
META_BASE = b"base"  # u64 BE: lowest height whose blocks are all kept (absent: 1, an archive)
# (b"restoring", u64 BE: a state sync in progress, is `chain.snapshot_restore`'s.)

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")


def u64(value: int) -> bytes:
    """Encode an unsigned 64-bit big-endian integer."""
    return _U64.pack(value)


def read_u64(data: bytes) -> int:
    """Decode `u64`."""
    return int(_U64.unpack(data)[0])


def make_meta_key(name: bytes) -> bytes:
    """Key of a metadata entry."""
    return META + name


def make_block_key(height: int) -> bytes:
    """Key of the block at `height`."""
    return BLOCK + _U64.pack(height)


def make_block_hash_key(block_hash: bytes) -> bytes:
    """Key mapping a block hash to its height."""
    return BLOCK_HASH + block_hash


def make_certificate_key(height: int) -> bytes:
    """Key of the commit certificate of the block at `height`."""
    return CERTIFICATE + _U64.pack(height)


def make_tx_key(txid: bytes) -> bytes:
    """Key of a transaction's location."""
    return TX + txid


def tx_location(height: int, index: int) -> bytes:
    """Value stored under `make_tx_key`."""
    return _U64.pack(height) + _U32.pack(index)


def read_tx_location(data: bytes) -> tuple[int, int]:
    """Decode `tx_location`."""
    return int(_U64.unpack(data[:8])[0]), int(_U32.unpack(data[8:12])[0])


def make_domain_key(domain: str) -> bytes:
    """Key of a domain's current state."""
    return DOMAIN + domain.encode("ascii")


def make_history_prefix(domain: str) -> bytes:
    """Prefix of one domain's hash-chain entries."""
    return HISTORY + domain.encode("ascii") + b"\x00"


def make_history_key(domain: str, seq: int) -> bytes:
    """Key of one step of a domain's hash chain."""
    return make_history_prefix(domain) + _U64.pack(seq)


def make_tree_node_key(depth: int, path: bytes) -> bytes:
    """Key of the state-tree node at `depth` whose leading path bits are `path`.

    `path` holds ceil(depth / 8) bytes with the bits past `depth` zeroed.
    """
    return TREE_NODE + depth.to_bytes(2, "big") + path


def make_evidence_key(height: int, round_: int, vote_type: int, validator: bytes) -> bytes:
    """Key of one validator's equivocation evidence at a height, round and vote type."""
    return EVIDENCE + _U64.pack(height) + _U32.pack(round_) + bytes([vote_type]) + validator


def make_invalid_proposal_key(height: int, round_: int, proposer: bytes) -> bytes:
    """Key of the invalid proposal a proposer signed at a height and round."""
    return INVALID_PROPOSAL + _U64.pack(height) + _U32.pack(round_) + proposer


def make_naming_key(tree_key: bytes) -> bytes:
    """Key of a name commit or claim, by its state-tree key."""
    return NAMING + tree_key


def make_naming_expiry_prefix(height: int) -> bytes:
    """Prefix of the naming entries that leave the state at the start of `height`."""
    return NAMING_EXPIRY + _U64.pack(height)


def make_naming_expiry_key(height: int, tree_key: bytes) -> bytes:
    """Key marking that the naming entry `tree_key` leaves the state at `height`."""
    return make_naming_expiry_prefix(height) + tree_key


def make_roster_key(from_height: int) -> bytes:
    """The validator roster in force from `from_height` (issue 15)."""
    return ROSTER + u64(from_height)


def make_proposal_index_key(tree_key: bytes) -> bytes:
    """Marks a `K` entry as a pending validator proposal (for listing them without a scan)."""
    return PROPOSAL_INDEX + tree_key
