"""The peers view: every known peer, whether connected, its validator name and penalty."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Label

from ledgerdns.explorer.data import Json, Link, Snapshot
from ledgerdns.explorer.widgets import ExplorerScreen, Row, sync_table


def peer_rows(peers: list[Json]) -> list[Row]:
    """One row per peer, connected ones first."""
    ordered = sorted(peers, key=lambda p: (not p["connected"], str(p["peer_id"])))
    return [
        (str(p["peer_id"]), [
            str(p["peer_id"]),
            Text("connected", style="green") if p["connected"] else Text("known", style="dim"),
            str(p.get("validator") or "-"),
            Text(str(p["penalty"]), style="red" if p["penalty"] else ""),
            " ".join(p.get("addrs") or ()) or "-",
        ])
        for p in ordered
    ]  # fmt: skip


class PeersScreen(ExplorerScreen):
    """Peers, refreshed with every poll."""

    DEFAULT_CSS = "PeersScreen Label { padding: 0 1; text-style: bold; }"

    def compose_body(self) -> ComposeResult:
        yield Label("Peers", id="peers-label")
        table: DataTable[str | Text] = DataTable(id="peers", cursor_type="row")
        table.add_columns("peer id", "state", "validator", "penalty", "addresses")
        yield table

    def on_poll(self, link: Link, snap: Snapshot | None) -> None:
        if snap is None:
            return
        connected = sum(1 for p in snap.peers if p["connected"])
        label = f"Peers: {connected} connected, {len(snap.peers)} known"
        if not snap.peers:
            label += " (a single-node devnet has none)"
        self.query_one("#peers-label", Label).update(label)
        sync_table(self.query_one(DataTable), peer_rows(snap.peers))
