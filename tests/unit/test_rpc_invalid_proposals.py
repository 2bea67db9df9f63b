"""The RPC's view of invalid proposals: what `GET /v1/evidence` lists beside equivocations."""

from __future__ import annotations

from chain.block import Block, BlockHeader, tx_root
from chain.consensus_messages import InvalidProposal, Proposal
from ledgerdns.api.codec import invalid_proposal_json
from ledgerdns.rpc.openapi import openapi_spec
from tools.devchain import dev_key
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)
KEY = dev_key("validator", 3)


def record() -> InvalidProposal:
    header = BlockHeader(
        chain_id=GENESIS.chain_id, height=7, prev_block=b"\x00" * 32, time_ms=1000,
        proposer=KEY.public_key, tx_root=tx_root([]), state_root=b"\x09" * 32,
        validators_hash=GENESIS.params.validators.hash(),
        next_validators_hash=GENESIS.params.validators.hash(),
    )  # fmt: skip
    block = Block(header=header, txs=())
    proposal = Proposal.create(
        KEY, chain_id=GENESIS.chain_id, genesis_hash=GENESIS.hash(), round_=2, block=block,
        pol_round=-1,
    )  # fmt: skip
    return InvalidProposal(proposal=proposal, reason="bad-state-root: block 7: state_root")


def test_invalid_proposal_json_names_the_validator_and_keeps_the_proof() -> None:
    r = record()
    doc = invalid_proposal_json(r, GENESIS)
    assert doc == {
        "validator": GENESIS.validator_names[3],
        "validator_key": bytes(KEY.public_key).hex(),
        "height": 7,
        "round": 2,
        "block_hash": r.proposal.block.hash.hex(),
        "reason": "bad-state-root: block 7: state_root",
        "hex": r.to_bytes().hex(),
    }
    assert InvalidProposal.from_bytes(bytes.fromhex(doc["hex"])) == r


def test_openapi_describes_the_invalid_proposal_fields() -> None:
    spec = openapi_spec()
    schema = spec["components"]["schemas"]["InvalidProposal"]
    assert set(schema["properties"]) == set(invalid_proposal_json(record(), GENESIS))
    evidence = spec["paths"]["/v1/evidence"]["get"]["responses"]["200"]
    props = evidence["content"]["application/json"]["schema"]["properties"]
    assert set(props) == {"evidence", "invalid_proposals"}
