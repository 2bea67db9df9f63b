"""The validator-set views of the RPC (`ledgerdns.rpc.validators`, `ledgerdns.api.codec`) over a
real `Ledger` whose set changes: the set in force, pending proposals, the history, and the
changes a light client follows, decoded back and checked by `chain.lightclient`."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from starlette.requests import Request

from chain.errors import InvalidUpdate
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.lightclient import follow_validator_set
from chain.store import MemoryStore
from ledgerdns.api import codec
from ledgerdns.rpc.model import RpcModel
from ledgerdns.rpc.validators import ValidatorEndpoints
from ledgerdns.services import ValidatorInfo
from tests.unit.test_validator_changes import (
    KEYS,
    add,
    approve_tx,
    change_tx,
    finalize,
    make_genesis,
)


class Node:
    """What the node saw of its validators: v0 only (the others never spoke)."""

    def validators(self) -> list[ValidatorInfo]:
        return [ValidatorInfo(name="old-name", public_key=bytes(KEYS[0].public_key), online=True,
                              last_vote_height=5, last_vote_round=0, last_seen_ms=9)]  # fmt: skip


def endpoints(ledger: Ledger, genesis: Genesis) -> ValidatorEndpoints:
    model = RpcModel(genesis=genesis, chain=ledger, pool=None, node=Node(), writer=None)  # type: ignore[arg-type]
    return ValidatorEndpoints(model)


def get(handler: Any, query: str = "") -> dict[str, Any]:
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": query.encode(),
             "headers": []}  # fmt: skip
    response = trio.run(handler, Request(scope))
    return dict(json.loads(response.body))


@pytest.fixture
def changed() -> tuple[Ledger, Genesis, bytes]:
    """v4 added (effective at 4), then a pending proposal to add v5 with one approval."""
    genesis = make_genesis()
    ledger = Ledger(MemoryStore(), genesis)
    ledger.initialize()
    proposal = change_tx(ledger, KEYS[0], add("v4", KEYS[4]))
    finalize(ledger, [proposal, approve_tx(ledger, KEYS[1], proposal.txid),
                      approve_tx(ledger, KEYS[2], proposal.txid)])  # fmt: skip
    finalize(ledger, [])
    finalize(ledger, [])  # height 3: decided by the new set of 5
    pending = change_tx(ledger, KEYS[4], add("v5", KEYS[5]))
    finalize(ledger, [pending])
    return ledger, genesis, pending.txid


def test_the_set_in_force_pending_proposals_and_history(changed: tuple[Ledger, Genesis, bytes]) -> None:
    ledger, genesis, pending_id = changed
    doc = get(endpoints(ledger, genesis).validators)
    assert doc["height"] == 4 and doc["quorum"] == 4
    names = [v["name"] for v in doc["validators"]]
    assert names == ["v0", "v1", "v2", "v3", "v4"]  # the roster's names, not the node's
    assert doc["validators"][0]["online"] and doc["validators"][0]["last_vote_height"] == 5
    assert doc["validators"][4] == {"name": "v4", "public_key": bytes(KEYS[4].public_key).hex(),
                                    "online": False, "last_vote_height": -1,
                                    "last_vote_round": -1, "last_seen_ms": 0}  # fmt: skip
    [pending] = doc["pending"]
    assert pending["proposal"] == pending_id.hex() and pending["change"].startswith("add v5 ")
    assert (pending["action"], pending["name"]) == ("add", "v5")
    assert (pending["approvals"], pending["needed"], pending["height"]) == (1, 4, 4)
    assert [m["name"] for m in pending["approved_by"]] == ["v4"] and pending["proposer"]["name"] == "v4"
    history = [(r["from_height"], r["until_height"], r["state"], len(r["validators"]))
               for r in doc["history"]]  # fmt: skip
    assert history == [(1, 2, "past", 4), (3, None, "current", 5)] and doc["scheduled"] == []


def test_a_scheduled_set_is_listed_before_it_starts() -> None:
    genesis = make_genesis(1)
    ledger = Ledger(MemoryStore(), genesis)
    ledger.initialize()
    finalize(ledger, [change_tx(ledger, KEYS[0], add("v1", KEYS[1]))])  # quorum of one: at once
    doc = get(endpoints(ledger, genesis).validators)
    assert [r["state"] for r in doc["history"]] == ["current", "scheduled"]
    assert doc["scheduled"][0]["from_height"] == 3 and doc["history"][0]["until_height"] == 2
    assert [v["name"] for v in doc["validators"]] == ["v0"]
    assert get(endpoints(ledger, genesis).history)["changes"] == []  # block 2 is not final yet


def test_the_history_is_what_a_light_client_follows(changed: tuple[Ledger, Genesis, bytes]) -> None:
    ledger, genesis, _ = changed
    api = endpoints(ledger, genesis)
    doc = get(api.history)
    [change] = doc["changes"]
    assert change["from_height"] == 3
    assert change["roster"]["names"] == ["v0", "v1", "v2", "v3", "v4"]
    assert change["roster"]["public_keys"][4] == bytes(KEYS[4].public_key).hex()
    decoded = [codec.set_change_from_json(c) for c in doc["changes"]]
    followed = follow_validator_set(genesis.params, decoded)
    assert [(h, v.n) for h, v in followed] == [(1, 4), (3, 5)]
    assert get(api.history, "from_height=4")["changes"] == []
    with pytest.raises(InvalidUpdate):
        codec.set_change_from_json({**change, "from_height": 5})
    with pytest.raises(InvalidUpdate):
        codec.set_change_from_json({**change, "roster_hex": "zz"})


def test_blocks_and_validator_ops_are_named_by_the_set_of_their_height(
    changed: tuple[Ledger, Genesis, bytes],
) -> None:
    ledger, genesis, pending_id = changed
    block = ledger.get_block(4)
    cert = ledger.get_certificate(4)
    doc = codec.block_json(block, 0, cert, ledger.roster_at(4))
    assert "v4" in doc["certificate"]["signers"] and doc["proposer"] in ("v0", "v1", "v2", "v3", "v4")
    assert doc["next_validators_hash"] == ledger.validators_at(5).hash().hex()
    [tx] = block.txs
    assert codec.tx_json(tx)["change"] == f"add v5 {bytes(KEYS[5].public_key).hex()}"
    approval = approve_tx(ledger, KEYS[1], pending_id)
    assert codec.tx_json(approval)["change"] == pending_id.hex()
    # A genesis still names the first set (what callers that have no ledger pass).
    assert codec.validator_name(genesis, bytes(KEYS[1].public_key)) == "v1"
    assert codec.validator_name(genesis, bytes(KEYS[4].public_key)) is None
