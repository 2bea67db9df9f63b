"""The node's peers and validators as the RPC and the explorer list them."""

from __future__ import annotations

from collections.abc import Collection

from chain.crypto import PrivateKey
from chain.genesis import Genesis
from ledgerdns.consensus.driver import ConsensusDriver
from ledgerdns.p2p import P2PService
from ledgerdns.services import PeerInfo, ValidatorInfo

ONLINE_WINDOW_MS = 30_000  # a validator heard from this recently is shown online
PENALIZED_LISTED = 256  # peers penalized lately, listed even once disconnected


def list_peers(p2p: P2PService, peer_validator: dict[str, str]) -> list[PeerInfo]:
    """Connected peers, then peers penalized lately (a banned one is disconnected)."""
    connected = p2p.connected_peers()
    known = set(connected)
    recent = p2p.penalized_peers()[-PENALIZED_LISTED:]
    listed = connected + [p for p in recent if p not in known]
    return [
        PeerInfo(
            peer_id=peer,
            addrs=tuple(p2p.peer_addrs(peer)),
            connected=peer in known,
            validator=peer_validator.get(peer),
            penalty=p2p.penalty(peer),
            banned=p2p.is_banned(peer),
        )
        for peer in listed
    ]


def list_validators(
    genesis: Genesis,
    driver: ConsensusDriver,
    key: PrivateKey | None,
    now_ms: int,
    connected: Collection[bytes] = frozenset(),
) -> list[ValidatorInfo]:
    """Every validator of the set deciding the next block, with when this node last heard from it.

    Online: heard from within `ONLINE_WINDOW_MS`, or in `connected` (a peer that its signed
    hello names is connected): an idle network sends no consensus messages (issue 18).

    The set is the ledger's (`Ledger.roster_at`), which changes on chain (issue
    15); `genesis` is kept for the callers' sake and names only the first set.
    """
    out = []
    machine = driver.machine
    ledger = driver.ledger
    roster = ledger.roster_at(ledger.height + 1)
    for name, public in zip(roster.names, roster.validators.keys, strict=True):
        if key is not None and public == key.public_key:
            seen = (now_ms, machine.height, machine.round)
        else:
            seen = driver.last_seen.get(bytes(public), (0, -1, -1))
        out.append(
            ValidatorInfo(
                name=name,
                public_key=bytes(public),
                online=bytes(public) in connected
                or (seen[0] > 0 and now_ms - seen[0] < ONLINE_WINDOW_MS),
                last_vote_height=seen[1],
                last_vote_round=seen[2],
                last_seen_ms=seen[0],
            )
        )
    return out
