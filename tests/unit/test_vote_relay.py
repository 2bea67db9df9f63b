"""The proposer's vote relay (issue 20): `RelayedVotes` on the wire, `VoteRelay`'s batches,
and what a link accepts as relayed (a real `Node` over LevelDB in a temporary directory whose
host never starts, as in test_validator_links)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from chain.consensus_messages import MAX_RELAYED_VOTES, RelayedVotes
from chain.crypto import PrivateKey
from chain.encoding import Kind, frame
from chain.errors import InvalidUpdate
from chain.quorum import Vote, VoteType
from chain.validator_hello import ValidatorHello
from chain.wire import message_kind
from ledgerdns.node.config import NodeConfig, Prepared
from ledgerdns.node.node import Node
from ledgerdns.protocol.offences import BAD_MESSAGE_PENALTY
from ledgerdns.protocol.vote_relay import (
    RELAY_LATE_S,
    RELAY_WAIT_S,
    STEPS_KEPT,
    VoteRelay,
    relayed_by_proposer,
)
from tools.devchain import dev_key
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)
KEYS = [dev_key("validator", i) for i in range(4)]
PEER = "12D3KooWJunkSender"


def vote(key: PrivateKey, height: int = 5, round_: int = 0, block: bytes = b"\x01" * 32,
         vtype: VoteType = VoteType.PREVOTE) -> Vote:  # fmt: skip
    return Vote.create(
        key, chain_id=GENESIS.chain_id, genesis_hash=GENESIS.hash(), vtype=vtype,
        height=height, round_=round_, block_hash=block,
    )  # fmt: skip


def test_relayed_votes_round_trip_and_refuse_malformed_batches() -> None:
    votes = tuple(vote(k).to_bytes() for k in KEYS[:3])
    data = RelayedVotes(votes).to_bytes()
    assert message_kind(data) == Kind.RELAYED_VOTES
    assert RelayedVotes.from_bytes(data).votes == votes
    for bad in (
        frame(Kind.RELAYED_VOTES, []),  # empty
        frame(Kind.RELAYED_VOTES, [1, 2]),  # not bytes
        frame(Kind.RELAYED_VOTES, [b"x" * 300]),  # longer than any vote
        frame(Kind.RELAYED_VOTES, [b"v"] * (MAX_RELAYED_VOTES + 1)),
        data + b"\x00",  # trailing bytes
    ):
        with pytest.raises(InvalidUpdate):
            RelayedVotes.from_bytes(bad)


def test_only_round_zero_votes_for_a_block_go_to_the_proposer_alone() -> None:
    assert relayed_by_proposer(vote(KEYS[1]))
    assert not relayed_by_proposer(vote(KEYS[1], block=b""))  # nil: the proposer may be the problem
    assert not relayed_by_proposer(vote(KEYS[1], round_=1))  # round 0 went wrong


class Sent(list[bytes]):
    def __call__(self, data: bytes) -> bool:
        self.append(data)
        return True


@pytest.mark.trio
async def test_the_vote_that_completes_a_quorum_sends_the_batch_at_once(autojump_clock: trio.testing.MockClock) -> None:
    sent = Sent()
    relay = VoteRelay(quorum=lambda: 3, send=sent)
    async with trio.open_nursery() as nursery:
        await nursery.start(relay.run)
        relay.own(vote(KEYS[0]))
        relay.add(vote(KEYS[1]), vote(KEYS[1]).to_bytes())
        assert sent == []  # 2 of 3: waits for the third
        relay.add(vote(KEYS[1]), vote(KEYS[1]).to_bytes())  # the same signer again: nothing
        relay.add(vote(KEYS[2]), vote(KEYS[2]).to_bytes())
        assert [RelayedVotes.from_bytes(d).votes for d in sent] == [
            (vote(KEYS[1]).to_bytes(), vote(KEYS[2]).to_bytes())
        ]
        # a late vote of the same step goes out after RELAY_LATE_S, not at once
        relay.add(vote(KEYS[3]), vote(KEYS[3]).to_bytes())
        assert len(sent) == 1
        await trio.sleep(RELAY_LATE_S + 0.01)
        assert RelayedVotes.from_bytes(sent[1]).votes == (vote(KEYS[3]).to_bytes(),)
        assert relay.votes_relayed == 3 and relay.batches_sent == 2
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_batch_short_of_a_quorum_goes_out_after_the_wait(autojump_clock: trio.testing.MockClock) -> None:
    sent = Sent()
    relay = VoteRelay(quorum=lambda: 3, send=sent)
    async with trio.open_nursery() as nursery:
        await nursery.start(relay.run)
        relay.add(vote(KEYS[1]), vote(KEYS[1]).to_bytes())
        await trio.sleep(RELAY_WAIT_S - 0.05)
        assert sent == []
        await trio.sleep(0.1)
        assert [RelayedVotes.from_bytes(d).votes for d in sent] == [(vote(KEYS[1]).to_bytes(),)]
        nursery.cancel_scope.cancel()


def test_the_relay_remembers_a_bounded_number_of_steps() -> None:
    relay = VoteRelay(quorum=lambda: 100, send=Sent())
    for height in range(1, 3 * STEPS_KEPT):
        relay.own(vote(KEYS[0], height=height))
    assert len(relay._signers) == STEPS_KEPT
    assert min(relay._signers)[0] == 2 * STEPS_KEPT  # the oldest steps went first


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """validator-0's node, host never started."""
    prepared = Prepared(genesis=GENESIS, key=KEYS[0], validator_name="validator-0", created_devnet=False)
    node = Node(NodeConfig(data_dir=tmp_path), prepared)
    try:
        yield node
    finally:
        node.close()


def hello(key: PrivateKey) -> bytes:
    return ValidatorHello.create(
        key, chain_id=GENESIS.chain_id, genesis_hash=GENESIS.hash(), peer_id=PEER.encode(),
        addrs=("/ip4/127.0.0.1/tcp/4001",), time_ms=1_000,
    ).to_bytes()  # fmt: skip


def proposer_index(height: int, round_: int = 0) -> int:
    key = GENESIS.params.validators.proposer(height, round_)
    return next(i for i, k in enumerate(KEYS) if bytes(k.public_key) == bytes(key))


@pytest.mark.trio
async def test_a_link_takes_relayed_votes_only_from_their_rounds_proposer(node: Node) -> None:
    links = node.links
    height = next(h for h in range(5, 50) if proposer_index(h) == 1)  # validator-1 leads round 0
    assert links.accept_greeting(PEER, hello(KEYS[1]))
    batch = RelayedVotes((vote(KEYS[2], height=height).to_bytes(), vote(KEYS[3], height=height).to_bytes()))
    assert await links.on_frame(PEER, batch.to_bytes())
    assert node.p2p.penalty(PEER) == 0
    # votes of a height validator-1 does not lead: the link is closed and the peer pays
    other = next(h for h in range(5, 50) if proposer_index(h) == 2)
    wrong = RelayedVotes((vote(KEYS[3], height=other).to_bytes(),))
    assert not await links.on_frame(PEER, wrong.to_bytes())
    assert node.p2p.penalty(PEER) == BAD_MESSAGE_PENALTY
    # a nil vote is never relayed (it goes to everyone first-hand)
    nil = RelayedVotes((vote(KEYS[3], height=height, block=b"").to_bytes(),))
    assert not await links.on_frame(PEER, nil.to_bytes())
    assert node.p2p.penalty(PEER) == 2 * BAD_MESSAGE_PENALTY


class Handled:
    """Stands in for the consensus topic's handler: every message valid, each one recorded."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bool]] = []

    def validate(self, peer: str, data: bytes) -> bool:
        return True

    async def on_message(self, peer: str, data: bytes, *, relayed: bool = False) -> None:
        self.messages.append((data, relayed))

    def handled_by_link(self, data: bytes) -> None:
        pass


@pytest.mark.trio
async def test_the_proposer_relays_the_votes_sent_to_it(node: Node) -> None:
    links = node.links
    handled = Handled()
    links.attach(handled)  # type: ignore[arg-type]
    ours = next(h for h in range(5, 50) if proposer_index(h) == 0)  # validator-0 (we) leads
    assert links.accept_greeting(PEER, hello(KEYS[1]))
    first = vote(KEYS[1], height=ours).to_bytes()
    assert await links.on_frame(PEER, first)
    # 1 of a quorum of 3: kept for the batch (nobody is linked to send it to here), and
    # handled as validator-1's own
    assert links.relay._pending == [first]
    assert handled.messages == [(first, False)]
    # a vote of a round we do not lead is handled, not relayed
    theirs = next(h for h in range(5, 50) if proposer_index(h) == 1)
    assert await links.on_frame(PEER, vote(KEYS[1], height=theirs).to_bytes())
    assert len(links.relay._pending) == 1
    # what validator-1 relays for its round is handled as relayed
    batch = RelayedVotes((vote(KEYS[2], height=theirs).to_bytes(),))
    assert await links.on_frame(PEER, batch.to_bytes())
    assert handled.messages[-1] == (vote(KEYS[2], height=theirs).to_bytes(), True)
