"""Network message codecs: round trips, strictness, bounds."""

from __future__ import annotations

import pytest

from chain.encoding import Kind, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.genesis import make_single_validator_genesis
from chain.ledger import Ledger
from chain.store import MemoryStore
from chain.wire import (
    MAX_BATCH_TXS,
    BlocksPage,
    BlocksRequest,
    CommitNotice,
    FinalizedBlock,
    Resent,
    Status,
    StatusRequest,
    TxBatch,
    decode_sync_request,
    message_kind,
    sync_protocol,
    topic,
)
from tools.devchain import certify, dev_key, register_tx, soon

KEY = dev_key("validator", 0)


@pytest.fixture
def ledger() -> Ledger:
    genesis = make_single_validator_genesis(KEY.public_key, genesis_time_ms=1_700_000_000_000)
    ledger = Ledger(MemoryStore(), genesis)
    ledger.initialize()
    return ledger


def _txs(ledger: Ledger, n: int) -> list:  # type: ignore[type-arg]
    return [
        register_tx(ledger.genesis, dev_key("owner", i), f"n{i}.p2p", valid_until=soon(ledger))
        for i in range(n)
    ]


def test_tx_batch_round_trip_and_kind(ledger: Ledger) -> None:
    batch = TxBatch(tuple(_txs(ledger, 3)))
    data = batch.to_bytes()
    assert message_kind(data) == Kind.TX_BATCH
    assert TxBatch.from_bytes(data) == batch


def test_tx_batch_refuses_empty_oversize_and_trailing_bytes(ledger: Ledger) -> None:
    with pytest.raises(InvalidUpdate):
        TxBatch.from_bytes(TxBatch(()).to_bytes())
    tx = _txs(ledger, 1)[0]
    with pytest.raises(InvalidUpdate) as err:
        TxBatch.from_bytes(frame(Kind.TX_BATCH, [tx.to_bytes()] * (MAX_BATCH_TXS + 1)))
    assert err.value.reason == RejectReason.OVERSIZE
    with pytest.raises(InvalidUpdate):
        TxBatch.from_bytes(TxBatch((tx,)).to_bytes() + b"\x00")
    with pytest.raises(InvalidUpdate):
        TxBatch.from_bytes(frame(Kind.TX_BATCH, [b"not a tx"]))


def test_commit_notice_round_trip_and_mismatch(ledger: Ledger) -> None:
    block, _ = ledger.build_block(_txs(ledger, 2), time_ms=1_700_000_001_000, proposer=KEY.public_key)
    cert = certify(ledger, block.hash, block.height, [KEY])
    notice = CommitNotice(height=block.height, block_hash=block.hash, certificate=cert)
    assert CommitNotice.from_bytes(notice.to_bytes()) == notice
    wrong = CommitNotice(height=block.height + 1, block_hash=block.hash, certificate=cert)
    with pytest.raises(InvalidUpdate):
        CommitNotice.from_bytes(wrong.to_bytes())


def test_sync_messages_round_trip(ledger: Ledger) -> None:
    status = Status(chain_id="c", genesis_hash=b"g" * 32, height=7, head_hash=b"h" * 32)
    assert Status.from_bytes(status.to_bytes()) == status
    assert decode_sync_request(StatusRequest().to_bytes()) == StatusRequest()
    request = BlocksRequest(start=3, count=100)
    assert decode_sync_request(request.to_bytes()) == request
    page = BlocksPage((FinalizedBlock(b"block", b"cert"),))
    assert BlocksPage.from_bytes(page.to_bytes()) == page


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x82\x05\x01", frame(Kind.BLOCKS_REQUEST, 1), frame(Kind.STATUS, "x"),
     frame(Kind.BLOCKS_REQUEST, 1, 10**6), b"\xff" * 40],
)
def test_bad_sync_requests_raise_invalid_update(data: bytes) -> None:
    with pytest.raises(InvalidUpdate):
        decode_sync_request(data)


def test_names_are_per_network() -> None:
    assert topic("devnet", "txs") == "/ledgerdns/devnet/txs/1"
    assert sync_protocol("a") != sync_protocol("b")


def test_resent_wraps_a_message_in_unique_bytes(ledger: Ledger) -> None:
    inner = StatusRequest().to_bytes()
    a, b = Resent(nonce=1, payload=inner), Resent(nonce=2, payload=inner)
    assert a.to_bytes() != b.to_bytes()
    assert message_kind(a.to_bytes()) == Kind.RESENT
    assert Resent.from_bytes(b.to_bytes()) == b
    with pytest.raises(InvalidUpdate):
        Resent.from_bytes(frame(Kind.RESENT, 1))
