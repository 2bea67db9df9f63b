"""Commit-reveal against a tiny model: whatever the order of commits, reveals and idle
blocks, the name ends with the earliest commit that was revealed in its window (issue 15)."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from chain.commits import build_commit, build_reveal, make_commitment
from chain.genesis import Genesis, make_single_validator_genesis
from chain.ledger import Ledger
from chain.params import ConsensusParams, NamingParams
from chain.store import MemoryStore
from chain.tx import ZERO_HASH, Transaction
from tools.devchain import certify, dev_key

VALIDATOR = dev_key("validator", 0)
OWNERS = [dev_key("owner", i) for i in range(3)]
DELAY, WINDOW = 2, 8
NAME = "prize.p2p"


def _genesis() -> Genesis:
    base = make_single_validator_genesis(VALIDATOR.public_key, genesis_time_ms=1_000_000, chain_id="props")
    naming = NamingParams(reveal_delay=DELAY, reveal_window=WINDOW)  # no stamp: rules only
    params = dataclasses.replace(base.params, naming=naming, consensus=ConsensusParams(heartbeat_ms=1000))
    return dataclasses.replace(base, params=params)


GENESIS = _genesis()
ACTIONS = st.lists(st.sampled_from(["idle", "c0", "c1", "c2", "r0", "r1", "r2"]), max_size=18)


def _salt(i: int) -> bytes:
    return bytes([i + 1]) * 16


def _tx(ledger: Ledger, action: str, committed: dict[int, int]) -> Transaction | None:
    p = ledger.params
    deadline = ledger.head.time_ms // 1000 + 3600
    owner = int(action[1])
    key = OWNERS[owner]
    if action[0] == "c":
        commitment = make_commitment(p.genesis_hash, NAME, key.public_key, _salt(owner))
        return build_commit(key=key, chain_id=p.chain_id, genesis_hash=p.genesis_hash,
                            commitment=commitment, work=0, stamp=b"", deadline=deadline)  # fmt: skip
    if owner not in committed:
        return None
    state = ledger.get_domain(NAME)
    seq, prev = (0, ZERO_HASH) if state is None else (state.seq + 1, state.head)
    return build_reveal(key=key, chain_id=p.chain_id, genesis_hash=p.genesis_hash, domain=NAME,
                        seq=seq, prev=prev, records=(), salt=_salt(owner),
                        commit_height=committed[owner], deadline=deadline)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(actions=ACTIONS)
def test_the_earliest_revealed_commit_wins(actions: list[str]) -> None:
    ledger = Ledger(MemoryStore(), GENESIS)
    ledger.initialize()
    committed: dict[int, int] = {}  # owner -> height of its (one) commit
    valid_reveals: set[int] = set()  # owners whose reveal came inside their window
    for action in actions:
        if action != "idle" and action[0] == "c" and int(action[1]) in committed:
            action = "idle"  # one commit an owner
        if action != "idle" and action[0] == "r" and (int(action[1]) not in committed
                                                      or int(action[1]) in valid_reveals):
            action = "idle"  # a reveal needs a commit; one valid reveal an owner
        height = ledger.height + 1
        tx = None if action == "idle" else _tx(ledger, action, committed)
        block, _ = ledger.build_block([] if tx is None else [tx], time_ms=ledger.head.time_ms + 1000,
                                      proposer=VALIDATOR.public_key)  # fmt: skip
        ledger.apply_block(block, certify(ledger, block.hash, block.height, [VALIDATOR]))
        if action[0] == "c":
            assert block.txs, "a first commit is always taken"
            committed[int(action[1])] = height
        elif action[0] == "r":
            owner = int(action[1])
            in_window = committed[owner] + DELAY <= height <= committed[owner] + WINDOW
            if in_window:
                valid_reveals.add(owner)
    state = ledger.get_domain(NAME)
    if not valid_reveals:
        assert state is None
        return
    winner = min(valid_reveals, key=lambda o: committed[o])
    assert state is not None and state.owner == OWNERS[winner].public_key
    assert ledger.tree.root() == ledger.head.state_root
