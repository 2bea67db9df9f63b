"""The storage interface the ledger core talks to, and an in-memory store.

A back-end is an ordered byte-key/byte-value map with atomic batches. The
core never opens a database: it reads through `KVStore` and puts its writes
into a `WriteBatch` the caller created, so the caller decides what is atomic
(one batch per finalized block). `MemoryStore` is the reference back-end;
`ledgerdns.storage.leveldb.LevelDBStore` is the real one; both pass
`tests/contract/test_store_contract.py`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Protocol


class WriteBatch:
    """Puts and deletes to apply together. Later operations on a key win."""

    __slots__ = ("_ops",)

    def __init__(self) -> None:
        self._ops: dict[bytes, bytes | None] = {}

    def put(self, key: bytes, value: bytes) -> None:
        """Set `key` to `value`."""
        self._ops[bytes(key)] = bytes(value)

    def delete(self, key: bytes) -> None:
        """Remove `key`."""
        self._ops[bytes(key)] = None

    def pending(self, key: bytes) -> tuple[bool, bytes | None]:
        """``(True, value_or_None)`` if this batch writes `key`, else ``(False, None)``."""
        if key in self._ops:
            return True, self._ops[key]
        return False, None

    def items(self) -> list[tuple[bytes, bytes | None]]:
        """The operations, ``None`` meaning delete."""
        return list(self._ops.items())

    def __len__(self) -> int:
        return len(self._ops)


class Scan(Protocol):
    """What `KVStore.iterate` returns: an iterator of ``(key, value)`` pairs that holds
    store resources until it is exhausted or closed.

    A LevelDB scan pins table files and memory while open, so a caller that may
    stop before the end closes it, on every path: ``with store.iterate(p) as pairs:``.
    """

    def __iter__(self) -> Scan: ...

    def __next__(self) -> tuple[bytes, bytes]: ...

    def close(self) -> None:
        """Release what the scan holds. Closing twice, or after the end, is harmless."""

    def __enter__(self) -> Scan: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ListScan:
    """A `Scan` over pairs already read (holds nothing but them)."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        self._pairs: Iterator[tuple[bytes, bytes]] = iter(pairs)

    def __iter__(self) -> ListScan:
        return self

    def __next__(self) -> tuple[bytes, bytes]:
        return next(self._pairs)

    def close(self) -> None:
        """Drop the pairs not read."""
        self._pairs = iter(())

    def __enter__(self) -> ListScan:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class KVStore(Protocol):
    """What every storage back-end provides."""

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""

    def iterate(self, prefix: bytes, *, start: bytes | None = None, reverse: bool = False) -> Scan:
        """Pairs whose key starts with `prefix`, in key order (or reversed).

        `start`, if given, is a full key: iteration begins there (inclusive) going
        forward, or at the greatest key <= `start` going backward. The pairs are
        those stored when `iterate` is called. Close the scan (``with``) unless it
        is read to the end.
        """

    def write(self, batch: WriteBatch, *, sync: bool = True) -> None:
        """Apply every operation of `batch` atomically; durably when `sync`."""

    def close(self) -> None:
        """Release the back-end."""


class MemoryStore:
    """A dict-backed `KVStore` for tests and the simulator."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] | None = None
        self.writes = 0

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def _sorted(self) -> list[bytes]:
        if self._keys is None:
            self._keys = sorted(self._data)
        return self._keys

    def iterate(self, prefix: bytes, *, start: bytes | None = None, reverse: bool = False) -> Scan:
        keys = self._sorted()
        if not reverse:
            lo = start if start is not None and start > prefix else prefix
            selected = []
            for key in keys[bisect_left(keys, lo) :]:
                if not key.startswith(prefix):
                    break
                selected.append(key)
        else:
            end = _prefix_end(prefix)
            hi = bisect_left(keys, end) if end is not None else len(keys)
            if start is not None:
                hi = min(hi, bisect_left(keys, start + b"\x00"))
            selected = []
            for key in reversed(keys[:hi]):
                if not key.startswith(prefix):
                    break
                selected.append(key)
        # Snapshot the values now, like a LevelDB iterator over a snapshot.
        return ListScan([(k, self._data[k]) for k in selected])

    def write(self, batch: WriteBatch, *, sync: bool = True) -> None:
        for key, value in batch.items():
            if value is None:
                self._data.pop(key, None)
            else:
                self._data[key] = value
        if len(batch):
            self._keys = None
        self.writes += 1

    def close(self) -> None:
        pass


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
