"""The hex vectors published in docs/protocol.md are what the code produces, and they verify."""

from __future__ import annotations

import re
from pathlib import Path

import coincurve

from chain.block import BlockHeader
from chain.consensus_messages import Proposal
from chain.crypto import sha256, verify
from chain.encoding import Kind, frame
from chain.quorum import CommitCertificate, ValidatorSet
from chain.smt import Proof, verify_proof
from chain.tx import Op, Transaction
from chain.validators import Roster, ValidatorChange
from tools.vectors import compute

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def published() -> dict[str, str]:
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| `([0-9a-f]+)` \|$", DOC.read_text(), re.MULTILINE)
    return dict(rows)


def test_docs_match_code() -> None:
    assert published() == compute()


def test_vectors_are_self_consistent() -> None:
    v = {k: bytes.fromhex(x) for k, x in published().items()}
    tx = Transaction.from_bytes(v["tx"])
    assert tx.txid == v["txid"] == sha256(v["tx_body"])
    genesis_hash = v["genesis_hash"]
    assert v["tx_signing_bytes"] == frame(Kind.TX_SIGNING, genesis_hash, tx.txid)
    assert tx.is_signed_by(v["public_key"], genesis_hash)
    assert not tx.is_signed_by(v["public_key"], bytes(32))  # the genesis hash is signed
    assert coincurve.PrivateKey(v["secret_key"]).public_key.format(True) == v["public_key"]
    assert verify(v["public_key"], v["signature_of_sha256_ledgerdns_test_vector"], sha256(b"ledgerdns test vector"))
    header = BlockHeader.from_bytes(v["header"])
    assert header.hash == v["block_hash"] and header.state_root == v["state_root_two_domains"]
    cert = CommitCertificate.from_bytes(v["certificate"])
    validators = ValidatorSet((v["public_key"],))  # type: ignore[arg-type]
    cert.verify(validators, "vectors", header.hash, genesis_hash=genesis_hash)
    proposal = Proposal.from_bytes(v["proposal"])
    assert proposal.digest(genesis_hash) == sha256(v["proposal_sign_bytes"])
    assert proposal.is_valid_signature(genesis_hash) and proposal.block.hash == v["block_hash"]
    proof = Proof.from_bytes(v["proof_alice_in_two_domain_tree"])
    assert verify_proof(header.state_root, v["tree_key_alice"], v["domain_state_hash"], proof)


def test_network_message_vectors_decode() -> None:
    from chain.wire import CommitNotice, Resent, Status, TxBatch, decode_sync_request

    v = {k: bytes.fromhex(x) for k, x in published().items()}
    assert TxBatch.from_bytes(v["gossip_tx_batch_one_tx"]).txs[0].to_bytes() == v["tx"]
    notice = CommitNotice.from_bytes(v["gossip_commit_notice"])
    assert notice.block_hash == v["block_hash"] and notice.certificate.to_bytes() == v["certificate"]
    assert Status.from_bytes(v["sync_status"]).head_hash == v["block_hash"]
    assert decode_sync_request(v["sync_status_request"]).to_bytes() == v["sync_status_request"]
    request = decode_sync_request(v["sync_blocks_request_from_1_count_500"])
    assert request.to_bytes() == v["sync_blocks_request_from_1_count_500"]
    assert Resent.from_bytes(v["gossip_resent_precommit_nonce_7"]).payload == v["precommit"]


def test_naming_vectors_verify() -> None:
    from chain.commits import make_commitment
    from chain.stamp import stamp_seed, verify_stamp
    from tools.vectors import VECTOR_NAMING

    v = {k: bytes.fromhex(x) for k, x in published().items()}
    commit, reveal = Transaction.from_bytes(v["commit_tx"]), Transaction.from_bytes(v["reveal_tx"])
    body = reveal.body
    assert commit.body_bytes == v["commit_body"] and reveal.body_bytes == v["reveal_body"]
    assert b"alice" not in v["commit_tx"] and body.domain == "alice.p2p" and body.commit_height == 5
    commitment = make_commitment(v["genesis_hash"], body.domain, body.owner, body.salt)
    assert commitment == commit.body.commitment == v["name_commitment"]
    seed = stamp_seed(v["genesis_hash"], commitment, commit.body.owner, commit.body.stamp_work)
    assert seed == v["stamp_seed_work_2"] and commit.body.stamp == v["stamp_work_2"]
    verify_stamp(commit.body.stamp, seed, 2, VECTOR_NAMING)
    assert commit.is_signed_by(v["public_key"], v["genesis_hash"])
    assert reveal.is_signed_by(v["public_key"], v["genesis_hash"])


def test_validator_vectors_are_self_consistent() -> None:
    v = {k: bytes.fromhex(x) for k, x in published().items()}
    propose = Transaction.from_bytes(v["validator_propose_tx"])
    approve = Transaction.from_bytes(v["validator_approve_tx"])
    assert propose.body.op == Op.VALIDATOR_PROPOSE and propose.body.change == v["validator_change_add"]
    assert approve.body.op == Op.VALIDATOR_APPROVE and approve.body.change == propose.txid
    for tx in (propose, approve):
        assert tx.is_signed_by(v["public_key"], v["genesis_hash"])
    change = ValidatorChange.from_bytes(v["validator_change_add"])
    roster = Roster.from_bytes(v["roster_two"])
    assert roster.key_of("ns-b") == change.key and roster.validators.hash() == v["roster_two_validators_hash"]
