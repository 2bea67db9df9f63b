"""The LevelDB back-end of `chain.store.KVStore`, over plyvel.

One `LevelDBStore` owns one LevelDB directory. LevelDB allows a single
process to hold a directory (it takes `LOCK` with fcntl), so a second node
pointed at the same data directory fails at open with a `StorageError` that
says so. Every plyvel failure leaves this module as a `StorageError` whose
message tells the operator what to do next.
"""

from __future__ import annotations

import logging
import os
from types import TracebackType
from typing import Any, Self

import plyvel

from chain.errors import StorageError
from chain.store import ListScan, Scan, WriteBatch

log = logging.getLogger(__name__)

# LevelDB's own memory, all bounded here (docs/storage-layout.md, "Memory"; issue 21).
# Block cache: uncompressed data blocks read, LRU, 8 MiB. Its entries are keyed by table
# file, so the blocks of tables that compaction has deleted stay until pushed out: under
# updates only it filled by ~540 B per update (64 MiB at 32 MiB/h of RSS growth at
# 50 tx/s, tools/soak_heap.py), and plateaued once full. The hot reads (state-tree nodes
# below the cached levels, domain states the ledger's cache lacks) fit in 8 MiB; the
# OS page cache still holds the files.
_LRU_CACHE_BYTES = 8 * 1024 * 1024
# Memtable: 8 MiB, and a second one while the full one is written out. It was 32 MiB
# (fewer level-0 files), which made RSS a 32 MiB sawtooth that hid any real trend.
_WRITE_BUFFER_BYTES = 8 * 1024 * 1024
# Table cache: each open table file keeps its index and bloom filter in memory (~25 KiB per
# 2 MiB table) and one descriptor; LevelDB's default of 1,000 would be 1,000 fds and ~25 MiB.
_MAX_OPEN_FILES = 256
_BLOOM_FILTER_BITS = 10


class LevelDBStore:
    """A `KVStore` kept in a LevelDB directory.

    Build it with `LevelDBStore.open`; close it with `close` or a ``with``
    block. Iterators read from a snapshot taken when `iterate` is called.
    """

    def __init__(self, db: Any, path: str) -> None:
        """Wrap an open plyvel database. Use `LevelDBStore.open` instead."""
        self._db: Any = db
        self._path = path

    # -- lifecycle --

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True) -> LevelDBStore:
        """Open the LevelDB database in directory `path`.

        Args:
            path: The database directory.
            create: Create the directory (and missing parents) and an empty
                database if none exists; otherwise a missing database is an error.

        Returns:
            The open store.

        Raises:
            StorageError: The directory is in use by another process, is not a
                directory, holds a corrupt database, or cannot be created.
        """
        where = os.path.abspath(os.fspath(path))
        if os.path.exists(where) and not os.path.isdir(where):
            raise StorageError(
                f"cannot open LevelDB at {where}: it is a file, not a directory; "
                "point the data directory at a directory (or a path that does not exist yet)"
            )
        if not create and not os.path.isfile(os.path.join(where, "CURRENT")):
            # Checked here because LevelDB would create the directory (and a
            # LOCK and LOG file in it) before noticing the database is missing.
            raise StorageError(
                f"cannot open: no LevelDB database at {where}; "
                "check the data directory or initialise it first"
            )
        if create:
            try:
                os.makedirs(os.path.dirname(where), exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot create the parent directory of {where}: {exc}; "
                    "check the path and its permissions"
                ) from exc
        try:
            db = plyvel.DB(
                where,
                create_if_missing=create,
                paranoid_checks=True,
                lru_cache_size=_LRU_CACHE_BYTES,
                bloom_filter_bits=_BLOOM_FILTER_BITS,
                write_buffer_size=_WRITE_BUFFER_BYTES,
                max_open_files=_MAX_OPEN_FILES,
            )
        except plyvel.Error as exc:
            raise _storage_error("open", where, exc) from exc
        log.info("opened leveldb path=%s", where)
        return cls(db, where)

    def close(self) -> None:
        """Close the database. Closing twice is harmless."""
        db, self._db = self._db, None
        if db is None:
            return
        try:
            db.close()
        except plyvel.Error as exc:
            raise _storage_error("close", self._path, exc) from exc
        log.info("closed leveldb path=%s", self._path)

    def memory_usage(self) -> int:
        """LevelDB's own estimate of its memory in bytes: memtables and block cache.

        Raises:
            StorageError: the property cannot be read.
        """
        db = self._open_db()
        try:
            raw = db.get_property(b"leveldb.approximate-memory-usage")
        except plyvel.Error as exc:
            raise _storage_error("read the memory usage of", self._path, exc) from exc
        return int(raw or 0)

    def flush(self) -> None:
        """Write the memtable out to a table file now (the write buffer starts empty again).

        Raises:
            StorageError: the flush failed.
        """
        db = self._open_db()
        try:
            db.compact_range()  # an empty range: plyvel flushes the memtable only (see `compact`)
        except plyvel.Error as exc:
            raise _storage_error("flush", self._path, exc) from exc

    def compact(self) -> None:
        """Compact the whole database now (LevelDB otherwise does it in the background).

        Raises:
            StorageError: the compaction failed.
        """
        db = self._open_db()
        try:
            # plyvel 1.5.1 passes an empty key, not "no bound", for a missing
            # start or stop, so ``compact_range()`` covers no key at all and only
            # flushes the memtable: the range is given, up to the last key.
            with db.iterator(reverse=True, include_value=False) as it:
                last: bytes | None = next(it, None)
            # No live key: the tables may still hold deletions; this stop is above
            # every key the ledger writes (keys.py prefixes are ASCII letters).
            db.compact_range(start=b"", stop=last if last is not None else b"\xff" * 64)
        except plyvel.Error as exc:
            raise _storage_error("compact", self._path, exc) from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def path(self) -> str:
        """The absolute path of the database directory."""
        return self._path

    @property
    def closed(self) -> bool:
        """Whether `close` has been called."""
        return self._db is None

    # -- KVStore --

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None.

        Raises:
            StorageError: The store is closed or LevelDB failed.
        """
        db = self._open_db()
        try:
            value: bytes | None = db.get(key)
        except plyvel.Error as exc:
            raise _storage_error("read", self._path, exc) from exc
        return value

    def iterate(self, prefix: bytes, *, start: bytes | None = None, reverse: bool = False) -> Scan:
        """Pairs whose key starts with `prefix`, in key order (or reversed).

        `start`, if given, is a full key: iteration begins there (inclusive)
        going forward, or at the greatest key <= `start` going backward. The
        pairs come from a snapshot taken now, so later writes never show up.

        The scan holds a LevelDB iterator, which pins the table files (and the
        memtable) it reads from until it is released: it is released when the
        last pair has been read, on an error, or by `close` (``with
        store.iterate(...) as pairs:``). A caller that may stop early must
        close it (docs/storage-layout.md, "Iterators").

        Raises:
            StorageError: The store is closed or LevelDB failed (also raised
                while iterating, e.g. if the store is closed meanwhile).
        """
        db = self._open_db()
        bounds = _key_range(prefix, start, reverse)
        if bounds is None:
            return ListScan(())
        lo, hi = bounds
        try:
            snapshot = db.snapshot()
        except plyvel.Error as exc:
            raise _storage_error("read", self._path, exc) from exc
        try:
            if reverse:
                # plyvel 1.5.1 drops the first key of a reverse iteration when
                # it equals the iterator's `start` (also with `prefix=`), so the
                # lower bound is checked here instead; see `_LevelDBScan`.
                it = snapshot.iterator(stop=hi, reverse=True)
            else:
                it = snapshot.iterator(start=lo, stop=hi)
        except plyvel.Error as exc:
            snapshot.release()
            raise _storage_error("read", self._path, exc) from exc
        return _LevelDBScan(self._path, snapshot, it, floor=lo if reverse else None)

    def write(self, batch: WriteBatch, *, sync: bool = True) -> None:
        """Apply every operation of `batch` in one LevelDB write batch.

        Args:
            batch: The puts and deletes; all or none of them are applied.
            sync: fsync the log before returning, so the batch survives a crash
                of the machine, not just of the process.

        Raises:
            StorageError: The store is closed or LevelDB failed (nothing applied).
        """
        db = self._open_db()
        try:
            # transaction=True: if anything raises inside the block, plyvel
            # drops the batch instead of writing half of it.
            with db.write_batch(transaction=True, sync=sync) as wb:
                for key, value in batch.items():
                    if value is None:
                        wb.delete(key)
                    else:
                        wb.put(key, value)
        except plyvel.Error as exc:
            raise _storage_error("write", self._path, exc) from exc

    # -- internals --

    def _open_db(self) -> Any:
        if self._db is None:
            raise StorageError(f"LevelDB store at {self._path} is closed; this is a bug in the caller")
        return self._db


class _LevelDBScan:
    """A `Scan` over a plyvel iterator on a snapshot; releases both when done or closed."""

    __slots__ = ("_floor", "_it", "_path", "_snapshot")

    def __init__(self, path: str, snapshot: Any, it: Any, *, floor: bytes | None) -> None:
        self._path = path
        self._snapshot: Any = snapshot
        self._it: Any = it
        self._floor = floor  # going backward: stop below this key

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> tuple[bytes, bytes]:
        it = self._it
        if it is None:
            raise StopIteration
        try:
            pair: tuple[bytes, bytes] = next(it)
        except StopIteration:
            self.close()
            raise
        except plyvel.Error as exc:
            self.close()
            raise _storage_error("read", self._path, exc) from exc
        except RuntimeError as exc:  # plyvel: "Database or iterator is closed"
            self.close()
            raise StorageError(
                f"LevelDB store at {self._path} was closed during iteration; "
                "this is a bug in the caller"
            ) from exc
        if self._floor is not None and pair[0] < self._floor:
            self.close()
            raise StopIteration
        return pair

    def close(self) -> None:
        """Release the iterator and the snapshot now. Closing twice is harmless."""
        it, self._it = self._it, None
        if it is None:
            return
        it.close()
        self._snapshot.release()
        self._snapshot = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _key_range(prefix: bytes, start: bytes | None, reverse: bool) -> tuple[bytes, bytes | None] | None:
    """The half-open key range ``[lo, hi)`` an `iterate` call covers; None if empty.

    plyvel cannot combine its ``prefix`` argument with ``start``, so the prefix
    becomes ``[prefix, _prefix_end(prefix))`` (``hi`` None: no upper bound), then
    `start` narrows it. Going backward, "keys <= start" is "keys < start + 0x00".
    """
    lo, hi = prefix, _prefix_end(prefix)
    if start is not None:
        if not reverse:
            lo = max(lo, start)
        elif hi is None or start + b"\x00" < hi:
            hi = start + b"\x00"
    if hi is not None and lo >= hi:
        return None
    return lo, hi


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _storage_error(action: str, path: str, exc: BaseException) -> StorageError:
    """A `StorageError` that says what failed and what the operator should do."""
    detail = _detail(exc)
    if isinstance(exc, plyvel.CorruptionError):
        advice = (
            f"the LevelDB data at {path} is corrupt; stop the node, move the directory "
            "aside (keep it for diagnosis) and resync from peers or restore a backup"
        )
    elif isinstance(exc, plyvel.IOError) and detail.startswith("IO error: lock "):
        advice = (
            f"the data directory {path} is in use by another process (LOCK held); "
            "stop the other ledgerdns node or give this one a different data directory"
        )
    elif isinstance(exc, plyvel.IOError):
        advice = f"I/O error on LevelDB data at {path}; check the disk, free space and permissions"
    elif "does not exist (create_if_missing is false)" in detail:
        advice = f"no LevelDB database at {path}; check the data directory or initialise it first"
    else:
        advice = f"LevelDB failed at {path}"
    return StorageError(f"cannot {action}: {advice} ({detail})")


def _detail(exc: BaseException) -> str:
    """plyvel puts LevelDB's status text in ``args[0]`` as bytes."""
    arg = exc.args[0] if exc.args else str(exc)
    if isinstance(arg, bytes):
        return arg.decode("utf-8", "replace")
    return str(arg)
