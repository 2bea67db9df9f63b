"""`chain.history_proof`: a history is proven by its hash links down from the proven head."""

from __future__ import annotations

import pytest

from chain.crypto import PublicKey
from chain.errors import InvalidUpdate, RejectReason
from chain.history_proof import HistoryStep, verify_history
from chain.ledger import genesis_anchor
from chain.state import DomainState, DomainStatus

CHAIN = "unit-test"
KEY = PublicKey(bytes([2]) + bytes(32))


def _state(domain: str, seq: int, head: bytes) -> DomainState:
    return DomainState(domain=domain, owner=KEY, seq=seq, head=head, records=(), expires_at=0,
                       status=DomainStatus.ACTIVE)  # fmt: skip


def test_a_genesis_domain_at_its_anchor_verifies() -> None:
    anchor = genesis_anchor(CHAIN, "root.p2p")
    verify_history("root.p2p", CHAIN, _state("root.p2p", 0, anchor), [HistoryStep(seq=0, txid=anchor, tx=None)])


@pytest.mark.parametrize(
    ("domain", "chain_id", "why"),
    [("other.p2p", CHAIN, "genesis anchor"), ("root.p2p", "another-chain", "genesis anchor")],
)
def test_an_anchor_of_another_name_or_chain_is_refused(domain: str, chain_id: str, why: str) -> None:
    anchor = genesis_anchor(CHAIN, "root.p2p")
    with pytest.raises(InvalidUpdate, match=why) as raised:
        verify_history(domain, chain_id, _state(domain, 0, anchor), [HistoryStep(seq=0, txid=anchor, tx=None)])
    assert raised.value.reason == RejectReason.BAD_PROOF


def test_a_listing_for_an_absent_or_shorter_chain_is_refused() -> None:
    anchor = genesis_anchor(CHAIN, "root.p2p")
    step = HistoryStep(seq=0, txid=anchor, tx=None)
    with pytest.raises(InvalidUpdate, match="proven absent"):
        verify_history("root.p2p", CHAIN, None, [step])
    with pytest.raises(InvalidUpdate, match="proven head is seq 3"):
        verify_history("root.p2p", CHAIN, _state("root.p2p", 3, anchor), [step])
    verify_history("nobody.p2p", CHAIN, None, [])  # absent, and nothing listed
