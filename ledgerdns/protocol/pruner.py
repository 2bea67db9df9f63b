"""Pruning old blocks as new ones come (``--retain-blocks N``; `chain.pruning`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from chain.ledger import Ledger
from chain.pruning import prune

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("ledgerdns.pruner")

STEP_BLOCKS = 10  # blocks dropped per step: a backlog (pruning just turned on) goes in steps
POLL_S = 1.0


class Pruner:
    """Keeps the last `retain` blocks; drops older ones a few at a time."""

    def __init__(self, *, ledger: Ledger, retain: int) -> None:
        self._ledger = ledger
        self.retain = retain
        self._wake = trio.Event()

    def on_block(self, height: int, changed: frozenset[str]) -> None:
        """A block listener: there may be a block to drop now."""
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Prune until cancelled (nothing at all when `retain` is 0: an archive node)."""
        task_status.started()
        if not self.retain:
            return
        while True:
            ledger = self._ledger
            below = ledger.height - self.retain + 1
            if ledger.base_height < below:
                base = prune(ledger, below, max_blocks=STEP_BLOCKS)
                log.debug("pruned blocks below %d", base)
                await trio.sleep(0)
                continue
            with trio.move_on_after(POLL_S):
                await self._wake.wait()
            self._wake = trio.Event()
