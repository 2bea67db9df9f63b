"""The proof-over-DNS vectors of docs/protocol.md §8 are what the code produces, and they verify.

Built from the §7 vectors (the same key, header, certificate, state and tree
proof), so they need no inputs of their own. Print the table with
``python -m tests.unit.test_dns_proof_vectors``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from chain.block import BlockHeader
from chain.crypto import PrivateKey
from chain.dns_proof import ProofAnswer, ProofRequest, StateProof, verify_answer
from chain.genesis import make_single_validator_genesis
from chain.lightclient import SetChange
from chain.params import ChainParams
from chain.quorum import CommitCertificate
from chain.smt_proof import Proof
from chain.state import DomainState
from chain.validators import Roster
from ledgerdns.dns.proof_query import make_query
from tools.vectors import CHAIN, GENESIS_HASH, SECRET, compute

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
SECTION = "## 8. Proofs over DNS"


def dns_vectors() -> dict[str, str]:
    """Every §8 vector, name -> lower-case hex."""
    base = {k: bytes.fromhex(x) for k, x in compute().items()}
    header = BlockHeader.from_bytes(base["header"])
    certificate = CommitCertificate.from_bytes(base["certificate"])
    alice = StateProof(
        domain="alice.p2p",
        state=DomainState.from_bytes(base["domain_state"]),
        proof=Proof.from_bytes(base["proof_alice_in_two_domain_tree"]),
        serial=1,
    )
    change = SetChange(
        header=header, certificate=certificate, roster=Roster.from_bytes(base["roster_two"])
    )
    answer = ProofAnswer(header=header, certificate=certificate, domains=(alice,))
    more = ProofAnswer(header=header, certificate=certificate, changes=(change,), more_changes=True)
    return {
        "dns_proof_request_default": ProofRequest().to_bytes().hex(),
        "dns_proof_request_known_from_1000": ProofRequest(known_from=1000).to_bytes().hex(),
        "dns_query_alice_a_with_option": make_query(
            "alice.p2p", "A", ProofRequest(), msg_id=0x1234
        ).hex(),
        "dns_proof_answer_alice": answer.to_bytes().hex(),
        "dns_proof_answer_one_change_more": more.to_bytes().hex(),
    }


def vector_params() -> ChainParams:
    """The §7 network as a light client trusts it: one validator, chain ``vectors``, TLD p2p."""
    key = PrivateKey.from_bytes(SECRET)
    genesis = make_single_validator_genesis(
        key.public_key, chain_id=CHAIN, tlds=("p2p",), genesis_time_ms=1_700_000_000_000
    )
    return dataclasses.replace(genesis.params, genesis_hash=GENESIS_HASH)


def published() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    rows = re.findall(r"^\| `(dns_[a-z0-9_]+)` \| `([0-9a-f]+)` \| .* \|$", section, re.MULTILINE)
    return dict(rows)


def test_docs_match_code() -> None:
    assert published() == dns_vectors()


def test_the_alice_answer_verifies_against_the_vector_network() -> None:
    v = {k: bytes.fromhex(x) for k, x in dns_vectors().items()}
    answer = ProofAnswer.from_bytes(v["dns_proof_answer_alice"])
    result = verify_answer(
        answer, params=vector_params(), known=None, qname="www.alice.p2p",
        now_ms=answer.header.time_ms, max_age_ms=0,
    )  # fmt: skip
    assert result.domain == "alice.p2p" and result.state is not None and result.serial == 1
    assert ProofRequest.from_bytes(v["dns_proof_request_known_from_1000"]).known_from == 1000
    query = v["dns_query_alice_a_with_option"]
    assert query.endswith(
        bytes.fromhex("ff4900")
        + bytes([len(v["dns_proof_request_default"])])
        + v["dns_proof_request_default"]
    )
    more = ProofAnswer.from_bytes(v["dns_proof_answer_one_change_more"])
    assert more.more_changes and len(more.changes) == 1 and more.domains == ()


if __name__ == "__main__":
    for name, value in dns_vectors().items():
        print(f"| `{name}` | `{value}` | |")
