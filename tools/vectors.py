"""Test vectors for docs/protocol.md, computed from the code.

    python tools/vectors.py    # prints the vector table in Markdown

`tests/unit/test_vectors.py` recomputes every vector and compares it with the
table in docs/protocol.md, so the published bytes always match the code.
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
from dataclasses import replace

from chain.block import Block, BlockHeader, tx_root
from chain.commits import (
    Claim,
    CommitEntry,
    build_commit,
    build_reveal,
    claim_tree_key,
    commit_tree_key,
    make_commitment,
)
from chain.consensus_messages import Proposal, RelayedVotes, proposal_sign_bytes
from chain.crypto import PrivateKey, sha256
from chain.encoding import Kind, encode, frame
from chain.genesis import make_single_validator_genesis
from chain.params import NamingParams
from chain.quorum import CommitCertificate, ValidatorSet, Vote, VoteType, vote_sign_bytes
from chain.records import Record
from chain.smt import Proof, leaf_hash, root_of
from chain.stamp import renewal_seed, solve_stamp, stamp_seed
from chain.state import DomainState, DomainStatus, domain_key
from chain.tx import ZERO_HASH, Op, Transaction, TxBody
from chain.txbuilder import build_validator_tx
from chain.validators import ChangeAction, Roster, ValidatorChange
from chain.wire import BlocksRequest, CommitNotice, Resent, Status, StatusRequest, TxBatch

SECRET = bytes.fromhex("01" * 32)
CHAIN = "vectors"
GENESIS_HASH = b"\x22" * 32  # signed into transactions, votes and proposals, never sent


def compute() -> dict[str, str]:
    """Every vector, name -> lower-case hex (or decimal for sizes)."""
    key = PrivateKey.from_bytes(SECRET)
    out: dict[str, str] = {
        "secret_key": SECRET.hex(),
        "public_key": key.public_key.hex(),
        "signature_of_sha256_ledgerdns_test_vector": key.sign(b"ledgerdns test vector").hex(),
    }
    record = Record.from_text("www 300 A 10.0.0.1", origin="alice.p2p")
    out["record_www_a"] = encode(record.to_cbor()).hex()
    body = TxBody(
        chain_id=CHAIN, domain="alice.p2p", seq=0, prev=ZERO_HASH, op=Op.REGISTER,
        records=(record,), owner=key.public_key, valid_until=1_800_000_000,
    )
    tx = Transaction.sign(body, key, GENESIS_HASH)
    out["tx_body"] = tx.body_bytes.hex()
    out["txid"] = tx.txid.hex()
    out["genesis_hash"] = GENESIS_HASH.hex()
    out["tx_signing_bytes"] = frame(Kind.TX_SIGNING, GENESIS_HASH, tx.txid).hex()
    out["tx"] = tx.to_bytes().hex()
    state = DomainState(
        domain="alice.p2p", owner=key.public_key, seq=0, head=tx.txid, records=(record,),
        expires_at=0, status=DomainStatus.ACTIVE,
    )
    out["domain_state"] = state.to_bytes().hex()
    out["domain_state_hash"] = state.value_hash().hex()
    out["tree_key_alice"] = domain_key("alice.p2p").hex()
    items = {domain_key("alice.p2p"): state.value_hash(), domain_key("bob.p2p"): sha256(b"bob")}
    out["state_root_two_domains"] = root_of(items).hex()
    out["tx_root_one_tx"] = tx_root([tx]).hex()
    validators = ValidatorSet((key.public_key,))
    out["validators_hash"] = validators.hash().hex()
    header = BlockHeader(
        chain_id=CHAIN, height=1, prev_block=b"\x11" * 32, time_ms=1_700_000_000_000,
        proposer=key.public_key, tx_root=tx_root([tx]), state_root=root_of(items),
        validators_hash=validators.hash(),
        next_validators_hash=validators.hash(),
    )
    out["header"] = header.to_bytes().hex()
    out["block_hash"] = header.hash.hex()
    sign_bytes = vote_sign_bytes(
        CHAIN, GENESIS_HASH, VoteType.PRECOMMIT, 1, 0, header.hash, key.public_key
    )
    out["precommit_sign_bytes"] = sign_bytes.hex()
    vote = Vote.create(
        key, chain_id=CHAIN, genesis_hash=GENESIS_HASH, vtype=VoteType.PRECOMMIT, height=1,
        round_=0, block_hash=header.hash,
    )  # fmt: skip
    out["precommit"] = vote.to_bytes().hex()
    out["certificate"] = CommitCertificate.from_votes([vote], validators).to_bytes().hex()
    block = Block(header=header, txs=(tx,))
    out["proposal_sign_bytes"] = proposal_sign_bytes(
        CHAIN, GENESIS_HASH, 1, 0, header.hash, -1, key.public_key
    ).hex()
    proposal = Proposal.create(
        key, chain_id=CHAIN, genesis_hash=GENESIS_HASH, round_=0, block=block, pol_round=-1
    )
    out["proposal"] = proposal.to_bytes().hex()
    proof = Proof(
        siblings=(_sibling(items),), found_key=domain_key("alice.p2p"),
        found_value_hash=state.value_hash(),
    )
    out["proof_alice_in_two_domain_tree"] = proof.to_bytes().hex()
    # network messages (chain/wire.py)
    out["gossip_tx_batch_one_tx"] = TxBatch((tx,)).to_bytes().hex()
    cert = CommitCertificate.from_votes([vote], validators)
    out["gossip_commit_notice"] = CommitNotice(height=1, block_hash=header.hash, certificate=cert).to_bytes().hex()
    out["sync_status_request"] = StatusRequest().to_bytes().hex()
    out["sync_status"] = Status(chain_id=CHAIN, genesis_hash=GENESIS_HASH, height=1, head_hash=header.hash).to_bytes().hex()
    out["sync_blocks_request_from_1_count_500"] = BlocksRequest(start=1, count=500).to_bytes().hex()
    out["gossip_resent_precommit_nonce_7"] = Resent(nonce=7, payload=vote.to_bytes()).to_bytes().hex()
    out["link_relayed_votes_one_precommit"] = RelayedVotes((vote.to_bytes(),)).to_bytes().hex()
    out.update(_naming_vectors(key, record))
    out.update(_record_vectors(key))
    return out


def _record_vectors(key: PrivateKey) -> dict[str, str]:
    """Record types read through dnspython (issue 18), and a genesis with a nameserver set."""
    out: dict[str, str] = {}
    for name, line in [
        ("record_tlsa", "_443._tcp.www 300 TLSA 3 1 1 " + "44" * 32),
        ("record_https", "@ 300 HTTPS 1 . alpn=h2,h3 port=443"),
        ("record_ds", "sub 3600 DS 12345 13 2 " + "55" * 32),
    ]:
        out[name] = encode(Record.from_text(line, origin="alice.p2p").to_cbor()).hex()
    genesis = make_single_validator_genesis(
        key.public_key, genesis_time_ms=1_700_000_000_000, chain_id=CHAIN
    )
    out["genesis_hash_without_nameservers"] = genesis.hash().hex()
    with_set = replace(
        genesis, params=replace(genesis.params, nameservers=("ns1.example.net", "ns2.example.org"))
    )
    out["genesis_hash_with_nameservers"] = with_set.hash().hex()
    return out


# The stamp settings of the naming vectors: 2 sub-stamps of work 2, Argon2id of 8 KiB, 1 pass.
VECTOR_NAMING = NamingParams(
    reveal_delay=1, reveal_window=64, stamp_work=2, stamp_count=2, stamp_memory_kib=8
)
VECTOR_SALT = b"\x33" * 16


def _naming_vectors(key: PrivateKey, record: Record) -> dict[str, str]:
    """Commit-reveal registration (issue 15, docs/naming.md): a commit, its reveal, the leaves."""
    out: dict[str, str] = {}
    commitment = make_commitment(GENESIS_HASH, "alice.p2p", key.public_key, VECTOR_SALT)
    out["name_commitment"] = commitment.hex()
    seed = stamp_seed(GENESIS_HASH, commitment, key.public_key, 2)
    out["stamp_seed_work_2"] = seed.hex()
    stamp = solve_stamp(seed, 2, VECTOR_NAMING)
    out["stamp_work_2"] = stamp.hex()
    commit = build_commit(
        key=key, chain_id=CHAIN, genesis_hash=GENESIS_HASH, commitment=commitment, work=2,
        stamp=stamp, deadline=1_800_000_000,
    )  # fmt: skip
    out["commit_body"] = commit.body_bytes.hex()
    out["commit_tx"] = commit.to_bytes().hex()
    reveal = build_reveal(
        key=key, chain_id=CHAIN, genesis_hash=GENESIS_HASH, domain="alice.p2p", seq=0,
        prev=ZERO_HASH, records=(record,), salt=VECTOR_SALT, commit_height=5,
        deadline=1_800_000_000,
    )  # fmt: skip
    out["reveal_body"] = reveal.body_bytes.hex()
    out["reveal_tx"] = reveal.to_bytes().hex()
    entry = CommitEntry(commitment=commitment, owner=key.public_key, height=5, index=0, work=2)
    out["commit_entry"] = entry.to_bytes().hex()
    out["commit_tree_key"] = commit_tree_key(commitment, key.public_key).hex()
    claim = Claim(domain="alice.p2p", commit_height=5, commit_index=0, until=69)
    out["claim_entry"] = claim.to_bytes().hex()
    out["claim_tree_key"] = claim_tree_key("alice.p2p").hex()
    seed = renewal_seed(GENESIS_HASH, "alice.p2p", key.public_key, reveal.txid, 2)
    out["renewal_stamp_seed_work_2"] = seed.hex()
    renew = TxBody(
        chain_id=CHAIN, domain="alice.p2p", seq=1, prev=reveal.txid, op=Op.RENEW,
        records=(record,), owner=key.public_key, valid_until=1_800_000_000, stamp_work=2,
        stamp=solve_stamp(seed, 2, VECTOR_NAMING),
    )  # fmt: skip
    renewal = Transaction.sign(renew, key, GENESIS_HASH)
    out["renewal_body"] = renewal.body_bytes.hex()
    out["renewal_tx"] = renewal.to_bytes().hex()
    out |= _validator_vectors(key)
    return out


def _validator_vectors(key: PrivateKey) -> dict[str, str]:
    """A proposal to add `02…` (the key of secret `02` × 32) as ``ns-b`` and its approval (issue 15)."""
    new_key = PrivateKey.generate(b"\x02" * 32).public_key
    change = ValidatorChange(action=ChangeAction.ADD, name="ns-b", key=bytes(new_key))
    propose = build_validator_tx(
        op=Op.VALIDATOR_PROPOSE, change=change.to_bytes(), key=key, chain_id=CHAIN,
        genesis_hash=GENESIS_HASH, deadline=1_800_000_000,
    )  # fmt: skip
    approve = build_validator_tx(
        op=Op.VALIDATOR_APPROVE, change=propose.txid, key=key, chain_id=CHAIN,
        genesis_hash=GENESIS_HASH, deadline=1_800_000_000,
    )  # fmt: skip
    roster = Roster(("ns-a", "ns-b"), ValidatorSet((key.public_key, new_key)))
    return {
        "validator_change_add": change.to_bytes().hex(),
        "validator_propose_tx": propose.to_bytes().hex(),
        "validator_approve_tx": approve.to_bytes().hex(),
        "roster_two": roster.to_bytes().hex(),
        "roster_two_validators_hash": roster.validators.hash().hex(),
    }


def _sibling(items: dict[bytes, bytes]) -> bytes:
    """In a two-key tree whose keys differ at bit 0, each leaf's sibling is the other leaf."""
    bob = domain_key("bob.p2p")
    return leaf_hash(bob, items[bob])


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    print("| name | value (hex) |\n|---|---|")
    for name, value in compute().items():
        print(f"| `{name}` | `{value}` |")


if __name__ == "__main__":
    main()
