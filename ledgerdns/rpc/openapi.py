"""The OpenAPI 3.1 description of the RPC, served at ``/v1/openapi.json``.

docs/openapi.json is this document as written by
``python -m ledgerdns.rpc.openapi > docs/openapi.json``; a test keeps the two
identical and checks that every route is described.
"""

from __future__ import annotations

import json
from typing import Any

Json = dict[str, Any]

HEX = {"type": "string", "pattern": "^([0-9a-f]{2})*$"}
HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
INT = {"type": "integer", "minimum": 0}


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: Json, required: list[str] | None = None) -> Json:
    return {"type": "object", "properties": props, "required": required or list(props)}


def _nullable(schema: Json) -> Json:
    return {"oneOf": [schema, {"type": "null"}]}


def _list_of(name: str) -> Json:
    return {"type": "array", "items": _ref(name)}


def _schemas() -> Json:
    tx_fields: Json = {
        "txid": HASH, "domain": {"type": "string"}, "seq": INT, "prev": HASH,
        "op": {"enum": ["register", "update", "transfer", "renew", "release", "commit",
                        "validator_propose", "validator_approve"]},
        "owner": HEX, "valid_until": INT,
        "records": {"type": "array", "items": {"type": "string"},
                    "description": "zone-file lines relative to the domain"},
        "signature": HEX, "size": INT,
        "wire": {**HEX, "description": "Transaction.to_bytes()"},
    }
    tx = _obj(
        {**tx_fields, "change": {"type": "string", "description": "validator ops only: a "
                                 "proposal's change ('add NAME KEY', 'remove NAME', 'rotate NAME "
                                 "KEY'), an approval's proposal id"}},
        required=list(tx_fields),
    )
    domain = _obj(
        {
            "domain": {"type": "string"}, "owner": HEX, "seq": INT, "head": HASH,
            "records": {"type": "array", "items": {"type": "string"}},
            "expires_at": {**INT, "description": "unix seconds of block time; 0 = never"},
            "status": {"enum": ["active", "released", "expired"]},
            "pending": {**_list_of("Tx"), "description": "mempool transactions, in seq order"},
            "provisional_until": _nullable({
                **INT,
                "description": "GET /v1/domains/{name} only: on a network with commit-reveal, the "
                "last height at which an earlier commit may still take the name over (its holder "
                "cannot change it until then); null when settled",
            }),
        },
        required=["domain", "owner", "seq", "head", "records", "expires_at", "status", "pending"],
    )
    certificate = _obj(
        {
            "height": INT, "round": INT, "block_hash": HASH,
            "signers": {"type": "array", "items": {"type": "string"}}, "hex": HEX,
        }
    )
    block_summary = _obj(
        {
            "height": INT, "hash": HASH, "time_ms": INT,
            "proposer": _nullable({"type": "string"}), "proposer_key": HEX,
            "txs": INT, "size": INT,
        }
    )
    block = _obj(
        {
            "height": INT, "hash": HASH, "chain_id": {"type": "string"}, "prev_block": HASH,
            "time_ms": INT, "proposer": _nullable({"type": "string"}), "proposer_key": HEX,
            "tx_root": HASH, "state_root": HASH, "validators_hash": HASH,
            "next_validators_hash": HASH, "header": HEX,
            "size": INT, "txs": _list_of("Tx"), "certificate": _nullable(_ref("Certificate")),
        }
    )
    error = _obj(
        {"error": {"type": "string", "description": "a RejectReason value or an RPC code"},
         "message": {"type": "string"}}
    )
    invalid_proposal = _obj(
        {
            "validator": _nullable({"type": "string"}), "validator_key": HEX,
            "height": INT, "round": INT, "block_hash": HASH,
            "reason": {"type": "string", "description": "the check's error: code, detail"},
            "hex": {**HEX, "description": "chain.consensus_messages.InvalidProposal bytes"},
        }
    )
    return {
        "Tx": tx, "Domain": domain, "Certificate": certificate,
        "BlockSummary": block_summary, "Block": block, "Error": error,
        "InvalidProposal": invalid_proposal, **_validator_schemas(),
    }


def _validator_schemas() -> Json:
    member = _obj({"name": {"type": "string"}, "public_key": HEX})
    live = _obj({
        "name": {"type": "string"}, "public_key": HEX,
        "online": {"type": "boolean", "description": "a message signed by it arrived lately, or its peer is connected"},
        "last_vote_height": {"type": "integer", "description": "-1: no vote seen"},
        "last_vote_round": {"type": "integer"},
        "last_seen_ms": {**INT, "description": "unix ms; 0 = never"},
    })  # fmt: skip
    roster = _obj({
        "from_height": INT, "until_height": _nullable(INT),
        "state": {"enum": ["past", "current", "scheduled"]},
        "validators": {"type": "array", "items": member}, "quorum": INT, "validators_hash": HASH,
    })  # fmt: skip
    proposal = _obj({
        "proposal": {**HASH, "description": "the id: the proposing transaction's txid"},
        "change": {"type": "string", "description": "'add NAME KEY', 'remove NAME', 'rotate NAME KEY'"},
        "action": {"enum": ["add", "remove", "rotate"]}, "name": {"type": "string"},
        "public_key": _nullable(HEX), "proposer": member,
        "approved_by": {"type": "array", "items": member},
        "approvals": {**INT, "description": "approvals by members of the set now in force"},
        "needed": {**INT, "description": "that set's quorum: the change is scheduled on reaching it"},
        "height": {**INT, "description": "the block that holds the proposal"},
        "lapses_at": {**INT, "description": "the height at whose start it lapses unapproved"},
    })  # fmt: skip
    change = _obj({
        "from_height": {**INT, "description": "the first height the new set decides"},
        "roster": _obj({"names": {"type": "array", "items": {"type": "string"}},
                        "public_keys": {"type": "array", "items": HEX}}),
        "roster_hex": {**HEX, "description": "chain.validators.Roster bytes"},
        "header_hex": {**HEX, "description": "BlockHeader of from_height - 1: its "
                       "next_validators_hash names the new set"},
        "certificate_hex": {**HEX, "description": "that block's CommitCertificate, by the old set"},
    })  # fmt: skip
    return {"Validator": live, "Roster": roster, "ValidatorProposal": proposal,
            "SetChange": change}  # fmt: skip


def _param(name: str, where: str, schema: Json, description: str) -> Json:
    return {"name": name, "in": where, "required": where == "path", "schema": schema,
            "description": description}


WAIT = _param("wait", "query", {"type": "number", "minimum": 0, "maximum": 60},
              "seconds to wait for finalization (at most 60)")
NAME = _param("name", "path", {"type": "string"}, "a domain (normalized: Alice.P2P = alice.p2p)")


def _errors(*statuses: int) -> Json:
    text = {400: "bad request or refused transaction", 401: "missing or wrong token",
            404: "not found", 409: "conflicts with the chain or mempool",
            413: "body over 1 MiB", 503: "mempool full"}
    error = {"application/json": {"schema": _ref("Error")}}
    out = {str(s): {"description": text[s], "content": error} for s in statuses}
    out["401"] = {"description": text[401], "content": error}
    return out


def _get(summary: str, result: Json, params: list[Json] | None = None,
         errors: tuple[int, ...] = ()) -> Json:
    op: Json = {"summary": summary, "responses": {
        "200": {"description": "OK", "content": {"application/json": {"schema": result}}},
        **_errors(*errors),
    }}
    if params:
        op["parameters"] = params
    return {"get": op}


MAX_BATCH = 512


def _paths() -> Json:
    tx_location = {"height": INT, "index": INT}
    submit = {
        "summary": "Submit a signed transaction",
        "parameters": [WAIT],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _obj({"tx": {**HEX, "description": "Transaction.to_bytes()"}})}}},
        "responses": {
            "200": {"description": "finalized (within wait, or already)", "content": {
                "application/json": {"schema": _obj(
                    {"txid": HASH, "status": {"const": "finalized"}, **tx_location})}}},
            "202": {"description": "accepted, pending", "content": {"application/json": {
                "schema": _obj({"txid": HASH, "status": {"const": "pending"}})}}},
            **_errors(400, 409, 413, 503),
        },
    }
    submit_batch = {
        "summary": "Submit up to 512 signed transactions at once (load tools, zone imports)",
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _obj({"txs": {"type": "array", "maxItems": MAX_BATCH,
                                    "items": {**HEX, "description": "Transaction.to_bytes()"}}})}}},
        "responses": {
            "200": {"description": "one result per transaction, in order", "content": {
                "application/json": {"schema": _obj({"results": {"type": "array", "items": _obj({
                    "txid": _nullable(HASH), "status": {"enum": ["pending", "finalized", "refused"]},
                    "error": {"type": "string"}, "message": {"type": "string"}})}})}}},
            **_errors(400, 413),
        },
    }
    tx_result = _obj({"status": {"enum": ["finalized", "pending"]}, **tx_location,
                      "tx": _ref("Tx")}, ["status", "tx"])
    listing = {"type": "array", "items": {"type": "object"}}
    return {
        "/v1/status": _get("Node status", {"type": "object"}),
        "/v1/blocks": _get(
            "Blocks, newest first",
            _obj({"blocks": _list_of("BlockSummary"), "next_before": _nullable(INT)}),
            [_param("before", "query", INT, "only heights below this (default: from the head)"),
             _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100},
                    "default 20")],
            (400,),
        ),
        "/v1/blocks/{height}": _get(
            "One block with its transactions and certificate", _ref("Block"),
            [_param("height", "path", INT, "block height")], (400, 404),
        ),
        "/v1/txs": {"post": submit},
        "/v1/txs/batch": {"post": submit_batch},
        "/v1/txs/{txid}": _get(
            "A transaction, finalized or pending", tx_result,
            [_param("txid", "path", HASH, "transaction id"), WAIT], (400, 404),
        ),
        "/v1/domains": _get(
            "Domains in name order",
            _obj({"domains": _list_of("Domain"), "next": _nullable({"type": "string"})}),
            [_param("start", "query", {"type": "string"}, "first name to list"),
             _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000},
                    "default 100")],
            (400,),
        ),
        "/v1/domains/{name}": _get(
            "A domain's state and pending transactions (404 body has 'pending')",
            _ref("Domain"), [NAME], (400, 404),
        ),
        "/v1/domains/{name}/history": _get(
            "Every step of a domain's chain, oldest first",
            _obj({"domain": {"type": "string"}, "history": listing, "next_seq": _nullable(INT)}),
            [NAME, _param("from_seq", "query", INT, "first seq to list"),
             _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000},
                    "default 1000")],
            (400, 404),
        ),
        "/v1/domains/{name}/proof": _get(
            "A light-client proof of the domain's state at the head",
            _obj({"domain": {"type": "string"}, "height": INT, "block_hash": HASH,
                  "header": HEX, "certificate": HEX, "state": _nullable(_ref("Domain")),
                  "state_bytes": _nullable(HEX), "proof": HEX,
                  "bundle": {**HEX, "description": "chain.lightclient.DomainProof bytes"}}),
            [NAME], (400, 404),
        ),
        "/v1/mempool": _get(
            "Pending transactions in arrival order",
            _obj({"count": INT, "bytes": INT, "txs": _list_of("Tx")}),
            [_param("limit", "query", {"type": "integer", "minimum": 0, "maximum": 1000},
                    "default 100")],
            (400,),
        ),
        "/v1/peers": _get("Known peers", _obj({"peers": listing})),
        "/v1/validators": _get(
            "The validator set deciding the next block, pending changes, every set since genesis",
            _obj({"height": INT, "validators": _list_of("Validator"), "quorum": INT,
                  "validators_hash": HASH, "pending": _list_of("ValidatorProposal"),
                  "scheduled": _list_of("Roster"), "history": _list_of("Roster")}),
        ),
        "/v1/validators/history": _get(
            "Each change of the set whose announcing block is final, with what a light client "
            "checks it by (chain.lightclient.SetChange), oldest first",
            _obj({"height": INT, "changes": _list_of("SetChange")}),
            [_param("from_height", "query", INT, "only changes taking effect at or after this")],
            (400,),
        ),
        "/v1/evidence": _get(
            "Misbehaviour this node proved: equivocations and (the latest 100) invalid proposals",
            _obj({"evidence": listing, "invalid_proposals": _list_of("InvalidProposal")}),
        ),
        "/v1/openapi.json": _get("This document", {"type": "object"}),
        "/v1/admin/flush": {"post": {
            "summary": "Write the store's write buffer (LevelDB memtable) out now "
                       "(memory samples at the same point of its cycle: tools/soak.py)",
            "responses": {
                "200": {"description": "flushed", "content": {"application/json": {"schema": _obj(
                    {"flushed": {"const": True},
                     "leveldb_memory_bytes": {**INT, "description":
                                              "LevelDB's estimate: memtables and block cache"}})}}},
                **_errors(404),
            },
        }},
    }


def openapi_spec() -> Json:
    """The OpenAPI 3.1 document (a fresh dict each call)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ledgerdns node RPC",
            "version": "1",
            "description": "Local HTTP/JSON interface of a ledgerdns node. Every request needs "
            "'Authorization: Bearer <token>' from <data-dir>/rpc.token. Bytes are lower-case "
            "hex. See docs/rpc.md.",
        },
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def to_text() -> str:
    """The document as docs/openapi.json holds it."""
    return json.dumps(openapi_spec(), indent=2) + "\n"


if __name__ == "__main__":
    print(to_text(), end="")
