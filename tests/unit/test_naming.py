"""Commit-reveal registration, stamps and per-block limits (issue 15, docs/naming.md).

A small network whose stamps are cheap (8 KiB Argon2id, 2 sub-stamps of work 2)
but real, on the ledger in memory: every rule the chain applies to names.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from chain.block import Block, tx_root
from chain.commits import (
    Claim,
    CommitEntry,
    build_commit,
    build_reveal,
    claim_tree_key,
    commit_tree_key,
    make_commitment,
)
from chain.crypto import PrivateKey
from chain.errors import ConfigError, InvalidUpdate, RejectReason
from chain.genesis import Genesis, make_single_validator_genesis
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.params import PUBLIC_NAME_LIFETIME_S, PUBLIC_NAMING, NamingParams
from chain.records import Record
from chain.rules import check_tx_static
from chain.stamp import solve_stamp, stamp_seed, verify_stamp
from chain.store import MemoryStore
from chain.tx import ZERO_HASH, Op, Transaction, TxBody
from tools.devchain import certify, dev_key, register_tx, soon

VALIDATOR = dev_key("validator", 0)
ALICE = dev_key("owner", 0)
MALLORY = dev_key("owner", 1)
NAMING = NamingParams(
    reveal_delay=2, reveal_window=5, stamp_work=2, stamp_count=2, stamp_memory_kib=8,
    stamp_short_factors=(8,), max_block_commits=3, max_block_registrations=2,
)  # fmt: skip
RECORDS = (Record.from_text("@ 300 A 192.0.2.7", origin="alice.p2p"),)


def make_genesis(naming: NamingParams = NAMING, chain_id: str = "naming-test") -> Genesis:
    base = make_single_validator_genesis(VALIDATOR.public_key, genesis_time_ms=1_000_000, chain_id=chain_id)
    consensus = dataclasses.replace(base.params.consensus, heartbeat_ms=1000)
    params = dataclasses.replace(base.params, naming=naming, consensus=consensus)
    return dataclasses.replace(base, params=params)


@pytest.fixture
def ledger() -> Ledger:
    led = Ledger(MemoryStore(), make_genesis())
    led.initialize()
    return led


def commit_tx(
    ledger: Ledger, key: PrivateKey, domain: str, salt: bytes = b"s" * 16, *, work: int | None = None,
    owner_in_commitment: PrivateKey | None = None, genesis_hash: bytes | None = None,
) -> Transaction:
    """A commit with a real stamp (of `work`, default what `domain` needs)."""
    p = ledger.params
    gh = genesis_hash if genesis_hash is not None else p.genesis_hash
    owner = (owner_in_commitment or key).public_key
    commitment = make_commitment(gh, domain, owner, salt)
    work = p.naming.required_work(domain) if work is None else work
    stamp = solve_stamp(stamp_seed(gh, commitment, owner, work), work, p.naming)
    return build_commit(
        key=key, chain_id=p.chain_id, genesis_hash=p.genesis_hash, commitment=commitment,
        work=work, stamp=stamp, deadline=soon(ledger),
    )  # fmt: skip


def reveal_tx(
    ledger: Ledger, key: PrivateKey, domain: str, commit_height: int, salt: bytes = b"s" * 16
) -> Transaction:
    state = ledger.get_domain(domain)
    seq, prev = (0, ZERO_HASH) if state is None else (state.seq + 1, state.head)
    return build_reveal(
        key=key, chain_id=ledger.params.chain_id, genesis_hash=ledger.params.genesis_hash,
        domain=domain, seq=seq, prev=prev, records=RECORDS if domain == "alice.p2p" else (),
        salt=salt, commit_height=commit_height, deadline=soon(ledger),
    )  # fmt: skip


def build(ledger: Ledger, txs: list[Transaction]) -> tuple[Block, list[InvalidUpdate]]:
    block, rejected = ledger.build_block(
        txs, time_ms=ledger.head.time_ms + 1000, proposer=VALIDATOR.public_key
    )
    return block, [r.error for r in rejected]


def step(ledger: Ledger, txs: list[Transaction] = ()) -> Block:  # type: ignore[assignment]
    """Build, check and finalize the next block; every tx must be taken."""
    block, rejected = build(ledger, list(txs))
    assert not rejected, rejected
    ledger.apply_block(block, certify(ledger, block.hash, block.height, [VALIDATOR]))
    return block


def rejection(ledger: Ledger, tx: Transaction) -> RejectReason:
    block, rejected = build(ledger, [tx])
    assert not block.txs and len(rejected) == 1
    return rejected[0].reason


# -- the happy path --


def test_commit_then_reveal_registers_and_leaves_a_claim(ledger: Ledger) -> None:
    commit = commit_tx(ledger, ALICE, "alice.p2p")
    step(ledger, [commit])
    key = commit_tree_key(commit.body.commitment, ALICE.public_key)
    entry = ledger.get_commit(key)
    assert entry == CommitEntry(commitment=commit.body.commitment, owner=ALICE.public_key,
                                height=1, index=0, work=2)  # fmt: skip
    assert ledger.tree.get(key) is not None  # in the authenticated state
    assert ledger.history("") == []  # a commit is no step of a domain's chain
    step(ledger)
    step(ledger, [reveal_tx(ledger, ALICE, "alice.p2p", 1)])
    state = ledger.get_domain("alice.p2p")
    assert state is not None and state.owner == ALICE.public_key and state.records == RECORDS
    assert ledger.get_commit(key) is None and ledger.tree.get(key) is None  # revealed once
    assert ledger.get_claim("alice.p2p") == Claim(domain="alice.p2p", commit_height=1, commit_index=0, until=6)
    assert ledger.tree.root() == ledger.head.state_root


def test_the_commit_does_not_show_the_name(ledger: Ledger) -> None:
    commit = commit_tx(ledger, ALICE, "alice.p2p")
    wire = commit.to_bytes()
    assert b"alice" not in wire and commit.body.domain == ""
    assert Transaction.from_bytes(wire) == commit


def test_encodings_round_trip() -> None:
    genesis = make_genesis()
    led = Ledger(MemoryStore(), genesis)
    led.initialize()
    reveal = reveal_tx(led, ALICE, "alice.p2p", 7)
    assert Transaction.from_bytes(reveal.to_bytes()) == reveal
    assert reveal.body.is_reveal and reveal.body.commit_height == 7
    entry = CommitEntry(commitment=b"c" * 32, owner=ALICE.public_key, height=3, index=1, work=9)
    claim = Claim(domain="alice.p2p", commit_height=3, commit_index=1, until=8)
    assert CommitEntry.from_bytes(entry.to_bytes()) == entry
    assert Claim.from_bytes(claim.to_bytes()) == claim


@pytest.mark.parametrize("change", [
    {"salt": b"s" * 16, "op": Op.UPDATE},
    {"salt": b"short"},
    {"commit_height": 3},
    {"commitment": b"c" * 32},
])  # fmt: skip
def test_body_forms_are_strict(change: dict[str, object]) -> None:
    fields = {"chain_id": "x", "domain": "alice.p2p", "seq": 0, "prev": ZERO_HASH, "op": Op.REGISTER,
                  "records": (), "owner": ALICE.public_key, "valid_until": 5}  # fmt: skip
    with pytest.raises(InvalidUpdate) as info:
        TxBody(**{**fields, **change})  # type: ignore[arg-type]
    assert info.value.reason == RejectReason.MALFORMED


# -- the reveal window --


def test_reveal_too_early_is_refused(ledger: Ledger) -> None:
    step(ledger, [commit_tx(ledger, ALICE, "alice.p2p")])
    assert rejection(ledger, reveal_tx(ledger, ALICE, "alice.p2p", 1)) == RejectReason.REVEAL_TOO_EARLY
    # a reveal in the commit's own block is as early as it gets
    commit = commit_tx(ledger, MALLORY, "bob.p2p")
    block, rejected = build(ledger, [commit, reveal_tx(ledger, MALLORY, "bob.p2p", 2)])
    assert block.txs == (commit,) and rejected[0].reason == RejectReason.REVEAL_TOO_EARLY


def test_reveal_too_late_is_refused_and_the_commit_expires(ledger: Ledger) -> None:
    commit = commit_tx(ledger, ALICE, "alice.p2p")
    step(ledger, [commit])
    key = commit_tree_key(commit.body.commitment, ALICE.public_key)
    for _ in range(5):  # heights 2..6: the window is 1 + 2 .. 1 + 5
        step(ledger)
    assert ledger.get_commit(key) is not None and ledger.height == 6
    root_with = ledger.head.state_root
    assert rejection(ledger, reveal_tx(ledger, ALICE, "alice.p2p", 1)) == RejectReason.REVEAL_TOO_LATE
    step(ledger)  # height 7: the commit leaves the state and the tree
    assert ledger.get_commit(key) is None and ledger.tree.get(key) is None
    assert ledger.head.state_root != root_with
    assert ledger.naming_leaving(7) == []  # the expiry mark went with it


def test_reveal_on_the_last_height_of_the_window_is_taken(ledger: Ledger) -> None:
    step(ledger, [commit_tx(ledger, ALICE, "alice.p2p")])
    for _ in range(4):
        step(ledger)
    step(ledger, [reveal_tx(ledger, ALICE, "alice.p2p", 1)])  # height 6 = 1 + reveal_window
    assert ledger.get_domain("alice.p2p") is not None


@pytest.mark.parametrize("wrong", ["height", "salt", "name", "owner"])
def test_a_reveal_must_match_its_commit(ledger: Ledger, wrong: str) -> None:
    step(ledger, [commit_tx(ledger, ALICE, "alice.p2p")])
    step(ledger, [commit_tx(ledger, ALICE, "carol.p2p", b"t" * 16)])
    step(ledger)
    tx = {
        "height": lambda: reveal_tx(ledger, ALICE, "alice.p2p", 2),
        "salt": lambda: reveal_tx(ledger, ALICE, "alice.p2p", 1, b"x" * 16),
        "name": lambda: reveal_tx(ledger, ALICE, "alicia.p2p", 1),
        "owner": lambda: reveal_tx(ledger, MALLORY, "alice.p2p", 1),
    }[wrong]()
    assert rejection(ledger, tx) == RejectReason.COMMIT_NOT_FOUND


# -- front-running --


def test_an_earlier_commit_wins_even_if_the_later_one_reveals_first(ledger: Ledger) -> None:
    step(ledger, [commit_tx(ledger, ALICE, "alice.p2p")])  # height 1
    # Mallory learns the name (say, from Alice's reveal a censoring proposer held back)
    step(ledger, [commit_tx(ledger, MALLORY, "alice.p2p", b"m" * 16)])  # height 2
    step(ledger)
    step(ledger, [reveal_tx(ledger, MALLORY, "alice.p2p", 2, b"m" * 16)])  # height 4: first
    state = ledger.get_domain("alice.p2p")
    assert state is not None and state.owner == MALLORY.public_key
    # the provisional owner cannot move the name under the earlier commit
    upd = register_like_update(ledger, MALLORY)
    assert rejection(ledger, upd) == RejectReason.NAME_PROVISIONAL
    step(ledger, [reveal_tx(ledger, ALICE, "alice.p2p", 1)])  # height 5: Alice takes it
    state = ledger.get_domain("alice.p2p")
    assert state is not None and state.owner == ALICE.public_key and state.seq == 1
    claim = ledger.get_claim("alice.p2p")
    assert claim is not None and (claim.commit_height, claim.until) == (1, 6)


def test_a_later_commit_cannot_take_a_name_revealed_from_an_earlier_one(ledger: Ledger) -> None:
    step(ledger, [commit_tx(ledger, ALICE, "alice.p2p")])
    step(ledger, [commit_tx(ledger, MALLORY, "alice.p2p", b"m" * 16)])
    step(ledger, [reveal_tx(ledger, ALICE, "alice.p2p", 1)])  # height 3
    assert rejection(ledger, reveal_tx(ledger, MALLORY, "alice.p2p", 2, b"m" * 16)) == RejectReason.NAME_TAKEN


def test_in_one_block_the_earlier_index_wins(ledger: Ledger) -> None:
    first = commit_tx(ledger, MALLORY, "alice.p2p", b"m" * 16)
    second = commit_tx(ledger, ALICE, "alice.p2p")
    step(ledger, [first, second])
    step(ledger)
    alice = reveal_tx(ledger, ALICE, "alice.p2p", 1)
    mallory = build_reveal(
        key=MALLORY, chain_id=ledger.params.chain_id, genesis_hash=ledger.params.genesis_hash,
        domain="alice.p2p", seq=1, prev=alice.txid, records=(), salt=b"m" * 16, commit_height=1,
        deadline=soon(ledger),
    )  # fmt: skip
    step(ledger, [alice, mallory])  # Alice reveals first in the block; Mallory's commit came first
    state = ledger.get_domain("alice.p2p")
    assert state is not None and state.owner == MALLORY.public_key and state.seq == 1


def test_once_the_claim_lapses_the_owner_may_update(ledger: Ledger) -> None:
    step(ledger, [commit_tx(ledger, ALICE, "alice.p2p")])
    step(ledger)
    step(ledger, [reveal_tx(ledger, ALICE, "alice.p2p", 1)])  # height 3, claim until 6
    for _ in range(2):
        step(ledger)
    # height 6 = until: an earlier commit (from height 1's block) may still reveal
    assert rejection(ledger, register_like_update(ledger, ALICE)) == RejectReason.NAME_PROVISIONAL
    step(ledger)
    # height 7: the claim leaves the state at the block's start
    step(ledger, [register_like_update(ledger, ALICE)])
    assert ledger.get_claim("alice.p2p") is None and ledger.tree.get(claim_tree_key("alice.p2p")) is None


def register_like_update(ledger: Ledger, key: PrivateKey) -> Transaction:
    state = ledger.get_domain("alice.p2p")
    assert state is not None
    body = TxBody(chain_id=ledger.params.chain_id, domain="alice.p2p", seq=state.seq + 1, prev=state.head,
                  op=Op.UPDATE, records=(), owner=state.owner, valid_until=soon(ledger))  # fmt: skip
    return Transaction.sign(body, key, ledger.params.genesis_hash)


def test_a_copied_commitment_is_its_own_entry_and_cannot_be_revealed(ledger: Ledger) -> None:
    alice = commit_tx(ledger, ALICE, "alice.p2p")
    copy = commit_tx(ledger, MALLORY, "alice.p2p", owner_in_commitment=ALICE)  # same commitment
    assert copy.body.commitment == alice.body.commitment
    with pytest.raises(InvalidUpdate):  # its stamp was searched for Alice's key, not Mallory's
        check_tx_static(copy, ledger.params)
    step(ledger, [alice])
    assert rejection(ledger, alice) == RejectReason.DUPLICATE


# -- stamps --


@pytest.mark.parametrize("bind", ["name", "owner", "network"])
def test_a_stamp_is_bound_to_name_owner_and_network(ledger: Ledger, bind: str) -> None:
    p = ledger.params
    commitment = make_commitment(p.genesis_hash, "alice.p2p", ALICE.public_key, b"s" * 16)
    other = {
        "name": make_commitment(p.genesis_hash, "alicia.p2p", ALICE.public_key, b"s" * 16),
        "owner": commitment,
        "network": commitment,
    }[bind]
    seed_owner = MALLORY.public_key if bind == "owner" else ALICE.public_key
    seed_net = make_genesis(chain_id="other-net").hash() if bind == "network" else p.genesis_hash
    # a stamp searched for the other name, owner or network...
    stamp = solve_stamp(stamp_seed(seed_net, other, seed_owner, 64), 64, p.naming)
    # ...does not hold for Alice's commit here (a chance of (1/64)^2 that it would)
    tx = build_commit(key=ALICE, chain_id=p.chain_id, genesis_hash=p.genesis_hash, commitment=commitment,
                      work=64, stamp=stamp, deadline=soon(ledger))  # fmt: skip
    good = solve_stamp(stamp_seed(p.genesis_hash, commitment, ALICE.public_key, 64), 64, p.naming)
    if stamp == good:
        pytest.skip("the two searches found the same nonces")  # never with these inputs
    with pytest.raises(InvalidUpdate) as info:
        check_tx_static(tx, p)
    assert info.value.reason == RejectReason.BAD_STAMP and info.value.penalty > 0


@pytest.mark.parametrize("stamp,why", [
    (b"", "holds 2 nonces"),
    (bytes(8) * 2, "ascending"),
    (bytes(8) * 3, "holds 2 nonces"),
])  # fmt: skip
def test_stamp_shapes(stamp: bytes, why: str) -> None:
    with pytest.raises(InvalidUpdate, match=why):
        verify_stamp(stamp, b"s" * 32, 2, NAMING)


def test_a_commit_under_the_network_work_is_refused(ledger: Ledger) -> None:
    tx = commit_tx(ledger, ALICE, "alice.p2p", work=1)
    with pytest.raises(InvalidUpdate) as info:
        check_tx_static(tx, ledger.params)
    assert info.value.reason == RejectReason.BAD_STAMP


def test_short_names_need_more_work(ledger: Ledger) -> None:
    assert NAMING.required_work("a.p2p") == 16 and NAMING.required_work("ab.p2p") == 2
    step(ledger, [commit_tx(ledger, ALICE, "a.p2p", work=2)])  # enough for a long name only
    step(ledger, [commit_tx(ledger, ALICE, "b.p2p", b"b" * 16)])  # work 16
    step(ledger)
    assert rejection(ledger, reveal_tx(ledger, ALICE, "a.p2p", 1)) == RejectReason.STAMP_TOO_WEAK
    step(ledger, [reveal_tx(ledger, ALICE, "b.p2p", 2, b"b" * 16)])
    assert ledger.get_domain("b.p2p") is not None


# -- the form a network takes --


def test_direct_registration_is_refused_where_commit_reveal_is_on(ledger: Ledger) -> None:
    tx = register_tx(ledger.genesis, ALICE, "alice.p2p", valid_until=soon(ledger))
    with pytest.raises(InvalidUpdate) as info:
        check_tx_static(tx, ledger.params)
    assert info.value.reason == RejectReason.COMMIT_REQUIRED


def test_commits_are_refused_where_names_are_registered_directly() -> None:
    led = Ledger(MemoryStore(), make_genesis(NamingParams()))
    led.initialize()
    commit = commit_tx(led, ALICE, "alice.p2p", work=0)
    with pytest.raises(InvalidUpdate) as info:
        check_tx_static(commit, led.params)
    assert info.value.reason == RejectReason.COMMIT_REVEAL_OFF


# -- per-block limits --


def test_per_block_limits_leave_the_rest_for_later_blocks(ledger: Ledger) -> None:
    commits = [commit_tx(ledger, ALICE, f"n{i}.p2p", bytes([i]) * 16) for i in range(5)]
    block = step(ledger, commits)
    assert block.txs == tuple(commits[:3])  # max_block_commits 3, nothing rejected
    step(ledger, commits[3:])
    step(ledger)
    reveals = [reveal_tx(ledger, ALICE, f"n{i}.p2p", 1, bytes([i]) * 16) for i in range(3)]
    block = step(ledger, reveals)
    assert block.txs == tuple(reveals[:2])  # max_block_registrations 2


def test_a_block_over_the_limits_is_invalid(ledger: Ledger) -> None:
    commits = [commit_tx(ledger, ALICE, f"n{i}.p2p", bytes([i]) * 16) for i in range(4)]
    block, _ = build(ledger, commits[:3])
    header = dataclasses.replace(block.header, tx_root=tx_root(commits))
    with pytest.raises(InvalidUpdate) as info:
        ledger.check_block(Block(header=header, txs=tuple(commits)))
    assert info.value.reason == RejectReason.TOO_MANY_REGISTRATIONS


# -- the mempool --


def test_mempool_checks_reveals_against_the_chain(ledger: Ledger) -> None:
    pool = Mempool(ledger.params, chain=ledger)
    commit = commit_tx(ledger, ALICE, "alice.p2p")
    pool.add(commit, ledger.get_domain, 1000)
    with pytest.raises(InvalidUpdate) as info:
        pool.add(commit_tx(ledger, ALICE, "alice.p2p"), ledger.get_domain, 1000)
    assert info.value.reason == RejectReason.DUPLICATE
    step(ledger, pool.batch(100, 1 << 20))
    assert pool.block_applied(ledger.get_block(1).txs, ledger.get_domain, 1001) == [] and len(pool) == 0
    with pytest.raises(InvalidUpdate) as info:
        pool.add(reveal_tx(ledger, ALICE, "alice.p2p", 1), ledger.get_domain, 1001)
    assert info.value.reason == RejectReason.REVEAL_TOO_EARLY  # the next height is 2
    step(ledger)
    pool.add(reveal_tx(ledger, ALICE, "alice.p2p", 1), ledger.get_domain, 1002)
    assert len(pool) == 1
    # a commit the proposer refuses is dropped on its own (it has no domain chain)
    stale = commit_tx(ledger, ALICE, "x.p2p")
    pool.add(stale, ledger.get_domain, 1002)
    dropped = pool.discard(stale.txid, InvalidUpdate(RejectReason.DUPLICATE))
    assert [tx for tx, _ in dropped] == [stale] and len(pool) == 1


def test_mempool_batch_keeps_to_the_limits() -> None:
    genesis = make_genesis()
    led = Ledger(MemoryStore(), genesis)
    led.initialize()
    pool = Mempool(genesis.params)
    commits = [commit_tx(led, ALICE, f"n{i}.p2p", bytes([i]) * 16) for i in range(5)]
    for tx in commits:
        pool.add(tx, led.get_domain, 1000)
    assert pool.batch(100, 1 << 20) == commits[:3]


# -- genesis --


def test_genesis_round_trip_and_hash() -> None:
    genesis = make_genesis()
    again = Genesis.from_json(genesis.to_json())
    assert again.params.naming == NAMING and again.hash() == genesis.hash()
    plain = make_genesis(NamingParams())
    assert plain.hash() != genesis.hash()


@pytest.mark.parametrize("naming,key", [
    ({"reveal_delay": 0, "stamp_work": 5}, "naming"),
    ({"reveal_delay": 3, "reveal_window": 2}, "naming.reveal_window"),
    ({"stamp_count": 0}, "naming.stamp_count"),
    ({"stamp_short_factors": [0]}, "naming.stamp_short_factors[0]"),
    ({"surprise": 1}, "naming.surprise"),
])  # fmt: skip
def test_genesis_naming_mistakes_name_their_key(naming: dict[str, object], key: str) -> None:
    doc = json.loads(make_genesis(NamingParams()).to_json())
    doc["naming"] = naming
    with pytest.raises(ConfigError) as info:
        Genesis.from_json(json.dumps(doc))
    assert info.value.key == key


def test_a_long_reveal_delay_needs_a_heartbeat() -> None:
    doc = json.loads(make_genesis(NamingParams()).to_json())
    doc["consensus"]["heartbeat_ms"] = 0
    doc["naming"] = {"reveal_delay": 2, "reveal_window": 4}
    with pytest.raises(ConfigError) as info:
        Genesis.from_json(json.dumps(doc))
    assert info.value.key == "naming.reveal_delay"
    doc["naming"] = {"reveal_delay": 1, "reveal_window": 4}
    assert Genesis.from_json(json.dumps(doc)).params.naming.reveal_delay == 1


# -- `ledgerdns genesis new` --


def test_genesis_new_sets_the_public_rules_and_takes_flags(tmp_path: Path) -> None:
    from ledgerdns.cli import main

    def new(name: str, *flags: str) -> int:
        return main(["genesis", "new", "--key-file", str(tmp_path / "v.pem"),
                     "--out", str(tmp_path / name), *flags])  # fmt: skip

    assert new("public.json") == 0
    public = Genesis.from_json((tmp_path / "public.json").read_text()).params
    assert public.naming == PUBLIC_NAMING and public.name_lifetime_s == PUBLIC_NAME_LIFETIME_S
    assert new("dev.json", "--reveal-delay", "0", "--name-lifetime-days", "0") == 0
    dev = Genesis.from_json((tmp_path / "dev.json").read_text()).params
    assert dev.naming == NamingParams() and dev.name_lifetime_s == 0
    assert new("tuned.json", "--stamp-work", "10", "--stamp-short-factors", "4,2",
               "--max-block-commits", "5") == 0  # fmt: skip
    tuned = Genesis.from_json((tmp_path / "tuned.json").read_text()).params.naming
    assert (tuned.stamp_work, tuned.stamp_short_factors, tuned.max_block_commits) == (10, (4, 2), 5)
    assert new("bad.json", "--reveal-window", "0") == 2  # under the reveal delay
    assert not (tmp_path / "bad.json").exists()


# -- renewal pays a stamp too --


def renewal(ledger: Ledger, key: PrivateKey, *, work: int | None, prev: bytes | None = None) -> Transaction:
    from chain.stamp import renewal_seed

    state = ledger.get_domain("alice.p2p")
    assert state is not None
    head = state.head if prev is None else prev
    body = TxBody(chain_id=ledger.params.chain_id, domain="alice.p2p", seq=state.seq + 1, prev=state.head,
                  op=Op.RENEW, records=state.records, owner=state.owner, valid_until=soon(ledger))  # fmt: skip
    if work is not None:
        seed = renewal_seed(ledger.params.genesis_hash, "alice.p2p", state.owner, head, work)
        stamp = solve_stamp(seed, work, ledger.params.naming)
        body = dataclasses.replace(body, stamp_work=work, stamp=stamp)
    return Transaction.sign(body, key, ledger.params.genesis_hash)


def test_a_renewal_carries_a_stamp_bound_to_the_head() -> None:
    genesis = make_genesis()
    genesis = dataclasses.replace(genesis, params=dataclasses.replace(genesis.params, name_lifetime_s=100))
    led = Ledger(MemoryStore(), genesis)
    led.initialize()
    step(led, [commit_tx(led, ALICE, "alice.p2p")])
    step(led)
    step(led, [reveal_tx(led, ALICE, "alice.p2p", 1)])
    for _ in range(4):  # past the claim (until height 6)
        step(led)
    before = led.get_domain("alice.p2p")
    assert before is not None and before.expires_at > 0
    for bad in (renewal(led, ALICE, work=None), renewal(led, ALICE, work=1),
                renewal(led, ALICE, work=64, prev=b"\x01" * 32)):  # fmt: skip
        with pytest.raises(InvalidUpdate) as info:
            check_tx_static(bad, led.params)
        assert info.value.reason == RejectReason.BAD_STAMP
    good = renewal(led, ALICE, work=64)  # more than asked: (1/64)^2 that a wrong seed passes
    assert Transaction.from_bytes(good.to_bytes()) == good and good.body_bytes[1:3] == b"\x18\x23"
    step(led, [good])
    after = led.get_domain("alice.p2p")
    assert after is not None and after.expires_at > before.expires_at


def test_a_revealed_commit_leaves_a_stale_mark_that_its_height_drops(ledger: Ledger) -> None:
    commit = commit_tx(ledger, ALICE, "alice.p2p")
    step(ledger, [commit])  # height 1: the commit leaves at 7 at the latest
    step(ledger)
    step(ledger, [reveal_tx(ledger, ALICE, "alice.p2p", 1)])  # height 3: revealed; claim until 6
    key = commit_tree_key(commit.body.commitment, ALICE.public_key)
    assert sorted(ledger.naming_leaving(7)) == sorted([key, claim_tree_key("alice.p2p")])
    for _ in range(4):
        step(ledger)  # heights 4..7: at 7 the claim leaves, the commit's mark is stale
    assert ledger.naming_leaving(7) == [] and ledger.get_claim("alice.p2p") is None
    state = ledger.get_domain("alice.p2p")
    assert state is not None and state.owner == ALICE.public_key
