"""Pieces every explorer screen shares: the link bar, tables updated in place, formatting.

Also `Explorer`, what a screen may ask of the app: the model, the last poll, and
navigation. The app (`ledgerdns.explorer.app.ExplorerApp`) is the only module that
imports the screens; a screen opens another through `Explorer.open_*`, so screen
modules never import each other (or the app).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Protocol, runtime_checkable

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ledgerdns.explorer.data import Link, NodeData, Snapshot
from ledgerdns.explorer.history import Step, record_diff

Cell = str | Text
Row = tuple[str, Sequence[Cell]]  # (row key, cells)

_DIFF_STYLE = {"+": "green", "-": "red", " ": "dim"}


@runtime_checkable
class Explorer(Protocol):
    """The app as its screens see it; `ExplorerApp` implements it.

    Each `open_*` pushes the screen over the current one and returns textual's
    awaitable for its mounting (screens may ignore it).
    """

    @property
    def data(self) -> NodeData:
        """The node's model."""

    @property
    def snapshot(self) -> Snapshot | None:
        """The last good poll, kept while disconnected."""

    def open_block(self, height: int) -> Awaitable[object]:
        """Open the block at `height`."""

    def open_tx(self, txid: str) -> Awaitable[object]:
        """Open the transaction `txid`."""

    def open_domain(self, name: str | None = None) -> Awaitable[object]:
        """Open the history of domain `name`, or an empty domain search."""


def short(hex_text: str | None, n: int = 16) -> str:
    """The first `n` hex digits, with an ellipsis when cut."""
    if not hex_text:
        return "-"
    return hex_text if len(hex_text) <= n else hex_text[:n] + "…"


def age(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h01m``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def diff_text(step: Step) -> Text:
    """The records before and after `step`, one line each, ``+``/``-`` marked."""
    lines = record_diff(step.records_before, step.records_after)
    if not lines:
        return Text("(no records before or after)", style="dim")
    text = Text()
    for mark, record in lines:
        text.append(f"{mark} {record}\n", style=_DIFF_STYLE[mark])
    return text


def sync_table(table: DataTable[Any], rows: list[Row]) -> None:
    """Show `rows` in `table` without redrawing what did not change (no flicker).

    Same keys in the same order: only changed cells are updated. Otherwise the
    rows are replaced and the cursor stays on the row with the same key.
    """
    keys = [key for key, _ in rows]
    current = [str(k.value) for k in table.rows]
    columns = list(table.columns)
    if keys == current:
        for key, cells in rows:
            old = table.get_row(key)
            for column, new, was in zip(columns, cells, old, strict=False):
                if str(new) != str(was):
                    table.update_cell(key, column, new)
        return
    selected: str | None = None
    if table.row_count and 0 <= table.cursor_row < table.row_count:
        selected = current[table.cursor_row]
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if selected in keys:
        table.move_cursor(row=keys.index(selected), animate=False)


class LinkBar(Static):
    """One line: connected to where, or DISCONNECTED and why, retrying."""

    DEFAULT_CSS = """
    LinkBar { height: 1; padding: 0 1; background: $boost; }
    LinkBar.down { background: $error; color: $text; }
    """

    def show(self, link: Link, snap: Snapshot | None) -> None:
        """Render the link state (and the height when known)."""
        if link.connected:
            self.remove_class("down")
            height = f"  height {snap.height}" if snap is not None else ""
            extra = f"  ({link.message})" if link.message else ""
            self.update(Text.assemble(("● connected ", "bold green"), link.where, height, extra))
        else:
            self.add_class("down")
            retry = f"; retrying in {link.retry_s:.1f}s" if link.retry_s else ""
            self.update(
                Text.assemble(("○ DISCONNECTED ", "bold"), f"{link.where}: {link.message}{retry}")
            )


class ExplorerScreen(Screen[None]):
    """A screen with the link bar on top and the key footer below."""

    @property
    def explorer(self) -> Explorer:
        """The app, typed: the model, the last poll and navigation."""
        assert isinstance(self.app, Explorer)
        return self.app

    def compose_body(self) -> ComposeResult:
        """The screen's own widgets."""
        yield from ()

    def compose(self) -> ComposeResult:
        yield LinkBar(id="link")
        yield from self.compose_body()
        yield Footer()

    def on_screen_resume(self) -> None:
        app = self.explorer
        self.show_update(app.data.link, app.snapshot)

    def show_update(self, link: Link, snap: Snapshot | None) -> None:
        """A poll finished: update the link bar, then `on_poll`."""
        bars = self.query(LinkBar)
        if not bars:
            return  # not composed yet: the next poll will find it
        bars.first().show(link, snap)
        self.on_poll(link, snap)

    def on_poll(self, link: Link, snap: Snapshot | None) -> None:
        """Hook: refresh live parts of the screen."""
