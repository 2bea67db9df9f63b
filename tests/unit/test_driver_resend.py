"""What a node sends again while its height is stuck: its own messages and the prevotes behind a lock."""

from __future__ import annotations

from chain.consensus import Step
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.quorum import Vote, VoteType
from chain.store import MemoryStore
from ledgerdns.clock import SYSTEM_CLOCK
from ledgerdns.consensus.driver import ConsensusDriver
from tools.devchain import dev_key
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)
KEYS = [dev_key("validator", i) for i in range(4)]
BLOCK = b"\x0b" * 32


def driver(key_index: int | None) -> ConsensusDriver:
    async def nothing(*_: object) -> None:
        return None

    chain = Ledger(MemoryStore(), GENESIS)
    chain.initialize()
    return ConsensusDriver(
        genesis=GENESIS, ledger=chain, mempool=Mempool(GENESIS.params),
        key=None if key_index is None else KEYS[key_index], guard_file=None,
        broadcast=nothing, committed=nothing, clock=SYSTEM_CLOCK,
    )  # fmt: skip


def prevote(i: int, round_: int, block_hash: bytes = BLOCK) -> Vote:
    return Vote.create(
        KEYS[i], chain_id=GENESIS.chain_id, genesis_hash=GENESIS.hash(), vtype=VoteType.PREVOTE,
        height=1, round_=round_, block_hash=block_hash,
    )  # fmt: skip


def stuck_in_round(d: ConsensusDriver, round_: int) -> None:
    """The machine mid-height in `round_`, as after rounds of timeouts."""
    d.machine.round = round_
    d.machine.step = Step.PREVOTE


def test_the_prevotes_of_the_locked_round_are_relayed_whoever_signed_them() -> None:
    """Validator 3 is cut off; its round-0 prevote is what validator 2 lacks to accept the block."""
    d = driver(0)
    polka = {i: prevote(i, 0) for i in (0, 1, 3)}
    d.machine.votes[(0, VoteType.PREVOTE)] = dict(polka)
    d.machine.locked_round = d.machine.valid_round = 0
    stuck_in_round(d, 3)
    mine = prevote(0, 3, b"")
    d.machine.votes[(3, VoteType.PREVOTE)] = {0: mine}
    sent = d.stuck_messages()
    assert polka[3] in sent and polka[1] in sent  # relayed: not ours
    assert mine in sent and polka[0] in sent  # our own: this round's and the lock's
    assert len(sent) == len({v.to_bytes() for v in sent})  # each once


def test_a_follower_relays_a_valid_round_and_nothing_without_one() -> None:
    d = driver(None)
    stuck_in_round(d, 2)
    d.machine.votes[(0, VoteType.PREVOTE)] = {1: prevote(1, 0), 3: prevote(3, 0)}
    assert d.stuck_messages() == []  # no lock, no valid value: nothing to justify
    d.machine.valid_round = 0
    assert set(d.stuck_messages()) == {prevote(1, 0), prevote(3, 0)}


def test_nothing_is_relayed_while_waiting_for_transactions() -> None:
    d = driver(None)
    d.machine.votes[(0, VoteType.PREVOTE)] = {1: prevote(1, 0)}
    d.machine.valid_round = 0
    d.machine.step = Step.WAITING
    assert d.stuck_messages() == []


def test_only_the_rounds_proposer_leads_it() -> None:
    """The prevotes behind a lock are relayed by the round's proposer alone (issue 20)."""
    drivers = [driver(i) for i in range(4)]
    for d in drivers:
        stuck_in_round(d, 2)
    proposer = drivers[0].machine.validators.proposer(1, 2)
    leaders = [i for i, d in enumerate(drivers) if d.leads_round()]
    assert leaders == [i for i in range(4) if KEYS[i].public_key == proposer]
    assert not driver(None).leads_round()
