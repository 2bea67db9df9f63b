"""The wallet's list of domains it registered or received, with their last known state.

A small JSON file, ``domains.json`` in the wallet directory::

    {"version": 1, "domains": {"alice.p2p": {"owner": "02ab...", "status": "active",
                                             "seq": 3, "expires_at": 0, "records": 2}}}

It is a cache: the node is the truth, and `list` refreshes it when a node answers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from chain.txbuilder import DomainView
from ledgerdns.wallet.errors import WalletError

FORMAT_VERSION = 1


def view_summary(view: DomainView) -> dict[str, Any]:
    """What the index keeps about a domain."""
    return {
        "owner": None if view.owner is None else bytes(view.owner).hex(),
        "status": view.status,
        "seq": view.seq,
        "expires_at": view.expires_at,
        "records": len(view.records),
    }


class DomainIndex:
    """The tracked domains of one wallet directory."""

    def __init__(self, root: Path) -> None:
        self.path = root / "domains.json"

    def load(self) -> dict[str, dict[str, Any]]:
        """Every tracked domain and its last known summary, by name.

        Raises:
            WalletError: the file exists but cannot be read.
        """
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise WalletError(f"cannot read {self.path}: {exc}") from None
        domains = doc.get("domains") if isinstance(doc, dict) else None
        if not isinstance(domains, dict):
            raise WalletError(f"{self.path} is not a wallet domain index")
        return {str(k): v if isinstance(v, dict) else {} for k, v in domains.items()}

    def save(self, domains: dict[str, dict[str, Any]]) -> None:
        """Replace the file atomically (mode 0600)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = json.dumps({"version": FORMAT_VERSION, "domains": domains}, indent=2, sort_keys=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.replace(tmp, self.path)

    def update(self, view: DomainView) -> None:
        """Track `view.domain` with its current state."""
        domains = self.load()
        domains[view.domain] = view_summary(view)
        self.save(domains)
