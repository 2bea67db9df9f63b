"""State snapshots on disk, taken every `interval` heights, and served to joining peers.

A snapshot (`chain.snapshot`) lives in ``DATA_DIR/snapshots/<height>/``: ``manifest``
and ``chunk-<index>`` files, written into a temporary directory first and renamed
into place, so a directory that exists is whole. The newest `KEEP` are kept.

It is taken when a block at a multiple of `interval` is stored (and at start, when
the head is at one and none is on disk): the scans of the state are opened at once,
on the store's view of that height, and the rest runs in a worker thread while
blocks keep coming.

Protocol ``/ledgerdns/<chain_id>/snapshot/1`` (request/response): a
`ManifestRequest` gets the newest snapshot's manifest, a `ChunkRequest` one chunk's
bytes as stored, which the requester verifies.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from chain.errors import InvalidUpdate
from chain.ledger import Ledger
from chain.snapshot import ChunkRequest, decode_snapshot_request
from chain.snapshot_build import SnapshotSource
from ledgerdns.p2p import P2PError
from ledgerdns.p2p.limits import GossipLimit, RateLimiter

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("ledgerdns.snapshots")

KEEP = 2  # snapshots kept on disk: a joiner fetching the older one can finish it
# A joiner asks a few chunks at a time from each peer; a chunk is ~300 KiB.
SNAPSHOT_REQUEST_LIMIT = GossipLimit(max_bytes=1 << 20, rate=200.0, burst=400.0)


def snapshot_protocol(chain_id: str) -> str:
    """The request/response protocol id of a network's snapshots."""
    return f"/ledgerdns/{chain_id}/snapshot/1"


class SnapshotStore:
    """The snapshots in one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def heights(self) -> list[int]:
        """Heights of the whole snapshots on disk, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(int(p.name) for p in self.root.iterdir() if p.name.isdigit() and p.is_dir())

    def manifest(self, height: int) -> bytes:
        """The manifest bytes of the snapshot at `height` (FileNotFoundError if none)."""
        return (self.root / str(height) / "manifest").read_bytes()

    def chunk(self, height: int, index: int) -> bytes:
        """One chunk's bytes (FileNotFoundError if none)."""
        return (self.root / str(height) / f"chunk-{index}").read_bytes()

    def write(self, height: int, manifest: bytes, chunks: list[bytes]) -> None:
        """Store a snapshot whole (temporary directory, then a rename), then drop old ones."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        work = self.root / f"tmp-{height}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        for index, data in enumerate(chunks):
            (work / f"chunk-{index}").write_bytes(data)
        (work / "manifest").write_bytes(manifest)
        final = self.root / str(height)
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
        for old in self.heights()[:-KEEP]:
            shutil.rmtree(self.root / str(old), ignore_errors=True)

    def clean(self) -> None:
        """Remove what an interrupted write left."""
        if self.root.is_dir():
            for stale in self.root.glob("tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)


class Snapshots:
    """Takes this node's snapshots and answers peers' requests for them."""

    def __init__(self, *, ledger: Ledger, store: SnapshotStore, interval: int) -> None:
        self._ledger = ledger
        self.store = store
        self.interval = interval
        self._limiter = RateLimiter(max_entries=4096)
        self._send, self._receive = trio.open_memory_channel[SnapshotSource](1)
        self.taken = 0

    # -- taking --

    def on_block(self, height: int, changed: frozenset[str]) -> None:
        """A block listener: take a snapshot at each multiple of `interval`."""
        if self.interval and height % self.interval == 0:
            self._take()

    def _take(self) -> None:
        source = SnapshotSource.take(self._ledger)
        if source is None:
            log.info(
                "no snapshot at height %d: a validator-set change is pending", self._ledger.height
            )
            return
        try:
            self._send.send_nowait(source)
        except trio.WouldBlock:
            source.close()  # still writing the last one: skip this one
            log.warning(
                "snapshot at height %d skipped: the previous one is still being written",
                source.height,
            )

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write the snapshots taken, one at a time, until cancelled."""
        self.store.clean()
        head = self._ledger.height
        task_status.started()
        if (
            self.interval
            and head
            and head % self.interval == 0
            and head not in self.store.heights()
        ):
            self._take()
        async with self._receive:
            async for source in self._receive:
                started = trio.current_time()
                size = await trio.to_thread.run_sync(self._write, source)
                self.taken += 1
                log.info(
                    "snapshot height=%d bytes=%d in %.1f s",
                    source.height, size, trio.current_time() - started,
                )  # fmt: skip

    def _write(self, source: SnapshotSource) -> int:
        try:
            manifest, chunks = source.build()
        finally:
            source.close()
        self.store.write(source.height, manifest.to_bytes(), chunks)
        return sum(map(len, chunks))

    # -- serving --

    async def handle(self, peer_id: str, data: bytes) -> bytes:
        """One request's answer.

        Raises:
            P2PError: a malformed request, no such snapshot or chunk, or too many requests.
        """
        now = trio.current_time()
        if len(self._limiter) >= 1024:
            self._limiter.sweep(now)
        if not self._limiter.allow(peer_id, "snapshot", SNAPSHOT_REQUEST_LIMIT, now):
            raise P2PError("busy: too many snapshot requests from this peer; retry in a second")
        try:
            request = decode_snapshot_request(data)
        except InvalidUpdate as exc:
            raise P2PError(f"bad snapshot request: {exc}") from None
        heights = self.store.heights()
        try:
            if isinstance(request, ChunkRequest):
                return await trio.to_thread.run_sync(
                    self.store.chunk, request.height, request.index
                )
            if not heights:
                raise P2PError(
                    "no snapshot here (snapshots are taken every --snapshot-interval heights)"
                )
            return await trio.to_thread.run_sync(self.store.manifest, heights[-1])
        except FileNotFoundError:
            raise P2PError(
                "no such snapshot or chunk here (it may have been replaced by a newer one)"
            ) from None
