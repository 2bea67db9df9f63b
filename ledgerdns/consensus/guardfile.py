"""The signing guard on disk: durable before any signature leaves, one fdatasync per write.

`chain.consensus` emits `PersistGuard(data)` before each `Broadcast`; the
driver calls `GuardFile.store(data)` and only then sends. The file has two
fixed slots; each write goes to the slot not holding the newest guard, with a
counter and a SHA-256 checksum, and is flushed with `fdatasync`. A crash at any
instant therefore leaves either the old guard (the new write is torn or
missing: its checksum fails) or the new one, and never needs a rename or a
directory sync: one sync per signature keeps the vote path short.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

from chain.consensus_messages import SignGuard
from chain.errors import ConfigError, InvalidUpdate, RejectReason, StorageError

SLOT = 512
_HEAD = struct.Struct(">QH")  # counter, data length
_SUM = 32
MAX_DATA = SLOT - _HEAD.size - _SUM


def _pack(counter: int, data: bytes) -> bytes:
    head = _HEAD.pack(counter, len(data))
    body = (head + data).ljust(SLOT - _SUM, b"\0")
    return body + hashlib.sha256(body).digest()


def _unpack(slot: bytes) -> tuple[int, bytes] | None:
    if len(slot) != SLOT or hashlib.sha256(slot[:-_SUM]).digest() != slot[-_SUM:]:
        return None
    counter, size = _HEAD.unpack_from(slot)
    if size > MAX_DATA:
        return None
    return counter, slot[_HEAD.size : _HEAD.size + size]


class GuardFile:
    """The validator's `SignGuard` in one file of the data directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._counter = 0

    def load(self) -> SignGuard:
        """The stored guard, or a fresh one if the file does not exist yet.

        Raises:
            ConfigError: the file exists but is unreadable or corrupt (never start
                signing from a blank guard when one was there).
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return SignGuard()
        except OSError as exc:
            raise ConfigError(f"cannot read the signing guard {self.path}: {exc}") from None
        slots = [_unpack(raw[i : i + SLOT]) for i in (0, SLOT)] if len(raw) == 2 * SLOT else []
        valid = [s for s in slots if s is not None]
        try:
            if not valid:
                raise InvalidUpdate(RejectReason.MALFORMED, "no intact slot")
            self._counter, data = max(valid)
            return SignGuard.from_bytes(data)
        except InvalidUpdate as exc:
            raise ConfigError(
                f"the signing guard {self.path} is corrupt ({exc}); refusing to sign. Restore it "
                "from a backup; delete it only if this key has never signed on this network"
            ) from None

    def store(self, data: bytes) -> None:
        """Durably record `data` as the newest guard.

        Raises:
            StorageError: the write or sync failed (the caller must not send).
        """
        if len(data) > MAX_DATA:
            raise StorageError(f"signing guard of {len(data)} bytes does not fit a slot")
        try:
            fd = self._open()
            self._counter += 1
            os.pwrite(fd, _pack(self._counter, data), (self._counter % 2) * SLOT)
            os.fdatasync(fd)
        except OSError as exc:
            raise StorageError(f"cannot write the signing guard {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the file (it is reopened by the next `store`)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        if not self.path.exists():
            self.load()  # nothing to read; keeps the counter at 0
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.pwrite(fd, b"\0" * (2 * SLOT), 0)
            os.fsync(fd)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        else:
            self.load()  # the counter continues from the newest slot
            fd = os.open(self.path, os.O_RDWR)
        self._fd = fd
        return fd
