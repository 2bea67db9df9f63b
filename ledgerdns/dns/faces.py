"""What the DNS server expects of its optional faces (each implemented in its own module)."""

from __future__ import annotations

from typing import Any, Protocol


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
