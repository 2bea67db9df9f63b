"""The blocks list and one block: header, certificate signers, transactions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Label, Static

from ledgerdns.api.client import RpcError
from ledgerdns.explorer.data import Disconnected, Json, Link, Snapshot
from ledgerdns.explorer.widgets import ExplorerScreen, Row, short, sync_table

PAGE = 50


def clock(time_ms: int) -> str:
    """A block time as UTC ``YYYY-MM-DD HH:MM:SS``."""
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def block_rows(blocks: list[Json]) -> list[Row]:
    """One row per block summary."""
    return [
        (str(b["height"]), [
            str(b["height"]), clock(int(b["time_ms"])), str(b.get("proposer") or "-"),
            str(b["txs"]), str(b["size"]), short(str(b["hash"]), 24),
        ])
        for b in blocks
    ]  # fmt: skip


class BlocksScreen(ExplorerScreen):
    """Recent blocks, newest first; Enter opens one."""

    BINDINGS = [
        Binding("o", "older", "older"),
        Binding("l", "latest", "latest"),
        Binding("r", "reload", "reload"),
    ]
    DEFAULT_CSS = "BlocksScreen #note { height: 1; padding: 0 1; color: $text-muted; }"

    def __init__(self) -> None:
        super().__init__()
        self.before: int | None = None  # None: follow the head
        self.shown_head = -1

    def compose_body(self) -> ComposeResult:
        yield Label("Blocks (Enter: open, o: older, l: latest)", id="note")
        table: DataTable[str] = DataTable(id="blocks", cursor_type="row")
        table.add_columns("height", "time (UTC)", "proposer", "txs", "bytes", "hash")
        yield table

    def on_mount(self) -> None:
        self.action_reload()

    def on_poll(self, link: Link, snap: Snapshot | None) -> None:
        if snap is not None and self.before is None and snap.height != self.shown_head:
            self.action_reload()

    def action_reload(self) -> None:
        """Fetch the current page."""
        self.run_worker(self._load(), exclusive=True, group="load")

    def action_older(self) -> None:
        """The page below the lowest block shown."""
        table = self.query_one(DataTable)
        if table.row_count:
            lowest = int(str(list(table.rows)[-1].value))
            if lowest > 0:
                self.before = lowest
                self.action_reload()

    def action_latest(self) -> None:
        """Back to the head, following it."""
        self.before = None
        self.action_reload()

    async def _load(self) -> None:
        note = self.query_one("#note", Label)
        try:
            blocks = await self.explorer.data.blocks(before=self.before, limit=PAGE)
        except (Disconnected, RpcError) as exc:
            note.update(f"cannot load blocks: {exc}")
            return
        if self.before is None and blocks:
            self.shown_head = int(blocks[0]["height"])
        where = "latest" if self.before is None else f"below {self.before}"
        note.update(f"Blocks, {where} (Enter: open, o: older, l: latest)")
        sync_table(self.query_one(DataTable), block_rows(blocks))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.explorer.open_block(int(str(event.row_key.value)))


def header_table(block: Json) -> Table:
    """The header fields and the certificate of a block."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for field in ("height", "hash", "prev_block", "chain_id", "proposer", "proposer_key",
                  "tx_root", "state_root", "validators_hash", "size"):  # fmt: skip
        grid.add_row(field, str(block.get(field)))
    grid.add_row("time", f"{clock(int(block['time_ms']))} UTC ({block['time_ms']} ms)")
    cert = block.get("certificate")
    if cert is None:
        grid.add_row("certificate", Text("none (genesis is not certified)", style="yellow"))
    else:
        grid.add_row("certificate", f"round {cert['round']}, block {short(cert['block_hash'], 24)}")
        grid.add_row("signers", Text(", ".join(cert["signers"]) or "-", style="green"))
    return grid


class BlockScreen(ExplorerScreen):
    """One block; Enter on a transaction opens it."""

    BINDINGS = [
        Binding("left_square_bracket", "step(-1)", "prev block"),
        Binding("right_square_bracket", "step(1)", "next block"),
    ]
    DEFAULT_CSS = """
    BlockScreen #header { height: auto; padding: 0 1; border: round $primary; }
    BlockScreen Label { padding: 0 1; text-style: bold; }
    """

    def __init__(self, height: int) -> None:
        super().__init__()
        self.height = height
        self.block: Json | None = None

    def compose_body(self) -> ComposeResult:
        yield Static(f"loading block {self.height}…", id="header")
        yield Label("Transactions (Enter: open)", id="txs-label")
        table: DataTable[str] = DataTable(id="txs", cursor_type="row")
        table.add_columns("#", "domain", "seq", "op", "records", "txid")
        yield table

    def on_mount(self) -> None:
        self.run_worker(self._load(), exclusive=True, group="load")

    def on_poll(self, link: Link, snap: Snapshot | None) -> None:
        if self.block is None and link.connected:
            self.run_worker(self._load(), exclusive=True, group="load")

    def action_step(self, delta: int) -> None:
        """Open the previous or next block in place."""
        if self.height + delta >= 0:
            self.height += delta
            self.block = None
            self.run_worker(self._load(), exclusive=True, group="load")

    async def _load(self) -> None:
        header = self.query_one("#header", Static)
        try:
            block = await self.explorer.data.block(self.height)
        except (Disconnected, RpcError) as exc:
            header.update(f"block {self.height}: {exc}")
            return
        self.block = block
        self.sub_title = f"block {self.height}"
        header.update(header_table(block))
        txs: list[Any] = block.get("txs") or []
        self.query_one("#txs-label", Label).update(f"Transactions: {len(txs)} (Enter: open)")
        sync_table(self.query_one(DataTable), [
            (str(tx["txid"]), [
                str(i), str(tx["domain"]), str(tx["seq"]), str(tx["op"]),
                str(len(tx["records"])), short(str(tx["txid"]), 24),
            ])
            for i, tx in enumerate(txs)
        ])  # fmt: skip

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.explorer.open_tx(str(event.row_key.value))
