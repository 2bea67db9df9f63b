"""What a wallet command works with, and what it hands back to be printed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import RenderableType

from ledgerdns.wallet.index import DomainIndex
from ledgerdns.wallet.keystore import Keystore
from ledgerdns.wallet.link import RpcLink
from ledgerdns.wallet.passphrase import PassphraseSource


@dataclass(slots=True)
class Outcome:
    """A command's result: one JSON object for ``--json``, renderables for people."""

    data: dict[str, Any]
    show: list[RenderableType] = field(default_factory=list)


@dataclass(slots=True)
class Wallet:
    """One wallet directory and the node it talks to.

    Attributes:
        root: the wallet directory.
        keystore: its keys.
        index: the domains it tracks.
        passphrases: where passphrases come from.
        connect: opens the node link (raises if no node is configured).
        now_ms: the local clock, unix milliseconds (injected for tests).
        confirm: asks the user a yes/no question; None when there is no terminal.
    """

    root: Path
    keystore: Keystore
    index: DomainIndex
    passphrases: PassphraseSource
    connect: Callable[[], RpcLink]
    now_ms: Callable[[], int]
    confirm: Callable[[str], bool] | None
    _node: RpcLink | None = None

    def now_s(self) -> int:
        """The local clock, unix seconds."""
        return self.now_ms() // 1000

    def node(self) -> RpcLink:
        """The node link, opened on first use."""
        if self._node is None:
            self._node = self.connect()
        return self._node

    def close(self) -> None:
        """Close the node link if one was opened."""
        if self._node is not None:
            self._node.close()
            self._node = None
