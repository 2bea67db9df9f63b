"""One transaction: domain, seq, previous step, signer and the records it changed."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from ledgerdns.api.client import RpcError
from ledgerdns.explorer.data import Disconnected, Link, Snapshot, TxView
from ledgerdns.explorer.widgets import ExplorerScreen, diff_text


def tx_table(view: TxView) -> Table:
    """The transaction's fields and where it sits in its chain."""
    tx, step = view.tx, view.step
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("txid", str(tx["txid"]))
    where = f"height {view.height}, index {view.index}" if view.height is not None else ""
    style = "green" if view.status == "finalized" else "yellow"
    grid.add_row("status", Text.assemble((view.status, style), f"  {where}"))
    if tx["op"] == "commit":  # commit-reveal (issue 15): the name stays hidden until revealed
        grid.add_row("domain", Text("(hidden: a registration commit)", style="italic"))
    elif tx["op"] == "validator_propose":  # a validator-set change (issue 15): no domain
        grid.add_row("change", Text(f"proposes: {tx.get('change')}", style="bold cyan"))
    elif tx["op"] == "validator_approve":
        grid.add_row("change", Text(f"approves proposal {tx.get('change')}", style="bold cyan"))
    else:
        grid.add_row("domain", Text(str(tx["domain"]), style="bold cyan"))
    grid.add_row("seq", str(tx["seq"]))
    grid.add_row("op", str(tx["op"]))
    prev = str(tx["prev"])
    if int(tx["seq"]) == 0:
        grid.add_row("prev", f"{prev} (first step)")
    elif step is not None and step.prev is not None:
        grid.add_row("prev", Text.assemble(prev, ("  press [ to open it", "underline")))
    else:
        grid.add_row("prev", prev)
    grid.add_row("owner", str(tx["owner"]))
    signer = step.signer if step is not None else None
    grid.add_row("signer", signer or "(unknown until finalized)")
    grid.add_row("valid until", str(tx["valid_until"]))
    grid.add_row("size", f"{tx['size']} bytes")
    grid.add_row("signature", str(tx["signature"]))
    return grid


class TxScreen(ExplorerScreen):
    """A transaction; [ opens the previous one of its domain, h the domain's history."""

    BINDINGS = [
        Binding("left_square_bracket", "previous", "previous tx"),
        Binding("h", "history", "domain history"),
        Binding("B", "block", "its block"),
    ]
    DEFAULT_CSS = """
    TxScreen #fields { height: auto; padding: 0 1; border: round $primary; }
    TxScreen #diff { height: auto; padding: 0 1; border: round $secondary; }
    """

    def __init__(self, txid: str) -> None:
        super().__init__()
        self.txid = txid
        self.view: TxView | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(f"loading transaction {self.txid[:16]}…", id="fields")
            yield Static("", id="diff")

    def on_mount(self) -> None:
        self.run_worker(self._load(), exclusive=True, group="load")

    def on_poll(self, link: Link, snap: Snapshot | None) -> None:
        reload = self.view is None or self.view.status != "finalized"
        if reload and link.connected:
            self.run_worker(self._load(), exclusive=True, group="load")

    async def _load(self) -> None:
        fields = self.query_one("#fields", Static)
        try:
            view = await self.explorer.data.tx(self.txid)
        except (Disconnected, RpcError) as exc:
            fields.update(f"transaction {self.txid[:16]}: {exc}")
            return
        self.view = view
        self.sub_title = f"tx {self.txid[:16]}"
        fields.update(tx_table(view))
        diff = self.query_one("#diff", Static)
        if view.step is None:
            diff.update(Group(Text("Records (pending: diff once finalized)", style="bold"),
                              Text("\n".join(view.tx["records"]) or "(none)")))  # fmt: skip
        else:
            title = f"Records of {view.tx['domain']}: before seq {view.step.seq} → after"
            diff.update(Group(Text(title, style="bold"), diff_text(view.step)))

    def action_previous(self) -> None:
        """Open the previous transaction of the same domain (not the genesis anchor)."""
        if self.view is None or self.view.step is None or self.view.step.prev is None:
            self.notify("no previous transaction")
            return
        prev = next((s for s in self.view.steps if s.txid == self.view.step.prev), None)
        if prev is None or prev.genesis:
            self.notify("the previous step is the genesis anchor, not a transaction")
            return
        self.explorer.open_tx(prev.txid)

    def action_history(self) -> None:
        """Open the domain's whole chain (a commit names none)."""
        if self.view is None:
            return
        if self.view.tx["op"] == "commit":
            self.notify("a commit hides its name until the reveal")
            return
        if str(self.view.tx["op"]).startswith("validator_"):
            self.notify("a validator-set change has no domain: press v for the set's history")
            return
        self.explorer.open_domain(str(self.view.tx["domain"]))

    def action_block(self) -> None:
        """Open the block holding this transaction."""
        if self.view is not None and self.view.height is not None:
            self.explorer.open_block(self.view.height)
