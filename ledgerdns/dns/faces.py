"""What the DNS server expects of its optional faces (each implemented in its own module)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from chain.tx import Transaction


class BlockFeed(Protocol):
    """Tells the server when a block is stored, so caches and workers follow the chain."""

    def on_block_applied(self, callback: Callable[[int, frozenset[str]], None]) -> None:
        """Call ``callback(height, changed_domains)`` after each block is stored."""


class Writer(Protocol):
    """What an UPDATE needs besides reading the zone: submit, and wait for finality."""

    def pending_for(self, domain: str) -> Sequence[Transaction]:
        """The domain's transactions waiting in the mempool, oldest first."""

    async def submit(self, tx: Transaction) -> None:
        """Admit `tx` and gossip it (raises `InvalidUpdate` with the reason)."""

    async def wait_finalized(self, txid: bytes, timeout_s: float) -> tuple[int, int] | None:
        """``(height, index)`` once `txid` is final; None on timeout."""


class Forwarder(Protocol):
    """Answers names outside the ledger from upstream resolvers (`ledgerdns.dns.forward`)."""

    async def answer(self, query: bytes, *, limit: int) -> bytes | None: ...


class Updater(Protocol):
    """Turns RFC 2136 UPDATE messages into ledger transactions (`ledgerdns.dns.update`)."""

    async def answer(self, message: bytes, peer: tuple[str, int]) -> bytes | None: ...


class Transfers(Protocol):
    """Answers AXFR and IXFR (`ledgerdns.dns.xfr`)."""

    def answer(self, message: bytes, peer: tuple[str, int], *, tcp: bool) -> list[bytes] | None: ...


class Notifier(Protocol):
    """Sends NOTIFY to secondaries when zones change (`ledgerdns.dns.notify`)."""

    def block_applied(self, height: int, changed: frozenset[str]) -> None: ...

    async def run(self, *, task_status: Any = ...) -> None: ...
