"""LevelDB gives disk back: no scan left open pins table files past a compaction.

A LevelDB iterator holds the version of the database it started on, and with it
every table file of that version: a compaction that replaces those files cannot
delete them while the iterator lives (the files stay on disk, and the memtable
it read stays in memory). So every `LevelDBStore.iterate` scan must be released
on every path, the way callers use it: read to the end, left half-way in a
``with``, broken out of, never started, ended by an exception (issue 21; the
rule is in docs/storage-layout.md, "Iterators").

The check: after a compaction, the ``*.ldb`` files in the directory are exactly
those the current version lists (``leveldb.sstables``); anything else is an
obsolete file nobody deleted. The store is opened with a small write buffer so
that a few MiB of writes go through many flushes and compactions quickly.
"""

from __future__ import annotations

import re
from pathlib import Path

import plyvel
import pytest

from chain.store import WriteBatch
from ledgerdns.storage import LevelDBStore

WRITE_BUFFER = 64 * 1024  # LevelDB's smallest
KEYS = 2_000
VALUE = 200  # bytes: a round of writes is ~6x the write buffer


def _open(path: Path) -> LevelDBStore:
    db = plyvel.DB(
        str(path),
        create_if_missing=True,
        write_buffer_size=WRITE_BUFFER,
        max_file_size=WRITE_BUFFER,  # small tables: many files to replace
    )
    return LevelDBStore(db, str(path))


def tables_by_level(store: LevelDBStore) -> list[set[int]]:
    """The table files the current version lists (the MANIFEST's view), level by level."""
    text = store._open_db().get_property(b"leveldb.sstables")
    assert text is not None
    levels = re.split(rb"^--- level \d+ ---$", text, flags=re.M)[1:]
    return [{int(n) for n in re.findall(rb"^\s*(\d+):", level, flags=re.M)} for level in levels]


def live_tables(store: LevelDBStore) -> set[int]:
    """Numbers of the table files the current version lists."""
    return set().union(*tables_by_level(store))


def disk_tables(path: Path) -> set[int]:
    """Numbers of the table files in the directory."""
    return {int(p.stem) for p in path.iterdir() if p.suffix in (".ldb", ".sst")}


def obsolete_tables(store: LevelDBStore, path: Path) -> set[int]:
    """Table files on disk that the current version no longer references."""
    return disk_tables(path) - live_tables(store)


def _round(store: LevelDBStore, n: int) -> None:
    """Overwrite every key, delete a tenth of them: old tables become garbage."""
    batch = WriteBatch()
    for i in range(KEYS):
        key = b"k%06d" % i
        if (i + n) % 10 == 0:
            batch.delete(key)
        else:
            batch.put(key, bytes([n % 256]) * VALUE)
    store.write(batch, sync=False)


class _Boom(Exception):
    pass


def _abandon_scans(store: LevelDBStore) -> None:
    """Start scans and leave them the ways callers do."""
    with store.iterate(b"k") as pairs:  # left half-way in a ``with``
        next(pairs)
    with store.iterate(b"k", reverse=True) as pairs:  # broken out of
        for _ in pairs:
            break
    store.iterate(b"k", start=b"k001000").close()  # never started
    with pytest.raises(_Boom), store.iterate(b"k") as pairs:  # an exception mid-way
        next(pairs)
        raise _Boom
    assert len(list(store.iterate(b"k"))) > 0  # read to the end


def test_compaction_deletes_every_obsolete_table(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = _open(path)
    try:
        for n in range(6):
            _round(store, n)
            _abandon_scans(store)
        written = disk_tables(path)
        store.compact()
        levels = tables_by_level(store)
        assert sum(map(len, levels)) == 1, levels  # compacted to one table, not just flushed
        assert written - disk_tables(path), "the compaction replaced no table"
        assert obsolete_tables(store, path) == set()
        assert live_tables(store) <= disk_tables(path)
    finally:
        store.close()


def test_a_scan_left_open_pins_tables_until_closed(tmp_path: Path) -> None:
    """The guard works: an open scan leaves obsolete files, closing it lets them go."""
    path = tmp_path / "db"
    store = _open(path)
    try:
        _round(store, 0)
        store.compact()
        leak = store.iterate(b"k")
        next(leak)
        for n in range(1, 4):
            _round(store, n)
        store.compact()
        pinned = obsolete_tables(store, path)
        assert pinned, "an open iterator should keep the tables it reads"
        leak.close()
        _round(store, 4)
        store.compact()  # LevelDB deletes obsolete files after a compaction
        assert obsolete_tables(store, path) == set()
    finally:
        store.close()
