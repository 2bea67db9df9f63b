"""Who to blame: the peers behind a misbehaving validator.

A validator's offence (two conflicting votes, a provably invalid proposal) is
proved by its own signature; the peers to penalize for it are those that
published its messages first-hand. `Offences` remembers them and penalizes them.
"""

from __future__ import annotations

from chain.consensus_messages import Evidence, InvalidProposal
from chain.crypto import PublicKey
from chain.genesis import Genesis
from ledgerdns.p2p import P2PNode
from ledgerdns.p2p.peers import BAN_THRESHOLD

# Both offences are signed and provable, and no honest node commits them whatever the
# network or its clock. Equivocation takes a misused key (a validator run twice, or malice):
# its peers are banned at once. An invalid proposal may also come from an honest validator
# running a build whose block rules differ (a bug, an upgrade half done): half the ban, so
# one refused block does not cut a validator off, a second one does.
EQUIVOCATION_PENALTY = BAN_THRESHOLD
INVALID_PROPOSAL_PENALTY = BAN_THRESHOLD // 2
ORIGINS_PER_VALIDATOR = 4  # peers remembered per validator as publishers of its messages


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


class Offences:
    """Penalties for validators' provable offences, on the peers that published their messages."""

    def __init__(self, genesis: Genesis, p2p: P2PNode) -> None:
        self._genesis = genesis
        self._p2p = p2p
        self.origins = OriginPeers()

    def on_offence(
        self, validator: PublicKey, proof: Evidence | InvalidProposal, what: str
    ) -> None:
        """A validator misbehaved provably: penalize the peers that published its messages."""
        index = self._genesis.params.validators.index_of(validator)
        names = self._genesis.validator_names
        name = bytes(validator).hex()[:16] if index is None else names[index]
        points = EQUIVOCATION_PENALTY if isinstance(proof, Evidence) else INVALID_PROPOSAL_PENALTY
        for peer in self.origins.of(bytes(validator)):
            if peer == self._p2p.peer_id or self._p2p.is_banned(peer):
                continue  # never ourselves; a banned peer stays banned
            self._p2p.penalize(peer, points, f"validator {name}: {what}")
