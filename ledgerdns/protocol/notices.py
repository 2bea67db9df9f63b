"""The ``blocks`` gossip topic: finalized blocks, and what follows a stored block.

A block's proposer publishes the block with its certificate (a one-block
`BlocksPage`, the form sync uses) as soon as it commits: followers apply it
from that one message (issue 20: they used to get the proposal and a separate
`CommitNotice` of height, hash and certificate, two messages per height, each
several times over the mesh, and a notice that overtook its proposal had to wait
for it). A `CommitNotice` is still understood: its node commits the proposal it
holds, or syncs. `Commits` is what the driver calls after every stored block:
the mempool, the waiters of `wait_finalized`, the block listeners (DNS caches),
and the announcement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from chain.block import Block, read_block_frame, tx_root_of_wire
from chain.encoding import Kind
from chain.errors import InvalidUpdate, NotFound, RejectReason
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.quorum import CommitCertificate
from chain.tx import forget_decoded
from chain.validators import CHANGE_DELAY
from chain.wire import BlocksPage, CommitNotice, FinalizedBlock, message_kind
from ledgerdns.consensus.driver import ConsensusDriver
from ledgerdns.p2p import P2PService
from ledgerdns.protocol.offences import BAD_MESSAGE_PENALTY
from ledgerdns.protocol.sync import Syncer

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("ledgerdns.protocol.blocks")

# Validators send their votes over links (`validator_links`), so followers see no votes and
# commit from this notice: it goes out as soon as the block is stored.
NOTICE_DELAY_S = 0.0
PROPOSAL_WAIT_S = 1.0  # a notice that came before its proposal waits this long for it
PROPOSAL_POLL_S = 0.05
RECENT_HEIGHTS = 2  # a finalized block this far below our head is still passed on (others may lack it)

BlockListener = Callable[[int, frozenset[str]], None]


class CommitNotices:
    """One node's side of the ``blocks`` topic."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        ledger: Ledger,
        p2p: P2PService,
        topic: str,
        driver: ConsensusDriver,
        syncer: Syncer,
    ) -> None:
        self._genesis = genesis
        self._ledger = ledger
        self._p2p = p2p
        self.topic = topic
        self._driver = driver
        self._syncer = syncer
        self._nursery: trio.Nursery | None = None
        # the block the filter just checked, for the handler that gets the same bytes next
        self._checked: tuple[bytes, Block, CommitCertificate] | None = None

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the nursery that delayed announcements run in, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def validate(self, peer: str, data: bytes) -> bool:
        """The gossip filter: a notice or block whose certificate does not verify costs its sender."""
        if message_kind(data) == Kind.BLOCKS_PAGE:
            return self._validate_block(peer, data)
        height = 0
        try:
            notice = CommitNotice.from_bytes(data)
            height = notice.height
            self._verify(notice.certificate, height, notice.block_hash)
        except InvalidUpdate as exc:
            if not self._beyond_known_sets(height):
                self._p2p.penalize(peer, BAD_MESSAGE_PENALTY, f"commit notice: {exc}")
            return False
        return True

    def _verify(self, certificate: CommitCertificate, height: int, block_hash: bytes) -> None:
        params = self._genesis.params
        certificate.verify(
            self._ledger.validators_at(height), params.chain_id, block_hash,
            genesis_hash=params.genesis_hash,
        )  # fmt: skip

    def _beyond_known_sets(self, height: int) -> bool:
        """Past the heights whose validator set we know: a certificate there is not the sender's fault."""
        return height > self._ledger.height + CHANGE_DELAY

    def _validate_block(self, peer: str, data: bytes) -> bool:
        """A finalized block: one block whose certificate verifies; passed on while recent."""
        height = 0
        try:
            item = _one_item(data)
            header, raw_txs = read_block_frame(item.block)
            height = header.height
            if height + RECENT_HEIGHTS <= self._ledger.height:
                return False  # old: nobody needs it from gossip (not the sender's fault)
            certificate = CommitCertificate.from_bytes(item.certificate)
            self._verify(certificate, height, header.hash)
            if tx_root_of_wire(raw_txs) != header.tx_root:
                raise InvalidUpdate(RejectReason.BAD_TX_ROOT, "the body is not the one the header names")
            if height <= self._ledger.height:
                # Final here already (a validator commits over links before the proposer's
                # page comes): passed on as it is, its transactions never decoded. Decoding
                # them filled the transaction decode memo with final ones (issue 21: 16,384
                # entries, ~26 MiB per validator, in the first 8 minutes of the soak).
                self._checked = None
                return True
            block = Block.from_bytes(item.block)
        except InvalidUpdate as exc:
            if not self._beyond_known_sets(height):
                self._p2p.penalize(peer, BAD_MESSAGE_PENALTY, f"finalized block: {exc}")
            return False
        self._checked = (data, block, certificate)
        return True

    async def _on_block(self, data: bytes) -> None:
        """Apply a finalized block that is our next one; sync towards one further ahead."""
        checked = self._checked
        if checked is not None and checked[0] == data:
            _, block, certificate = checked
        else:
            header, _ = read_block_frame(_one_item(data).block)
            if header.height <= self._ledger.height:
                return  # final here already: nothing to decode or apply
            block, certificate = _one_block(data)
        self._checked = None
        if block.height == self._ledger.height + 1:
            try:
                await self._driver.apply_finalized(block, certificate)
            except InvalidUpdate as exc:
                log.error("a certified block does not apply: %s", exc)
        elif block.height > self._ledger.height + 1:
            self._syncer.poke(block.height)

    async def on_message(self, peer: str, data: bytes) -> None:
        """A finalized block: apply it. A notice: commit the noticed block if we hold its
        proposal, else let sync fetch it.

        The proposal of the next height may still be on its way (it can come
        over another path of the mesh than the notice): it gets
        `PROPOSAL_WAIT_S` to arrive before sync is asked.
        """
        if message_kind(data) == Kind.BLOCKS_PAGE:
            await self._on_block(data)
            return
        notice = CommitNotice.from_bytes(data)
        if notice.height <= self._ledger.height:
            return
        if await self._commit(notice):
            return
        if notice.height == self._ledger.height + 1 and self._nursery is not None:
            self._nursery.start_soon(self._commit_when_proposed, notice)
            return
        self._syncer.poke(notice.height)

    async def _commit(self, notice: CommitNotice) -> bool:
        """Commit the noticed block if it is the next one and we hold its proposal."""
        height = notice.height
        block = self._driver.proposed_block(height, notice.block_hash)
        if height != self._ledger.height + 1 or block is None:
            return False
        try:
            await self._driver.apply_finalized(block, notice.certificate)
        except InvalidUpdate as exc:
            log.error("a certified block does not apply: %s", exc)
        return True

    async def _commit_when_proposed(self, notice: CommitNotice) -> None:
        with trio.move_on_after(PROPOSAL_WAIT_S):
            while notice.height > self._ledger.height:
                if await self._commit(notice):
                    return
                await trio.sleep(PROPOSAL_POLL_S)
        if notice.height > self._ledger.height:
            self._syncer.poke(notice.height)

    def announce(self, block: Block, certificate: CommitCertificate) -> None:
        """Publish a block this node proposed, with its certificate, `NOTICE_DELAY_S` from now."""
        if self._nursery is not None:
            final = BlocksPage((FinalizedBlock(block.to_bytes(), certificate.to_bytes()),))
            self._nursery.start_soon(self._announce, block.height, final.to_bytes())

    async def _announce(self, height: int, data: bytes) -> None:
        """Publish a finalized block after `NOTICE_DELAY_S`, unless a later one is final by then.

        Validators decide from the votes they get over links; followers (and a
        validator that missed votes) apply the block when it comes, so it goes
        out at once.
        """
        await trio.sleep(NOTICE_DELAY_S)
        if self._ledger.height > height:
            return  # a later block is final: nodes still behind learn of it from that one or by sync
        await self._p2p.publish(self.topic, data)


class Commits:
    """What follows each stored block, and waiting for a transaction to be final."""

    def __init__(self, *, ledger: Ledger, mempool: Mempool, notices: CommitNotices) -> None:
        self._ledger = ledger
        self._mempool = mempool
        self._notices = notices
        self._listeners: list[BlockListener] = []
        # txid -> (event, callers waiting on it). Bound: the calls waiting right now (each
        # holds an RPC request open); a caller that gives up removes itself, so a
        # transaction that never becomes final leaves nothing behind (issue 21).
        self._waiters: dict[bytes, tuple[trio.Event, int]] = {}

    def on_block_applied(self, listener: BlockListener) -> None:
        """Call ``listener(height, changed_domains)`` after each block is stored."""
        self._listeners.append(listener)

    async def wait_finalized(self, txid: bytes, timeout_s: float) -> tuple[int, int] | None:
        """``(height, index)`` of `txid` once final; None after `timeout_s`."""
        with trio.move_on_after(timeout_s):
            while True:
                try:
                    _, height, index = self._ledger.get_tx(txid)
                    return height, index
                except NotFound:
                    pass
                await self._wait_block_with(txid)
        return None

    async def _wait_block_with(self, txid: bytes) -> None:
        """Until a stored block holds `txid`; the waiter is forgotten however this ends."""
        event, count = self._waiters.get(txid, (trio.Event(), 0))
        self._waiters[txid] = (event, count + 1)
        try:
            await event.wait()
        finally:
            current = self._waiters.get(txid)
            if current is not None and current[0] is event:
                if current[1] <= 1:
                    del self._waiters[txid]
                else:
                    self._waiters[txid] = (event, current[1] - 1)

    def waiting(self) -> int:
        """How many transactions some caller waits for (each entry of the waiter table)."""
        return len(self._waiters)

    async def committed(self, block: Block, certificate: CommitCertificate, mine: bool) -> None:
        """After a block is stored: mempool, waiters, listeners, and (ours) the commit notice."""
        now_s = block.header.time_ms // 1000
        for tx, error in self._mempool.block_applied(block.txs, self._ledger.get_domain, now_s):
            log.info("dropped %s from the mempool: %s", tx.txid.hex()[:16], error)
        forget_decoded(block.txs)  # final: no proposal will carry them again
        for tx in block.txs:
            waiter = self._waiters.pop(tx.txid, None)
            if waiter is not None:
                waiter[0].set()
        changed = frozenset(tx.body.domain for tx in block.txs)
        for listener in self._listeners:
            listener(block.height, changed)
        if block.txs:
            log.info("block %d: %d txs", block.height, len(block.txs))
        if mine:
            self._notices.announce(block, certificate)


def _one_item(data: bytes) -> FinalizedBlock:
    """The one block of a gossiped `BlocksPage`, still as bytes.

    Raises:
        InvalidUpdate: malformed, or not exactly one block.
    """
    page = BlocksPage.from_bytes(data)
    if len(page.blocks) != 1:
        raise InvalidUpdate(RejectReason.MALFORMED, "a gossiped block page holds one block")
    return page.blocks[0]


def _one_block(data: bytes) -> tuple[Block, CommitCertificate]:
    """The one block of a gossiped `BlocksPage`, decoded.

    Raises:
        InvalidUpdate: malformed, or not exactly one block.
    """
    return _one_item(data).decode()
