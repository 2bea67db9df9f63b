"""TSIG replay memory: per key, the MACs of the requests accepted within the clock window.

RFC 8945 5.2.3 lets a server refuse (BADTIME) a replayed request. A request is
only accepted within `MAX_FUDGE_S` of the server's clock, so a captured one can
be replayed only while its signing time is that close to now: remembering the
MAC of every request accepted in the last ``2 * MAX_FUDGE_S`` seconds (its
window on either side) is enough to refuse every replay, while requests signed
by concurrent clients, or arriving out of order across a second boundary, are
all accepted. (Refusing everything signed before the latest accepted time, the
other reading of the RFC, refused a client's second of two concurrent updates
whenever its clock ticked between them.)

The updater asks `SigningTimes.admit` before it acts on a verified UPDATE:
the same MAC again is a replay. The memory is bounded: at most `MAX_REMEMBERED`
MACs per key; when one has to go, the oldest goes and every request signed at
or before its time is refused from then on (the key's ``floor``), so nothing
forgotten can come back.

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
from ledgerdns.dns.tsig import MAX_FUDGE_S

log = logging.getLogger(__name__)

MAX_REMEMBERED = 4096  # MACs kept per key (within the window); the oldest goes first
WINDOW_S = 2 * MAX_FUDGE_S  # a request signed earlier than now - this can never be on time
_VERSION = 2


@dataclass(frozen=True, slots=True)
class _Memory:
    floor: int  # requests signed at or before this are refused (-1: none)
    macs: tuple[tuple[int, bytes], ...]  # (time signed, MAC), oldest first


class SigningTimes:
    """The MACs accepted per TSIG key within the clock window, kept in `path` if given.

    Args:
        path: the file (created on the first admitted request); None keeps it in memory.

    Raises:
        ConfigError: the file exists but cannot be read or is not one this class wrote
            (never start from a blank memory when one was there: replays would pass).
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._memory = _load(path) if path is not None else {}
        self._lock = trio.Lock()

    async def admit(self, key: str, time_signed: int, mac: bytes, *, now_s: int) -> bool:
        """Record a verified, on-time request of `key`, durably; False if it is a replay.

        Args:
            key: the key name as configured (``"update."``).
            time_signed: the request's TSIG time signed, unix seconds.
            mac: the request's MAC.
            now_s: the server's clock (what the window is counted from).

        Raises:
            StorageError: the file could not be written (the request must not be carried out).
        """
        async with self._lock:  # one write at a time: the file always holds the newest memory
            memory = self._memory.get(key, _Memory(-1, ()))
            if time_signed <= memory.floor or any(m == mac for _, m in memory.macs):
                return False
            # Forget what can no longer be on time; keep the rest, oldest first.
            kept = [(t, m) for t, m in memory.macs if t >= now_s - WINDOW_S]
            kept.append((time_signed, mac))
            kept.sort(key=lambda item: item[0])
            floor = memory.floor
            while len(kept) > MAX_REMEMBERED:
                dropped, _ = kept.pop(0)
                floor = max(floor, dropped)
                log.warning("tsig replay memory full key=%s: refusing requests signed by %d", key, floor)
            if time_signed <= floor:
                return False  # it was the oldest: refusing it keeps the floor's promise
            updated = {**self._memory, key: _Memory(floor, tuple(kept))}
            if self.path is not None:
                await trio.to_thread.run_sync(_store, self.path, updated)
            self._memory = updated
            return True


def _to_json(memory: dict[str, _Memory]) -> bytes:
    keys = {
        name: {
            "floor": entry.floor,
            "macs": [[t, base64.b64encode(m).decode()] for t, m in entry.macs],
        }
        for name, entry in sorted(memory.items())
    }
    return json.dumps({"version": _VERSION, "keys": keys}, indent=1).encode() + b"\n"


def _entry(value: Any) -> _Memory:
    if not isinstance(value, dict) or set(value) != {"floor", "macs"}:
        raise ValueError("expected floor and macs")
    floor, macs = value["floor"], value["macs"]
    if type(floor) is not int or floor < -1 or not isinstance(macs, list):
        raise ValueError("bad floor or macs")
    out = []
    for item in macs:
        if not isinstance(item, list) or len(item) != 2 or type(item[0]) is not int:
            raise ValueError("bad mac entry")
        out.append((item[0], base64.b64decode(item[1], validate=True)))
    return _Memory(floor, tuple(sorted(out, key=lambda e: e[0])))


def _load(path: Path) -> dict[str, _Memory]:
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


def _store(path: Path, memory: dict[str, _Memory]) -> None:
    """Replace `path` with `memory`: temp file, fsync, rename, directory fsync."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb", opener=_private) as out:
            out.write(_to_json(memory))
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
