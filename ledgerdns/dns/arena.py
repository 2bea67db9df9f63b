"""A bytes -> bytes map packed in one bytearray, for a million entries in little memory.

A dict of a million short bytes keys and values costs about 130 bytes per
entry beyond the data (two object headers and the dict's slot). Here an entry
costs its data plus 3 bytes of lengths and a 4-byte offset in an open-addressing
index (linear probing over Python's own `hash`, which never leaves the process):
what lets a UDP worker hold every registered name (issue 17, 1,000,000 names in
at most twice Knot's memory).

Records are appended; a replaced or removed one becomes garbage, and the arena
is rewritten without it when garbage passes a quarter of the live bytes. Each
rewrite (and each growth of the index) builds new objects and swaps them in as
one tuple, so a reader in another thread always sees one consistent state:
one writer thread, any number of readers.

Stdlib only: it runs inside the UDP worker.
"""

from __future__ import annotations

from array import array

_EMPTY = 0  # offsets 0 and 1 are never records (the arena starts with two pad bytes)
_DELETED = 1
_MIN_SLOTS = 1024
_COMPACT_FLOOR = 1 << 20  # garbage below 1 MiB is never worth a rewrite


def _slots(count: int) -> int:
    """An index size (a power of two) that keeps `count` entries at most half full."""
    size = _MIN_SLOTS
    while size < 2 * count:
        size *= 2
    return size


class Arena:
    """The map. Keys are at most 255 bytes, values at most 65,535."""

    def __init__(self) -> None:
        self._state = (bytearray(2), array("I", bytes(4 * _MIN_SLOTS)), _MIN_SLOTS - 1)
        self._live = 0  # entries
        self._used = 0  # index slots not empty (entries and deletion marks)
        self._garbage = 0  # bytes of records no longer in the index

    def __len__(self) -> int:
        return self._live

    @property
    def nbytes(self) -> int:
        """The memory the arena and its index hold."""
        data, index, _ = self._state
        return len(data) + index.itemsize * len(index)

    def get(self, key: bytes) -> bytearray | None:
        """The value of `key` (a copy), or None."""
        data, index, mask = self._state
        n = len(key)
        i = hash(key) & mask
        while True:
            at = index[i]
            if at == _EMPTY:
                return None
            if at != _DELETED and data[at] == n and data[at + 1 : at + 1 + n] == key:
                at += 1 + n
                return data[at + 2 : at + 2 + (data[at] << 8 | data[at + 1])]
            i = (i + 1) & mask

    def __setitem__(self, key: bytes, value: bytes) -> None:
        data, index, mask = self._state
        slot, at = self._find(key)
        if at:
            self._garbage += _record_size(data, at)
        else:
            self._live += 1
            if index[slot] == _EMPTY:
                self._used += 1
        new = len(data)
        data += bytes((len(key),)) + key + len(value).to_bytes(2, "big") + value
        index[slot] = new
        if 3 * self._used > 2 * (mask + 1):
            self._rebuild(compact=False)
        elif self._garbage > max(_COMPACT_FLOOR, (len(data) - self._garbage) // 4):
            self._rebuild(compact=True)

    def pop(self, key: bytes, default: None = None) -> None:
        """Remove `key` if present."""
        data, index, _ = self._state
        slot, at = self._find(key)
        if at:
            index[slot] = _DELETED
            self._live -= 1
            self._garbage += _record_size(data, at)

    def clear(self) -> None:
        """Remove every entry."""
        self._state = (bytearray(2), array("I", bytes(4 * _MIN_SLOTS)), _MIN_SLOTS - 1)
        self._live = self._used = self._garbage = 0

    def _find(self, key: bytes) -> tuple[int, int]:
        """``(slot, offset)`` of `key`; when absent, offset 0 and the slot to put it in."""
        data, index, mask = self._state
        n = len(key)
        i = hash(key) & mask
        free = -1
        while True:
            at = index[i]
            if at == _EMPTY:
                return (free if free >= 0 else i), 0
            if at == _DELETED:
                if free < 0:
                    free = i
            elif data[at] == n and data[at + 1 : at + 1 + n] == key:
                return i, at
            i = (i + 1) & mask

    def _rebuild(self, *, compact: bool) -> None:
        """A new index sized for the live entries (and, compacting, a new arena without garbage)."""
        data, index, _ = self._state
        size = _slots(self._live)
        new_index = array("I", bytes(4 * size))
        mask = size - 1
        new_data = bytearray(2) if compact else data
        for old in index:
            if old <= _DELETED:
                continue
            n = data[old]
            key = bytes(data[old + 1 : old + 1 + n])
            at = old
            if compact:
                at = len(new_data)
                new_data += data[old : old + _record_size(data, old)]
            i = hash(key) & mask
            while new_index[i]:
                i = (i + 1) & mask
            new_index[i] = at
        self._state = (new_data, new_index, mask)
        self._used = self._live
        if compact:
            self._garbage = 0


def _record_size(data: bytearray, at: int) -> int:
    n = data[at]
    value = at + 1 + n
    return 1 + n + 2 + (data[value] << 8 | data[value + 1])
