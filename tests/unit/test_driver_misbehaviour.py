"""The driver's side of misbehaviour: the clock kept out of blame, storage, the offence callback."""

from __future__ import annotations

import dataclasses

from chain.block import Block
from chain.consensus_messages import Evidence, Proposal
from chain.crypto import PublicKey, sha256
from chain.errors import RejectReason
from chain.evidence_store import list_evidence, list_invalid_proposals
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.quorum import Vote, VoteType
from chain.store import MemoryStore
from ledgerdns.clock import ManualClock
from ledgerdns.consensus.driver import (
    MAX_FUTURE_MS,
    MAX_INVALID_PROPOSALS_STORED,
    ConsensusDriver,
    LedgerApp,
)
from ledgerdns.protocol.offences import OriginPeers
from tools.devchain import dev_key
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)
KEYS = [dev_key("validator", i) for i in range(4)]
NOW = GENESIS.genesis_time_ms + 5000  # the node's clock: a little after genesis


def ledger() -> Ledger:
    chain = Ledger(MemoryStore(), GENESIS)
    chain.initialize()
    return chain


def app(chain: Ledger, clock: ManualClock | None = None) -> LedgerApp:
    return LedgerApp(chain, Mempool(GENESIS.params), KEYS[0], clock or ManualClock(NOW))


def block_at(chain: Ledger, time_ms: int, **header: bytes) -> Block:
    block = chain.build_block([], time_ms=time_ms, proposer=KEYS[1].public_key)[0]
    return Block(header=dataclasses.replace(block.header, **header), txs=block.txs)


def test_a_block_from_the_future_is_refused_but_not_a_provable_fault() -> None:
    chain = ledger()
    future = block_at(chain, NOW + MAX_FUTURE_MS + 60_000)
    a = app(chain)
    assert a.block_fault(future) is None
    assert not a.is_valid(future)


def test_the_future_is_judged_by_the_injected_clock() -> None:
    chain = ledger()
    clock = ManualClock(NOW)
    a = app(chain, clock)
    edge = block_at(chain, NOW + MAX_FUTURE_MS)
    assert a.is_valid(edge)
    clock.advance_ms(-1)
    assert not a.is_valid(edge)  # the real clock, years after genesis, would take it
    clock.set_ms(NOW + 60_000)
    assert a.is_valid(block_at(chain, NOW + 60_000 + MAX_FUTURE_MS))


def test_a_wrong_state_root_is_a_fault_whatever_the_clock() -> None:
    chain = ledger()
    bad = block_at(chain, NOW, state_root=sha256(b"wrong"))
    a = app(chain)
    fault = a.block_fault(bad)
    assert fault is not None and fault.startswith(RejectReason.BAD_STATE_ROOT.value)
    assert a.block_fault(bad) == fault and not a.is_valid(bad)
    good = block_at(chain, NOW)
    assert a.block_fault(good) is None and a.is_valid(good)


def driver(chain: Ledger, offences: list[tuple[PublicKey, str]]) -> ConsensusDriver:
    async def nothing(*_: object) -> None:
        return None

    return ConsensusDriver(
        genesis=GENESIS, ledger=chain, mempool=Mempool(GENESIS.params), key=None, guard_file=None,
        broadcast=nothing, committed=nothing, clock=ManualClock(NOW),
        offence=lambda key, proof, what: offences.append((key, what)),
    )  # fmt: skip


def test_invalid_proposals_are_stored_boundedly_and_always_reported() -> None:
    chain = ledger()
    offences: list[tuple[PublicKey, str]] = []
    d = driver(chain, offences)
    bad = block_at(chain, NOW, state_root=sha256(b"wrong"))
    rounds = range(3, 3 + 4 * (MAX_INVALID_PROPOSALS_STORED + 2), 4)  # validator 0's rounds at h1
    for round_ in rounds:
        p = Proposal.create(
            KEYS[0], chain_id=GENESIS.chain_id, genesis_hash=GENESIS.hash(), round_=round_,
            block=bad, pol_round=-1,
        )  # fmt: skip
        d._record_invalid_proposal(p, "bad-state-root: block 1: state_root")
    stored = list_invalid_proposals(chain.store)
    assert len(stored) == MAX_INVALID_PROPOSALS_STORED
    assert [r.proposal.round for r in stored] == sorted(
        rounds[:MAX_INVALID_PROPOSALS_STORED], reverse=True
    )
    assert len(offences) == len(rounds) and {k for k, _ in offences} == {KEYS[0].public_key}
    assert "invalid proposal at height 1 round 3: bad-state-root" in offences[0][1]


def test_equivocation_is_stored_and_reported() -> None:
    chain = ledger()
    offences: list[tuple[PublicKey, str]] = []
    d = driver(chain, offences)
    votes = [
        Vote.create(
            KEYS[2],
            chain_id=GENESIS.chain_id,
            genesis_hash=GENESIS.hash(),
            vtype=VoteType.PRECOMMIT,
            height=1,
            round_=0,
            block_hash=h,
        )  # fmt: skip
        for h in (b"", b"\x07" * 32)
    ]
    d._record_evidence(Evidence.of(*votes))
    assert list_evidence(chain.store) == [Evidence.of(*votes)]
    assert offences == [(KEYS[2].public_key, "equivocation: two precommits at height 1 round 0")]


def test_origin_peers_are_bounded_and_most_recent_last() -> None:
    origins = OriginPeers(limit=3)
    for peer in ["a", "b", "a", "c", "d", "d"]:
        origins.note(b"v", peer)
    assert origins.of(b"v") == ["a", "c", "d"]
    assert origins.of(b"unknown") == []
