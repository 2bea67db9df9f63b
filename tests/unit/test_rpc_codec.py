"""JSON views of chain objects for the RPC: fields, hex, and the ways back."""

from __future__ import annotations

import dataclasses
import json

import pytest

from chain.block import Block
from chain.errors import InvalidUpdate, RejectReason
from chain.genesis import Genesis, InitialDomain, make_single_validator_genesis
from chain.ledger import Ledger, genesis_anchor
from chain.records import Record
from chain.state import DomainState, DomainStatus
from chain.store import MemoryStore
from chain.tx import Op
from ledgerdns.api import codec
from ledgerdns.rpc.errors import ApiError, reject_status
from ledgerdns.services import NodeStatus, ValidatorInfo
from tools.devchain import certify, dev_key, next_tx, register_tx, soon

VALIDATOR = dev_key("validator", 0)
OWNER = dev_key("owner", 0)
RECORDS = (  # canonical order: by name, then type
    Record.from_text('@ 60 TXT "hello world"', origin="alice.p2p"),
    Record.from_text("www 300 IN A 10.0.0.1", origin="alice.p2p"),
)


def make_genesis() -> Genesis:
    base = make_single_validator_genesis(VALIDATOR.public_key, genesis_time_ms=1_000_000)
    seed = InitialDomain(domain="seed.p2p", owner=OWNER.public_key, records=())
    return dataclasses.replace(base, domains=(seed,))


@pytest.fixture
def ledger() -> Ledger:
    led = Ledger(MemoryStore(), make_genesis())
    led.initialize()
    return led


def finalize(ledger: Ledger, txs: list) -> Block:  # type: ignore[type-arg]
    block, rejected = ledger.build_block(
        txs, time_ms=ledger.head.time_ms + 1000, proposer=VALIDATOR.public_key
    )
    assert not rejected
    ledger.apply_block(block, certify(ledger, block.hash, block.height, [VALIDATOR]))
    return block


def test_tx_json_fields_and_round_trip(ledger: Ledger) -> None:
    tx = register_tx(ledger.genesis, OWNER, "alice.p2p", RECORDS, valid_until=soon(ledger))
    doc = codec.tx_json(tx)
    assert doc == {
        "txid": tx.txid.hex(), "domain": "alice.p2p", "seq": 0, "prev": "00" * 32,
        "op": "register", "owner": bytes(OWNER.public_key).hex(),
        "valid_until": tx.body.valid_until,
        "records": ['@ 60 IN TXT "hello world"', "www 300 IN A 10.0.0.1"],
        "signature": tx.signature.hex(), "size": tx.size, "wire": tx.to_bytes().hex(),
    }
    assert json.loads(json.dumps(doc)) == doc
    assert codec.tx_from_json(doc) == tx
    with pytest.raises(InvalidUpdate, match="txid does not match"):
        codec.tx_from_json({**doc, "txid": "00" * 32})
    with pytest.raises(InvalidUpdate) as err:
        codec.tx_from_json({"wire": "xyz"})
    assert err.value.reason == RejectReason.MALFORMED


@pytest.mark.parametrize(
    ("text", "size", "ok"),
    [("00ff", None, b"\x00\xff"), ("00FF", 2, b"\x00\xff"), ("", None, b""),
     ("0", None, None), ("zz", None, None), ("00 ff", None, None), ("00", 2, None),
     (5, None, None)],
)
def test_parse_hex(text: object, size: int | None, ok: bytes | None) -> None:
    if ok is None:
        with pytest.raises(ValueError):
            codec.parse_hex(text, "x", size=size)
    else:
        assert codec.parse_hex(text, "x", size=size) == ok


@pytest.mark.parametrize(
    ("text", "result"),
    [(None, None), ("0", 0.0), ("2.5", 2.5), ("60", 60.0),
     ("61", "error"), ("-1", "error"), ("nan", "error"), ("inf", "error"), ("soon", "error")],
)
def test_parse_wait(text: str | None, result: object) -> None:
    if result == "error":
        with pytest.raises(ValueError, match="wait"):
            codec.parse_wait(text, maximum=60)
    else:
        assert codec.parse_wait(text, maximum=60) == result


def test_domain_status_and_view() -> None:
    state = DomainState(
        domain="alice.p2p", owner=OWNER.public_key, seq=3, head=b"\x01" * 32,
        records=RECORDS, expires_at=1000, status=DomainStatus.ACTIVE,
    )
    assert codec.domain_status(state, 999) == "active"
    assert codec.domain_status(state, 1000) == "expired"
    released = dataclasses.replace(state, status=DomainStatus.RELEASED)
    assert codec.domain_status(released, 0) == "released"
    assert codec.domain_status(dataclasses.replace(state, expires_at=0), 10**12) == "active"
    doc = codec.domain_json(state, (), 0)
    assert doc["head"] == "01" * 32 and doc["seq"] == 3 and doc["pending"] == []
    assert doc["records"] == ['@ 60 IN TXT "hello world"', "www 300 IN A 10.0.0.1"]


def test_block_and_certificate_views(ledger: Ledger) -> None:
    tx = register_tx(ledger.genesis, OWNER, "alice.p2p", RECORDS, valid_until=soon(ledger))
    block = finalize(ledger, [tx])
    cert = ledger.get_certificate(1)
    doc = codec.block_json(block, 123, cert, ledger.genesis)
    assert doc["proposer"] == "validator-0" and doc["size"] == 123
    assert doc["certificate"]["signers"] == ["validator-0"]
    assert doc["certificate"]["hex"] == cert.to_bytes().hex()
    assert doc["header"] == block.header.to_bytes().hex()
    assert [t["txid"] for t in doc["txs"]] == [tx.txid.hex()]
    summary = codec.block_summary_json(ledger.get_block(0), 50, ledger.genesis)
    assert summary["proposer"] is None and summary["txs"] == 0 and summary["height"] == 0


def test_proof_view_round_trips_and_verifies(ledger: Ledger) -> None:
    finalize(ledger, [register_tx(ledger.genesis, OWNER, "alice.p2p", RECORDS,
                                  valid_until=soon(ledger))])
    params = ledger.genesis.params
    for name in ("alice.p2p", "nobody.p2p"):
        proof = ledger.prove_domain(name)
        doc = json.loads(json.dumps(codec.domain_proof_json(proof, 0)))
        decoded = codec.domain_proof_from_json(doc)
        assert decoded.verify(params) == ledger.get_domain(name)
        assert (doc["state"] is None) == (name == "nobody.p2p")
    doc = codec.domain_proof_json(ledger.prove_domain("alice.p2p"), 0)
    with pytest.raises(InvalidUpdate, match="does not match"):
        codec.domain_proof_from_json({**doc, "domain": "bob.p2p"})
    with pytest.raises(InvalidUpdate) as err:
        codec.domain_proof_from_json({**doc, "bundle": "00"})
    assert err.value.reason == RejectReason.MALFORMED


def test_history_entries(ledger: Ledger) -> None:
    anchor = genesis_anchor(ledger.params.chain_id, "seed.p2p")
    entry = codec.history_entry_json("seed.p2p", 0, anchor, None, ledger.params.chain_id)
    assert entry["genesis"] is True and entry["height"] == 0 and entry["tx"] is None
    tx = next_tx(ledger.genesis, ledger, OWNER, "seed.p2p", (), op=Op.RENEW,
                 valid_until=soon(ledger))
    entry = codec.history_entry_json("seed.p2p", 1, tx.txid, (tx, 4, 2), ledger.params.chain_id)
    assert (entry["height"], entry["index"], entry["genesis"]) == (4, 2, False)
    assert entry["tx"]["op"] == "renew"


def test_plain_dataclasses_and_status() -> None:
    info = ValidatorInfo(name="v", public_key=b"\xab", online=True, last_vote_height=-1,
                         last_vote_round=0, last_seen_ms=0)
    assert codec.plain_json([info]) == [{
        "name": "v", "public_key": "ab", "online": True, "last_vote_height": -1,
        "last_vote_round": 0, "last_seen_ms": 0,
    }]
    genesis = make_genesis()
    status = NodeStatus(
        chain_id="c", genesis_hash=b"\x01", peer_id="p", validator=None, height=1,
        head_hash=b"\x02", head_time_ms=5, syncing=False, sync_target=1, mempool_txs=0,
        peers=0, consensus_height=2, consensus_round=0, consensus_step="propose", version="v",
    )
    doc = codec.status_json(status, genesis)
    assert doc["genesis_hash"] == "01" and doc["head_hash"] == "02" and doc["tlds"] == ["p2p"]


@pytest.mark.parametrize(
    ("reason", "status"),
    [(RejectReason.MALFORMED, 400), (RejectReason.BAD_SIGNATURE, 400),
     (RejectReason.NOT_OWNER, 400), (RejectReason.BAD_SEQUENCE, 409),
     (RejectReason.NAME_TAKEN, 409), (RejectReason.DUPLICATE, 409),
     (RejectReason.MEMPOOL_FULL, 503), (RejectReason.DOMAIN_QUEUE_FULL, 503)],
)
def test_reject_status(reason: RejectReason, status: int) -> None:
    assert reject_status(reason) == status
    error = ApiError.rejected(InvalidUpdate(reason, "why"))
    assert (error.status, error.to_json()) == (status, {"error": reason.value, "message": "why"})
