"""Invalid proposals: the machine blames the round's proposer once, and only for clock-free faults."""

from __future__ import annotations

import dataclasses

import pytest

from chain.block import Block
from chain.consensus import Tendermint
from chain.consensus_effects import Broadcast, Effect, InvalidProposalFound, TimeoutKind
from chain.consensus_messages import MAX_FAULT_REASON, InvalidProposal, Proposal, SignGuard
from chain.crypto import sha256
from chain.errors import InvalidUpdate, RejectReason
from chain.ledger import Ledger
from chain.quorum import Vote, VoteType
from chain.store import MemoryStore
from tools.devchain import dev_key, register_tx
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)
KEYS = [dev_key("validator", i) for i in range(4)]
NOW = GENESIS.genesis_time_ms + 5000


class App:
    """The ledger's check as `block_fault`; `refuse_by_clock` stands for a block too far ahead."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.refuse_by_clock: set[bytes] = set()
        self.judged: list[bytes] = []

    def build_proposal(self, height: int, time_ms: int) -> Block:
        return self.ledger.build_block([], time_ms=time_ms, proposer=KEYS[height % 4].public_key)[0]

    def block_fault(self, block: Block) -> str | None:
        self.judged.append(block.hash)
        try:
            self.ledger.check_block(block)
        except InvalidUpdate as exc:
            return str(exc)
        return None

    def is_valid(self, block: Block) -> bool:
        return self.block_fault(block) is None and block.hash not in self.refuse_by_clock


def machine(index: int = 2, *, judge: bool = True) -> tuple[Tendermint, Ledger, App]:
    ledger = Ledger(MemoryStore(), GENESIS)
    ledger.initialize()
    app = App(ledger)
    m = Tendermint(
        chain_id=GENESIS.chain_id, genesis_hash=GENESIS.hash(), validators=GENESIS.params.validators,
        params=GENESIS.params.consensus, app=app, key=KEYS[index], guard=SignGuard(), height=1,
        judge=app if judge else None,
    )  # fmt: skip
    return m, ledger, app


def good_block(ledger: Ledger, proposer: int = 1) -> Block:
    tx = register_tx(GENESIS, dev_key("owner", 0), "alice.p2p", valid_until=NOW // 1000 + 60)
    return ledger.build_block([tx], time_ms=NOW, proposer=KEYS[proposer].public_key)[0]


def spoil(block: Block, **header: bytes | int) -> Block:
    """The block with some header fields changed: tx_root still matches the body."""
    return Block(header=dataclasses.replace(block.header, **header), txs=block.txs)


def propose(block: Block, round_: int = 0, proposer: int | None = None) -> Proposal:
    index = (block.height + round_) % 4 if proposer is None else proposer
    return Proposal.create(
        KEYS[index], chain_id=GENESIS.chain_id, genesis_hash=GENESIS.hash(), round_=round_,
        block=block, pol_round=-1,
    )  # fmt: skip


def found(effects: list[Effect]) -> list[InvalidProposalFound]:
    return [e for e in effects if isinstance(e, InvalidProposalFound)]


def prevotes(effects: list[Effect]) -> list[bytes]:
    return [
        e.message.block_hash
        for e in effects
        if isinstance(e, Broadcast)
        and isinstance(e.message, Vote)
        and e.message.vtype == VoteType.PREVOTE
    ]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("state_root", sha256(b"wrong"), RejectReason.BAD_STATE_ROOT),
        ("prev_block", sha256(b"wrong"), RejectReason.BAD_PREV_BLOCK),
        ("time_ms", GENESIS.genesis_time_ms - 1, RejectReason.BAD_TIME),
        ("validators_hash", sha256(b"wrong"), RejectReason.BAD_VALIDATORS),
    ],
)
def test_a_provably_invalid_block_is_reported_once_and_prevoted_nil(
    field: str, value: bytes | int, reason: RejectReason
) -> None:
    m, ledger, _ = machine()
    proposal = propose(spoil(good_block(ledger), **{field: value}))
    assert proposal.is_valid_signature(GENESIS.hash()) and proposal.block.body_matches_header()
    effects = m.on_proposal(proposal, NOW)
    (report,) = found(effects)
    assert report.proposal == proposal and report.reason.startswith(f"{reason.value}: ")
    assert prevotes(effects) == [b""]
    assert found(m.on_proposal(proposal, NOW)) == []  # the same proposal again: nothing new


def test_an_invalid_transaction_makes_the_block_provably_invalid() -> None:
    m, ledger, _ = machine()
    tx = register_tx(GENESIS, dev_key("owner", 0), "alice.p2p", valid_until=NOW // 1000 - 10)
    block = ledger.build_block([], time_ms=NOW, proposer=KEYS[1].public_key)[0]
    from chain.block import tx_root

    bad = Block(header=dataclasses.replace(block.header, tx_root=tx_root([tx])), txs=(tx,))
    (report,) = found(m.on_proposal(propose(bad), NOW))
    assert report.reason.startswith(RejectReason.TX_EXPIRED.value)


def test_once_per_height_and_round() -> None:
    m, ledger, _ = machine()
    bad = spoil(good_block(ledger), state_root=sha256(b"wrong"))
    assert len(found(m.on_proposal(propose(bad, round_=0), NOW))) == 1
    # a second, different invalid proposal for the same round does not take the slot
    other = spoil(good_block(ledger), state_root=sha256(b"other"))
    assert found(m.on_proposal(propose(other, round_=0), NOW)) == []
    # the proposer of a later round is blamed for its own invalid proposal
    # (its block names it in the header: a fresh block naming another proposer is refused)
    own_bad = spoil(good_block(ledger, proposer=2), state_root=sha256(b"wrong"))
    later = found(m.on_proposal(propose(own_bad, round_=1), NOW))
    assert [(r.proposal.round, r.proposal.proposer) for r in later] == [(1, KEYS[2].public_key)]


def test_a_valid_block_is_not_reported() -> None:
    m, ledger, _ = machine()
    block = good_block(ledger)
    effects = m.on_proposal(propose(block), NOW)
    assert found(effects) == [] and prevotes(effects) == [block.hash]


def test_a_block_refused_only_by_the_clock_is_not_reported() -> None:
    m, ledger, app = machine()
    block = good_block(ledger)
    app.refuse_by_clock.add(block.hash)  # say, 20 s ahead of this node's clock
    effects = m.on_proposal(propose(block), NOW)
    assert found(effects) == [] and prevotes(effects) == [b""]


def test_a_proposal_from_the_wrong_proposer_is_refused_not_blamed() -> None:
    m, ledger, app = machine()
    bad = spoil(good_block(ledger), state_root=sha256(b"wrong"))
    with pytest.raises(InvalidUpdate) as info:
        m.on_proposal(propose(bad, proposer=3), NOW)  # validator 1 proposes height 1 round 0
    assert info.value.reason == RejectReason.BAD_PROPOSER and app.judged == []


def test_a_bad_signature_is_refused_not_blamed() -> None:
    m, ledger, app = machine()
    proposal = propose(spoil(good_block(ledger), state_root=sha256(b"wrong")))
    forged = dataclasses.replace(proposal, signature=propose(good_block(ledger)).signature)
    with pytest.raises(InvalidUpdate) as info:
        m.on_proposal(forged, NOW)
    assert info.value.reason == RejectReason.BAD_SIGNATURE and app.judged == []


def test_without_a_judge_the_machine_only_prevotes_nil() -> None:
    m, ledger, _ = machine(judge=False)
    effects = m.on_proposal(propose(spoil(good_block(ledger), state_root=sha256(b"wrong"))), NOW)
    assert found(effects) == [] and prevotes(effects) == [b""]


def test_a_buffered_invalid_proposal_is_reported_when_its_height_starts() -> None:
    m, ledger, _ = machine()
    first = good_block(ledger)
    assert m.on_proposal(propose(first), NOW)  # height 1: prevote
    update = ledger.check_block(first)
    from tools.devchain import certify

    ledger.commit(update, certify(ledger, first.hash, 1, KEYS[:3]))
    nxt = ledger.build_block([], time_ms=NOW + 1000, proposer=KEYS[2].public_key)[0]
    bad = propose(spoil(nxt, state_root=sha256(b"wrong")))  # height 2, round 0: validator 2
    assert found(m.on_proposal(bad, NOW)) == []  # buffered for the next height
    m.on_synced(first, certify(ledger, first.hash, 1, KEYS[:3]), NOW)
    (report,) = found(m.advance(NOW, txs_available=False))
    assert report.proposal == bad


def test_the_proposers_own_invalid_block_is_not_self_reported() -> None:
    m, ledger, app = machine(index=1)
    original = app.build_proposal

    def broken(height: int, time_ms: int) -> Block:
        return spoil(original(height, time_ms), state_root=sha256(b"wrong"))

    app.build_proposal = broken  # type: ignore[method-assign]
    effects = m.on_txs_available(NOW)
    assert found(effects) == [] and prevotes(effects) == [b""]
    effects = m.on_timeout(TimeoutKind.PROPOSE, 1, 0, NOW)
    assert found(effects) == []


def test_invalid_proposal_record_round_trips_and_decodes_strictly() -> None:
    ledger = Ledger(MemoryStore(), GENESIS)
    ledger.initialize()
    record = InvalidProposal(
        proposal=propose(spoil(good_block(ledger), state_root=sha256(b"x"))),
        reason="bad-state-root: block 1: state_root",
    )
    data = record.to_bytes()
    assert InvalidProposal.from_bytes(data) == record
    with pytest.raises(InvalidUpdate):
        InvalidProposal.from_bytes(data + b"\x00")
    with pytest.raises(InvalidUpdate):
        InvalidProposal.from_bytes(record.proposal.to_bytes())  # another kind
    for reason in ("", "x" * (MAX_FAULT_REASON + 1)):
        with pytest.raises(InvalidUpdate):
            InvalidProposal(proposal=record.proposal, reason=reason)
