"""The ``txs`` gossip topic: local submissions out in batches, peers' batches checked and admitted.

A submission is admitted to the mempool at once and gossiped in a batch with
the others that arrive within a few milliseconds (`run_outbox`). A gossiped
batch is checked before it is forwarded (`validate`): decoded under the
genesis record limits and every transaction statically valid, or the whole
batch is dropped and its sender penalized. Pending local submissions are
gossiped again after a while (`resend_pending`), since gossip delivers each
message once, to whoever is connected then.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from chain.errors import InvalidUpdate, NotFound, RejectReason
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.rules import check_tx_static
from chain.tx import Transaction
from chain.wire import MAX_BATCH_BYTES, MAX_BATCH_TXS, Resent, TxBatch, unwrap_resent
from ledgerdns.clock import Clock
from ledgerdns.p2p import P2PService
from ledgerdns.protocol.offences import BAD_MESSAGE_PENALTY

log = logging.getLogger("ledgerdns.protocol.txs")

TX_BATCH_DELAY_S = 0.003  # a burst of submissions ends after this long without one
TX_BATCH_MAX_WAIT_S = 0.02  # never hold a submission longer than this
TX_BATCH_MAX = MAX_BATCH_TXS
TX_BATCH_BYTES = MAX_BATCH_BYTES - 64 * 1024  # room for framing
EXPIRY_SWEEP_S = 10.0
RESEND_S = 2.0  # while the height is stuck, pending local submissions go out again this often
PENDING_RESEND_S = 10.0  # otherwise, a local submission still pending this long is gossiped again


class TxGossip:
    """One node's side of the ``txs`` topic."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        ledger: Ledger,
        mempool: Mempool,
        p2p: P2PService,
        topic: str,
        txs_available: Callable[[], Awaitable[None]],
        clock: Clock,
    ) -> None:
        self._genesis = genesis
        self._clock = clock  # admission and expiry times, `Resent` nonces
        self._ledger = ledger
        self._mempool = mempool
        self._p2p = p2p
        self.topic = topic
        self._txs_available = txs_available
        # Local submissions not yet gossiped: each was admitted to the mempool first, so
        # bounded by the mempool's own bound (`Mempool.max_txs`), and emptied every few ms.
        self._outbox: list[Transaction] = []
        # recent local submissions, for re-sending: txid -> (tx, when last gossiped);
        # ≤ TX_BATCH_MAX entries (the oldest go first), those no longer pending are dropped
        self._sent: dict[bytes, tuple[Transaction, float]] = {}
        self._ready = trio.Event()

    def admit(self, tx: Transaction) -> None:
        """Add to the mempool, refusing already finalized txids.

        Raises:
            InvalidUpdate: the mempool's or the ledger's reason.
        """
        try:
            # Where it is, not the transaction itself: reading it decodes its whole block into
            # the transaction decode memo, which late gossip copies kept filling on
            # validators (issue 21).
            self._ledger.get_tx_location(tx.txid)
        except NotFound:
            pass
        else:
            raise InvalidUpdate(RejectReason.DUPLICATE, f"{tx.txid.hex()[:16]} is already final")
        self._mempool.add(tx, self._ledger.get_domain, self._clock.now_s())

    async def submit(self, tx: Transaction) -> None:
        """Admit a local submission and queue it for gossip (which also wakes consensus).

        Raises:
            InvalidUpdate: as `admit`.
        """
        self.admit(tx)
        self._outbox.append(tx)
        self._ready.set()

    async def run_outbox(self) -> None:
        """Gossip local submissions in batches, then tell consensus there is work.

        Submissions come one by one (each RPC call) or in bursts (batch calls,
        zone imports): waiting until none arrived for `TX_BATCH_DELAY_S` (at most
        `TX_BATCH_MAX_WAIT_S`) turns a burst into a few large gossip messages,
        which cost far less than many small ones.
        """
        last_flush = -1.0
        while True:
            await self._ready.wait()
            # A lone submission after a quiet spell goes out at once (latency); the
            # rest of a burst is gathered (throughput).
            if trio.current_time() - last_flush < TX_BATCH_MAX_WAIT_S:
                deadline = trio.current_time() + TX_BATCH_MAX_WAIT_S
                seen = -1
                while seen != len(self._outbox) and len(self._outbox) < TX_BATCH_MAX:
                    seen = len(self._outbox)
                    if trio.current_time() >= deadline:
                        break
                    await trio.sleep(TX_BATCH_DELAY_S)
            last_flush = trio.current_time()
            self._ready = trio.Event()
            while self._outbox:
                batch = take_batch(self._outbox)
                await self._p2p.publish(self.topic, TxBatch(tuple(batch)).to_bytes())
                now = trio.current_time()
                for tx in batch:
                    self._sent[tx.txid] = (tx, now)
                while len(self._sent) > TX_BATCH_MAX:
                    del self._sent[next(iter(self._sent))]
            await self._txs_available()

    def validate(self, peer: str, data: bytes) -> bool:
        """Admit a gossiped batch; drop and penalize one no honest peer sends.

        The batch is decoded under the genesis record limits (a record set over
        them is refused before its records are built) and every transaction
        must pass `check_tx_static` before any is admitted. One that fails can
        never be valid, whatever the state or the clock: the whole batch is
        dropped, not forwarded, and its sender pays the rejection's penalty
        (at least `BAD_MESSAGE_PENALTY`). What admission refuses after that
        (stale, duplicate, expired, a full mempool) depends on this node's
        state or clock, which an honest peer may see otherwise: penalty 0, and
        the batch goes on (issue 13).
        """
        params = self._genesis.params
        try:
            # `resend_pending` wraps batches in `Resent`.
            batch = TxBatch.from_bytes(unwrap_resent(data), limits=params.record_limits)
            for tx in batch.txs:
                check_tx_static(tx, params)
        except InvalidUpdate as exc:
            self._p2p.penalize(peer, max(exc.penalty, BAD_MESSAGE_PENALTY), f"tx batch: {exc}")
            return False
        for tx in batch.txs:
            try:
                self.admit(tx)
            except InvalidUpdate as exc:
                if exc.penalty:  # none once `check_tx_static` passed; kept honest if one is added
                    self._p2p.penalize(peer, exc.penalty, f"gossiped tx: {exc}")
                    return False
        return True

    async def on_message(self, peer: str, data: bytes) -> None:
        """A batch passed `validate` (its transactions are in the mempool): wake consensus."""
        log.debug("txs from %s, mempool %d", peer[-6:], len(self._mempool))
        if len(self._mempool):
            await self._txs_available()

    async def resend_pending(self, stuck: bool) -> None:
        """Gossip again the local submissions still in the mempool after a while.

        A write accepted on the losing side of a partition reached only that side;
        after the heal the others keep finalizing their own traffic, so the height
        is rarely stuck and this node would never tell them. Each pending one goes
        out again `RESEND_S` after its last sending while the height is stuck,
        `PENDING_RESEND_S` otherwise (a busy network's backlog is not stuck). The
        batch is wrapped in `Resent`: the same bytes again would be dropped as
        already seen, by this node's own gossip first.
        """
        now = trio.current_time()
        wait = RESEND_S if stuck else PENDING_RESEND_S
        for txid in [t for t in self._sent if t not in self._mempool]:
            del self._sent[txid]
        due = [tx for tx, sent in self._sent.values() if now - sent >= wait - 0.1]
        for tx in due:
            self._sent[tx.txid] = (tx, now)
        while due:
            batch = TxBatch(tuple(take_batch(due))).to_bytes()
            resent = Resent(nonce=self._clock.now_ns(), payload=batch)
            await self._p2p.publish(self.topic, resent.to_bytes())

    async def sweep_expired(self) -> None:
        """Drop expired transactions from the mempool every `EXPIRY_SWEEP_S`."""
        while True:
            await trio.sleep(EXPIRY_SWEEP_S)
            self._mempool.remove_expired(self._clock.now_s())


def take_batch(txs: list[Transaction]) -> list[Transaction]:
    """Remove and return the first transactions of `txs` that fit one gossip batch."""
    size = 0
    count = 0
    for tx in txs[:TX_BATCH_MAX]:
        if count and size + tx.size > TX_BATCH_BYTES:
            break
        size += tx.size
        count += 1
    batch = txs[:count]
    del txs[:count]
    return batch
