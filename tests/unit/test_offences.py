"""Who to blame: a peer that published two conflicting votes of one validator, in any wrapping."""

from __future__ import annotations

import dataclasses

import pytest

from chain.crypto import SIGNATURE_SIZE
from chain.quorum import Vote, VoteType
from chain.wire import Resent, decode_consensus
from ledgerdns.p2p.peers import PeerScores
from ledgerdns.protocol.offences import EQUIVOCATION_PENALTY, Offences, PublishedVotes
from tools.devchain import dev_key
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)
VALIDATOR = dev_key("validator", 3).public_key
A, B = b"\xaa" * 32, b"\xbb" * 32


class Penalties:
    """The p2p node's scoring side, with the real `PeerScores`."""

    peer_id = "self"

    def __init__(self) -> None:
        self.scores = PeerScores()
        self.given: list[tuple[str, int, str]] = []

    def penalize(self, peer_id: str, points: int, reason: str) -> None:
        self.given.append((peer_id, points, reason))
        self.scores.add(peer_id, points, now=0.0)

    def is_banned(self, peer_id: str) -> bool:
        return self.scores.is_banned(peer_id)


def vote(block_hash: bytes, *, height: int = 1, round_: int = 0, vtype: VoteType = VoteType.PREVOTE) -> Vote:
    # Signatures are checked before a vote reaches `Offences` (the gossip validator).
    return Vote(
        chain_id=GENESIS.chain_id, vtype=vtype, height=height, round=round_,
        block_hash=block_hash, validator=VALIDATOR, signature=b"\x01" * SIGNATURE_SIZE,
    )  # fmt: skip


def resent(v: Vote, nonce: int) -> Vote:
    """`v` as a node receives it inside `Resent`, through the real wire decoding."""
    got = decode_consensus(Resent(nonce=nonce, payload=v.to_bytes()).to_bytes())
    assert isinstance(got, Vote)
    return got


def test_a_peer_that_resends_both_halves_of_an_equivocation_is_banned() -> None:
    p2p = Penalties()
    offences = Offences(GENESIS, p2p)
    offences.on_vote("byzantine", resent(vote(A), 1), height=1)
    assert p2p.given == []
    offences.on_vote("byzantine", resent(vote(B), 2), height=1)
    assert p2p.is_banned("byzantine")
    (peer, points, reason), = p2p.given
    assert (peer, points) == ("byzantine", EQUIVOCATION_PENALTY)
    assert reason == f"published two prevotes of validator validator-3 h=1 r=0: {A.hex()[:12]} and {B.hex()[:12]}"
    offences.on_vote("byzantine", resent(vote(A), 3), height=1)  # banned already: not again
    assert len(p2p.given) == 1


def test_honest_relays_are_never_blamed() -> None:
    p2p = Penalties()
    offences = Offences(GENESIS, p2p)
    # Each relay keeps one of the equivocator's votes and re-sends it, again and again.
    for nonce in range(3):
        offences.on_vote("relay-a", resent(vote(A), nonce), height=1)
        offences.on_vote("relay-b", resent(vote(B), nonce), height=1)
    # The equivocator's own peer published A first-hand, a relay its B: two publishers.
    offences.on_vote("origin", vote(A), height=1)
    # The same validator's votes for other steps are no conflict.
    for other in (vote(B, round_=1), vote(B, vtype=VoteType.PRECOMMIT), vote(B, height=2)):
        offences.on_vote("relay-a", resent(other, 9), height=1)
    assert p2p.given == []
    # Another validator's vote for the same step is no conflict either.
    other_validator = dataclasses.replace(vote(B), validator=dev_key("validator", 2).public_key)
    offences.on_vote("relay-a", other_validator, height=1)
    assert p2p.given == []


def test_first_hand_then_resent_conflict_is_caught() -> None:
    p2p = Penalties()
    offences = Offences(GENESIS, p2p)
    offences.on_vote("byzantine", vote(b""), height=1)  # a nil vote first-hand
    offences.on_vote("byzantine", resent(vote(A), 1), height=1)  # then a block inside Resent
    assert p2p.is_banned("byzantine")


def test_our_own_peer_is_never_blamed() -> None:
    p2p = Penalties()
    offences = Offences(GENESIS, p2p)
    offences.on_vote("self", vote(A), height=1)
    offences.on_vote("self", vote(B), height=1)
    assert p2p.given == []


def test_old_heights_are_forgotten_and_far_heights_not_kept() -> None:
    published = PublishedVotes(heights=2)
    assert published.note("p", vote(A, height=5), height=5) is None
    assert published.note("p", vote(A, height=6), height=5) is None
    assert published.note("p", vote(A, height=7), height=5) is None  # beyond the window
    assert len(published) == 2
    assert published.note("p", vote(B, height=6), height=5) == A
    assert published.note("p", vote(B, height=7), height=5) is None
    assert published.note("p", vote(B, height=6), height=6) == A
    assert len(published) == 1  # height 5 is gone
    assert published.note("p", vote(B, height=5), height=6) is None


@pytest.mark.parametrize("cap", [1, 3])
def test_each_height_keeps_its_latest_entries(cap: int) -> None:
    published = PublishedVotes(per_height=cap)
    for round_ in range(10):
        published.note("p", vote(A, round_=round_), height=1)
    assert len(published) == cap
    assert published.note("p", vote(B, round_=9), height=1) == A  # the latest are kept
    assert published.note("p", vote(B, round_=0), height=1) is None  # the oldest went
