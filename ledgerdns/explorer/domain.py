"""Domain search: the whole hash chain, the records at each step, the proof verdict."""

from __future__ import annotations

import datetime

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Input, Static

from chain.errors import InvalidUpdate
from ledgerdns.api.client import RpcError
from ledgerdns.explorer.data import Disconnected, DomainView, Link, ProofCheck, Snapshot
from ledgerdns.explorer.history import Step
from ledgerdns.explorer.widgets import ExplorerScreen, Row, diff_text, short, sync_table


def proof_text(proof: ProofCheck) -> Text:
    """``proof: verified`` in green, or ``proof: NOT verified`` in red, and why."""
    if proof.verified:
        return Text.assemble(("proof: verified ✔ ", "bold green"), proof.detail)
    return Text.assemble(("proof: NOT verified ✘ ", "bold red"), proof.detail)


def step_rows(steps: list[Step]) -> list[Row]:
    """One row per step of the chain, newest last."""
    return [
        (s.txid, [
            str(s.seq), str(s.height), s.op, short(s.txid, 16), short(s.owner, 12),
            short(s.signer, 12), "; ".join(s.records_after) or "(none)",
        ])
        for s in steps
    ]  # fmt: skip


def state_text(view: DomainView) -> Text:
    """The current state line: status, owner, seq, expiry, pending updates."""
    state = view.state
    if state is None:
        return Text(f"{view.domain}: never registered", style="yellow")
    pending = len(state.get("pending") or [])
    expires_at = state.get("expires_at") or 0
    expires = "never"
    if isinstance(expires_at, int) and expires_at:
        expires = datetime.datetime.fromtimestamp(expires_at, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    status = str(state.get("status"))
    return Text.assemble(
        (view.domain, "bold cyan"),
        "  ",
        # An expired name is answered NXDOMAIN and free to register: say so plainly.
        (f"{status.upper()} (NXDOMAIN, free to register)", "bold red") if status == "expired" else status,
        f"  seq {state.get('seq')}  owner {short(state.get('owner'), 16)}"
        f"  expires {expires}  pending {pending}",
    )


class DomainScreen(ExplorerScreen):
    """Type a name, Enter: its chain and proof. Enter on a step opens its transaction."""

    DEFAULT_CSS = """
    DomainScreen #query { margin: 0 1; }
    DomainScreen #state, DomainScreen #proof { height: auto; padding: 0 1; }
    DomainScreen #steps { height: auto; max-height: 16; }
    DomainScreen #step { height: auto; padding: 0 1; border: round $secondary; }
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        self.domain = name
        self.view: DomainView | None = None

    def compose_body(self) -> ComposeResult:
        yield Input(value=self.domain or "", placeholder="domain name, e.g. alice.p2p", id="query")
        yield Static("", id="state")
        yield Static("", id="proof")
        table: DataTable[str] = DataTable(id="steps", cursor_type="row")
        table.add_columns("seq", "height", "op", "txid", "owner", "signer", "records after")
        yield table
        step = Static("", id="step")
        step.display = False  # shown once there is a step to show
        yield step

    def on_mount(self) -> None:
        if self.domain:
            self.query_one(DataTable).focus()
            self.run_worker(self._load(self.domain), exclusive=True, group="load")
        else:
            self.query_one(Input).focus()

    def on_poll(self, link: Link, snap: Snapshot | None) -> None:
        if self.domain and self.view is None and link.connected:
            self.run_worker(self._load(self.domain), exclusive=True, group="load")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        if name:
            self.domain = name
            self.view = None
            self.run_worker(self._load(name), exclusive=True, group="load")

    async def _load(self, name: str) -> None:
        state = self.query_one("#state", Static)
        state.update(f"looking up {name}…")
        try:
            view = await self.explorer.data.domain(name)
        except InvalidUpdate as exc:
            state.update(Text(f"not a domain name: {exc}", style="red"))
            return
        except (Disconnected, RpcError) as exc:
            state.update(Text(f"{name}: {exc}", style="red"))
            return
        self.view = view
        self.sub_title = view.domain
        state.update(state_text(view))
        self.query_one("#proof", Static).update(proof_text(view.proof))
        table = self.query_one(DataTable)
        sync_table(table, step_rows(view.steps))
        if view.steps:
            table.move_cursor(row=len(view.steps) - 1, animate=False)
            table.focus()
            self._show_step(view.steps[-1])
        self.query_one("#step", Static).display = bool(view.steps)

    def _show_step(self, step: Step) -> None:
        title = f"seq {step.seq} ({step.op}) at height {step.height}: records before → after"
        self.query_one("#step", Static).update(Group(Text(title, style="bold"), diff_text(step)))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.view is not None:
            key = str(event.row_key.value)
            step = next((s for s in self.view.steps if s.txid == key), None)
            if step is not None:
                self._show_step(step)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if self.view is None:
            return
        step = next((s for s in self.view.steps if s.txid == str(event.row_key.value)), None)
        if step is not None and not step.genesis:
            self.explorer.open_tx(step.txid)
