"""Votes go straight from validator to validator; proposals and everything else by gossip.

Per height each validator signs two votes and every other validator needs each
of them once. Gossiped, a vote crossed the mesh in a signed pubsub envelope and
reached each node several times, for about 2 ms of CPU per message per node:
the cost grew by ~4 ms per height for every validator added, and 31 validators
made no block on one machine (issue 20). Here validators find each other by
signed `ValidatorHello`s (gossiped on the ``blocks`` topic now and then, and
sent first on every link), stay connected to each other (as CometBFT's
persistent peers), and send each vote once to each validator over a link
(`ledgerdns.p2p.links`).

Gossip stays the fallback: a validator that is not linked to every other
validator (starting up, a peer gone, a partition) also publishes its votes on
the ``consensus`` topic, and re-sent messages of a stuck height always go by
gossip, which relays them around a cut link. Followers do not need votes: they
commit from the proposal (gossiped) and the proposer's commit notice.

A vote of round 0 for a block goes only to that round's proposer, which passes
the votes on in batches (`vote_relay`): a height then costs a validator about
half a dozen messages instead of two per validator.

A link carries only votes signed by the validator that greeted on it, re-sends,
and the votes it relays as the proposer of their round: a frame that is
anything else closes the link and costs the peer, like a bad gossip message.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from chain.consensus_messages import Proposal, ProposalFrame, RelayedVotes
from chain.crypto import PrivateKey
from chain.encoding import Kind
from chain.errors import InvalidUpdate, RejectReason
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.quorum import ValidatorSet, Vote
from chain.validator_hello import ValidatorHello
from chain.wire import message_kind
from ledgerdns.clock import Clock
from ledgerdns.p2p import P2PService
from ledgerdns.p2p.limits import DEFAULT_TOPIC_LIMITS, RateLimiter
from ledgerdns.protocol.offences import BAD_MESSAGE_PENALTY
from ledgerdns.protocol.vote_relay import VoteRelay, relayed_by_proposer

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from ledgerdns.protocol.consensus_gossip import ConsensusGossip

log = logging.getLogger("ledgerdns.protocol.links")

ANNOUNCE_FIRST_S = 1.0  # after start (the gossip mesh is forming)
ANNOUNCE_MISSING_S = 2.0  # while some validator is not in our directory: again after 2, 4, 8 s…
ANNOUNCE_EVERY_S = 60.0  # then this often, for nodes that joined since
DIAL_GRACE_S = 10.0
MEMBERSHIP_CHECK_S = 1.0  # how often a node outside the validator set looks whether it is in
MAX_FUTURE_MS = 5 * 60 * 1000  # a hello dated further ahead than this is refused
LINK_LIMIT = DEFAULT_TOPIC_LIMITS["consensus"]  # per linked peer, as per gossip forwarder
LINK_MAX_FRAME = LINK_LIMIT.max_bytes  # a re-sent proposal, at most what gossip would carry


def links_protocol(chain_id: str) -> str:
    """The link protocol id of a network's validator votes."""
    return f"/ledgerdns/{chain_id}/votes/1"


class ValidatorLinks:
    """One node's validator directory, its links, and the broadcast of its consensus messages."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        ledger: Ledger,
        p2p: P2PService,
        key: PrivateKey | None,
        clock: Clock,
        consensus_topic: str,
        blocks_topic: str,
    ) -> None:
        self._genesis = genesis
        self._ledger = ledger  # the validator set of each height (it can change: chain/validators.py)
        self._p2p = p2p
        self._key = key
        self._clock = clock
        self._consensus_topic = consensus_topic
        self._blocks_topic = blocks_topic
        self.protocol = links_protocol(genesis.chain_id)
        # validator key -> its newest hello; bound: the validator set (others are refused)
        self.directory: dict[bytes, ValidatorHello] = {}
        # peer id -> validator key, for the peers a directory entry names (same bound)
        self._validator_of_peer: dict[str, bytes] = {}
        self._own: ValidatorHello | None = None
        self._limiter = RateLimiter(max_entries=1024)
        self._consensus: ConsensusGossip | None = None
        self.votes_linked = 0  # our votes sent over links only
        self.proposals_linked = 0  # our proposals sent over links only (every validator linked)
        self.votes_to_proposer = 0  # our votes sent to their round's proposer alone (relayed)
        self.relay = VoteRelay(quorum=lambda: self._voters().quorum, send=self._send_linked)
        self.votes_gossiped = 0  # our votes that also went by gossip (some validator unlinked)

    def attach(self, consensus: ConsensusGossip) -> None:
        """Where frames from links go (the consensus topic's filter and handler)."""
        self._consensus = consensus

    def register(self) -> None:
        """Install the link protocol on the p2p service (before it runs); a validator greets
        every peer that connects over a link, so a validator it connects to learns who it
        is even when the gossip of hellos has not reached it (seen at 31 validators on one
        machine: pubsub had not peered with every connection, and a third of the nodes knew
        fewer than half of the validators after a minute)."""
        if self._key is not None:
            self._p2p.on_connected(self._greet)
        self._p2p.set_link_handler(
            self.protocol,
            greeting=lambda: self.own_hello().to_bytes(),
            accept_greeting=self.accept_greeting,
            on_frame=self.on_frame,
            max_frame=LINK_MAX_FRAME,
        )

    def _greet(self, peer: str) -> None:
        """On a new connection: open our link to `peer` (its first frame is our hello) and
        pass on, after it, the hellos of the other validators we know.

        So a validator that connects to one that knows the set (the bootstrap peer) learns
        every validator's peer at once, and dials them. Learning them only from each one's
        own greeting or gossiped hello took 31 validators on one machine about two minutes,
        while the votes of validators missing links went by gossip (issue 20).
        """
        if not self._is_member() or not self._p2p.open_link(peer, self.protocol):
            return
        own = None if self._key is None else bytes(self._key.public_key)
        for key, hello in list(self.directory.items()):
            if key != own and hello.peer_id.decode(errors="replace") != peer:
                self._p2p.send_link(peer, self.protocol, hello.to_bytes())

    def _is_member(self) -> bool:
        """Whether our key is in the set of this height or the next two (else we only follow)."""
        return self._key is not None and self._ledger.is_validator_near(self._key.public_key)

    def _forget_former(self) -> None:
        """Drop the directory entries of validators no longer near the head (removed, rotated)."""
        for key in [k for k in self.directory if not self._ledger.is_validator_near(k)]:
            hello = self.directory.pop(key)
            self._validator_of_peer.pop(hello.peer_id.decode(errors="replace"), None)

    # -- the directory --

    def own_hello(self) -> ValidatorHello:
        """This validator's hello, signed afresh when its addresses changed (or every announce)."""
        if self._key is None:
            raise RuntimeError("a follower has no validator hello")
        addrs = tuple(a.partition("/p2p/")[0] for a in self._p2p.listen_addrs)
        if self._own is None or self._own.addrs != addrs:
            self._own = self._sign_hello(addrs)
        return self._own

    def _sign_hello(self, addrs: tuple[str, ...]) -> ValidatorHello:
        assert self._key is not None
        return ValidatorHello.create(
            self._key,
            chain_id=self._genesis.chain_id,
            genesis_hash=self._genesis.hash(),
            peer_id=self._p2p.peer_id.encode(),
            addrs=addrs,
            time_ms=self._clock.now_ms(),
        )

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """A validator announces itself after start, again after 2, 4, 8, ... s (up to a minute)
        while it has not heard from every other validator, then every minute.

        Every link it opens greets with the hello too, so a validator it connects to
        learns it without gossip; the announcements reach the others. Re-announcing every
        few seconds while anyone was missing kept 31 validators on one machine too busy to
        learn of each other at all.
        """
        async with trio.open_nursery() as nursery:
            await nursery.start(self.relay.run)
            task_status.started()
            await self._announce_loop()

    async def _announce_loop(self) -> None:
        if self._key is None:
            await trio.sleep_forever()
        await trio.sleep(ANNOUNCE_FIRST_S)
        member = False
        last = trio.current_time()
        wait = ANNOUNCE_MISSING_S
        while True:
            self._forget_former()
            if not self._is_member():
                # A key not (or no longer) in the set follows: nothing to announce. It looks
                # again each second, so a validator added on chain links up as it enters.
                member = False
                await trio.sleep(MEMBERSHIP_CHECK_S)
                continue
            now = trio.current_time()
            if not member:  # at start, or just entered the set: greet everyone now
                member, wait = True, ANNOUNCE_MISSING_S
            elif now - last >= ANNOUNCE_EVERY_S:
                self._own = None  # re-signed with a fresh time: it replaces the old one everywhere
            elif not self._missing():
                await trio.sleep(min(wait, ANNOUNCE_EVERY_S))
                continue
            else:
                wait = min(wait * 2, ANNOUNCE_EVERY_S)
            for peer in self._p2p.connected_peers():
                # opens only a link that is not open (one that failed to); the hellos we hold
                # went with the greeting on each new connection (passed on again by every
                # validator every minute, they were ~900 frames a validator, all at once)
                self._p2p.open_link(peer, self.protocol)
            await self._announce()
            last = now
            await trio.sleep(min(wait, ANNOUNCE_EVERY_S))

    def _voters(self) -> ValidatorSet:
        """The set deciding the height consensus works on now."""
        return self._ledger.validators_at(self._ledger.height + 1)

    def _peers(self) -> list[bytes]:
        """The validators of this height and the next (one that joins links before it votes)."""
        head = self._ledger.height
        keys = [bytes(k) for k in self._ledger.validators_at(head + 1).keys]
        return keys + [bytes(k) for k in self._ledger.validators_at(head + 2).keys if bytes(k) not in keys]

    def _missing(self) -> int:
        """Other validators with no hello in our directory."""
        own = None if self._key is None else bytes(self._key.public_key)
        return sum(1 for k in self._peers() if k != own and k not in self.directory)

    async def _announce(self) -> None:
        if not self._is_member():
            return
        await self._p2p.publish(self._blocks_topic, self.own_hello().to_bytes())

    def check_hello(self, data: bytes) -> ValidatorHello:
        """Decode and authenticate a hello of this network's validator set.

        Raises:
            InvalidUpdate: malformed, another network, not a validator, bad signature,
                or dated too far ahead.
        """
        hello = ValidatorHello.from_bytes(data)
        if hello.chain_id != self._genesis.chain_id:
            raise InvalidUpdate(RejectReason.WRONG_CHAIN, "validator hello for another network")
        if not self._ledger.is_validator_near(hello.validator):
            raise InvalidUpdate(RejectReason.UNKNOWN_VALIDATOR, "validator hello of a non-validator")
        if hello.time_ms > self._clock.now_ms() + MAX_FUTURE_MS:
            raise InvalidUpdate(RejectReason.MALFORMED, "validator hello dated in the future")
        if not hello.is_valid_signature(self._genesis.hash()):
            raise InvalidUpdate(RejectReason.BAD_SIGNATURE, "validator hello with a bad signature")
        return hello

    def learn(self, hello: ValidatorHello) -> bool:
        """Keep `hello` if it is this validator's newest; True if it was new.

        A validator that is not us is dialled and kept connected (by a follower too).
        """
        key = bytes(hello.validator)
        known = self.directory.get(key)
        if known is not None and known.time_ms >= hello.time_ms:
            return False
        if known is not None:
            self._validator_of_peer.pop(known.peer_id.decode(errors="replace"), None)
        self.directory[key] = hello
        peer = hello.peer_id.decode(errors="replace")
        self._validator_of_peer[peer] = key
        if self._key is None:
            # A follower keeps connected to the validators too: the proposer publishes each
            # finalized block to the peers it is connected to, so a follower one hop away
            # has it a hop (~100 ms on a loaded machine) sooner than through the mesh (at
            # 16 validators + 1 follower the follower was the last node to see most heights
            # once the DHT stopped meshing every node with every other, issue 20).
            self._p2p.keep_connected(peer, list(hello.addrs))
        elif key != bytes(self._key.public_key):
            # Of two validators, the one whose peer id sorts first dials; the other only
            # if no connection came by `DIAL_GRACE_S` (31 validators dialling each other
            # both ways at start-up was twice the handshakes a loaded machine could do).
            after = 0.0 if self._p2p.peer_id < peer else DIAL_GRACE_S
            self._p2p.keep_connected(peer, list(hello.addrs), after=after)
        return True

    def validate_hello(self, peer: str, data: bytes) -> bool:
        """The ``blocks`` topic's filter for hellos: pass on only what was new to us."""
        try:
            hello = self.check_hello(data)
        except InvalidUpdate as exc:
            self._blame(peer, exc, "validator hello")
            return False
        return self.learn(hello)

    def _blame(self, peer: str, exc: InvalidUpdate, what: str) -> None:
        """Penalize a bad hello; one of a key outside the sets we know is not proof of malice
        (a validator just removed, or one added by blocks we have not seen yet)."""
        if exc.reason != RejectReason.UNKNOWN_VALIDATOR:
            self._p2p.penalize(peer, BAD_MESSAGE_PENALTY, f"{what}: {exc}")

    # -- links in --

    def accept_greeting(self, peer: str, data: bytes) -> bool:
        """A link is read only from the peer its validator's hello names."""
        try:
            hello = self.check_hello(data)
        except InvalidUpdate as exc:
            self._blame(peer, exc, "link greeting")
            return False
        if hello.peer_id.decode(errors="replace") != peer:
            self._p2p.penalize(peer, BAD_MESSAGE_PENALTY, "link greeting: another peer's hello")
            return False
        self.learn(hello)
        return True

    async def on_frame(self, peer: str, data: bytes) -> bool:
        """A vote from a linked validator, or a message it re-sends: checked and handled as
        one from gossip."""
        consensus = self._consensus
        if consensus is None:
            return True
        if not self._limiter.allow(peer, "votes", LINK_LIMIT, trio.current_time()):
            self._p2p.penalize(peer, 1, "link over rate")
            return True
        expected = self._validator_of_peer.get(peer)
        signer: bytes | None
        vote: Vote | None = None
        try:
            kind = message_kind(data)
            if kind == Kind.VOTE:
                vote = Vote.from_bytes(data)
                signer = bytes(vote.validator)
            elif kind == Kind.PROPOSAL:
                signer = bytes(ProposalFrame.from_bytes(data).head.proposer)
            elif kind in (Kind.RESENT, Kind.RELAYED_VOTES):  # may carry others' messages
                signer = expected
            elif kind == Kind.VALIDATOR_HELLO and expected is not None:  # the sender's directory
                return self._on_passed_hello(peer, data)
            else:
                raise InvalidUpdate(RejectReason.MALFORMED, "a link carries consensus messages only")
            if expected is None or signer != expected:
                raise InvalidUpdate(RejectReason.MALFORMED, "another validator's message on a link")
            if kind == Kind.RELAYED_VOTES:
                assert expected is not None
                return await self._on_relayed(peer, expected, data, consensus)
        except InvalidUpdate as exc:
            self._p2p.penalize(peer, BAD_MESSAGE_PENALTY, f"link: {exc}")
            return False
        if consensus.validate(peer, data):
            if vote is not None and self._relays(vote):
                self.relay.add(vote, data)  # before handling: the batch must not wait for it
            await consensus.on_message(peer, data)
            if kind == Kind.PROPOSAL:
                consensus.handled_by_link(data)
        return True

    def _on_passed_hello(self, peer: str, data: bytes) -> bool:
        """Another validator's hello passed on by a linked validator (`_greet`): learned if
        newer than ours; one we hold already costs a decode, not a signature check. False
        (close the link) for a bad one, which costs the peer as a bad gossiped hello does."""
        try:
            hello = ValidatorHello.from_bytes(data)
            known = self.directory.get(bytes(hello.validator))
            if known is None or known.time_ms < hello.time_ms:
                self.learn(self.check_hello(data))
        except InvalidUpdate as exc:
            self._blame(peer, exc, "passed-on validator hello")
            return exc.reason == RejectReason.UNKNOWN_VALIDATOR
        return True

    def _relays(self, vote: Vote) -> bool:
        """Whether we pass `vote` on: its round is ours and it was sent to us alone."""
        if self._key is None or not relayed_by_proposer(vote):
            return False
        proposer = self._ledger.validators_at(vote.height).proposer(vote.height, vote.round)
        return bytes(proposer) == bytes(self._key.public_key)

    async def _on_relayed(self, peer: str, relay: bytes, data: bytes, consensus: ConsensusGossip) -> bool:
        """Votes passed on by their round's proposer: each checked and handled as its signer's.

        Raises:
            InvalidUpdate: malformed, or a vote this peer's validator does not relay.
        """
        batch = RelayedVotes.from_bytes(data)
        votes = [Vote.from_bytes(item) for item in batch.votes]
        for vote in votes:
            proposer = self._ledger.validators_at(vote.height).proposer(vote.height, vote.round)
            if not relayed_by_proposer(vote) or bytes(proposer) != relay:
                raise InvalidUpdate(RejectReason.MALFORMED, "a relayed vote of a round the relay does not lead")
        for item in batch.votes:
            if consensus.validate(peer, item):
                await consensus.on_message(peer, item, relayed=True)
        return True

    # -- our messages out --

    async def broadcast(self, message: Proposal | Vote) -> None:
        """Send a message this validator signed: over links, and by gossip too only while
        the links reach fewer than a quorum of the message's validator set (`needs_gossip`)."""
        data = message.to_bytes()
        if isinstance(message, Vote) and self._key is not None:
            voters = self._ledger.validators_at(message.height)
            proposer = bytes(voters.proposer(message.height, message.round))
            if proposer == bytes(self._key.public_key):
                self.relay.own(message)  # we pass this round's votes on; ours goes to all
            elif relayed_by_proposer(message) and self._send_to(proposer, data):
                self.votes_to_proposer += 1
                return
        gossip = self.needs_gossip(self._send_linked(data), message.height)
        if isinstance(message, Proposal):
            # Over links, on the same streams as our votes after it, so a validator has the
            # block before the votes for it. Followers get the block once final, with its
            # certificate (`notices`).
            if gossip:
                await self._p2p.publish(self._consensus_topic, data)
            else:
                self.proposals_linked += 1
            return
        if not gossip:
            self.votes_linked += 1
            return
        self.votes_gossiped += 1
        await self._p2p.publish(self._consensus_topic, data)

    async def resend(self, resent: bytes, *, gossip: bool = False) -> None:
        """Send a `Resent` again: over links (one copy to each linked validator), and by
        gossip too when the links reach fewer than a quorum, or when `gossip` (the caller's
        slower cadence) and some validator of the set is not linked (gossip relays around
        a missing link). A follower has no links: it re-sends by gossip, on `gossip` only.

        Gossiped, every stuck validator's re-sends reached every node several times every
        two seconds: at 16 validators on one machine that load kept the height stuck, a
        livelock; at 31 the same with every re-send gossiped while any one validator was
        still unlinked (issue 20).
        """
        if self._key is None:
            if gossip:
                await self._p2p.publish(self._consensus_topic, resent)
            return
        reached = self._send_linked(resent)
        height = self._ledger.height + 1
        if self.needs_gossip(reached, height) or (gossip and not self._reaches_all(reached, height)):
            await self._p2p.publish(self._consensus_topic, resent)

    def _reaches_all(self, reached: list[bytes], height: int) -> bool:
        """Whether `reached` and we are the whole validator set of `height`."""
        own = None if self._key is None else bytes(self._key.public_key)
        done = set(reached)
        return all(bytes(k) in done or bytes(k) == own for k in self._ledger.validators_at(height).keys)

    def needs_gossip(self, reached: list[bytes], height: int) -> bool:
        """Whether a message that went over links to `reached` validators must be gossiped
        too: while those and we are fewer than a quorum of the set of `height`.

        Gossip costs every node of the network each message several times over (a signed
        envelope, the mesh's duplicates): at 31 validators on one machine, votes gossiped
        while a single validator was still unlinked kept both cores busy, links timed out
        while opening, and the network never got linked nor past height 1 (issue 20). With
        a quorum linked the height can be decided over links alone; a validator we have no
        link to yet follows by the finalized block (`notices`) and the re-sends of a stuck
        height, which go by gossip now and then (`ConsensusGossip`).
        """
        voters = self._ledger.validators_at(height)
        members = {bytes(k) for k in voters.keys}
        linked = sum(1 for key in reached if key in members)
        own = self._key is not None and bytes(self._key.public_key) in members
        return linked + (1 if own else 0) < voters.quorum

    def _send_to(self, validator: bytes, data: bytes) -> bool:
        """Queue `data` to one validator over its link; False if we have none."""
        hello = self.directory.get(validator)
        if hello is None:
            return False
        return self._p2p.send_link(hello.peer_id.decode(errors="replace"), self.protocol, data)

    def _send_linked(self, data: bytes) -> list[bytes]:
        """Queue `data` to every other validator we have a link to; the keys it got queued for."""
        own = None if self._key is None else bytes(self._key.public_key)
        reached = []
        for validator in self._peers():
            if validator == own:
                continue
            hello = self.directory.get(validator)
            if hello is not None and self._p2p.send_link(hello.peer_id.decode(errors="replace"), self.protocol, data):
                reached.append(validator)
        return reached

    def connected_validators(self) -> set[bytes]:
        """The validators (keys) whose peer, as their signed hello names it, is connected now."""
        return {
            key for key, hello in self.directory.items()
            if self._p2p.is_connected(hello.peer_id.decode(errors="replace"))
        }  # fmt: skip

    def validator_peers(self) -> dict[str, bytes]:
        """Peer id -> validator key, for every validator whose hello we hold."""
        return dict(self._validator_of_peer)

    def linked_validators(self) -> int:
        """How many other validators we know a peer for and are connected to."""
        return sum(
            1 for hello in self.directory.values()
            if self._p2p.is_connected(hello.peer_id.decode(errors="replace"))
        )  # fmt: skip
