"""The wall clock: the one module in ``ledgerdns/`` that reads it.

Everything that dates something (a proposed block's time and the check that a
block is not from the future, mempool admission and expiry, transaction
deadlines, TSIG times, `Resent` nonces, gossip sequence numbers, proof
freshness, a new genesis) gets the time from a `Clock` it was handed. The
composition root (`ledgerdns.node.node`) and the command-line entry points
build the real one (`SYSTEM_CLOCK`); tests hand in a `ManualClock`.

"Reading the clock" means asking the OS for the wall-clock time:
``time.time()``, ``time.time_ns()``, ``datetime.now()``/``utcnow()``/``today()``,
``date.today()``, or ``time.localtime()``/``gmtime()``/``ctime()``/``strftime(fmt)``
without a time argument. Only this module does it (tests/unit/test_clock.py checks every
module). Not reading it, and fine anywhere:

- trio's clock (``trio.current_time``, ``trio.sleep``, ``move_on_after``) for
  node timeouts and durations, so tests can use ``autojump_clock``;
- ``time.monotonic()``/``perf_counter()`` used only to measure durations
  (rate limits, TTL ageing);
- formatting a given timestamp (``datetime.fromtimestamp(t)``).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock unix time, at the resolution a caller needs."""

    def now_ns(self) -> int:
        """Unix nanoseconds."""

    def now_ms(self) -> int:
        """Unix milliseconds."""

    def now_s(self) -> int:
        """Unix seconds."""


class SystemClock:
    """The real wall clock (`time.time_ns`)."""

    def now_ns(self) -> int:
        return time.time_ns()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def now_s(self) -> int:
        return time.time_ns() // 1_000_000_000


SYSTEM_CLOCK: Clock = SystemClock()


class ManualClock:
    """A clock that reads what it is set to (for tests and simulations)."""

    def __init__(self, now_ms: int = 0) -> None:
        self.ns = now_ms * 1_000_000

    def set_ms(self, now_ms: int) -> None:
        """Read `now_ms` from now on."""
        self.ns = now_ms * 1_000_000

    def advance_ms(self, ms: int) -> None:
        """Move forward by `ms` milliseconds."""
        self.ns += ms * 1_000_000

    def now_ns(self) -> int:
        return self.ns

    def now_ms(self) -> int:
        return self.ns // 1_000_000

    def now_s(self) -> int:
        return self.ns // 1_000_000_000
