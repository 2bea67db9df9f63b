"""Block sync: serve finalized blocks to peers, and catch up from them.

The protocol (`chain.wire`): a `StatusRequest` gets the peer's finalized head;
a `BlocksRequest(start, count)` gets consecutive blocks with their commit
certificates, in pages of about `PAGE_BYTES`. A node that is behind asks
peers for their status, fetches what it lacks page by page (the next page is
requested while the current one is applied), checks every certificate and
applies each block through the consensus driver, so the state machine moves
along with the ledger.
"""

from __future__ import annotations

import logging
import random

import trio
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from chain.block import Block
from chain.errors import InvalidUpdate, NotFound
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.quorum import CommitCertificate
from chain.wire import (
    BlocksPage,
    BlocksRequest,
    FinalizedBlock,
    Status,
    StatusRequest,
    decode_sync_request,
    sync_protocol,
)
from ledgerdns.consensus.driver import ConsensusDriver
from ledgerdns.p2p import P2PError, P2PService
from ledgerdns.p2p.limits import GossipLimit, RateLimiter
from ledgerdns.protocol.networks import ForeignPeers

log = logging.getLogger("ledgerdns.sync")

PAGE_BYTES = 1024 * 1024
PAGE_BLOCKS = 500
STATUS_TIMEOUT_S = 3.0  # a status is a few bytes; a peer that has not answered by then is skipped
IN_FLIGHT_S = 1.5  # a peer one block ahead: how long gossip gets to bring that block first
POLL_S = 5.0  # how often a node compares heads with a random peer (gossip pokes it sooner)
PROGRESS_MIN_BLOCKS = 20  # show a progress bar only for a real catch-up
BAD_SYNC_PENALTY = 50
# Requests a peer may make of us: a catching-up node asks for one page at a time (one
# ahead) and for heads every few seconds, a few a second at most; the bucket absorbs a
# burst, and a peer over it is told to come back rather than served from the disk.
SYNC_REQUEST_LIMIT = GossipLimit(max_bytes=1 << 20, rate=20.0, burst=60.0)


class SyncServer:
    """Answers peers' status and block requests from the local ledger."""

    def __init__(self, genesis: Genesis, ledger: Ledger) -> None:
        self.genesis = genesis
        self.ledger = ledger
        self._limiter = RateLimiter(max_entries=4096)

    def status(self) -> Status:
        """This node's finalized head."""
        head = self.ledger.head
        return Status(
            chain_id=self.genesis.chain_id,
            genesis_hash=self.genesis.hash(),
            height=head.height,
            head_hash=head.hash,
        )

    async def handle(self, peer_id: str, data: bytes) -> bytes:
        """One request's answer.

        Raises:
            P2PError: a malformed request, or the peer asks more often than
                `SYNC_REQUEST_LIMIT` (the requester gets the message).
        """
        now = trio.current_time()
        if len(self._limiter) >= 1024:
            self._limiter.sweep(now)
        if not self._limiter.allow(peer_id, "sync", SYNC_REQUEST_LIMIT, now):
            raise P2PError("busy: too many sync requests from this peer; retry in a second")
        try:
            request = decode_sync_request(data)
        except InvalidUpdate as exc:
            raise P2PError(f"bad sync request: {exc}") from None
        if isinstance(request, StatusRequest):
            return self.status().to_bytes()
        return self.page(request.start, request.count).to_bytes()

    def page(self, start: int, count: int) -> BlocksPage:
        """Blocks `start`.. up to `count` of them and about `PAGE_BYTES` (at least one).

        Raises:
            P2PError: `start` is below the blocks this node keeps (it prunes, or joined
                by state sync): the requester is told so and tries another peer.
        """
        base = self.ledger.base_height
        if max(start, 1) < base:
            raise P2PError(
                f"pruned: this node keeps blocks from height {base} on; join by state sync "
                "(--state-sync) or sync from an archive node"
            )
        out: list[FinalizedBlock] = []
        size = 0
        end = min(start + min(count, PAGE_BLOCKS), self.ledger.height + 1)
        for height in range(max(start, 1), end):
            try:
                block = self.ledger.get_block_bytes(height)
                cert = self.ledger.get_certificate(height).to_bytes()
            except NotFound:
                break
            if out and size + len(block) + len(cert) > PAGE_BYTES:
                break
            out.append(FinalizedBlock(block, cert))
            size += len(block) + len(cert)
        return BlocksPage(tuple(out))


class Syncer:
    """Keeps this node's ledger up with its peers'."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        ledger: Ledger,
        driver: ConsensusDriver,
        p2p: P2PService,
        progress: bool,
    ) -> None:
        self.genesis = genesis
        self.ledger = ledger
        self.driver = driver
        self.p2p = p2p
        self.progress = progress
        self.protocol = sync_protocol(genesis.chain_id)
        self.target = ledger.height  # the highest height a peer reported
        self.syncing = False
        self._wake = trio.Event()
        self._poked = False
        # Blocks applied through this path once the node had first caught up (a node that
        # starts behind syncs by design; after that, blocks should come by gossip), and
        # the blocks of that first catch-up.
        self.caught_up = False
        self.blocks_via_sync = 0
        self.blocks_at_start = 0
        self._had_peers = False
        self.foreign = ForeignPeers(genesis, p2p)  # peers of another network (warned once)

    def poke(self, height_hint: int = 0) -> None:
        """Something suggests we are behind (e.g. a message for a later height)."""
        self.target = max(self.target, height_hint)
        self._poked = True
        self._wake.set()

    async def run(self) -> None:
        """Poll peers' heads and catch up, until cancelled.

        The first look is as soon as a peer is connected (a starting node syncs
        before anything else); then every `POLL_S`, or at once when poked.
        """
        eager_until = trio.current_time() + 10  # look often until the first peer shows up
        while True:
            if trio.current_time() < eager_until:
                await trio.sleep(0.2)
            else:
                with trio.move_on_after(POLL_S):
                    await self._wake.wait()
            self._wake = trio.Event()
            self._poked = self._poked or self.target > self.ledger.height
            peers = self.p2p.connected_peers()
            had_peers, self._had_peers = self._had_peers, bool(peers)
            if not peers:
                continue
            eager_until = 0.0
            random.shuffle(peers)
            # Asked at once: a peer whose stream hangs (a connection being replaced after
            # both sides dialled) costs STATUS_TIMEOUT_S, not that much per peer in turn.
            answers: list[tuple[str, Status]] = []
            async with trio.open_nursery() as nursery:
                for peer in peers[: 3 if self._poked or not self.caught_up else 1]:
                    nursery.start_soon(self._status_into, answers, peer)
            best = max((status.height for _, status in answers), default=0)
            if self.caught_up and best == self.ledger.height + 1:
                # One block ahead is what a poll sees while that block's commit notice is
                # on its way: give gossip `IN_FLIGHT_S` to bring it before fetching it.
                with trio.move_on_after(IN_FLIGHT_S):
                    while self.ledger.height < best:
                        await trio.sleep(0.05)
            before = self.ledger.height
            for peer, status in sorted(answers, key=lambda a: -a[1].height):
                if status.height <= self.ledger.height:
                    break
                self.target = max(self.target, status.height)
                await self.catch_up(peer, status.height)
            # Still behind (a peer that prunes refused old blocks, or failed): ask more
            # peers next time.
            self._poked = self.ledger.height < best
            self._note_synced(self.ledger.height - before, len(peers), had_peers)
            if answers:
                self.caught_up = True

    def _note_synced(self, blocks: int, peers: int, had_peers: bool) -> None:
        """Count blocks this pass fetched; after the first catch-up, with peers live, say so."""
        if blocks <= 0:
            return
        if not self.caught_up:
            self.blocks_at_start += blocks
            return
        self.blocks_via_sync += blocks
        if had_peers:
            # Gossip should have brought these: a node that keeps needing this path
            # while connected is starved of gossip (issue 20).
            log.warning(
                "fetched %d blocks by sync while connected to %d peers (total %d): "
                "gossip did not bring them",
                blocks, peers, self.blocks_via_sync,
            )  # fmt: skip
        else:
            log.info("fetched %d blocks by sync after being without peers", blocks)

    async def _status_into(self, answers: list[tuple[str, Status]], peer: str) -> None:
        status = await self._status(peer)
        if status is not None:
            answers.append((peer, status))

    async def _status(self, peer: str) -> Status | None:
        try:
            raw = await self.p2p.request(
                peer, self.protocol, StatusRequest().to_bytes(), timeout=STATUS_TIMEOUT_S
            )
            status = Status.from_bytes(raw)
        except (P2PError, InvalidUpdate) as exc:
            log.debug("status from %s failed: %s", peer, exc)
            self.foreign.check_protocols(peer)
            return None
        if status.genesis_hash != self.genesis.hash():
            self.foreign.other_genesis(peer, status)
            return None
        return status

    async def catch_up(self, peer: str, target: int) -> None:
        """Fetch and apply blocks from `peer` until our head reaches `target`."""
        start_height = self.ledger.height
        if target - start_height >= PROGRESS_MIN_BLOCKS:
            log.info("syncing blocks %d..%d from %s", start_height + 1, target, peer)
        self.syncing = True
        progress = self._progress(target - start_height)
        try:
            task = progress.add_task("sync", total=target - start_height) if progress else None
            send, receive = trio.open_memory_channel[Page | None](1)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._fetch, peer, target, send)
                async with receive:
                    async for page in receive:
                        if page is None:
                            break
                        if not await self._apply(peer, page):
                            nursery.cancel_scope.cancel()
                            break
                        if progress is not None and task is not None:
                            progress.update(task, completed=self.ledger.height - start_height)
        finally:
            self.syncing = False
            if progress is not None:
                progress.stop()
        if self.ledger.height - start_height >= PROGRESS_MIN_BLOCKS:
            log.info("synced to height %d", self.ledger.height)

    async def _fetch(
        self, peer: str, target: int, send: trio.MemorySendChannel[Page | None]
    ) -> None:
        async with send:
            next_height = self.ledger.height + 1
            while next_height <= target:
                request = BlocksRequest(start=next_height, count=PAGE_BLOCKS).to_bytes()
                try:
                    raw = await self.p2p.request(peer, self.protocol, request, timeout=30)
                    page = BlocksPage.from_bytes(raw)
                except (P2PError, InvalidUpdate) as exc:
                    log.info("sync from %s stopped: %s", peer, exc)
                    break
                if not page.blocks:
                    break
                next_height += len(page.blocks)
                decoded = _decode_page(page)
                # Signatures checked in a worker thread (libsecp256k1 releases the GIL)
                # while this page waits for the previous one to be applied: the check
                # during apply then finds them remembered.
                await trio.to_thread.run_sync(_prewarm_signatures, decoded, self.genesis.hash())
                await send.send(decoded)
            await send.send(None)

    async def _apply(self, peer: str, page: Page) -> bool:
        last = len(page) - 1
        for i, item in enumerate(page):
            try:
                if isinstance(item, InvalidUpdate):
                    raise item
                block, cert = item
                if block.height <= self.ledger.height:
                    continue
                if not await self.driver.apply_finalized(block, cert, durable=i == last):
                    return False
            except InvalidUpdate as exc:
                log.warning("peer %s sent an invalid block: %s; penalized", peer, exc)
                self.p2p.penalize(peer, BAD_SYNC_PENALTY, f"invalid synced block: {exc}")
                return False
            await trio.lowlevel.checkpoint()  # let DNS and RPC answer between blocks
        return True

    def _progress(self, total: int) -> Progress | None:
        if not self.progress or total < PROGRESS_MIN_BLOCKS:
            return None
        from rich.console import Console

        console = Console(stderr=True)
        if not console.is_terminal:
            return None
        progress = Progress(
            TextColumn("[bold]sync"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("blocks"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        progress.start()
        return progress


Page = list[tuple[Block, CommitCertificate] | InvalidUpdate]


def _decode_page(page: BlocksPage) -> Page:
    """Each block and certificate decoded, or the error that stops the page there."""
    out: Page = []
    for item in page.blocks:
        try:
            out.append(item.decode())
        except InvalidUpdate as exc:
            out.append(exc)
            break
    return out


def _prewarm_signatures(page: Page, genesis_hash: bytes) -> None:
    """Check transaction signatures ahead (remembered by `chain.crypto.verify`).

    The signer is the owner before the step, which only the state knows; for
    every operation but a transfer it is also the owner after it, which the
    transaction names. A wrong guess costs one check and proves nothing.
    """
    for item in page:
        if isinstance(item, InvalidUpdate):
            return
        for tx in item[0].txs:
            tx.is_signed_by(tx.body.owner, genesis_hash)
