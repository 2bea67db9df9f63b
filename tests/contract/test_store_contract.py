"""The contract every `KVStore` back-end must pass, run against each back-end.

`StoreContract` holds the tests; a back-end joins by subclassing it and
implementing `open_store`. `TestLevelDBStore` adds what only a real database
has: persistence, the directory lock, bad paths and corruption.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import plyvel
import pytest

from chain.errors import StorageError
from chain.store import KVStore, MemoryStore, WriteBatch
from ledgerdns.storage import LevelDBStore

MIB = 1024 * 1024


def _write(store: KVStore, items: Mapping[bytes, bytes | None], *, sync: bool = True) -> None:
    batch = WriteBatch()
    for key, value in items.items():
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    store.write(batch, sync=sync)


def _keys(pairs: Iterator[tuple[bytes, bytes]]) -> list[bytes]:
    return [key for key, _ in pairs]


def _model_iterate(
    data: Mapping[bytes, bytes], prefix: bytes, start: bytes | None, reverse: bool
) -> list[bytes]:
    """The `KVStore.iterate` docstring, written as plainly as possible."""
    keys = sorted(k for k in data if k.startswith(prefix))
    if reverse:
        return [k for k in reversed(keys) if start is None or k <= start]
    return [k for k in keys if start is None or k >= start]


# Keys around prefix b"b": its neighbours on both sides must never leak in.
NEIGHBOURS = [
    b"a",
    b"a\xff",
    b"a\xff\xff",
    b"b",
    b"b\x00",
    b"b\x01",
    b"b\x01\x00",
    b"ba",
    b"b\x7f",
    b"b\x80",
    b"b\xff",
    b"b\xff\xff",
    b"c",
    b"c\x00",
]
assert NEIGHBOURS == sorted(NEIGHBOURS)
IN_B = [k for k in NEIGHBOURS if k.startswith(b"b")]


class StoreContract:
    """Tests every `KVStore` passes. Subclasses implement `open_store`."""

    def open_store(self, tmp_path: Path) -> KVStore:
        """A new, empty store."""
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[KVStore]:
        store = self.open_store(tmp_path)
        yield store
        store.close()

    @pytest.fixture
    def neighbours(self, store: KVStore) -> KVStore:
        _write(store, {key: b"v" + key for key in NEIGHBOURS})
        return store

    # -- get and write --

    def test_get_missing_is_none(self, store: KVStore) -> None:
        assert store.get(b"nothing") is None

    def test_put_then_get(self, store: KVStore) -> None:
        _write(store, {b"k": b"v"})
        assert store.get(b"k") == b"v"
        assert type(store.get(b"k")) is bytes

    def test_empty_value_is_not_missing(self, store: KVStore) -> None:
        _write(store, {b"k": b""})
        assert store.get(b"k") == b""

    def test_empty_key(self, store: KVStore) -> None:
        _write(store, {b"": b"root", b"\x00": b"zero"})
        assert store.get(b"") == b"root"
        assert list(store.iterate(b"")) == [(b"", b"root"), (b"\x00", b"zero")]

    def test_overwrite(self, store: KVStore) -> None:
        _write(store, {b"k": b"old"})
        _write(store, {b"k": b"new"})
        assert store.get(b"k") == b"new"

    def test_delete(self, store: KVStore) -> None:
        _write(store, {b"k": b"v", b"other": b"w"})
        _write(store, {b"k": None})
        assert store.get(b"k") is None
        assert store.get(b"other") == b"w"

    def test_delete_missing_key_is_harmless(self, store: KVStore) -> None:
        _write(store, {b"absent": None})
        assert store.get(b"absent") is None

    def test_empty_batch_changes_nothing(self, store: KVStore) -> None:
        _write(store, {b"k": b"v"})
        store.write(WriteBatch())
        assert list(store.iterate(b"")) == [(b"k", b"v")]

    def test_unsynced_write_is_visible(self, store: KVStore) -> None:
        _write(store, {b"k": b"v"}, sync=False)
        assert store.get(b"k") == b"v"

    # -- batches --

    def test_batch_is_invisible_until_written(self, store: KVStore) -> None:
        batch = WriteBatch()
        batch.put(b"a", b"1")
        batch.put(b"b", b"2")
        assert store.get(b"a") is None
        assert list(store.iterate(b"")) == []
        store.write(batch)
        assert list(store.iterate(b"")) == [(b"a", b"1"), (b"b", b"2")]

    def test_batch_mixes_puts_and_deletes(self, store: KVStore) -> None:
        _write(store, {b"a": b"1", b"b": b"2", b"c": b"3"})
        batch = WriteBatch()
        batch.delete(b"a")
        batch.put(b"b", b"22")
        batch.put(b"d", b"4")
        store.write(batch)
        assert list(store.iterate(b"")) == [(b"b", b"22"), (b"c", b"3"), (b"d", b"4")]

    @pytest.mark.parametrize(
        ("ops", "expected"),
        [
            ([("put", b"1"), ("put", b"2")], b"2"),
            ([("put", b"1"), ("delete", None)], None),
            ([("delete", None), ("put", b"1")], b"1"),
            ([("put", b"1"), ("delete", None), ("put", b"3")], b"3"),
        ],
    )
    def test_later_op_on_a_key_wins(
        self, store: KVStore, ops: list[tuple[str, bytes | None]], expected: bytes | None
    ) -> None:
        _write(store, {b"k": b"before"})
        batch = WriteBatch()
        for op, value in ops:
            if op == "put":
                assert value is not None
                batch.put(b"k", value)
            else:
                batch.delete(b"k")
        store.write(batch)
        assert store.get(b"k") == expected
        assert _keys(store.iterate(b"")) == ([] if expected is None else [b"k"])

    def test_writing_a_batch_twice_is_idempotent(self, store: KVStore) -> None:
        batch = WriteBatch()
        batch.put(b"a", b"1")
        batch.delete(b"b")
        store.write(batch)
        store.write(batch)
        assert list(store.iterate(b"")) == [(b"a", b"1")]

    # -- iteration: prefix, order, start --

    def test_prefix_forward(self, neighbours: KVStore) -> None:
        pairs = list(neighbours.iterate(b"b"))
        assert pairs == [(k, b"v" + k) for k in IN_B]

    def test_prefix_reverse(self, neighbours: KVStore) -> None:
        assert _keys(neighbours.iterate(b"b", reverse=True)) == IN_B[::-1]

    def test_prefix_with_no_keys(self, neighbours: KVStore) -> None:
        assert list(neighbours.iterate(b"bb")) == []
        assert list(neighbours.iterate(b"bb", reverse=True)) == []
        assert list(neighbours.iterate(b"z", start=b"z")) == []

    def test_prefix_longer_than_some_keys(self, neighbours: KVStore) -> None:
        assert _keys(neighbours.iterate(b"b\x01")) == [b"b\x01", b"b\x01\x00"]
        assert _keys(neighbours.iterate(b"b\x01", reverse=True)) == [b"b\x01\x00", b"b\x01"]

    @pytest.mark.parametrize(
        ("start", "expected"),
        [
            (b"b\x01", [b"b\x01", b"b\x01\x00", b"ba", b"b\x7f", b"b\x80", b"b\xff", b"b\xff\xff"]),
            (b"b\x02", [b"ba", b"b\x7f", b"b\x80", b"b\xff", b"b\xff\xff"]),
            (b"bz", [b"b\x7f", b"b\x80", b"b\xff", b"b\xff\xff"]),
            (b"b", IN_B),
            (b"a\xff", IN_B),  # before the prefix: everything
            (b"", IN_B),
            (b"b\xff\xff\xff", []),
            (b"c", []),  # after the prefix: nothing
            (b"\xff", []),
        ],
    )
    def test_start_forward_is_inclusive(
        self, neighbours: KVStore, start: bytes, expected: list[bytes]
    ) -> None:
        assert _keys(neighbours.iterate(b"b", start=start)) == expected

    @pytest.mark.parametrize(
        ("start", "expected"),
        [
            (b"b\x01", [b"b\x01", b"b\x00", b"b"]),  # b"b\x01\x00" > b"b\x01"
            (b"b\x01\x00", [b"b\x01\x00", b"b\x01", b"b\x00", b"b"]),
            (b"b\x02", [b"b\x01\x00", b"b\x01", b"b\x00", b"b"]),
            (b"b`", [b"b\x01\x00", b"b\x01", b"b\x00", b"b"]),
            (b"b", [b"b"]),
            (b"ba", [b"ba", b"b\x01\x00", b"b\x01", b"b\x00", b"b"]),
            (b"b\xff\xff\xff", IN_B[::-1]),
            (b"c", IN_B[::-1]),  # after the prefix: everything
            (b"\xff\xff", IN_B[::-1]),
            (b"a\xff\xff", []),  # before the prefix: nothing
            (b"", []),
        ],
    )
    def test_start_reverse_is_greatest_key_at_or_below(
        self, neighbours: KVStore, start: bytes, expected: list[bytes]
    ) -> None:
        assert _keys(neighbours.iterate(b"b", start=start, reverse=True)) == expected

    def test_reverse_over_a_prefix_holding_only_the_prefix_key(self, store: KVStore) -> None:
        # plyvel 1.5.1 yields nothing here when asked with `prefix=` or `start=`.
        _write(store, {b"a": b"1", b"b": b"2", b"c": b"3"})
        assert list(store.iterate(b"b", reverse=True)) == [(b"b", b"2")]
        assert list(store.iterate(b"b", start=b"b", reverse=True)) == [(b"b", b"2")]
        assert list(store.iterate(b"", start=b"a", reverse=True)) == [(b"a", b"1")]

    def test_prefixes_ending_in_ff(self, store: KVStore) -> None:
        keys = [
            b"a\xfe\xff",
            b"a\xff",
            b"a\xff\x00",
            b"a\xff\xff",
            b"a\xff\xff\x01",
            b"b",
            b"\xfe",
            b"\xfe\xff",
            b"\xff",
            b"\xff\x00",
            b"\xff\xff",
            b"\xff\xff\xff",
        ]
        _write(store, {key: key for key in keys})
        assert _keys(store.iterate(b"a\xff")) == [
            b"a\xff",
            b"a\xff\x00",
            b"a\xff\xff",
            b"a\xff\xff\x01",
        ]
        assert _keys(store.iterate(b"a\xff\xff", reverse=True)) == [b"a\xff\xff\x01", b"a\xff\xff"]
        assert _keys(store.iterate(b"\xff")) == [b"\xff", b"\xff\x00", b"\xff\xff", b"\xff\xff\xff"]
        assert _keys(store.iterate(b"\xff", reverse=True)) == [
            b"\xff\xff\xff",
            b"\xff\xff",
            b"\xff\x00",
            b"\xff",
        ]
        assert _keys(store.iterate(b"\xff\xff")) == [b"\xff\xff", b"\xff\xff\xff"]
        assert _keys(store.iterate(b"\xff", start=b"\xff\x01")) == [b"\xff\xff", b"\xff\xff\xff"]
        assert _keys(store.iterate(b"\xff", start=b"\xff\x01", reverse=True)) == [
            b"\xff\x00",
            b"\xff",
        ]
        assert _keys(store.iterate(b"\xff", start=b"\xfe\xff", reverse=True)) == []
        assert _keys(store.iterate(b"a\xff", start=b"b", reverse=True))[0] == b"a\xff\xff\x01"

    def test_empty_prefix_is_everything(self, neighbours: KVStore) -> None:
        assert _keys(neighbours.iterate(b"")) == sorted(NEIGHBOURS)
        assert _keys(neighbours.iterate(b"", reverse=True)) == sorted(NEIGHBOURS, reverse=True)
        assert _keys(neighbours.iterate(b"", start=b"b\xff")) == [
            b"b\xff",
            b"b\xff\xff",
            b"c",
            b"c\x00",
        ]
        assert _keys(neighbours.iterate(b"", start=b"a\xff\x00", reverse=True)) == [b"a\xff", b"a"]

    def test_binary_keys_sort_as_unsigned_bytes(self, store: KVStore) -> None:
        keys = [
            b"\x00",
            b"\x00\x00",
            b"\x00\xff",
            b"\x01",
            b"\x7f",
            b"\x80",
            b"\x80\x00",
            b"\xfe",
            b"\xff",
            b"\xff\x00",
            b"\xff\xff",
        ]
        _write(store, {key: key for key in reversed(keys)})
        assert _keys(store.iterate(b"")) == keys
        assert _keys(store.iterate(b"", reverse=True)) == keys[::-1]
        assert [store.get(key) for key in keys] == keys
        assert _keys(store.iterate(b"\x00")) == [b"\x00", b"\x00\x00", b"\x00\xff"]
        assert _keys(store.iterate(b"\x80", reverse=True)) == [b"\x80\x00", b"\x80"]

    def test_iteration_skips_deleted_keys(self, neighbours: KVStore) -> None:
        _write(neighbours, {b"b": None, b"b\x7f": None, b"ba": None})
        remaining = [k for k in IN_B if k not in (b"b", b"b\x7f", b"ba")]
        assert _keys(neighbours.iterate(b"b")) == remaining
        assert _keys(neighbours.iterate(b"b", reverse=True)) == remaining[::-1]
        backward = neighbours.iterate(b"b", start=b"b\x7f", reverse=True)
        assert _keys(backward) == [b"b\x01\x00", b"b\x01", b"b\x00"]

    def test_iterate_matches_model_exhaustively(self, store: KVStore) -> None:
        # Every key of length 0-3 over bytes that sit at the edges of the order;
        # two in three are stored, so `start` is sometimes absent.
        alphabet = [b"\x00", b"\x7f", b"\xff"]
        universe = [b"".join(p) for n in range(4) for p in itertools.product(alphabet, repeat=n)]
        data = {key: key + b"!" for i, key in enumerate(universe) if i % 3 != 1}
        _write(store, data)
        prefixes = [key for key in universe if len(key) <= 2]
        for prefix, start, reverse in itertools.product(prefixes, [None, *universe], [False, True]):
            expected = _model_iterate(data, prefix, start, reverse)
            got = list(store.iterate(prefix, start=start, reverse=reverse))
            assert got == [(k, data[k]) for k in expected], (prefix, start, reverse)

    # -- iteration is a snapshot --

    def test_iteration_is_a_snapshot(self, neighbours: KVStore) -> None:
        it = neighbours.iterate(b"b")
        first = next(it)
        _write(neighbours, {b"b\x02": b"new", b"b\xff": None, b"ba": b"changed", b"b\x00": None})
        assert [first, *it] == [(k, b"v" + k) for k in IN_B]
        assert neighbours.get(b"ba") == b"changed"

    def test_snapshot_is_taken_when_iterate_is_called(self, neighbours: KVStore) -> None:
        forward = neighbours.iterate(b"b")
        backward = neighbours.iterate(b"b", reverse=True)
        _write(neighbours, {b"b\x02": b"new", b"b": None, b"b\xff": b"changed"})
        assert list(forward) == [(k, b"v" + k) for k in IN_B]
        assert list(backward) == [(k, b"v" + k) for k in IN_B[::-1]]

    def test_abandoned_iterator_does_not_block_writes(self, neighbours: KVStore) -> None:
        it = neighbours.iterate(b"")
        next(it)
        _write(neighbours, {b"z": b"1"})
        del it
        assert neighbours.get(b"z") == b"1"

    # -- size --

    def test_large_value(self, store: KVStore) -> None:
        big = bytes(range(256)) * (4 * 1024)  # 1 MiB
        assert len(big) == MIB
        _write(store, {b"big": big, b"small": b"s"})
        assert store.get(b"big") == big
        assert list(store.iterate(b"b")) == [(b"big", big)]

    def test_many_keys_in_one_batch(self, store: KVStore) -> None:
        count = 10_000
        batch = WriteBatch()
        for i in reversed(range(count)):
            batch.put(b"n" + i.to_bytes(4, "big"), i.to_bytes(4, "little"))
        store.write(batch)
        pairs = list(store.iterate(b"n"))
        assert len(pairs) == count
        assert pairs[0] == (b"n" + bytes(4), bytes(4))
        assert [k for k, _ in pairs] == [b"n" + i.to_bytes(4, "big") for i in range(count)]
        assert all(int.from_bytes(v, "little") == i for i, (_, v) in enumerate(pairs))
        assert store.get(b"n" + (4321).to_bytes(4, "big")) == (4321).to_bytes(4, "little")
        start = b"n" + (9_990).to_bytes(4, "big")
        assert len(list(store.iterate(b"n", start=start))) == 10
        assert len(list(store.iterate(b"n", start=start, reverse=True))) == 9_991

    # -- close --

    def test_close_is_idempotent(self, store: KVStore) -> None:
        store.close()
        store.close()


class TestMemoryStore(StoreContract):
    def open_store(self, tmp_path: Path) -> KVStore:
        return MemoryStore()


class TestLevelDBStore(StoreContract):
    def open_store(self, tmp_path: Path) -> KVStore:
        return LevelDBStore.open(tmp_path / "db")

    # -- persistence --

    def test_data_survives_close_and_reopen(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        with LevelDBStore.open(path) as store:
            _write(store, {b"a": b"1", b"b": b"2"})
            _write(store, {b"c": b"3"}, sync=False)
            _write(store, {b"a": None})
        with LevelDBStore.open(path, create=False) as store:
            assert list(store.iterate(b"")) == [(b"b", b"2"), (b"c", b"3")]

    def test_creates_missing_parent_directories(self, tmp_path: Path) -> None:
        path = tmp_path / "x" / "y" / "db"
        with LevelDBStore.open(str(path)) as store:
            assert store.path == str(path)
        assert (path / "CURRENT").is_file()

    def test_context_manager_closes(self, tmp_path: Path) -> None:
        with LevelDBStore.open(tmp_path / "db") as store:
            assert not store.closed
        assert store.closed

    def test_failed_batch_applies_nothing(self, tmp_path: Path) -> None:
        class BrokenBatch(WriteBatch):
            def items(self) -> list[tuple[bytes, bytes | None]]:
                return [(b"a", b"1"), ("not bytes", b"2")]  # type: ignore[list-item]

        with LevelDBStore.open(tmp_path / "db") as store:
            with pytest.raises(TypeError):
                store.write(BrokenBatch())
            assert store.get(b"a") is None

    # -- errors an operator can act on --

    def test_second_open_of_same_directory_is_refused(self, tmp_path: Path) -> None:
        in_use = r"in use by another process \(LOCK held\)"
        with LevelDBStore.open(tmp_path / "db"), pytest.raises(StorageError, match=in_use) as info:
            LevelDBStore.open(tmp_path / "db")
        assert isinstance(info.value.__cause__, plyvel.IOError)
        LevelDBStore.open(tmp_path / "db").close()  # the lock went with the first store

    def test_open_from_another_process_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        code = (
            "import sys\n"
            "from chain.errors import StorageError\n"
            "from ledgerdns.storage import LevelDBStore\n"
            "try:\n"
            "    LevelDBStore.open(sys.argv[1])\n"
            "except StorageError as exc:\n"
            "    print(exc)\n"
        )
        with LevelDBStore.open(path):
            done = subprocess.run(
                [sys.executable, "-c", code, str(path)],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
                cwd=Path(__file__).resolve().parents[2],
            )
        assert "in use by another process (LOCK held)" in done.stdout, done.stdout + done.stderr

    def test_path_that_is_a_file_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        path.write_bytes(b"not a database")
        with pytest.raises(StorageError, match="not a directory"):
            LevelDBStore.open(path)

    def test_parent_that_is_a_file_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_bytes(b"")
        with pytest.raises(StorageError):
            LevelDBStore.open(tmp_path / "file" / "db")

    def test_missing_database_without_create_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(StorageError, match="no LevelDB database"):
            LevelDBStore.open(tmp_path / "db", create=False)
        assert not (tmp_path / "db").exists()

    def test_corruption_is_reported(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        with LevelDBStore.open(path) as store:
            _write(store, {b"a": b"1"})
        (path / "CURRENT").write_bytes(b"garbage")
        with pytest.raises(StorageError, match="corrupt") as info:
            LevelDBStore.open(path)
        assert isinstance(info.value.__cause__, plyvel.CorruptionError)

    def test_use_after_close_is_a_storage_error(self, tmp_path: Path) -> None:
        store = LevelDBStore.open(tmp_path / "db")
        store.close()
        with pytest.raises(StorageError, match="closed"):
            store.get(b"a")
        with pytest.raises(StorageError, match="closed"):
            store.iterate(b"")
        with pytest.raises(StorageError, match="closed"):
            store.write(WriteBatch())

    def test_close_during_iteration_is_a_storage_error(self, tmp_path: Path) -> None:
        store = LevelDBStore.open(tmp_path / "db")
        _write(store, {b"a": b"1", b"b": b"2"})
        it = store.iterate(b"")
        assert next(it) == (b"a", b"1")
        store.close()
        with pytest.raises(StorageError, match="closed during iteration"):
            next(it)


def test_leveldb_compact_keeps_data(tmp_path: Path) -> None:
    from chain.store import WriteBatch
    from ledgerdns.storage.leveldb import LevelDBStore

    store = LevelDBStore.open(tmp_path / "db")
    batch = WriteBatch()
    for i in range(1000):
        batch.put(i.to_bytes(4, "big"), b"v" * 100)
    store.write(batch)
    store.compact()
    assert store.get((999).to_bytes(4, "big")) == b"v" * 100
    store.close()
    with pytest.raises(StorageError):
        store.compact()
