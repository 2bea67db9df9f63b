"""Validator hellos and what a link may carry (issue 20).

`ValidatorHello` round-trips and binds the genesis; a real `Node` (LevelDB in a
temporary directory, a libp2p host that never starts) judges hellos and link
frames with its real `ValidatorLinks`: penalties are read back from the node's
own peer scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from chain.crypto import PrivateKey
from chain.encoding import Kind, frame
from chain.errors import InvalidUpdate
from chain.quorum import Vote, VoteType
from chain.validator_hello import ValidatorHello
from chain.wire import Resent, message_kind
from ledgerdns.node.config import NodeConfig, Prepared
from ledgerdns.node.node import Node
from ledgerdns.protocol.offences import BAD_MESSAGE_PENALTY
from tools.devchain import dev_key
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)
KEYS = [dev_key("validator", i) for i in range(4)]
PEER = "12D3KooWJunkSender"


def hello(key: PrivateKey, *, peer: str = PEER, time_ms: int = 1_000, genesis_hash: bytes | None = None,
          chain_id: str | None = None) -> ValidatorHello:  # fmt: skip
    return ValidatorHello.create(
        key,
        chain_id=chain_id or GENESIS.chain_id,
        genesis_hash=genesis_hash or GENESIS.hash(),
        peer_id=peer.encode(),
        addrs=("/ip4/127.0.0.1/tcp/4001",),
        time_ms=time_ms,
    )


def vote(key: PrivateKey, height: int = 1) -> Vote:
    return Vote.create(
        key, chain_id=GENESIS.chain_id, genesis_hash=GENESIS.hash(), vtype=VoteType.PREVOTE,
        height=height, round_=0, block_hash=b"\x01" * 32,
    )  # fmt: skip


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A validator node (validator-0) that never starts its host."""
    prepared = Prepared(genesis=GENESIS, key=KEYS[0], validator_name="validator-0", created_devnet=False)
    node = Node(NodeConfig(data_dir=tmp_path), prepared)
    try:
        yield node
    finally:
        node.close()


def test_hello_round_trips_and_binds_the_network() -> None:
    h = hello(KEYS[1])
    data = h.to_bytes()
    assert message_kind(data) == Kind.VALIDATOR_HELLO
    back = ValidatorHello.from_bytes(data)
    assert back == h
    assert back.is_valid_signature(GENESIS.hash())
    assert not back.is_valid_signature(b"\x07" * 32)  # another network's genesis


def test_message_kind_reads_kinds_above_23() -> None:
    assert message_kind(frame(Kind.LOCK_RECORD, 1)) == Kind.LOCK_RECORD
    assert message_kind(frame(Kind.VALIDATOR_HELLO, 1)) == Kind.VALIDATOR_HELLO
    assert message_kind(b"\x83\x18\x05\x01") is None  # a kind below 24 spelled long: not canonical


def test_malformed_hellos_are_refused() -> None:
    data = bytearray(hello(KEYS[1]).to_bytes())
    with pytest.raises(InvalidUpdate):
        ValidatorHello.from_bytes(bytes(data[:-3]))
    with pytest.raises(InvalidUpdate):
        ValidatorHello.from_bytes(frame(Kind.VALIDATOR_HELLO, "c", b"k", b"", [], 0, b""))


@pytest.mark.trio
async def test_the_newest_hello_of_a_validator_wins_and_a_validator_dials_it(node: Node) -> None:
    links = node.links
    assert links.validate_hello(PEER, hello(KEYS[1], time_ms=2_000).to_bytes())
    # an older one is not news (not passed on), and does not replace it
    older = hello(KEYS[1], peer="12D3KooWOlder", time_ms=1_000)
    assert not links.validate_hello(PEER, older.to_bytes())
    assert links.directory[bytes(KEYS[1].public_key)].peer_id == PEER.encode()
    # we are a validator: it is kept connected (redialled like a bootstrap peer)
    assert node.p2p._known.addrs(PEER) == ["/ip4/127.0.0.1/tcp/4001"]
    assert node.p2p.penalty(PEER) == 0


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: hello(KEYS[1], genesis_hash=b"\x09" * 32), id="other-genesis"),
        pytest.param(lambda: hello(KEYS[1], chain_id="another-chain"), id="other-chain"),
        pytest.param(lambda: hello(KEYS[1], time_ms=2**62), id="far-future"),
    ],
)
@pytest.mark.trio
async def test_a_bad_hello_costs_its_sender(node: Node, bad) -> None:  # type: ignore[no-untyped-def]
    passed = node.links.validate_hello(PEER, bad().to_bytes())
    assert not passed
    assert node.links.directory == {}
    assert node.p2p.penalty(PEER) == BAD_MESSAGE_PENALTY


@pytest.mark.trio
async def test_a_hello_of_a_key_outside_the_set_is_refused_at_no_cost(node: Node) -> None:
    # The validator set changes (issue 15): a validator just removed, or one added by blocks
    # this node has not applied yet, greets in good faith. Refused, not blamed.
    outsider = hello(PrivateKey.generate(b"not a validator"))
    assert not node.links.validate_hello(PEER, outsider.to_bytes())
    assert not node.links.accept_greeting(PEER, outsider.to_bytes())
    assert node.links.directory == {}
    assert node.p2p.penalty(PEER) == 0


@pytest.mark.trio
async def test_a_link_greeting_must_name_the_peer_that_sends_it(node: Node) -> None:
    links = node.links
    other = "12D3KooWSomeoneElse"
    assert not links.accept_greeting(other, hello(KEYS[1]).to_bytes())
    assert node.p2p.penalty(other) == BAD_MESSAGE_PENALTY
    assert links.accept_greeting(PEER, hello(KEYS[1]).to_bytes())


@pytest.mark.trio
async def test_a_link_carries_its_own_validators_votes_and_resends_only(node: Node) -> None:
    links = node.links
    assert links.accept_greeting(PEER, hello(KEYS[1]).to_bytes())
    # its validator's vote: kept open (heights ahead, so the idle machine is only told of them)
    assert await links.on_frame(PEER, vote(KEYS[1], height=5).to_bytes())
    # a re-send may relay another validator's vote
    relayed = Resent(nonce=1, payload=vote(KEYS[2], height=5).to_bytes()).to_bytes()
    assert await links.on_frame(PEER, relayed)
    assert node.p2p.penalty(PEER) == 0
    # another validator's vote first-hand: the link is closed and the peer pays
    assert not await links.on_frame(PEER, vote(KEYS[2]).to_bytes())
    assert node.p2p.penalty(PEER) == BAD_MESSAGE_PENALTY
    # another validator's hello, passed on (issue 20): learned, the link stays open
    assert await links.on_frame(PEER, hello(KEYS[2], peer="12D3KooWOther").to_bytes())
    assert bytes(KEYS[2].public_key) in links.directory
    assert node.p2p.penalty(PEER) == BAD_MESSAGE_PENALTY
    # a forged one closes the link and costs; junk likewise
    forged = bytearray(hello(KEYS[3], peer="12D3KooWThird").to_bytes())
    forged[-2] ^= 1
    assert not await links.on_frame(PEER, bytes(forged))
    assert bytes(KEYS[3].public_key) not in links.directory
    assert node.p2p.penalty(PEER) == 2 * BAD_MESSAGE_PENALTY
    assert not await links.on_frame(PEER, b"\x01junk")
    assert node.p2p.penalty(PEER) == 3 * BAD_MESSAGE_PENALTY


@pytest.mark.trio
async def test_votes_fall_back_to_gossip_until_every_validator_is_linked(node: Node) -> None:
    # nobody linked: the vote must go by gossip; a service that is not running cannot
    # publish, which is how we see the broadcast chose gossip
    from ledgerdns.p2p import P2PError

    with pytest.raises(P2PError):
        await node.links.broadcast(vote(KEYS[0]))
    assert node.links.votes_gossiped == 1 and node.links.votes_linked == 0


def test_gossip_is_needed_only_while_links_reach_fewer_than_a_quorum(node: Node) -> None:
    # four validators, a quorum of three: we and two linked ones decide without gossip (at 31
    # validators on one machine, gossiping while any one was unlinked livelocked, issue 20)
    keys = [bytes(k.public_key) for k in KEYS]
    assert node.links.needs_gossip([], 1)
    assert node.links.needs_gossip([keys[1]], 1)
    assert not node.links.needs_gossip([keys[1], keys[2]], 1)
    assert not node.links.needs_gossip(keys[1:], 1)
    stranger = bytes(dev_key("validator", 9).public_key)
    assert node.links.needs_gossip([keys[1], stranger], 1)  # only members of the set count


@pytest.mark.trio
async def test_a_copy_of_a_vote_the_machine_took_is_neither_checked_nor_handed_again(node: Node) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(node.driver.run)
        consensus = node.consensus
        first = vote(KEYS[1]).to_bytes()
        assert consensus.validate(PEER, first)
        await consensus.on_message(PEER, first)
        assert node.driver.machine.book.count(0, VoteType.PREVOTE, b"\x01" * 32) == 1
        assert consensus.duplicates == 0
        # the same vote re-sent (another wrapping, the same inner bytes): passed on, skipped
        again = Resent(nonce=7, payload=first).to_bytes()
        assert consensus.validate(PEER, again)
        await consensus.on_message(PEER, again)
        assert consensus.duplicates == 2  # the filter's look and the handler's
        # a forged copy (other bytes) is no duplicate: checked, refused, its sender pays
        forged = bytearray(first)
        forged[-1] ^= 1
        assert not consensus.validate(PEER, bytes(forged))
        assert node.p2p.penalty(PEER) == BAD_MESSAGE_PENALTY
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_follower_keeps_connected_to_the_validators_it_learns_of(tmp_path: Path) -> None:
    # the proposer publishes each finalized block to its connected peers (issue 20)
    prepared = Prepared(genesis=GENESIS, key=None, validator_name=None, created_devnet=False)
    follower = Node(NodeConfig(data_dir=tmp_path), prepared)
    try:
        assert follower.links.validate_hello(PEER, hello(KEYS[1]).to_bytes())
        assert follower.p2p._known.addrs(PEER) == ["/ip4/127.0.0.1/tcp/4001"]
    finally:
        follower.close()
