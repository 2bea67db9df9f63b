"""The explorer app: screen navigation, keys, and the poller feeding the screens.

The app owns navigation: it is the only module that imports the screens, and a
screen opens another through the app (`open_block`, `open_tx`, `open_domain`,
the `Explorer` protocol in `widgets`), so screens never import each other.
"""

from __future__ import annotations

from collections.abc import Awaitable

from textual.app import App
from textual.binding import Binding
from textual.worker import Worker

from ledgerdns.explorer.blocks import BlockScreen, BlocksScreen
from ledgerdns.explorer.dashboard import DashboardScreen
from ledgerdns.explorer.data import Link, NodeData, Snapshot
from ledgerdns.explorer.domain import DomainScreen
from ledgerdns.explorer.peers import PeersScreen
from ledgerdns.explorer.tx import TxScreen
from ledgerdns.explorer.validators import ValidatorsScreen
from ledgerdns.explorer.widgets import ExplorerScreen


class ExplorerApp(App[None]):
    """``ledgerdns explorer``: a live view of one node.

    Args:
        data: the node's model (polled from here; the app never blocks on it).
    """

    TITLE = "ledgerdns explorer"
    BINDINGS = [
        Binding("d", "dashboard", "dashboard"),
        Binding("b", "blocks", "blocks"),
        Binding("p", "peers", "peers"),
        Binding("v", "validators", "validator set"),
        Binding("slash", "search", "search domain"),
        Binding("escape", "close_screen", "back"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, data: NodeData) -> None:
        super().__init__()
        self.data = data
        self.snapshot: Snapshot | None = None  # the last good poll (kept while disconnected)
        self._poller: Worker[None] | None = None

    def on_mount(self) -> None:
        self.push_screen(DashboardScreen())
        self._poller = self.run_worker(
            self.data.poll_forever(self._publish), group="poll", exit_on_error=True
        )

    def on_unmount(self) -> None:
        self.data.close()

    def _publish(self, link: Link, snap: Snapshot | None) -> None:
        if snap is not None:
            self.snapshot = snap
        screen = self.screen
        if isinstance(screen, ExplorerScreen) and screen.is_mounted:
            screen.show_update(link, snap)

    # -- navigation --

    def _open(self, kind: type[ExplorerScreen]) -> None:
        """Go back to an open screen of `kind`, or open a new one over the dashboard."""
        stack = self.screen_stack
        for depth, screen in enumerate(stack):
            if isinstance(screen, kind):
                for _ in range(len(stack) - depth - 1):
                    self.pop_screen()
                return
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.push_screen(kind())

    def action_dashboard(self) -> None:
        """Back to the dashboard."""
        self._open(DashboardScreen)

    def action_blocks(self) -> None:
        """The blocks list."""
        self._open(BlocksScreen)

    def action_peers(self) -> None:
        """The peers view."""
        self._open(PeersScreen)

    def action_validators(self) -> None:
        """The validator set: pending changes and its history."""
        self._open(ValidatorsScreen)

    def action_search(self) -> None:
        """A domain search."""
        self.open_domain()

    def open_block(self, height: int) -> Awaitable[object]:
        """Open the block at `height` over the current screen."""
        return self.push_screen(BlockScreen(height))

    def open_tx(self, txid: str) -> Awaitable[object]:
        """Open the transaction `txid` over the current screen."""
        return self.push_screen(TxScreen(txid))

    def open_domain(self, name: str | None = None) -> Awaitable[object]:
        """Open the history of domain `name` (or an empty search) over the current screen."""
        return self.push_screen(DomainScreen(name))

    def action_close_screen(self) -> None:
        """Close the current screen (never the dashboard)."""
        if len(self.screen_stack) > 2:
            self.pop_screen()
