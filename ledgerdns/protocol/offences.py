"""Who to blame: the peers behind a misbehaving validator.

A validator's offence (two conflicting votes, a provably invalid proposal) is
proved by its own signature; the peers to penalize for it are those that
published its messages first-hand. `Offences` remembers them and penalizes them.
A peer that itself published two conflicting votes of one validator, in any
wrapping (`Resent` included), is banned on its own account (`PublishedVotes`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from chain.consensus_messages import Evidence, InvalidProposal
from chain.crypto import PublicKey
from chain.genesis import Genesis
from chain.quorum import Vote
from chain.validators import genesis_roster
from ledgerdns.p2p.peers import BAN_THRESHOLD

# Both offences are signed and provable, and no honest node commits them whatever the
# network or its clock. Equivocation takes a misused key (a validator run twice, or malice):
# its peers are banned at once. An invalid proposal may also come from an honest validator
# running a build whose block rules differ (a bug, an upgrade half done): half the ban, so
# one refused block does not cut a validator off, a second one does.
# A gossiped message that no honest peer sends (malformed, badly signed, for another network).
BAD_MESSAGE_PENALTY = 25
EQUIVOCATION_PENALTY = BAN_THRESHOLD
INVALID_PROPOSAL_PENALTY = BAN_THRESHOLD // 2
ORIGINS_PER_VALIDATOR = 4  # peers remembered per validator as publishers of its messages
VOTE_HEIGHTS = 2  # heights whose published votes are remembered: the one being decided, the next
VOTES_PER_HEIGHT = 8192  # (peer, validator, round, type) entries per height; the oldest go first


class OriginPeers:
    """Which peers published (not merely forwarded) messages signed by each validator.

    Gossip signs every message with its publisher's peer key (strict signing),
    so a message's origin cannot be forged by a relay. Honest nodes publish only
    what their own validator signed; when a validator is caught misbehaving, its
    recent publishers are the peers to penalize. Bounded: only genesis validators
    are tracked, each with its `limit` most recent publishers.
    """

    def __init__(self, limit: int = ORIGINS_PER_VALIDATOR) -> None:
        self.limit = limit
        self._peers: dict[bytes, list[str]] = {}

    def note(self, validator: bytes, peer: str) -> None:
        """`peer` published a message signed by `validator`."""
        peers = self._peers.setdefault(validator, [])
        if peers and peers[-1] == peer:
            return
        if peer in peers:
            peers.remove(peer)
        peers.append(peer)
        del peers[: -self.limit]

    def of(self, validator: bytes) -> list[str]:
        """The peers that published `validator`'s messages, most recent last."""
        return list(self._peers.get(validator, ()))


class PublishedVotes:
    """The block each peer published a vote for, per (validator, height, round, type).

    An honest node publishes at most one vote per (validator, height, round, type),
    first-hand or inside `Resent`: its own votes are held to one by the signing
    guard, and it relays only votes its state machine keeps, which holds one per
    validator, round and type and never replaces it within a height
    (`ConsensusDriver.stuck_messages`). So a peer that published two different
    votes of one validator for the same step misbehaves, whatever the wrapping;
    gossip signatures keep a relay from faking who published. The one honest
    exception, a node restarted between relaying each half of an equivocation,
    is in docs/security.md.

    Bounded: only `heights` heights from the one being decided are kept (lower
    ones are forgotten, higher ones ignored: the state machine ignores them too),
    each with its `per_height` most recent entries.
    """

    def __init__(self, heights: int = VOTE_HEIGHTS, per_height: int = VOTES_PER_HEIGHT) -> None:
        self.heights = heights
        self.per_height = per_height
        self._by_height: dict[int, dict[tuple[str, bytes, int, int], bytes]] = {}

    def note(self, peer: str, vote: Vote, height: int) -> bytes | None:
        """Remember that `peer` published `vote`, at a time `height` is being decided.

        Returns:
            The block hash (empty for nil) of a different vote for the same step
            that `peer` published before, or None.
        """
        for old in [h for h in self._by_height if h < height]:
            del self._by_height[old]
        if not height <= vote.height < height + self.heights:
            return None
        seen = self._by_height.setdefault(vote.height, {})
        key = (peer, bytes(vote.validator), vote.round, int(vote.vtype))
        earlier = seen.get(key)
        if earlier is not None:
            return None if earlier == vote.block_hash else earlier
        if len(seen) >= self.per_height:
            del seen[next(iter(seen))]
        seen[key] = vote.block_hash
        return None

    def __len__(self) -> int:
        return sum(len(seen) for seen in self._by_height.values())


class Penalizer(Protocol):
    """What `Offences` needs of the p2p service (`ledgerdns.p2p.P2PService`)."""

    peer_id: str

    def penalize(self, peer_id: str, points: int, reason: str) -> None: ...

    def is_banned(self, peer_id: str) -> bool: ...


class Offences:
    """Penalties for provable offences: a validator's, and a peer's own.

    A validator's offence falls on the peers that published its messages
    first-hand (`origins`); a peer that published two conflicting votes of one
    validator pays for it itself (`published`).
    """

    def __init__(self, genesis: Genesis, p2p: Penalizer) -> None:
        self._genesis = genesis
        self._p2p = p2p
        self.origins = OriginPeers()
        self.published = PublishedVotes()
        # Names validators in messages: `Ledger.validator_name` once the node sets it;
        # until then the genesis names.
        self.names: Callable[[bytes], str | None] | None = None

    def on_offence(
        self, validator: PublicKey, proof: Evidence | InvalidProposal, what: str
    ) -> None:
        """A validator misbehaved provably: penalize the peers that published its messages."""
        name = self._name(validator)
        points = EQUIVOCATION_PENALTY if isinstance(proof, Evidence) else INVALID_PROPOSAL_PENALTY
        for peer in self.origins.of(bytes(validator)):
            if peer == self._p2p.peer_id or self._p2p.is_banned(peer):
                continue  # never ourselves; a banned peer stays banned
            self._p2p.penalize(peer, points, f"validator {name}: {what}")

    def on_vote(self, peer: str, vote: Vote, height: int) -> None:
        """`peer` published `vote` (first-hand or in `Resent`) while `height` is being decided.

        Bans the peer if it published a different vote of the same validator for
        the same height, round and type before: no honest node does.
        """
        earlier = self.published.note(peer, vote, height)
        if earlier is None or peer == self._p2p.peer_id or self._p2p.is_banned(peer):
            return
        self._p2p.penalize(
            peer,
            EQUIVOCATION_PENALTY,
            f"published two {vote.vtype.name.lower()}s of validator {self._name(vote.validator)} "
            f"h={vote.height} r={vote.round}: {_short(earlier)} and {_short(vote.block_hash)}",
        )

    def _name(self, validator: PublicKey) -> str:
        # The set changes on chain (issue 15): a validator's name is its roster's, and a
        # key no roster had is shown by its first hex digits.
        name = self.names(bytes(validator)) if self.names is not None else None
        if name is None:
            name = genesis_roster(self._genesis.params).name_of(validator)
        return bytes(validator).hex()[:16] if name is None else name


def _short(block_hash: bytes) -> str:
    return block_hash.hex()[:12] if block_hash else "nil"
