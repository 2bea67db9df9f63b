"""TSIG replay memory: per key, the latest signing time accepted and the MACs accepted at it.

RFC 8945 5.2.3 lets a server refuse (BADTIME) a request signed before the
last one it accepted with the same key. The updater asks `SigningTimes.admit`
before it acts on a verified UPDATE: a request signed earlier than the latest
accepted time, or the very same request again (same second, same MAC), is a
replay. Two different requests signed in the same second (``nsupdate`` signs
with whole seconds, and sends several in a row) are both admitted; at most
`MAX_MACS_PER_SECOND` per key and second, so the memory stays bounded.

The memory is a small JSON file in the node's data directory, replaced
atomically (temp file, fsync, rename, directory fsync) off the trio loop
*before* `admit` returns: a crash after the update was carried out can never
let the captured request through again. Without a path (tests, tools) it
lives in memory only.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from chain.errors import ConfigError, StorageError

log = logging.getLogger(__name__)

MAX_MACS_PER_SECOND = 64
_VERSION = 1


@dataclass(frozen=True, slots=True)
class _Latest:
    time_signed: int
    macs: frozenset[bytes]


class SigningTimes:
    """The latest accepted signing time (and its MACs) per TSIG key, kept in `path` if given.

    Args:
        path: the file (created on the first admitted request); None keeps it in memory.

    Raises:
        ConfigError: the file exists but cannot be read or is not one this class wrote
            (never start from a blank memory when one was there: replays would pass).
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._latest = _load(path) if path is not None else {}
        self._lock = trio.Lock()

    async def admit(self, key: str, time_signed: int, mac: bytes) -> bool:
        """Record a verified request of `key`, durably; False if it is a replay (record nothing).

        Args:
            key: the key name as configured (``"update."``).
            time_signed: the request's TSIG time signed, unix seconds.
            mac: the request's MAC.

        Raises:
            StorageError: the file could not be written (the request must not be carried out).
        """
        async with self._lock:  # one write at a time: the file always holds the newest memory
            latest = self._latest.get(key)
            if latest is not None and time_signed < latest.time_signed:
                return False
            if latest is not None and time_signed == latest.time_signed:
                if mac in latest.macs:
                    return False
                if len(latest.macs) >= MAX_MACS_PER_SECOND:
                    log.warning("tsig refused key=%s reason=too-many-in-one-second", key)
                    return False
                entry = _Latest(time_signed, latest.macs | {mac})
            else:
                entry = _Latest(time_signed, frozenset({mac}))
            updated = {**self._latest, key: entry}
            if self.path is not None:
                await trio.to_thread.run_sync(_store, self.path, updated)
            self._latest = updated
            return True


def _to_json(latest: dict[str, _Latest]) -> bytes:
    keys = {
        name: {
            "time": entry.time_signed,
            "macs": sorted(base64.b64encode(m).decode() for m in entry.macs),
        }
        for name, entry in sorted(latest.items())
    }
    return json.dumps({"version": _VERSION, "keys": keys}, indent=1).encode() + b"\n"


def _entry(value: Any) -> _Latest:
    if not isinstance(value, dict) or set(value) != {"time", "macs"}:
        raise ValueError("expected time and macs")
    when, macs = value["time"], value["macs"]
    if type(when) is not int or when < 0 or not isinstance(macs, list):
        raise ValueError("bad time or macs")
    return _Latest(when, frozenset(base64.b64decode(m, validate=True) for m in macs))


def _load(path: Path) -> dict[str, _Latest]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the TSIG replay memory {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            raise ValueError(f"expected version {_VERSION}")
        keys = data.get("keys")
        if not isinstance(keys, dict):
            raise ValueError("expected keys")
        return {str(name): _entry(value) for name, value in keys.items()}
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ConfigError(
            f"the TSIG replay memory {path} is corrupt ({exc}); restore it, or delete it and "
            "keep the node stopped for 10 minutes (twice the 300 s clock window)"
        ) from None


def _store(path: Path, latest: dict[str, _Latest]) -> None:
    """Replace `path` with `latest`: temp file, fsync, rename, directory fsync."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb", opener=_private) as out:
            out.write(_to_json(latest))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise StorageError(f"cannot write the TSIG replay memory {path}: {exc}") from exc


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
