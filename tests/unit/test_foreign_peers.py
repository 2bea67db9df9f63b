"""Peers of another network: warned about once each, banned after the grace period."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import pytest
import trio
import trio.testing

from chain.genesis import make_single_validator_genesis
from chain.wire import Status
from ledgerdns.p2p import P2PService
from ledgerdns.protocol.networks import GRACE_S, ForeignPeers
from tools.devchain import dev_key

OURS = make_single_validator_genesis(dev_key("a", 0).public_key, genesis_time_ms=1)
THEIRS = make_single_validator_genesis(dev_key("b", 0).public_key, genesis_time_ms=1)


class FakeP2P:
    """What `ForeignPeers` uses of the p2p service."""

    def __init__(self) -> None:
        self.protocols: dict[str, list[str]] = {}
        self.penalties: list[tuple[str, int, str]] = []
        self.callbacks: list[Callable[[str], None]] = []

    def on_connected(self, callback: Callable[[str], None]) -> None:
        self.callbacks.append(callback)

    def peer_protocols(self, peer: str) -> list[str]:
        return self.protocols.get(peer, [])

    def penalize(self, peer: str, points: int, reason: str) -> None:
        self.penalties.append((peer, points, reason))

    def is_banned(self, peer: str) -> bool:
        return any(p == peer for p, _, _ in self.penalties)


def foreign_peers(p2p: FakeP2P) -> ForeignPeers:
    return ForeignPeers(OURS, cast(P2PService, cast(Any, p2p)))


def their_status() -> Status:
    return Status(
        chain_id=THEIRS.chain_id, genesis_hash=THEIRS.hash(), height=3, head_hash=bytes(32)
    )


def test_another_genesis_is_warned_about_once_then_banned_after_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p2p = FakeP2P()
    peers = foreign_peers(p2p)
    assert OURS.hash() != THEIRS.hash() and OURS.chain_id == THEIRS.chain_id

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(peers.run)
            for _ in range(3):
                peers.other_genesis("peer-b", their_status())
            await trio.sleep(GRACE_S - 0.1)
            assert p2p.penalties == []  # not yet: the peer may still ask for our status
            await trio.sleep(0.2)
            assert p2p.penalties == [("peer-b", 100, "another network")]
            nursery.cancel_scope.cancel()

    with caplog.at_level(logging.WARNING, logger="ledgerdns.sync"):
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(
        f"peer peer-b is on another network: chain ledgerdns-devnet genesis "
        f"{THEIRS.hash().hex()[:16]} (ours: chain ledgerdns-devnet genesis {OURS.hash().hex()[:16]})"
    )
    assert "peer-b" in peers


def test_another_chains_sync_protocol_names_it(caplog: pytest.LogCaptureFixture) -> None:
    p2p = FakeP2P()
    p2p.protocols = {
        "peer-c": ["/ipfs/id/1.0.0", "/ledgerdns/other-chain/sync/1", "/meshsub/1.1.0"],
        "peer-d": ["/ipfs/id/1.0.0", "/ledgerdns/ledgerdns-devnet/sync/1"],  # ours: fine
        "peer-e": [],  # identify has not said yet
    }
    peers = foreign_peers(p2p)
    with caplog.at_level(logging.WARNING, logger="ledgerdns.sync"):
        for peer in ("peer-c", "peer-d", "peer-e", "peer-c"):
            peers.check_protocols(peer)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(
        "peer peer-c is on another network: chain other-chain (ours: chain ledgerdns-devnet);"
    )
    assert "peer-c" in peers and "peer-d" not in peers and "peer-e" not in peers
