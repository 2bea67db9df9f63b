"""Registrations under way: what `wallet register` needs to resume after an interruption.

On a network with commit-reveal (docs/naming.md) a registration is a commit, a
wait of some heights, then a reveal. The salt is the one secret that ties the
reveal to the commit, so it is written here *before* the commit is searched
or sent; the stamp, the signed commit and its block height follow as they are
known. Running the same `wallet register` again picks up where it stopped.

One JSON file per network and domain, ``pending/<genesis hash:16>-<domain>.json``
in the wallet directory (mode 0600, replaced atomically and synced)::

    {"version": 1, "domain": "alice.p2p", "genesis_hash": "...", "key": "default",
     "salt": "<hex>", "work": 4608, "records": ["@ 300 A 10.0.0.1"],
     "stamp": "<hex>" | null, "commit_tx": "<hex>" | null, "commit_height": 12 | null}
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerdns.wallet.errors import WalletError

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingRegistration:
    """One registration under way (see the module docstring for the fields)."""

    domain: str
    genesis_hash: bytes
    key: str
    salt: bytes
    work: int
    records: tuple[str, ...]
    stamp: bytes | None = None
    commit_tx: bytes | None = None
    commit_height: int | None = None

    def but(self, **changes: Any) -> PendingRegistration:
        """A copy with `changes`."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return {
            "version": FORMAT_VERSION,
            "domain": self.domain,
            "genesis_hash": self.genesis_hash.hex(),
            "key": self.key,
            "salt": self.salt.hex(),
            "work": self.work,
            "records": list(self.records),
            "stamp": None if self.stamp is None else self.stamp.hex(),
            "commit_tx": None if self.commit_tx is None else self.commit_tx.hex(),
            "commit_height": self.commit_height,
        }

    @classmethod
    def from_json(cls, doc: Any) -> PendingRegistration:
        """Parse a file's content.

        Raises:
            ValueError, KeyError, TypeError: it is not one.
        """
        if doc.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown version {doc.get('version')!r}")

        def opt_hex(key: str) -> bytes | None:
            value = doc.get(key)
            return None if value is None else bytes.fromhex(str(value))

        height = doc.get("commit_height")
        return cls(
            domain=str(doc["domain"]),
            genesis_hash=bytes.fromhex(str(doc["genesis_hash"])),
            key=str(doc["key"]),
            salt=bytes.fromhex(str(doc["salt"])),
            work=int(doc["work"]),
            records=tuple(str(r) for r in doc["records"]),
            stamp=opt_hex("stamp"),
            commit_tx=opt_hex("commit_tx"),
            commit_height=None if height is None else int(height),
        )


class PendingStore:
    """The registrations under way in one wallet directory."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "pending"

    def _path(self, domain: str, genesis_hash: bytes) -> Path:
        return self.dir / f"{genesis_hash.hex()[:16]}-{domain}.json"

    def load(self, domain: str, genesis_hash: bytes) -> PendingRegistration | None:
        """The registration of `domain` under way on this network, if any.

        Raises:
            WalletError: the file exists but cannot be read.
        """
        path = self._path(domain, genesis_hash)
        try:
            return PendingRegistration.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise WalletError(f"cannot read {path}: {exc}; remove it to start over") from None

    def save(self, entry: PendingRegistration) -> None:
        """Write `entry` durably (synced before the rename) before anything depends on it."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._path(entry.domain, entry.genesis_hash)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(entry.to_json(), indent=2) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def drop(self, domain: str, genesis_hash: bytes) -> None:
        """Forget a registration (done, or its commit can no longer be revealed)."""
        self._path(domain, genesis_hash).unlink(missing_ok=True)

    def all(self) -> list[PendingRegistration]:
        """Every registration under way (for `wallet list`); unreadable files are skipped."""
        out = []
        for path in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            try:
                out.append(PendingRegistration.from_json(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
        return out
