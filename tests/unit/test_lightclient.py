"""Light-client freshness: a genuine proof of old state is refused past a bound (issue 13).

Real keys, a real `Ledger` on a `MemoryStore`, blocks certified by a quorum of
the genesis validators; only the verifier's clock (`now_ms`) varies.
"""

from __future__ import annotations

import dataclasses

import pytest

from chain.block import Block
from chain.errors import InvalidUpdate, RejectReason
from chain.genesis import Genesis, make_single_validator_genesis
from chain.ledger import Ledger
from chain.lightclient import (
    FUTURE_SLACK_MS,
    HEARTBEAT_SLACK_MS,
    DomainProof,
    default_max_age_ms,
    verify_domain_state,
)
from chain.quorum import ValidatorSet
from chain.store import MemoryStore
from tools.devchain import certify, dev_key, register_tx, soon

VALIDATORS = [dev_key("validator", i) for i in range(4)]
OWNER = dev_key("owner", 0)
GENESIS_MS = 1_700_000_000_000
T1 = GENESIS_MS + 5_000  # the time of block 1, which registers alice.p2p
MINUTE = 60_000


def make_genesis(heartbeat_ms: int = 0) -> Genesis:
    base = make_single_validator_genesis(VALIDATORS[0].public_key, genesis_time_ms=GENESIS_MS)
    params = dataclasses.replace(
        base.params,
        validators=ValidatorSet(tuple(k.public_key for k in VALIDATORS)),
        consensus=dataclasses.replace(base.params.consensus, heartbeat_ms=heartbeat_ms),
    )
    return dataclasses.replace(base, params=params, validator_names=tuple(f"v{i}" for i in range(4)))


def finalize(ledger: Ledger, txs: list, time_ms: int) -> Block:  # type: ignore[type-arg]
    proposer = ledger.params.validators.proposer(ledger.height + 1, 0)
    block, rejected = ledger.build_block(txs, time_ms=time_ms, proposer=proposer)
    assert not rejected
    ledger.apply_block(block, certify(ledger, block.hash, block.height, VALIDATORS[:3]))
    return block


def make_ledger(heartbeat_ms: int = 0) -> Ledger:
    ledger = Ledger(MemoryStore(), make_genesis(heartbeat_ms))
    ledger.initialize()
    finalize(ledger, [register_tx(ledger.genesis, OWNER, "alice.p2p", valid_until=soon(ledger))], T1)
    return ledger


def refused(proof: DomainProof, ledger: Ledger, **clock: int | None) -> InvalidUpdate:
    with pytest.raises(InvalidUpdate) as info:
        proof.verify(ledger.params, **clock)
    return info.value


def test_a_fresh_proof_verifies_within_the_bound() -> None:
    ledger = make_ledger()
    proof = DomainProof.from_bytes(ledger.prove_domain("alice.p2p").to_bytes())
    state = ledger.get_domain("alice.p2p")
    assert proof.verify(ledger.params, now_ms=T1 + 5_000, max_age_ms=10_000) == state
    assert proof.verify(ledger.params, now_ms=T1 + 10_000, max_age_ms=10_000) == state  # at the bound


def test_a_proof_older_than_the_bound_is_stale() -> None:
    ledger = make_ledger()
    proof = ledger.prove_domain("alice.p2p")
    error = refused(proof, ledger, now_ms=T1 + 10_001, max_age_ms=10_000)
    assert error.reason == RejectReason.STALE_PROOF
    assert error.penalty == 0  # an honest node that is behind sends it
    assert "height 1 is 10.0 s old" in str(error) and "10 s bound" in str(error)
    # A proof of absence is refused the same way: an old "never registered" hides a registration.
    absent = ledger.prove_domain("nobody.p2p")
    assert absent.verify(ledger.params, now_ms=T1 + 1_000, max_age_ms=10_000) is None
    assert refused(absent, ledger, now_ms=T1 + MINUTE, max_age_ms=10_000).reason == RejectReason.STALE_PROOF


def test_without_a_bound_age_is_not_checked() -> None:
    ledger = make_ledger()
    proof = ledger.prove_domain("alice.p2p")
    year = 365 * 24 * 3600 * 1000
    assert proof.verify(ledger.params) == ledger.get_domain("alice.p2p")
    assert proof.verify(ledger.params, now_ms=T1 + year) == ledger.get_domain("alice.p2p")
    with pytest.raises(ValueError):
        proof.verify(ledger.params, max_age_ms=10_000)  # a bound needs a clock


def test_a_header_dated_past_the_clock_is_refused() -> None:
    ledger = make_ledger()
    proof = ledger.prove_domain("alice.p2p")
    ahead = T1 - FUTURE_SLACK_MS  # the header is exactly the slack ahead of this clock: fine
    assert proof.verify(ledger.params, now_ms=ahead, max_age_ms=10_000) is not None
    error = refused(proof, ledger, now_ms=ahead - 1)  # with a clock, even with no bound
    assert error.reason == RejectReason.BAD_TIME and error.penalty == 0
    assert "after this clock" in str(error)


def test_authenticity_is_checked_before_freshness() -> None:
    ledger = make_ledger()
    proof = ledger.prove_domain("alice.p2p")
    lie = dataclasses.replace(proof, state=None)  # old and forged: said to be forged
    assert refused(lie, ledger, now_ms=T1 + MINUTE, max_age_ms=1_000).reason == RejectReason.BAD_PROOF
    with pytest.raises(InvalidUpdate) as info:
        verify_domain_state(
            params=ledger.params, header=proof.header, certificate=proof.certificate,
            domain="alice.p2p", state=proof.state, proof=proof.proof, now_ms=T1 + MINUTE,
            max_age_ms=1_000,
        )  # fmt: skip
    assert info.value.reason == RejectReason.STALE_PROOF


def test_the_default_bound_comes_from_the_heartbeat() -> None:
    assert default_max_age_ms(make_genesis(heartbeat_ms=MINUTE).params) == 2 * MINUTE + HEARTBEAT_SLACK_MS
    assert default_max_age_ms(make_genesis(heartbeat_ms=5_000).params) == 70_000
    assert default_max_age_ms(make_genesis(heartbeat_ms=0).params) is None  # idle heads get old


def test_a_node_hiding_heartbeat_blocks_is_caught_on_an_idle_network() -> None:
    # Nothing changes for alice.p2p after block 1, but the network makes an empty
    # block every heartbeat. A node that keeps serving block 1's proof (behind, or
    # hiding the rest) is refused by the default bound; the head's proof is not.
    ledger = make_ledger(heartbeat_ms=MINUTE)
    bound = default_max_age_ms(ledger.params)
    hidden = ledger.prove_domain("alice.p2p")
    for beat in range(1, 6):
        finalize(ledger, [], T1 + beat * (MINUTE + 2_000))  # heartbeat plus a round
    now = ledger.head.time_ms + MINUTE  # just before the next heartbeat block
    current = ledger.prove_domain("alice.p2p")
    assert current.verify(ledger.params, now_ms=now, max_age_ms=bound) == ledger.get_domain("alice.p2p")
    assert hidden.verify(ledger.params) == current.state  # genuine, and the same state...
    error = refused(hidden, ledger, now_ms=now, max_age_ms=bound)
    assert error.reason == RejectReason.STALE_PROOF  # ...but from a node that is hiding blocks
