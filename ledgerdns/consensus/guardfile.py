"""The signing guard on disk: written atomically and synced before any signature leaves.

`chain.consensus` emits `PersistGuard(data)` before each `Broadcast`; the
driver calls `GuardFile.store(data)` and only then sends. The write goes to a
temporary file that is fsynced and renamed over the old one, and the directory
is fsynced, so after a crash at any instant the file holds either the old or
the new guard — never a torn one — and the new one is durable before the
signature is sent.
"""

from __future__ import annotations

import os
from pathlib import Path

from chain.consensus_messages import SignGuard
from chain.errors import ConfigError, InvalidUpdate, StorageError


class GuardFile:
    """The validator's `SignGuard` in one file of the data directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> SignGuard:
        """The stored guard, or a fresh one if the file does not exist yet.

        Raises:
            ConfigError: the file exists but is unreadable or corrupt (never start
                signing from a blank guard when one was there).
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return SignGuard()
        except OSError as exc:
            raise ConfigError(f"cannot read the signing guard {self.path}: {exc}") from None
        try:
            return SignGuard.from_bytes(data)
        except InvalidUpdate as exc:
            raise ConfigError(
                f"the signing guard {self.path} is corrupt ({exc}); refusing to sign. Restore it "
                "from a backup; delete it only if this key has never signed on this network"
            ) from None

    def store(self, data: bytes) -> None:
        """Durably replace the guard with `data`.

        Raises:
            StorageError: the write or sync failed (the caller must not send).
        """
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StorageError(f"cannot write the signing guard {self.path}: {exc}") from exc
