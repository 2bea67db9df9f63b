"""Peers that belong to another network: named once each in the log, then banned.

A node bootstrapped into the wrong network (another genesis file, or another
chain) used to say nothing but "connected, synced, height 0". Two things tell
it: a peer's sync status carries its chain id and genesis hash (`Status`), and
a peer of another chain speaks another chain's sync protocol, which identify
lists. `ForeignPeers.run` asks every newly connected peer for its status once
(the sync poller asks one random peer at a time, which may never be the
stranger); a peer of another network is named in one warning, with both
networks, and banned `GRACE_S` later: time enough for it to ask for our status
too, and so to warn its own operator (a peer banned at once never learns why).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from chain.errors import InvalidUpdate
from chain.genesis import Genesis
from chain.wire import Status, StatusRequest, sync_protocol
from ledgerdns.p2p import P2PError, P2PService

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("ledgerdns.sync")

GRACE_S = 5.0  # from the warning to the ban
PENALTY = 100  # a ban: a peer of another network is of no use to us
CHECK_DELAY_S = 0.5  # after a connection, before asking: identify's protocol list comes first
STATUS_TIMEOUT_S = 3.0
_MAX_REMEMBERED = 4096
_QUEUE = 256  # new connections waiting to be checked; more are left to the sync poller


class ForeignPeers:
    """Peers found to be on another network, each warned about once and then banned."""

    def __init__(self, genesis: Genesis, p2p: P2PService) -> None:
        self._genesis = genesis
        self._p2p = p2p
        self._sync_protocol = sync_protocol(genesis.chain_id)
        self._first_seen: set[str] = set()
        self._nursery: trio.Nursery | None = None
        self._send, self._receive = trio.open_memory_channel[str](_QUEUE)
        p2p.on_connected(self._connected)  # queued until `run` starts: none is missed

    def __contains__(self, peer: str) -> bool:
        return peer in self._first_seen

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check each newly connected peer's network, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            async for peer in self._receive:
                nursery.start_soon(self._check, peer)

    def _connected(self, peer: str) -> None:
        if peer not in self._first_seen:
            try:
                self._send.send_nowait(peer)
            except trio.WouldBlock:
                pass  # a burst of connections: the sync poller still meets them

    async def _check(self, peer: str) -> None:
        await trio.sleep(CHECK_DELAY_S)
        try:
            raw = await self._p2p.request(
                peer, self._sync_protocol, StatusRequest().to_bytes(), timeout=STATUS_TIMEOUT_S
            )
            status = Status.from_bytes(raw)
        except (P2PError, InvalidUpdate) as exc:
            log.debug("status check of new peer %s failed: %s", peer, exc)
            self.check_protocols(peer)
            return
        if status.genesis_hash != self._genesis.hash():
            self.other_genesis(peer, status)

    # -- what tells --

    def other_genesis(self, peer: str, status: Status) -> None:
        """`peer`'s status names another genesis than ours."""
        ours = self._genesis
        self._found(
            peer,
            f"chain {status.chain_id} genesis {status.genesis_hash.hex()[:16]} "
            f"(ours: chain {ours.chain_id} genesis {ours.hash().hex()[:16]})",
        )

    def check_protocols(self, peer: str) -> None:
        """After `peer` did not answer a status request: does it speak another chain's?"""
        chains = sorted(
            chain
            for protocol in self._p2p.peer_protocols(peer)
            if (chain := _sync_chain(protocol)) is not None and protocol != self._sync_protocol
        )
        if chains:
            self._found(peer, f"chain {', '.join(chains)} (ours: chain {self._genesis.chain_id})")

    def _found(self, peer: str, networks: str) -> None:
        if peer in self._first_seen:
            return
        if len(self._first_seen) >= _MAX_REMEMBERED:
            self._first_seen.clear()
        self._first_seen.add(peer)
        log.warning(
            "peer %s is on another network: %s; not synced from, banned in %g s "
            "(check --genesis and --bootstrap)",
            peer, networks, GRACE_S,
        )  # fmt: skip
        if self._nursery is not None:
            self._nursery.start_soon(self._ban_later, peer)
        else:  # not running (a test of the syncer alone): at once
            self._p2p.penalize(peer, PENALTY, "another network")

    async def _ban_later(self, peer: str) -> None:
        await trio.sleep(GRACE_S)
        if not self._p2p.is_banned(peer):
            self._p2p.penalize(peer, PENALTY, "another network")


def _sync_chain(protocol: str) -> str | None:
    """The chain id of a sync protocol id (``/ledgerdns/<chain>/sync/1``), else None."""
    parts = protocol.split("/")
    if len(parts) == 5 and parts[0] == "" and parts[1] == "ledgerdns" and parts[3] == "sync":
        return parts[2]
    return None
