"""Network messages: what gossip topics and the sync protocol carry.

Pure codecs in the one canonical encoding (`chain.encoding`), so every decoder
is strict and bounded like the ledger's own. Consensus messages need no new
type: a `Proposal` or a `Vote` travels as its own framed bytes, and
`consensus_kind` tells them apart.

Gossip topics (``/ledgerdns/<chain_id>/<name>/1``):
- ``txs``: a `TxBatch` of signed transactions.
- ``consensus``: one `Proposal` or `Vote`, or one sent again inside a `Resent`.
- ``blocks``: a `CommitNotice` (height, block hash, certificate) sent by the
  block's proposer after it commits; a node that holds the proposal commits
  it, one that does not syncs.

Sync (request/response, protocol ``/ledgerdns/<chain_id>/sync/1``): a
`StatusRequest` is answered by a `Status`, a `BlocksRequest` by a `BlocksPage`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chain.block import MAX_BLOCK_BYTES_HARD, Block
from chain.consensus_messages import Proposal, ProposalFrame, validate_proposal_signer
from chain.encoding import Kind, Reader, decode, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.params import ChainParams
from chain.quorum import CommitCertificate, ValidatorSet, Vote
from chain.records import RecordLimits
from chain.tx import MAX_CHAIN_ID, MAX_TX_BYTES, Transaction

MAX_BATCH_TXS = 512
MAX_BATCH_BYTES = 1024 * 1024
MAX_PAGE_BLOCKS = 1000
MAX_PAGE_BYTES = 8 * 1024 * 1024  # decode cap; senders keep pages near 1 MiB
MAX_CERTIFICATE_BYTES = 32 * 1024


def topic(chain_id: str, name: str) -> str:
    """The gossipsub topic `name` ("txs", "consensus", "blocks") of a network."""
    return f"/ledgerdns/{chain_id}/{name}/1"


def sync_protocol(chain_id: str) -> str:
    """The request/response protocol id of a network's sync."""
    return f"/ledgerdns/{chain_id}/sync/1"


def message_kind(data: bytes) -> Kind | None:
    """The framed kind of `data` without a full decode (None if not a known frame)."""
    if len(data) < 3 or data[0] & 0xE0 != 0x80:  # a CBOR array header
        return None
    first = data[1]
    if first == 0x18:  # a CBOR one-byte unsigned integer: kinds 24..255
        first = data[2]
        if first < 24:
            return None  # not canonical
    elif first >= 24:
        return None
    try:
        return Kind(first)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class TxBatch:
    """Transactions gossiped together (a node batches its local submissions)."""

    txs: tuple[Transaction, ...]

    def to_bytes(self) -> bytes:
        """Canonical bytes (each transaction's own wire bytes inside)."""
        return frame(Kind.TX_BATCH, [tx.to_bytes() for tx in self.txs])

    @classmethod
    def from_bytes(cls, data: bytes, *, limits: RecordLimits | None = None) -> TxBatch:
        """Decode strictly.

        Args:
            data: the framed batch.
            limits: the genesis record limits, when known: a transaction over
                them is refused before its records are built (the gossip filter).

        Raises:
            InvalidUpdate: malformed, oversize or empty, or a record set over `limits`.
        """
        r = Reader.open(data, Kind.TX_BATCH, "tx_batch", fields=1, max_size=MAX_BATCH_BYTES)
        items = r.array("txs", maximum=MAX_BATCH_TXS)
        r.done()
        if not items:
            raise InvalidUpdate(RejectReason.MALFORMED, "tx_batch: empty")
        txs = []
        for i, item in enumerate(items):
            if type(item) is not bytes or len(item) > MAX_TX_BYTES + 128:
                raise InvalidUpdate(RejectReason.MALFORMED, f"tx_batch.txs[{i}]: expected tx bytes")
            assert isinstance(item, bytes)
            txs.append(Transaction.from_bytes(item, limits=limits))
        return cls(tuple(txs))


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitNotice:
    """A block at `height` with hash `block_hash` is final; here is its certificate."""

    height: int
    block_hash: bytes
    certificate: CommitCertificate

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        return frame(Kind.COMMIT_NOTICE, self.height, self.block_hash, self.certificate.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> CommitNotice:
        """Decode strictly (the certificate's signatures are checked by the receiver).

        Raises:
            InvalidUpdate: malformed, or the certificate is for another block.
        """
        r = Reader.open(data, Kind.COMMIT_NOTICE, "commit_notice", fields=3, max_size=40 * 1024)
        notice = cls(
            height=r.uint("height", maximum=2**63 - 1),
            block_hash=r.bytes("block_hash", size=32),
            certificate=CommitCertificate.from_bytes(
                r.bytes("certificate", maximum=MAX_CERTIFICATE_BYTES)
            ),
        )
        r.done()
        cert = notice.certificate
        if cert.height != notice.height or cert.block_hash != notice.block_hash:
            raise InvalidUpdate(RejectReason.BAD_VOTE, "commit_notice: certificate for another block")
        return notice


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """Ask a peer for its `Status`."""

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        return frame(Kind.STATUS_REQUEST)


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """A node's network and finalized head."""

    chain_id: str
    genesis_hash: bytes
    height: int
    head_hash: bytes

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        return frame(Kind.STATUS, self.chain_id, self.genesis_hash, self.height, self.head_hash)

    @classmethod
    def from_bytes(cls, data: bytes) -> Status:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed input.
        """
        r = Reader.open(data, Kind.STATUS, "status", fields=4, max_size=1024)
        status = cls(
            chain_id=r.text("chain_id", maximum=MAX_CHAIN_ID),
            genesis_hash=r.bytes("genesis_hash", size=32),
            height=r.uint("height", maximum=2**63 - 1),
            head_hash=r.bytes("head_hash", size=32),
        )
        r.done()
        return status


@dataclass(frozen=True, slots=True, kw_only=True)
class BlocksRequest:
    """Ask for finalized blocks from `start`, at most `count` of them."""

    start: int
    count: int

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        return frame(Kind.BLOCKS_REQUEST, self.start, self.count)


@dataclass(frozen=True, slots=True)
class FinalizedBlock:
    """A block with its commit certificate, as raw bytes (decoded by the receiver)."""

    block: bytes
    certificate: bytes

    def decode(self) -> tuple[Block, CommitCertificate]:
        """Decode both parts strictly.

        Raises:
            InvalidUpdate: malformed input.
        """
        return Block.from_bytes(self.block), CommitCertificate.from_bytes(self.certificate)


@dataclass(frozen=True, slots=True)
class BlocksPage:
    """Consecutive finalized blocks answering a `BlocksRequest` (may be fewer than asked)."""

    blocks: tuple[FinalizedBlock, ...]

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        return frame(Kind.BLOCKS_PAGE, [[b.block, b.certificate] for b in self.blocks])

    @classmethod
    def from_bytes(cls, data: bytes) -> BlocksPage:
        """Decode the page structure (blocks are decoded later, one by one).

        Raises:
            InvalidUpdate: malformed or oversize.
        """
        r = Reader.open(data, Kind.BLOCKS_PAGE, "blocks_page", fields=1, max_size=MAX_PAGE_BYTES)
        items = r.array("blocks", maximum=MAX_PAGE_BLOCKS)
        r.done()
        out = []
        for i, item in enumerate(items):
            pr = Reader(item, f"blocks_page.blocks[{i}]", fields=2)
            out.append(
                FinalizedBlock(
                    pr.bytes("block", maximum=MAX_PAGE_BYTES),
                    pr.bytes("certificate", maximum=MAX_CERTIFICATE_BYTES),
                )
            )
        return cls(tuple(out))


@dataclass(frozen=True, slots=True, kw_only=True)
class Resent:
    """A consensus message sent again, made unique by `nonce`.

    Gossip forgets nothing it has seen for minutes (message ids are content
    hashes), so a proposal or vote re-sent for a peer that missed it must not be
    the same bytes as the first time.
    """

    nonce: int
    payload: bytes

    def to_bytes(self) -> bytes:
        """Canonical bytes."""
        return frame(Kind.RESENT, self.nonce, self.payload)

    @classmethod
    def from_bytes(cls, data: bytes) -> Resent:
        """Decode strictly (the payload is decoded by the receiver).

        Raises:
            InvalidUpdate: malformed input.
        """
        r = Reader.open(data, Kind.RESENT, "resent", fields=2, max_size=MAX_BLOCK_BYTES_HARD + 1024)
        resent = cls(nonce=r.uint("nonce"), payload=r.bytes("payload", maximum=MAX_BLOCK_BYTES_HARD + 512))
        r.done()
        return resent


SyncRequest = StatusRequest | BlocksRequest


def decode_sync_request(data: bytes) -> SyncRequest:
    """Decode a sync request of either kind.

    Raises:
        InvalidUpdate: malformed or an unknown request.
    """
    kind = message_kind(data)
    if kind == Kind.STATUS_REQUEST:
        r = Reader.open(data, Kind.STATUS_REQUEST, "status_request", fields=0, max_size=16)
        r.done()
        return StatusRequest()
    if kind == Kind.BLOCKS_REQUEST:
        r = Reader.open(data, Kind.BLOCKS_REQUEST, "blocks_request", fields=2, max_size=64)
        request = BlocksRequest(
            start=r.uint("start", maximum=2**63 - 1), count=r.uint("count", maximum=MAX_PAGE_BLOCKS)
        )
        r.done()
        return request
    decode(data, max_size=64)  # a precise error for undecodable bytes
    raise InvalidUpdate(RejectReason.MALFORMED, "unknown sync request")


def unwrap_resent(data: bytes) -> bytes:
    """The message a `Resent` carries, or `data` itself when it is not one.

    Raises:
        InvalidUpdate: a malformed `Resent`.
    """
    return Resent.from_bytes(data).payload if message_kind(data) == Kind.RESENT else data


def decode_consensus(
    data: bytes,
    params: ChainParams | None = None,
    validators_at: Callable[[int], ValidatorSet] | None = None,
) -> Proposal | Vote:
    """A consensus-topic message: a proposal or a vote, possibly inside a `Resent`.

    With the network's `params` (the gossip filter), a proposal is
    authenticated from its header before its transactions are decoded: it must
    be for this network, from its round's proposer and signed by it
    (`validate_proposal_signer`). Only then is the body decoded, under the
    genesis record limits. So a peer cannot make every node decode a block
    nobody entitled to propose it signed (issue 13). `validators_at` gives the
    set of the proposal's height (default: the genesis set).

    Raises:
        InvalidUpdate: malformed, neither a proposal nor a vote; with `params`,
            also a proposal refused by `validate_proposal_signer` or a record
            set over the genesis limits.
    """
    data = unwrap_resent(data)
    kind = message_kind(data)
    if kind == Kind.PROPOSAL:
        if params is None:
            return Proposal.from_bytes(data)
        unopened = ProposalFrame.from_bytes(data)
        validate_proposal_signer(
            unopened.head, chain_id=params.chain_id, genesis_hash=params.genesis_hash,
            validators=params.validators if validators_at is None else validators_at(unopened.head.height),
        )  # fmt: skip
        return unopened.open(limits=params.record_limits)
    if kind == Kind.VOTE:
        return Vote.from_bytes(data)
    raise InvalidUpdate(RejectReason.MALFORMED, "not a proposal or vote")
