"""Decoding bounded by the genesis: records before they are built, proposals by their header first.

Issue 13, defect 2. The reason code shows what was (not) built: a record set
whose first record is invalid fails with BAD_RECORD once records are built, so
TOO_MANY_RECORDS or RECORDS_TOO_LARGE instead means none was; a proposal whose
block body cannot be decoded (MALFORMED) fails with BAD_PROPOSER or
BAD_SIGNATURE instead when its header is checked first.
"""

from __future__ import annotations

import cbor2
import pytest

from chain.block import Block, BlockHeader, tx_root
from chain.consensus_messages import Proposal
from chain.encoding import encode
from chain.errors import InvalidUpdate, RejectReason
from chain.records import Record, RecordLimits
from chain.tx import MAX_BODY_OVERHEAD, ZERO_HASH, Op, Transaction, TxBody
from chain.wire import Resent, TxBatch, decode_consensus
from tools.devchain import dev_key
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)
PARAMS = GENESIS.params
LIMITS = PARAMS.record_limits  # 64 records, 8192 bytes
OWNER = dev_key("owner", 7)
KEYS = [dev_key("validator", i) for i in range(4)]
A_REC = ["@", 1, 300, b"\x0a\x00\x00\x01"]  # a valid A record, as CBOR
BAD_REC = ["@", 1, 300, b"\x01"]  # an A record with 1 byte of rdata: BAD_RECORD once built


def body(records: tuple[Record, ...] = ()) -> TxBody:
    return TxBody(
        chain_id=PARAMS.chain_id, domain="bounds.p2p", seq=0, prev=ZERO_HASH, op=Op.REGISTER,
        records=records, owner=OWNER.public_key, valid_until=2**40,
    )  # fmt: skip


def raw_tx(records: list[object]) -> bytes:
    """A transaction's wire bytes carrying `records` as raw CBOR items (no Record built)."""
    tx = Transaction.sign(body(), OWNER, GENESIS.hash())
    fields = cbor2.loads(tx.body_bytes)
    fields[fields.index([])] = records
    body_bytes = encode(fields)
    wire = cbor2.loads(tx.to_bytes())
    wire[wire.index(tx.body_bytes)] = body_bytes
    return encode(wire)


def test_raw_tx_builds_what_the_real_encoder_does() -> None:
    record = Record.from_cbor(A_REC)
    real = TxBody.from_bytes(Transaction.from_bytes(raw_tx([A_REC])).body_bytes)
    assert real == body((record,))


def test_too_many_records_are_refused_before_any_is_built() -> None:
    data = raw_tx([BAD_REC] + [A_REC] * LIMITS.max_records)
    with pytest.raises(InvalidUpdate) as built:
        Transaction.from_bytes(data)  # no limits: records are built, the first one fails
    assert built.value.reason == RejectReason.BAD_RECORD
    with pytest.raises(InvalidUpdate) as bounded:
        Transaction.from_bytes(data, limits=LIMITS)
    assert bounded.value.reason == RejectReason.TOO_MANY_RECORDS
    with pytest.raises(InvalidUpdate) as batch:
        TxBatch.from_bytes(_batch(data), limits=LIMITS)
    assert batch.value.reason == RejectReason.TOO_MANY_RECORDS


def _batch(*txs: bytes) -> bytes:
    wire = cbor2.loads(TxBatch((Transaction.sign(body(), OWNER, GENESIS.hash()),)).to_bytes())
    wire[-1] = list(txs)
    return encode(wire)


@pytest.mark.parametrize("items", [3, 400], ids=["by-the-items", "by-the-body-length"])
def test_a_record_set_over_the_byte_limit_is_refused_before_any_is_built(items: int) -> None:
    limits = RecordLimits(max_records=1000, max_bytes=30)  # 3 items: 32 bytes of records
    data = raw_tx([BAD_REC] + [A_REC] * (items - 1))
    with pytest.raises(InvalidUpdate) as info:
        Transaction.from_bytes(data, limits=limits)
    assert info.value.reason == RejectReason.RECORDS_TOO_LARGE


def test_a_set_exactly_at_the_limits_decodes() -> None:
    """The decoder's bounds are the rules' own: it never refuses what `check_tx_static` accepts."""
    records = [[f"h{i:03d}", 1, 300, b"\x0a\x00\x00\x01"] for i in range(LIMITS.max_records)]
    size = sum(len(encode(r)) for r in records)
    tx = Transaction.from_bytes(
        raw_tx(records), limits=RecordLimits(max_records=64, max_bytes=size)
    )
    assert len(tx.body.records) == 64
    with pytest.raises(InvalidUpdate):
        Transaction.from_bytes(raw_tx(records[:-1] + [["h999", 1, 300, b"\x0a\x00\x00\x02"]]),
                               limits=RecordLimits(max_records=64, max_bytes=size - 1))  # fmt: skip


def test_the_body_overhead_bound_holds_for_the_largest_other_fields() -> None:
    records = tuple(
        Record.from_cbor([f"h{i:04d}", 1, 300, b"\x0a\x00\x00\x01"]) for i in range(300)
    )
    widest = TxBody(
        chain_id="c" * 64, domain="d" * 253, seq=2**63 - 1, prev=b"\x01" * 32, op=Op.RELEASE,
        records=records, owner=OWNER.public_key, valid_until=2**63 - 1,
    )  # fmt: skip
    records_size = sum(len(encode(r.to_cbor())) for r in records)
    assert len(widest.to_bytes()) - records_size <= MAX_BODY_OVERHEAD


def test_a_remembered_tx_is_still_held_to_the_limits() -> None:
    data = raw_tx([[f"h{i:03d}", 1, 300, b"\x0a\x00\x00\x01"] for i in range(65)])
    assert len(Transaction.from_bytes(data).body.records) == 65  # decoded and remembered
    with pytest.raises(InvalidUpdate) as info:
        Transaction.from_bytes(data, limits=LIMITS)
    assert info.value.reason == RejectReason.TOO_MANY_RECORDS


# -- proposals: the header first --


def header(height: int = 1) -> BlockHeader:
    return BlockHeader(
        chain_id=PARAMS.chain_id, height=height, prev_block=b"\x02" * 32, time_ms=5,
        proposer=KEYS[1].public_key, tx_root=tx_root([]), state_root=b"\x03" * 32,
        validators_hash=PARAMS.validators.hash(),
        next_validators_hash=PARAMS.validators.hash(),
    )  # fmt: skip


def proposal_bytes(
    key_index: int, tx_items: list[bytes], *, round_: int = 0, genesis_hash: bytes | None = None
) -> bytes:
    """A proposal for height 1 signed by validator `key_index`, its block carrying `tx_items`."""
    block = Block(header=header(), txs=())
    proposal = Proposal.create(
        KEYS[key_index], chain_id=PARAMS.chain_id, genesis_hash=genesis_hash or GENESIS.hash(),
        round_=round_, block=block, pol_round=-1,
    )  # fmt: skip
    wire = cbor2.loads(proposal.to_bytes())
    block_wire = cbor2.loads(block.to_bytes())
    block_wire[-1] = tx_items
    wire[wire.index(block.to_bytes())] = encode(block_wire)
    return encode(wire)


JUNK = [encode(["not", "a", "transaction"])]  # MALFORMED once decoded


def test_height_1_round_0_is_led_by_validator_1() -> None:
    assert PARAMS.validators.proposer(1, 0) == KEYS[1].public_key


def test_a_junk_body_fails_only_once_decoded() -> None:
    with pytest.raises(InvalidUpdate) as info:
        decode_consensus(proposal_bytes(2, JUNK))  # no params: the body is decoded at once
    assert info.value.reason == RejectReason.MALFORMED
    with pytest.raises(InvalidUpdate) as info:
        decode_consensus(
            proposal_bytes(1, JUNK), PARAMS
        )  # the proposer's: authenticated, then decoded
    assert info.value.reason == RejectReason.MALFORMED


@pytest.mark.parametrize("wrapped", [False, True], ids=["first-hand", "resent"])
def test_a_proposal_from_a_non_proposer_is_refused_before_its_body_is_decoded(
    wrapped: bool,
) -> None:
    data = proposal_bytes(2, JUNK)
    if wrapped:
        data = Resent(nonce=7, payload=data).to_bytes()
    with pytest.raises(InvalidUpdate) as info:
        decode_consensus(data, PARAMS)
    assert info.value.reason == RejectReason.BAD_PROPOSER


def test_a_proposal_badly_signed_is_refused_before_its_body_is_decoded() -> None:
    with pytest.raises(InvalidUpdate) as info:
        decode_consensus(proposal_bytes(1, JUNK, genesis_hash=b"\x09" * 32), PARAMS)
    assert info.value.reason == RejectReason.BAD_SIGNATURE


def test_a_proposals_transactions_are_held_to_the_genesis_limits() -> None:
    over = raw_tx([BAD_REC] + [A_REC] * LIMITS.max_records)
    with pytest.raises(InvalidUpdate) as info:
        decode_consensus(proposal_bytes(1, [over]), PARAMS)
    assert info.value.reason == RejectReason.TOO_MANY_RECORDS


def test_a_good_proposal_decodes_the_same_either_way() -> None:
    tx = Transaction.sign(body(), OWNER, GENESIS.hash())
    data = proposal_bytes(1, [tx.to_bytes()])
    checked = decode_consensus(data, PARAMS)
    assert checked == decode_consensus(data) == Proposal.from_bytes(data)
    assert isinstance(checked, Proposal) and checked.block.txs == (tx,)
    assert checked.to_bytes() == data
