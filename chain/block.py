"""Block headers, blocks and the transaction Merkle root.

Header wire form: ``[Kind.HEADER, 2, chain_id, height, prev_block, time_ms,
proposer, tx_root, state_root, validators_hash, next_validators_hash]``: the
hashes of the validator sets of this height and the next (chain/validators.py:
a change approved in this block takes effect two heights on, so both are known
before the block is built); the block hash is the
SHA-256 of those bytes. Block wire form: ``[Kind.BLOCK, 1, header_bytes,
[tx_bytes, ...]]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NewType

from chain.crypto import PUBLIC_KEY_SIZE, PublicKey, sha256
from chain.encoding import Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.records import RecordLimits
from chain.tx import MAX_CHAIN_ID, MAX_TX_BYTES, Transaction

BlockHash = NewType("BlockHash", bytes)

HEADER_MAX_BYTES = 512
MAX_BLOCK_BYTES_HARD = 8 * 1024 * 1024  # decode cap; genesis sets the real limit
MAX_BLOCK_TXS_HARD = 100_000
NO_PROPOSER = PublicKey(bytes(PUBLIC_KEY_SIZE))  # the virtual genesis header's proposer


def tx_root(txs: Sequence[Transaction]) -> bytes:
    """Merkle root over the transactions' wire hashes, signatures included.

    RFC 6962 shape: leaf ``sha256(0x00 || sha256(tx bytes))``, node
    ``sha256(0x01 || left || right)``, an odd last node carried up; empty: ``sha256(b"")``.
    Committing to the signatures (not just txids) means a relay cannot alter a
    block's body while keeping its header and proposal signature valid.
    """
    return _merkle_root([tx.wire_hash for tx in txs])


def tx_root_of_wire(txs: Sequence[bytes]) -> bytes:
    """`tx_root` from the transactions' wire bytes, without decoding them."""
    return _merkle_root([sha256(tx) for tx in txs])


def _merkle_root(wire_hashes: Sequence[bytes]) -> bytes:
    if not wire_hashes:
        return sha256(b"")
    level = [sha256(b"\x00" + h) for h in wire_hashes]
    while len(level) > 1:
        nxt = [sha256(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockHeader:
    """What validators sign (through its hash) and light clients keep."""

    chain_id: str
    height: int
    prev_block: bytes
    time_ms: int
    proposer: PublicKey
    tx_root: bytes
    state_root: bytes
    validators_hash: bytes
    next_validators_hash: bytes
    hash: BlockHash = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in (
            "prev_block",
            "tx_root",
            "state_root",
            "validators_hash",
            "next_validators_hash",
        ):
            if len(getattr(self, name)) != 32:
                raise InvalidUpdate(RejectReason.MALFORMED, f"header.{name} must be 32 bytes")
        if len(self.proposer) != PUBLIC_KEY_SIZE:
            raise InvalidUpdate(RejectReason.MALFORMED, "header.proposer must be 33 bytes")
        if not 0 <= self.height < 2**63 or not 0 <= self.time_ms < 2**63:
            raise InvalidUpdate(RejectReason.MALFORMED, "header height or time out of range")
        object.__setattr__(self, "hash", BlockHash(sha256(self.to_bytes())))

    def to_bytes(self) -> bytes:
        """Canonical framed bytes."""
        return frame(
            Kind.HEADER,
            self.chain_id,
            self.height,
            self.prev_block,
            self.time_ms,
            bytes(self.proposer),
            self.tx_root,
            self.state_root,
            self.validators_hash,
            self.next_validators_hash,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockHeader:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed or non-canonical input.
        """
        r = Reader.open(data, Kind.HEADER, "header", fields=9, max_size=HEADER_MAX_BYTES)
        header = cls(
            chain_id=r.text("chain_id", maximum=MAX_CHAIN_ID),
            height=r.uint("height", maximum=2**63 - 1),
            prev_block=r.bytes("prev_block", size=32),
            time_ms=r.uint("time_ms", maximum=2**63 - 1),
            proposer=PublicKey(r.bytes("proposer", size=PUBLIC_KEY_SIZE)),
            tx_root=r.bytes("tx_root", size=32),
            state_root=r.bytes("state_root", size=32),
            validators_hash=r.bytes("validators_hash", size=32),
            next_validators_hash=r.bytes("next_validators_hash", size=32),
        )
        r.done()
        return header


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """A header and the transactions it commits to, in order."""

    header: BlockHeader
    txs: tuple[Transaction, ...]

    def body_matches_header(self) -> bool:
        """Whether the transactions are the ones the header's `tx_root` commits to."""
        return tx_root(self.txs) == self.header.tx_root

    @property
    def hash(self) -> BlockHash:
        """The header's hash."""
        return self.header.hash

    @property
    def height(self) -> int:
        """The header's height."""
        return self.header.height

    def to_bytes(self) -> bytes:
        """Canonical framed bytes."""
        return frame(Kind.BLOCK, self.header.to_bytes(), [tx.to_bytes() for tx in self.txs])

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        max_size: int = MAX_BLOCK_BYTES_HARD,
        limits: RecordLimits | None = None,
    ) -> Block:
        """Decode strictly; does not check the block against the chain.

        Args:
            data: the framed block.
            max_size: the most bytes accepted.
            limits: the genesis record limits, when known (see `Transaction.from_bytes`).

        Raises:
            InvalidUpdate: malformed or non-canonical input, or a record set over `limits`.
        """
        header, items = read_block_frame(data, max_size=max_size)
        return cls.from_parts(header, items, limits=limits)

    @classmethod
    def from_parts(
        cls, header: BlockHeader, tx_items: Sequence[bytes], *, limits: RecordLimits | None = None
    ) -> Block:
        """The block of an already decoded header, decoding its transactions.

        Raises:
            InvalidUpdate: a malformed transaction, or a record set over `limits`.
        """
        return cls(
            header=header,
            txs=tuple(Transaction.from_bytes(item, limits=limits) for item in tx_items),
        )


def read_block_frame(
    data: bytes, *, max_size: int = MAX_BLOCK_BYTES_HARD
) -> tuple[BlockHeader, tuple[bytes, ...]]:
    """A block's decoded header and its transactions still as bytes.

    What costs in a block is decoding its transactions; the header alone says
    who may have signed it (a proposal's signature covers the header's hash),
    so a receiver can check that first (`chain.wire.decode_consensus`).

    Raises:
        InvalidUpdate: malformed or non-canonical input.
    """
    r = Reader.open(data, Kind.BLOCK, "block", fields=2, max_size=max_size)
    header = BlockHeader.from_bytes(r.bytes("header", maximum=HEADER_MAX_BYTES))
    items = r.array("txs", maximum=MAX_BLOCK_TXS_HARD)
    r.done()
    txs: list[bytes] = []
    for i, item in enumerate(items):
        if type(item) is not bytes or len(item) > MAX_TX_BYTES + 128:
            raise InvalidUpdate(RejectReason.MALFORMED, f"block.txs[{i}]: expected tx bytes")
        assert isinstance(item, bytes)
        txs.append(item)
    return header, tuple(txs)
