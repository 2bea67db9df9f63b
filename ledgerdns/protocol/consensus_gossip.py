"""The ``consensus`` gossip topic: proposals and votes in and out, and re-sending a stuck height.

Every message is checked before it is forwarded (`validate`): a proposal is
authenticated from its block header before its body is decoded, and a message
is only passed on if it is close to where the machine is (`worth_forwarding`).
What arrives goes to the consensus driver (`on_message`), after noting which
peer published which validator's messages (`ledgerdns.protocol.offences`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import trio

from chain.consensus import ROUND_WINDOW, Step
from chain.consensus_messages import Proposal, ProposalFrame
from chain.encoding import Kind
from chain.errors import InvalidUpdate, RejectReason
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.quorum import Vote
from chain.validators import CHANGE_DELAY
from chain.wire import Resent, decode_consensus, message_kind, unwrap_resent
from ledgerdns.clock import Clock
from ledgerdns.consensus.driver import ConsensusDriver
from ledgerdns.p2p import P2PService
from ledgerdns.protocol.offences import BAD_MESSAGE_PENALTY, Offences
from ledgerdns.protocol.sync import Syncer

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("ledgerdns.protocol.consensus")

RESEND_S = 2.0  # a height that did not move for this long is stuck: re-send
# While it stays stuck, re-sends go out after 2, 4 and 8 s, then every `RESEND_MAX_S`:
# every stuck validator re-sending every 2 s to everyone kept 31 validators on one machine
# too busy to ever decide (issue 20); a peer that heals late waits at most this long.
RESEND_MAX_S = 8.0
# A validator's re-sends go over its links; by gossip as well (which relays around a cut
# link, to a validator we have no link to) only this often while the height stays stuck,
# or whenever the links reach fewer than a quorum (`ValidatorLinks.resend`). Every re-send
# gossiped by every stuck validator was more than 32 processes on 2 cores could read, and
# the height stayed stuck (issue 20).
GOSSIP_RESEND_S = 32.0
ASK_PEERS_AFTER_S = 4.0  # a height stuck this long asks peers whether they are past it
# The filter's decodes, kept for the handler: only of messages it passed on, each popped when
# handled; the rest (a message the library then dropped) go oldest first past either bound.
DECODED_CACHE = 256  # entries
DECODED_CACHE_BYTES = 8 * 1024 * 1024  # their wire bytes: ~30 full proposals
# A message this many heights past our head means we missed a block. One height past the
# next is normal for a follower: the next proposal can overtake the commit notice of the
# block before it (another topic, another queue), which comes a moment later.
SYNC_AHEAD = 2
# Refusals that depend on which validator set the receiver knows (issue 15)
SET_DEPENDENT = (RejectReason.BAD_PROPOSER, RejectReason.UNKNOWN_VALIDATOR)
# Messages of the current height handed to the machine (digests of their bytes, a Resent unwrapped): a
# copy again (a re-send, gossip's duplicates) is passed on without a second signature check
# and not handed again. A stuck 31-validator network re-sending to every validator had each
# node check the same votes' signatures ~30 times per re-send (issue 20).
HANDLED_KEPT = 4096
LINKED_PROPOSALS = 32  # proposals handled from a link, whose gossip copy is only forwarded
PEER_VALIDATORS = 1024  # peers remembered as publishing a validator's messages (RPC peer list)


class Resend(Protocol):
    """Where a stuck height's `Resent`s go; `gossip`: by gossip as well as over links."""

    async def __call__(self, data: bytes, /, *, gossip: bool) -> None: ...


def describe(message: Proposal | Vote) -> str:
    """"proposal", "prevote" or "precommit"."""
    return "proposal" if isinstance(message, Proposal) else message.vtype.name.lower()


class ConsensusGossip:
    """One node's side of the ``consensus`` topic."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        ledger: Ledger,
        p2p: P2PService,
        topic: str,
        driver: ConsensusDriver,
        syncer: Syncer,
        offences: Offences,
        resend_pending: Callable[[bool], Awaitable[None]],
        clock: Clock,
        resend: Resend | None = None,
    ) -> None:
        self._genesis = genesis
        self._clock = clock  # `Resent` nonces
        self._ledger = ledger
        self._p2p = p2p
        self.topic = topic
        self._driver = driver
        self._syncer = syncer
        self._offences = offences
        self._resend_pending = resend_pending
        # where a stuck height's `Resent`s go (`ValidatorLinks.resend`); by default, gossip
        self._resend = resend if resend is not None else self._publish_resent
        self._decoded: dict[bytes, Proposal | Vote] = {}  # the filter's decodes, for the handler
        self._decoded_bytes = 0  # sum of the keys' lengths, under DECODED_CACHE_BYTES
        # Proposals that came over a link and were handled (bytes; <= LINKED_PROPOSALS): the
        # same proposal by gossip is passed on to our mesh (followers need it), not decoded again.
        self._linked: dict[bytes, None] = {}
        self.peer_validator: dict[str, str] = {}  # peer -> the validator whose messages it publishes
        # SHA-256 of a taken message's bytes -> the vote (None: a proposal), so that a copy's
        # publisher is still noted by the offence tracker (a peer relaying both halves of an
        # equivocation is banned even when one half was a copy); bound: HANDLED_KEPT
        # entries, this machine height only
        self._handled: dict[bytes, Vote | None] = {}
        self._handled_height = 0
        # The gossip filter, the handler and `_note_handled` see the same bytes object in
        # turn: its digest (a proposal may be 256 KiB) is computed once.
        self._last_digest: tuple[bytes, bytes] = (b"", b"")
        self.duplicates = 0  # copies of handled messages skipped
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Re-send while the height is stuck, and run what the filter hands on, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await self._resend_when_stuck()

    async def _publish_resent(self, data: bytes, *, gossip: bool) -> None:
        await self._p2p.publish(self.topic, data)

    def _decode(self, data: bytes) -> Proposal | Vote:
        """Decode a consensus gossip message (the gossip filter's result is reused)."""
        known = self._decoded.pop(data, None)
        if known is not None:
            self._decoded_bytes -= len(data)
            return known
        # A proposal is authenticated from its header before its body is decoded.
        return decode_consensus(data, self._genesis.params, self._ledger.validators_at)

    def _beyond_known_sets(self, data: bytes) -> bool:
        """Whether the message is for a height past those whose validator set we know."""
        try:
            inner = unwrap_resent(data)
            kind = message_kind(inner)
            if kind == Kind.PROPOSAL:
                height = ProposalFrame.from_bytes(inner).head.height
            elif kind == Kind.VOTE:
                height = Vote.from_bytes(inner).height
            else:
                return False
        except InvalidUpdate:
            return False
        return height > self._ledger.height + CHANGE_DELAY

    def _keep_decoded(self, data: bytes, message: Proposal | Vote) -> None:
        """Keep a passed message's decode for the handler, which gets the same bytes."""
        if data in self._decoded:
            return
        self._decoded[data] = message
        self._decoded_bytes += len(data)
        while len(self._decoded) > DECODED_CACHE or self._decoded_bytes > DECODED_CACHE_BYTES:
            oldest = next(iter(self._decoded))
            del self._decoded[oldest]
            self._decoded_bytes -= len(oldest)

    def decoded_cached(self) -> tuple[int, int]:
        """(entries, wire bytes) of the decodes kept for the handler."""
        return len(self._decoded), self._decoded_bytes

    def handled_by_link(self, data: bytes) -> None:
        """A proposal that came over a link was handled: its gossip copy is only forwarded."""
        self._linked[data] = None
        if len(self._linked) > LINKED_PROPOSALS:
            del self._linked[next(iter(self._linked))]

    def _already_handled(self, data: bytes) -> bool:
        """Whether these bytes (a `Resent` unwrapped) went to the machine at its current height."""
        return self._handled_copy(data) is not False

    def _handled_copy(self, data: bytes) -> Vote | None | bool:
        """The vote these bytes carry (None: a proposal) if the machine took them at its
        current height; False if it did not."""
        height = self._driver.machine.height
        if height != self._handled_height:
            self._handled.clear()
            self._handled_height = height
        try:
            digest = self._digest(data)
        except InvalidUpdate:
            return False
        if digest not in self._handled:
            return False
        self.duplicates += 1
        return self._handled[digest]

    def _digest(self, data: bytes) -> bytes:
        """SHA-256 of the message inside `data` (a `Resent` unwrapped), once per bytes object."""
        last, digest = self._last_digest
        if last is not data:
            digest = hashlib.sha256(unwrap_resent(data)).digest()
            self._last_digest = (data, digest)
        return digest

    def _note_handled(self, data: bytes, message: Proposal | Vote) -> None:
        """Remember a message the machine took at its current height (kept within its window)."""
        machine = self._driver.machine
        if message.height != machine.height or message.round > machine.round + ROUND_WINDOW:
            return
        if machine.height != self._handled_height:
            self._handled.clear()
            self._handled_height = machine.height
        vote = message if isinstance(message, Vote) else None
        self._handled[self._digest(data)] = vote
        if len(self._handled) > HANDLED_KEPT:
            del self._handled[next(iter(self._handled))]

    def validate(self, peer: str, data: bytes) -> bool:
        """The gossip filter: True to deliver and forward; a bad message costs its sender."""
        if data in self._linked:
            return True  # checked when it came over the link
        if self._already_handled(data):
            return True  # the same bytes were checked and taken at this height: passed on
        try:
            message = self._decode(data)
            if message.chain_id != self._genesis.chain_id:
                raise InvalidUpdate(RejectReason.WRONG_CHAIN, "consensus message for another network")
            signer = message.proposer if isinstance(message, Proposal) else message.validator
            if not self._ledger.is_validator_near(signer):
                raise InvalidUpdate(RejectReason.UNKNOWN_VALIDATOR, "signed by a non-validator")
            if not message.is_valid_signature(self._genesis.hash()):
                raise InvalidUpdate(RejectReason.BAD_SIGNATURE, "bad signature")
        except InvalidUpdate as exc:
            if exc.reason in SET_DEPENDENT and self._beyond_known_sets(data):
                return False  # signed for a set we may not know yet: not the sender's fault
            self._p2p.penalize(peer, BAD_MESSAGE_PENALTY, f"consensus message: {exc}")
            return False
        # Old heights are not forwarded (nobody needs them), but are not the sender's fault.
        passed = message.height > self._ledger.height and self.worth_forwarding(peer, message)
        if passed:  # a refused one never reaches the handler: keeping it would only fill the memo
            self._keep_decoded(data, message)
        return passed

    def worth_forwarding(self, peer: str, message: Proposal | Vote) -> bool:
        """Whether a valid consensus message is close enough to where we are to pass on.

        The machine keeps nothing past `ROUND_WINDOW` rounds ahead (a vote further on only
        tells the round-skip rule where its signer is) and nothing two heights ahead. A
        Byzantine validator signing votes for every round up to 2**31 would otherwise have
        every honest node forward each one to all its peers. Such a message is still shown
        to the machine (for the skip rule) and to sync, just not passed on.
        """
        machine = self._driver.machine
        if message.height == machine.height and message.round <= machine.round + ROUND_WINDOW:
            return True
        if message.height == machine.height + 1 and message.round <= ROUND_WINDOW:
            return True
        if self._nursery is not None:
            if message.height == machine.height:
                self._nursery.start_soon(self._hand_to_machine, peer, message)
            elif message.height > self._ledger.height + 1:
                self._syncer.poke(message.height - 1)
        return False

    async def _hand_to_machine(self, peer: str, message: Proposal | Vote) -> bool:
        """Give the machine a message; False (and the sender penalized) if it refused it."""
        try:
            await self._driver.on_message(message)
        except InvalidUpdate as exc:
            self._p2p.penalize(peer, BAD_MESSAGE_PENALTY, f"consensus message: {exc}")
            return False
        return True

    async def on_message(self, peer: str, data: bytes, *, relayed: bool = False) -> None:
        """A message passed `validate`: note who published it, then hand it to the driver.

        `relayed`: passed on by its round's proposer (`RelayedVotes`), not published first-hand.
        """
        if data in self._linked:
            return
        copy = self._handled_copy(data)
        if copy is not False:
            if isinstance(copy, Vote):  # nothing to check or decide, but who published it counts
                self._offences.on_vote(peer, copy, self._ledger.height + 1)
            return
        try:
            message = self._decode(data)
        except InvalidUpdate:
            return
        log.debug("got %s h=%d r=%d from %s", describe(message), message.height, message.round, peer[-6:])
        signer = message.proposer if isinstance(message, Proposal) else message.validator
        name = self._ledger.validator_name(signer)
        if name is not None and not relayed and message_kind(data) != Kind.RESENT:
            # Published first-hand (a node re-sending relays others' votes too), and
            # noted before the machine can find the signer misbehaving.
            if peer not in self.peer_validator:
                if len(self.peer_validator) >= PEER_VALIDATORS:
                    del self.peer_validator[next(iter(self.peer_validator))]
                self.peer_validator[peer] = name
            self._offences.origins.note(bytes(signer), peer)
        if isinstance(message, Vote):
            # In any wrapping: no honest node publishes two votes of one validator for one step.
            self._offences.on_vote(peer, message, self._ledger.height + 1)
        if message.height > self._ledger.height + SYNC_AHEAD:
            self._syncer.poke(message.height - 1)
        machine_height = self._driver.machine.height
        if await self._hand_to_machine(peer, message) and message.height == machine_height:
            self._note_handled(data, message)

    async def _resend_when_stuck(self) -> None:
        """Re-send consensus messages and local transactions that gossip may have lost.

        Gossip delivers each message once, to whoever is connected then. A
        validator that restarts or heals from a partition mid-height has missed
        them; the height would wait for it forever. Every `RESEND_S` that the
        finalized height did not move (rounds may come and go meanwhile: they
        are what a stuck height looks like), each validator sends again its own
        messages of the current height (`ConsensusDriver.own_messages`), and the
        round's proposer the prevotes behind its lock (`stuck_messages`), which
        lets the late one catch up and the quorum form. While the height stays stuck the re-sends back off
        (`RESEND_MAX_S`); they go over links, and by gossip every `GOSSIP_RESEND_S`
        of it. Local submissions still pending are re-sent too
        (`resend_pending`, from the ``txs`` topic).
        """
        last = self._ledger.height
        stuck_for = 0.0  # seconds the height has not moved, counted in RESEND_S steps
        next_resend = RESEND_S
        next_gossip = GOSSIP_RESEND_S
        while True:
            await trio.sleep(RESEND_S)
            stuck = self._ledger.height == last
            last = self._ledger.height
            stuck_for = stuck_for + RESEND_S if stuck else 0.0
            if not stuck:
                next_resend, next_gossip = RESEND_S, GOSSIP_RESEND_S
            elif stuck_for >= next_resend:
                next_resend = stuck_for + min(stuck_for, RESEND_MAX_S)
                gossip = stuck_for >= next_gossip
                if gossip:
                    next_gossip = stuck_for + GOSSIP_RESEND_S
                if stuck_for >= ASK_PEERS_AFTER_S and self._driver.machine.step != Step.WAITING:
                    # Others may have decided without us (their votes and notice lost;
                    # past the height, they re-send nothing of it): ask peers for heads.
                    self._syncer.poke()
                machine = self._driver.machine
                own = self._driver.own_messages()
                # The prevotes behind a lock justify its block's re-proposal (L28): the
                # round's proposer, which re-proposes it, relays them. Every validator
                # relaying them made ~30 copies of each reach every validator per re-send,
                # more than 31 validators on one machine could check (issue 20).
                lock = [m for m in self._driver.stuck_messages() if m not in own] if self._driver.leads_round() else []
                if machine.step != Step.WAITING:
                    log.info(
                        "height %d undecided for %.0f s (round %d, %s): re-sending %d messages",
                        machine.height, stuck_for, machine.round, machine.step.name.lower(), len(own) + len(lock),
                    )  # fmt: skip
                for message, by_gossip in [(m, gossip) for m in own] + [(m, False) for m in lock]:
                    resent = Resent(nonce=self._clock.now_ns(), payload=message.to_bytes())
                    await self._resend(resent.to_bytes(), gossip=by_gossip)
            await self._resend_pending(stuck)
