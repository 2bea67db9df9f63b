"""The sync server answers a peer's requests up to a rate, then tells it to come back."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from chain.ledger import Ledger
from chain.store import MemoryStore
from chain.wire import Status, StatusRequest
from ledgerdns.p2p import P2PError
from ledgerdns.protocol.sync import SYNC_REQUEST_LIMIT, SyncServer
from tools.make_dev_genesis import localnet

GENESIS = localnet(4)


def server() -> SyncServer:
    chain = Ledger(MemoryStore(), GENESIS)
    chain.initialize()
    return SyncServer(GENESIS, chain)


def test_a_peer_over_the_rate_is_told_to_wait_and_others_are_served() -> None:
    async def main() -> None:
        sync = server()
        request = StatusRequest().to_bytes()
        burst = int(SYNC_REQUEST_LIMIT.burst)
        for _ in range(burst):  # time stands still: exactly the burst is served
            assert Status.from_bytes(await sync.handle("flooder", request)).height == 0
        with pytest.raises(P2PError, match="busy"):
            await sync.handle("flooder", request)
        assert Status.from_bytes(await sync.handle("honest", request)).height == 0
        await trio.sleep(1.0)  # a second refills `rate` requests
        for _ in range(int(SYNC_REQUEST_LIMIT.rate)):
            await sync.handle("flooder", request)
        with pytest.raises(P2PError, match="busy"):
            await sync.handle("flooder", request)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_malformed_request_is_refused() -> None:
    async def main() -> None:
        with pytest.raises(P2PError, match="bad sync request"):
            await server().handle("peer", b"\x00junk")

    trio.run(main)
