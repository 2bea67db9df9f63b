"""Joining by state sync: the state at a certified height from peers, chunk by chunk.

A node started with ``--state-sync`` on an empty data directory asks its peers for
their newest snapshot's manifest (`ledgerdns.protocol.snapshots`), checks each
against the genesis (`chain.snapshot.verify_manifest`: the set changes, the
certificate, the state root), picks the highest snapshot some peers offer, and
fetches its chunks from those peers at once, a few in flight each. Every chunk is
checked alone (`verify_chunk`) before it is written (`chain.snapshot_restore`); a
peer that serves a bad one is penalized, dropped for the rest of the join, and the
chunk is asked of another peer. Block sync (`ledgerdns.protocol.sync`) then brings
the blocks after the snapshot.
"""

from __future__ import annotations

import logging
from collections import deque

import trio

from chain.errors import InvalidUpdate, NetworkError, RejectReason
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.snapshot import (
    Chunk,
    ChunkRequest,
    Manifest,
    ManifestRequest,
    VerifiedManifest,
    verify_chunk,
    verify_manifest,
)
from chain.snapshot_restore import StateRestore
from ledgerdns.p2p import P2PError, P2PService

log = logging.getLogger("ledgerdns.statesync")

BAD_CHUNK_PENALTY = 100  # a chunk that contradicts a certified root is a provable lie
BAD_MANIFEST_PENALTY = 50
IN_FLIGHT_PER_PEER = 4
CHUNK_TIMEOUT_S = 30.0
MANIFEST_TIMEOUT_S = 10.0
RECRUIT_S = 0.5  # how often a fetch looks for newly connected peers
SETTLE_ROUNDS = 3  # seconds to wait for more peers offering the snapshot
WANTED_PEERS = 3
MAX_FAILURES = 3  # requests a peer may fail (timeouts, refusals) before it is dropped


class StateSyncFailed(NetworkError):
    """State sync could not finish: no peer served some chunk."""


class StateSync:
    """One join: find a snapshot, fetch and verify its chunks, write them."""

    def __init__(
        self, *, genesis: Genesis, ledger: Ledger, p2p: P2PService, protocol: str, wait_s: float
    ) -> None:
        self._genesis = genesis
        self._ledger = ledger
        self._p2p = p2p
        self._protocol = protocol
        self._wait_s = wait_s
        self.bad_chunks = 0  # chunks that failed verification (each from a penalized peer)
        self.chunks = 0
        self.height = 0

    async def join(self) -> bool:
        """Restore the newest snapshot peers offer; False if none turned up within `wait_s`.

        Raises:
            StateSyncFailed: the peers offering the snapshot all failed before its end.
        """
        found = None
        with trio.move_on_after(self._wait_s):
            while found is None:
                found = await self._find()
                if found is None:
                    await trio.sleep(0.2)
            # More peers fetch faster: give the others a moment to connect.
            for _ in range(SETTLE_ROUNDS):
                if len(found[1]) >= min(WANTED_PEERS, len(self._p2p.connected_peers())):
                    break
                await trio.sleep(1.0)
                again = await self._find()
                if again is not None and (again[0].manifest.height, len(again[1])) >= (
                    found[0].manifest.height,
                    len(found[1]),
                ):
                    found = again
        if found is None:
            log.warning(
                "state sync: no peer offered a snapshot within %.0f s; syncing blocks instead",
                self._wait_s,
            )
            return False
        verified, peers = found
        manifest = verified.manifest
        log.info(
            "state sync: snapshot height=%d chunks=%d from %d peers",
            manifest.height, 1 << manifest.depth, len(peers),
        )  # fmt: skip
        restore = StateRestore(self._ledger.store, self._ledger.params, verified)
        restore.begin()
        await self._fetch(manifest, restore, peers)
        restore.finish()
        self._ledger.reload()
        self.height = manifest.height
        log.info(
            "state sync: joined at height %d (%d bad chunks caught)",
            manifest.height,
            self.bad_chunks,
        )
        return True

    # -- the manifest --

    async def _find(self) -> tuple[VerifiedManifest, list[str]] | None:
        """The highest verified snapshot the connected peers offer, and who offers it."""
        answers: list[tuple[str, VerifiedManifest]] = []
        async with trio.open_nursery() as nursery:
            for peer in self._p2p.connected_peers():
                nursery.start_soon(self._manifest_into, answers, peer)
        if not answers:
            return None
        best = max(answers, key=lambda a: a[1].manifest.height)[1]
        wanted = best.manifest.snapshot_id()
        return best, [peer for peer, v in answers if v.manifest.snapshot_id() == wanted]

    async def _manifest_into(self, answers: list[tuple[str, VerifiedManifest]], peer: str) -> None:
        try:
            raw = await self._p2p.request(
                peer, self._protocol, ManifestRequest().to_bytes(), timeout=MANIFEST_TIMEOUT_S
            )
        except P2PError as exc:
            log.debug("state sync: no manifest from %s: %s", peer, exc)
            return
        try:
            manifest = Manifest.from_bytes(raw)
            verified = await trio.to_thread.run_sync(
                verify_manifest, self._genesis.params, manifest
            )
        except InvalidUpdate as exc:
            log.warning("state sync: peer %s sent a bad manifest: %s; penalized", peer, exc)
            self._p2p.penalize(peer, BAD_MANIFEST_PENALTY, f"bad snapshot manifest: {exc}")
            return
        answers.append((peer, verified))

    # -- the chunks --

    async def _fetch(self, manifest: Manifest, restore: StateRestore, peers: list[str]) -> None:
        missing = restore.missing
        peers = sorted(peers)
        # Chunk i is asked first of peer i mod n (then of anyone, if that fails).
        firsts = {peer: deque(missing[k :: len(peers)]) for k, peer in enumerate(peers)}
        state = _Fetch(todo=deque(), firsts=firsts, peers=set(peers), left=len(missing))
        send, receive = trio.open_memory_channel[tuple[str, int, bytes]](2 * IN_FLIGHT_PER_PEER)
        async with trio.open_nursery() as nursery:
            async with send:
                for peer in peers:
                    for _ in range(IN_FLIGHT_PER_PEER):
                        nursery.start_soon(self._worker, manifest.height, peer, state, send.clone())
                nursery.start_soon(self._recruit, manifest, state, nursery, send.clone())
            async with receive:
                async for peer, index, raw in receive:
                    if self._apply(manifest, restore, peer, index, raw, state):
                        state.left -= 1
                        if state.left == 0:
                            nursery.cancel_scope.cancel()
                    elif not state.peers:
                        break
                    await trio.lowlevel.checkpoint()
            nursery.cancel_scope.cancel()  # every chunk in, or no peer left: stop the recruiter
        if state.left:
            raise StateSyncFailed(
                f"state sync stopped: {state.left} of {1 << manifest.depth} chunks of the snapshot at "
                f"height {manifest.height} could not be fetched from any peer; restart the node to try again"
            )

    def _apply(
        self,
        manifest: Manifest,
        restore: StateRestore,
        peer: str,
        index: int,
        raw: bytes,
        state: _Fetch,
    ) -> bool:
        if index in state.done:
            return False  # asked twice (a slow answer after a retry): written already
        try:
            chunk = Chunk.from_bytes(raw)
            if chunk.index != index:
                raise InvalidUpdate(RejectReason.BAD_PROOF, f"chunk {chunk.index} sent for {index}")
            verified = verify_chunk(manifest, chunk)
        except InvalidUpdate as exc:
            self.bad_chunks += 1
            reason = str(exc)
            log.warning(
                "state sync: peer %s served a bad chunk %d: %s; penalized", peer, index, reason
            )
            self._p2p.penalize(peer, BAD_CHUNK_PENALTY, f"bad snapshot chunk: {reason}")
            state.drop(peer)
            state.todo.append(index)
            return False
        restore.add(verified)
        state.done.add(index)
        self.chunks += 1
        return True

    async def _recruit(
        self,
        manifest: Manifest,
        state: _Fetch,
        nursery: trio.Nursery,
        send: trio.MemorySendChannel[tuple[str, int, bytes]],
    ) -> None:
        """Peers that connect during the fetch and offer the same snapshot help with it."""
        wanted = manifest.snapshot_id()
        async with send:
            while state.left and state.peers:
                await trio.sleep(RECRUIT_S)
                for peer in self._p2p.connected_peers():
                    if peer in state.seen:
                        continue
                    state.seen.add(peer)
                    try:
                        raw = await self._p2p.request(
                            peer,
                            self._protocol,
                            ManifestRequest().to_bytes(),
                            timeout=MANIFEST_TIMEOUT_S,
                        )
                        offered = Manifest.from_bytes(raw).snapshot_id()
                    except (P2PError, InvalidUpdate):
                        continue
                    if offered == wanted and state.left:
                        state.peers.add(peer)
                        state.firsts[peer] = deque()
                        for _ in range(IN_FLIGHT_PER_PEER):
                            nursery.start_soon(
                                self._worker, manifest.height, peer, state, send.clone()
                            )

    async def _worker(
        self,
        height: int,
        peer: str,
        state: _Fetch,
        send: trio.MemorySendChannel[tuple[str, int, bytes]],
    ) -> None:
        async with send:
            while peer in state.peers and state.left:
                index = state.next_for(peer)
                if index is None:
                    await trio.sleep(0.05)  # the rest are in flight; one may come back
                    continue
                request = ChunkRequest(height=height, index=index).to_bytes()
                try:
                    raw = await self._p2p.request(
                        peer, self._protocol, request, timeout=CHUNK_TIMEOUT_S
                    )
                except P2PError as exc:
                    state.todo.append(index)
                    state.failures[peer] = failures = state.failures.get(peer, 0) + 1
                    log.info(
                        "state sync: chunk %d from %s failed (%d): %s", index, peer, failures, exc
                    )
                    if failures >= MAX_FAILURES:
                        state.drop(peer)
                    await trio.sleep(0.2)
                    continue
                await send.send((peer, index, raw))


class _Fetch:
    """What the workers of one fetch share."""

    def __init__(
        self, *, todo: deque[int], firsts: dict[str, deque[int]], peers: set[str], left: int
    ) -> None:
        self.todo = todo  # chunks any peer may be asked for
        self.firsts = firsts  # chunks each peer is asked for first
        self.peers = peers
        self.left = left
        self.failures: dict[str, int] = {}
        self.done: set[int] = set()
        self.seen = set(peers)  # peers asked for their manifest already

    def next_for(self, peer: str) -> int | None:
        """The next chunk to ask `peer` for: its own, one given back, or one of the busiest peer's."""
        own = self.firsts[peer]
        if own:
            return own.popleft()
        if self.todo:
            return self.todo.popleft()
        busiest = max(self.firsts.values(), key=len)
        return busiest.pop() if len(busiest) > 1 else None

    def drop(self, peer: str) -> None:
        """Ask `peer` for nothing more; what it was to serve first goes to the others."""
        self.peers.discard(peer)
        self.todo.extend(self.firsts.pop(peer, deque()))
        self.firsts[peer] = deque()
