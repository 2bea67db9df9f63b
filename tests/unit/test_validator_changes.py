"""Validator-set changes on chain (issue 15 §1): proposals, approvals, the H+2 rule, the step rule.

A real `Ledger` over a `MemoryStore`: blocks are built, certified by the set
of their height and applied, as consensus and sync do.
"""

from __future__ import annotations

import dataclasses

import pytest

from chain.block import Block
from chain.crypto import PrivateKey
from chain.errors import InvalidUpdate, RejectReason
from chain.genesis import Genesis, make_single_validator_genesis
from chain.ledger import Ledger
from chain.lightclient import SetChange, follow_validator_set, set_for
from chain.quorum import ValidatorSet
from chain.store import MemoryStore
from chain.tx import Op, Transaction, TxBody
from chain.txbuilder import build_validator_tx
from chain.validators import (
    CHANGE_DELAY,
    ChangeAction,
    Proposal,
    Roster,
    Schedule,
    ValidatorChange,
    check_step,
)
from tools.devchain import certify, dev_key, register_tx, soon

KEYS = [dev_key("validator", i) for i in range(8)]


def make_genesis(n: int = 4) -> Genesis:
    base = make_single_validator_genesis(KEYS[0].public_key, genesis_time_ms=1_000_000)
    params = dataclasses.replace(
        base.params, validators=ValidatorSet(tuple(k.public_key for k in KEYS[:n]))
    )
    return dataclasses.replace(
        base, params=params, validator_names=tuple(f"v{i}" for i in range(n))
    )


@pytest.fixture
def ledger() -> Ledger:
    led = Ledger(MemoryStore(), make_genesis())
    led.initialize()
    return led


def keys_of(ledger: Ledger, height: int) -> list[PrivateKey]:
    members = {bytes(k) for k in ledger.validators_at(height).keys}
    return [k for k in KEYS if bytes(k.public_key) in members]


def block_of(ledger: Ledger, txs: list[Transaction]) -> tuple[Block, list[object]]:
    height = ledger.height + 1
    proposer = ledger.validators_at(height).proposer(height, 0)
    block, rejected = ledger.build_block(txs, time_ms=ledger.head.time_ms + 1000, proposer=proposer)
    return block, [r.error.reason for r in rejected]


def finalize(ledger: Ledger, txs: list[Transaction]) -> list[object]:
    """Build, certify (by every member of the height's set) and apply a block."""
    block, rejected = block_of(ledger, txs)
    signers = keys_of(ledger, block.height)
    ledger.apply_block(block, certify(ledger, block.hash, block.height, signers))
    return rejected


def change_tx(ledger: Ledger, key: PrivateKey, change: ValidatorChange) -> Transaction:
    return build_validator_tx(
        op=Op.VALIDATOR_PROPOSE, change=change.to_bytes(), key=key, chain_id=ledger.params.chain_id,
        genesis_hash=ledger.params.genesis_hash, deadline=soon(ledger),
    )  # fmt: skip


def approve_tx(ledger: Ledger, key: PrivateKey, proposal: bytes) -> Transaction:
    return build_validator_tx(
        op=Op.VALIDATOR_APPROVE, change=proposal, key=key, chain_id=ledger.params.chain_id,
        genesis_hash=ledger.params.genesis_hash, deadline=soon(ledger),
    )  # fmt: skip


def add(name: str, key: PrivateKey) -> ValidatorChange:
    return ValidatorChange(action=ChangeAction.ADD, name=name, key=bytes(key.public_key))


def test_an_addition_takes_effect_two_heights_after_the_approving_block(ledger: Ledger) -> None:
    proposal = change_tx(ledger, KEYS[0], add("v4", KEYS[4]))
    assert finalize(ledger, [proposal]) == []
    pending = ledger.get_proposal(proposal.txid)
    assert pending is not None and pending.approvals == (KEYS[0].public_key,)
    assert [p.proposal for p in ledger.pending_proposals()] == [proposal.txid]
    # One approval more is 2 of 4: no quorum (3) yet, nothing scheduled.
    finalize(ledger, [approve_tx(ledger, KEYS[1], proposal.txid)])
    assert ledger.rosters()[-1][0] == 1
    finalize(ledger, [approve_tx(ledger, KEYS[2], proposal.txid)])
    approved_at = ledger.height
    start = approved_at + CHANGE_DELAY
    assert ledger.get_proposal(proposal.txid) is None and ledger.pending_proposals() == []
    assert ledger.validators_at(start - 1).n == 4 and ledger.validators_at(start).n == 5
    assert ledger.roster_at(start).names == ("v0", "v1", "v2", "v3", "v4")
    # The next header announces the new set; the one after is decided by it.
    finalize(ledger, [])
    head = ledger.head
    assert head.height == start - 1
    assert head.validators_hash == ledger.validators_at(start - 1).hash()
    assert head.next_validators_hash == ledger.validators_at(start).hash() != head.validators_hash
    block, _ = block_of(ledger, [])
    old_quorum = certify(ledger, block.hash, block.height, KEYS[:3])  # 3 of 5: below 4
    with pytest.raises(InvalidUpdate) as info:
        ledger.apply_block(block, old_quorum)
    assert info.value.reason == RejectReason.NO_QUORUM
    ledger.apply_block(block, certify(ledger, block.hash, block.height, KEYS[1:5]))
    assert ledger.head.validators_hash == ledger.validators_at(start).hash()
    # The new member's approvals count from then on, and a restarted node reads the same history.
    cold = Ledger(ledger.store, ledger.genesis)
    assert cold.rosters() == ledger.rosters() and cold.validators_at(start).n == 5


def test_a_removed_validator_no_longer_signs_or_proposes(ledger: Ledger) -> None:
    remove = ValidatorChange(action=ChangeAction.REMOVE, name="v3")
    proposal = change_tx(ledger, KEYS[3], remove)  # a validator may propose its own removal
    finalize(
        ledger,
        [
            proposal,
            approve_tx(ledger, KEYS[0], proposal.txid),
            approve_tx(ledger, KEYS[1], proposal.txid),
        ],
    )
    start = ledger.height + CHANGE_DELAY
    finalize(ledger, [])
    assert ledger.validators_at(start).index_of(KEYS[3].public_key) is None
    block, _ = block_of(ledger, [])
    with pytest.raises(InvalidUpdate) as info:  # v3's signature is not a member's
        ledger.apply_block(block, certify(ledger, block.hash, block.height, [KEYS[0], KEYS[3]]))
    assert info.value.reason in (RejectReason.UNKNOWN_VALIDATOR, RejectReason.NO_QUORUM)
    by_v3, _ = ledger.build_block(
        [], time_ms=ledger.head.time_ms + 1000, proposer=KEYS[3].public_key
    )
    with pytest.raises(InvalidUpdate) as info:  # nor may it propose
        ledger.check_block(by_v3)
    assert info.value.reason == RejectReason.BAD_PROPOSER
    ledger.apply_block(block, certify(ledger, block.hash, block.height, KEYS[:3]))  # 3 of 3
    late = change_tx(ledger, KEYS[3], add("v5", KEYS[5]))
    assert finalize(ledger, [late]) == [RejectReason.NOT_VALIDATOR]


def test_a_rotated_key_stops_signing_and_the_new_one_starts(ledger: Ledger) -> None:
    rotate = ValidatorChange(action=ChangeAction.ROTATE, name="v2", key=bytes(KEYS[6].public_key))
    proposal = change_tx(ledger, KEYS[2], rotate)
    finalize(
        ledger,
        [
            proposal,
            approve_tx(ledger, KEYS[0], proposal.txid),
            approve_tx(ledger, KEYS[1], proposal.txid),
        ],
    )
    start = ledger.height + CHANGE_DELAY
    assert ledger.roster_at(start).key_of("v2") == KEYS[6].public_key
    assert (
        ledger.validators_at(start).keys.index(KEYS[6].public_key) == 2
    )  # same place in the rotation
    finalize(ledger, [])
    finalize(ledger, [])  # certified by v0, v1, v3 and the new v2 key
    assert ledger.height == start
    old = change_tx(ledger, KEYS[2], add("v7", KEYS[7]))
    assert finalize(ledger, [old]) == [RejectReason.NOT_VALIDATOR]
    new = change_tx(ledger, KEYS[6], add("v7", KEYS[7]))
    assert finalize(ledger, [new]) == []


def test_refusals_name_their_reason(ledger: Ledger) -> None:
    outsider = change_tx(ledger, KEYS[5], add("v5", KEYS[5]))
    taken_name = change_tx(ledger, KEYS[0], add("v1", KEYS[5]))
    taken_key = change_tx(ledger, KEYS[0], add("v9", KEYS[1]))
    unknown = change_tx(ledger, KEYS[0], ValidatorChange(action=ChangeAction.REMOVE, name="nobody"))
    no_proposal = approve_tx(ledger, KEYS[1], b"\x07" * 32)
    assert finalize(ledger, [outsider, taken_name, taken_key, unknown, no_proposal]) == [
        RejectReason.NOT_VALIDATOR, RejectReason.BAD_VALIDATOR_CHANGE, RejectReason.BAD_VALIDATOR_CHANGE,
        RejectReason.BAD_VALIDATOR_CHANGE, RejectReason.PROPOSAL_NOT_FOUND,
    ]  # fmt: skip
    proposal = change_tx(ledger, KEYS[0], add("v4", KEYS[4]))
    finalize(ledger, [proposal])
    again = approve_tx(ledger, KEYS[0], proposal.txid)  # the proposer's approval counted already
    assert finalize(ledger, [again]) == [RejectReason.DUPLICATE]


def test_a_malformed_change_is_refused_before_any_state_is_read(ledger: Ledger) -> None:
    body = TxBody(
        chain_id=ledger.params.chain_id, domain="", seq=0, prev=bytes(32), op=Op.VALIDATOR_PROPOSE,
        records=(), owner=KEYS[0].public_key, valid_until=soon(ledger), change=b"\x83\x01\x02\x03",
    )  # fmt: skip
    tx = Transaction.sign(body, KEYS[0], ledger.params.genesis_hash)
    assert Transaction.from_bytes(tx.to_bytes()) == tx  # the wire form holds it
    assert finalize(ledger, [tx]) == [RejectReason.MALFORMED]


def test_changes_approved_in_one_block_take_effect_one_height_apart(ledger: Ledger) -> None:
    first = change_tx(ledger, KEYS[0], add("v4", KEYS[4]))
    second = change_tx(ledger, KEYS[1], ValidatorChange(action=ChangeAction.REMOVE, name="v3"))
    finalize(ledger, [first, second])
    approvals = [
        approve_tx(ledger, k, p.txid)
        for p, keys in ((first, KEYS[1:3]), (second, KEYS[0:3:2]))
        for k in keys
    ]
    finalize(ledger, approvals)
    h = ledger.height
    assert [start for start, _ in ledger.rosters()] == [1, h + 2, h + 3]
    assert ledger.roster_at(h + 2).names == ("v0", "v1", "v2", "v3", "v4")
    assert ledger.roster_at(h + 3).names == ("v0", "v1", "v2", "v4")
    for _ in range(4):  # across both changes, each block certified by its own height's set
        finalize(
            ledger,
            [
                register_tx(
                    ledger.genesis, KEYS[7], f"n{ledger.height}.p2p", valid_until=soon(ledger)
                )
            ],
        )
    assert ledger.head.validators_hash == ledger.validators_at(h + 3).hash()
    schedule = ledger.schedule()
    assert (
        schedule is not None and len(schedule.entries) == 1
    )  # older rosters trimmed from the state


def test_a_proposal_lapses_at_the_end_of_its_window(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("chain.validator_rules.PROPOSAL_WINDOW", 2)
    proposal = change_tx(ledger, KEYS[0], add("v4", KEYS[4]))
    finalize(ledger, [proposal])
    finalize(ledger, [])
    finalize(ledger, [])
    assert ledger.get_proposal(proposal.txid) is not None
    finalize(ledger, [])  # height proposal + 3: gone
    assert ledger.get_proposal(proposal.txid) is None and ledger.pending_proposals() == []
    late = [approve_tx(ledger, k, proposal.txid) for k in KEYS[1:3]]
    assert finalize(ledger, late) == [RejectReason.PROPOSAL_NOT_FOUND] * 2


def test_a_single_validator_network_changes_at_once() -> None:
    ledger = Ledger(MemoryStore(), make_genesis(1))
    ledger.initialize()
    finalize(ledger, [change_tx(ledger, KEYS[0], add("v1", KEYS[1]))])  # 1 of 1 approves
    assert ledger.validators_at(ledger.height + CHANGE_DELAY).n == 2
    rotate = ValidatorChange(action=ChangeAction.ROTATE, name="v0", key=bytes(KEYS[5].public_key))
    solo = Ledger(MemoryStore(), make_genesis(1))
    solo.initialize()
    assert finalize(solo, [change_tx(solo, KEYS[0], rotate)]) == [RejectReason.BAD_VALIDATOR_CHANGE]


def test_the_step_rule_keeps_a_third_of_the_old_set_in_every_new_quorum() -> None:
    sets = {n: ValidatorSet(tuple(k.public_key for k in KEYS[:n])) for n in range(1, 8)}
    check_step(sets[4], sets[5])  # one added: a quorum of 5 (4) holds 3 old ones, more than 1
    check_step(sets[4], sets[3])
    rotated = ValidatorSet((KEYS[7].public_key, *sets[3].keys))
    check_step(sets[4], ValidatorSet(rotated.keys[:4]))
    with pytest.raises(InvalidUpdate):  # the sole validator's key replaced: no old signer left
        check_step(sets[1], ValidatorSet((KEYS[7].public_key,)))
    check_step(
        sets[4], ValidatorSet((*sets[4].keys, *(k.public_key for k in KEYS[5:8])))
    )  # 5 - 3 = 2 > 1
    with pytest.raises(
        InvalidUpdate
    ):  # 2 of 4 replaced: a quorum (3) may hold 1 old one, not more than 1
        check_step(sets[4], ValidatorSet((*sets[2].keys, *(k.public_key for k in KEYS[6:8]))))


def test_the_state_entries_round_trip_and_refuse_bad_bytes() -> None:
    change = add("v4", KEYS[4])
    assert ValidatorChange.from_bytes(change.to_bytes()) == change
    roster = Roster(("a", "b"), ValidatorSet((KEYS[0].public_key, KEYS[1].public_key)))
    assert Roster.from_bytes(roster.to_bytes()) == roster
    proposal = Proposal(
        proposal=b"\x01" * 32, change=change, proposer=KEYS[0].public_key,
        approvals=(KEYS[0].public_key, KEYS[1].public_key), height=5, leaves=99,
    )  # fmt: skip
    assert Proposal.from_bytes(proposal.to_bytes()) == proposal
    schedule = Schedule(((1, roster), (9, roster.applied(change))))
    assert Schedule.from_bytes(schedule.to_bytes()) == schedule
    assert schedule.at(8) == roster and schedule.at(9).names == ("a", "b", "v4")
    for bad in (b"", change.to_bytes()[:-1], change.to_bytes() + b"\x00"):
        with pytest.raises(InvalidUpdate):
            ValidatorChange.from_bytes(bad)
    with pytest.raises(InvalidUpdate):
        ValidatorChange(action=ChangeAction.ADD, name="bad name", key=bytes(KEYS[1].public_key))
    with pytest.raises(InvalidUpdate):
        ValidatorChange(action=ChangeAction.REMOVE, name="v1", key=bytes(KEYS[1].public_key))


def test_the_mempool_holds_validator_ops_of_members_only(ledger: Ledger) -> None:
    from chain.mempool import Mempool

    pool = Mempool(ledger.params, chain=ledger)
    now_s = ledger.head.time_ms // 1000
    proposal = change_tx(ledger, KEYS[0], add("v4", KEYS[4]))
    pool.add(proposal, ledger.get_domain, now_s)
    with pytest.raises(InvalidUpdate) as info:
        pool.add(change_tx(ledger, KEYS[5], add("v5", KEYS[5])), ledger.get_domain, now_s)
    assert info.value.reason == RejectReason.NOT_VALIDATOR
    assert pool.batch(100, 1 << 20) == [proposal]
    block, _ = block_of(ledger, pool.batch(100, 1 << 20))
    ledger.apply_block(block, certify(ledger, block.hash, block.height, KEYS[:4]))
    assert pool.block_applied(block.txs, ledger.get_domain, now_s) == [] and len(pool) == 0
    approval = approve_tx(ledger, KEYS[1], proposal.txid)
    pool.add(approval, ledger.get_domain, now_s)
    assert [
        tx for tx, _ in pool.block_applied([], ledger.get_domain, approval.body.valid_until + 1)
    ] == [approval]


def set_changes(ledger: Ledger) -> list[SetChange]:
    """What a node serves a light client: per change, the header before it, its certificate, the roster."""
    return [
        SetChange(
            header=ledger.get_block(start - 1).header,
            certificate=ledger.get_certificate(start - 1),
            roster=roster,
        )
        for start, roster in ledger.rosters()[1:]
        if start - 1 <= ledger.height
    ]


def test_a_light_client_follows_the_set_from_genesis_and_checks_each_step(ledger: Ledger) -> None:
    owner = KEYS[7]
    finalize(ledger, [register_tx(ledger.genesis, owner, "alice.p2p", valid_until=soon(ledger))])
    rotate = ValidatorChange(action=ChangeAction.ROTATE, name="v1", key=bytes(KEYS[5].public_key))
    # Each: proposer, approvers (a quorum with it: 3 of 4, then 4 of 5).
    for change, proposer, approvers in (
        (add("v4", KEYS[4]), KEYS[0], KEYS[1:3]),
        (rotate, KEYS[1], [KEYS[0], *KEYS[2:4]]),
    ):
        proposal = change_tx(ledger, proposer, change)
        finalize(ledger, [proposal])
        finalize(ledger, [approve_tx(ledger, k, proposal.txid) for k in approvers])
        finalize(ledger, [])
        finalize(ledger, [])
    assert len(ledger.rosters()) == 3 and ledger.height >= ledger.rosters()[-1][0]
    changes = set_changes(ledger)
    followed = follow_validator_set(ledger.params, changes)
    assert [v.n for _, v in followed] == [4, 5, 5]
    proof = ledger.prove_domain("alice.p2p")
    assert proof.verify(ledger.params, validators=set_for(followed, proof.header)) is not None
    with pytest.raises(InvalidUpdate):  # the genesis set did not certify today's head
        proof.verify(ledger.params)
    # A node that leaves out the last change: the client cannot reach the head's set.
    short = follow_validator_set(ledger.params, changes[:1])
    with pytest.raises(InvalidUpdate) as info:
        set_for(short, proof.header)
    assert info.value.reason == RejectReason.BAD_VALIDATORS
    # A roster other than the one the header names, or a change out of order, is refused.
    forged = dataclasses.replace(
        changes[0], roster=Roster(("x",) * 1, ValidatorSet((KEYS[6].public_key,)))
    )
    for bad in ([forged, *changes[1:]], [changes[1], changes[0]], changes[1:]):
        with pytest.raises(InvalidUpdate):
            follow_validator_set(ledger.params, bad)


def test_the_mempool_drops_approvals_the_chain_made_useless(ledger: Ledger) -> None:
    # Redundant approvals (the change was scheduled without them) and ops of keys that left
    # the set would wait in a follower's mempool until their valid_until, gossiped again.
    from chain.mempool import Mempool

    pool = Mempool(ledger.params, chain=ledger)
    now_s = ledger.head.time_ms // 1000
    proposal = change_tx(ledger, KEYS[0], ValidatorChange(action=ChangeAction.REMOVE, name="v3"))
    finalize(ledger, [proposal])
    late = approve_tx(ledger, KEYS[3], proposal.txid)  # v3 approves its own removal, too late
    pool.add(late, ledger.get_domain, now_s)
    with pytest.raises(InvalidUpdate) as info:  # an approval of nothing pending here
        pool.add(approve_tx(ledger, KEYS[1], b"\x05" * 32), ledger.get_domain, now_s)
    assert info.value.reason == RejectReason.PROPOSAL_NOT_FOUND
    approvals = [approve_tx(ledger, k, proposal.txid) for k in KEYS[1:3]]
    block, _ = block_of(ledger, approvals)  # another proposer's block schedules it
    ledger.apply_block(block, certify(ledger, block.hash, block.height, KEYS[:4]))
    dropped = pool.block_applied(block.txs, ledger.get_domain, now_s)
    assert [(tx, exc.reason) for tx, exc in dropped] == [(late, RejectReason.PROPOSAL_NOT_FOUND)]
    assert len(pool) == 0
