"""The validator set's view: the set in force, pending changes, and every set since genesis.

The set changes on chain (issue 15): a change approved by a quorum in block H
decides from H+2. Each poll's ``GET /v1/validators`` (`Snapshot.validator_set`)
is all this screen shows.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Label

from ledgerdns.explorer.data import Json, Link, Snapshot
from ledgerdns.explorer.widgets import ExplorerScreen, Row, short, sync_table

_STATE_STYLE = {"current": "bold green", "scheduled": "cyan", "past": "dim"}


def pending_rows(validator_set: Json) -> list[Row]:
    """One row per pending proposal: its change and its approvals against the quorum."""
    rows: list[Row] = []
    for p in validator_set.get("pending") or []:
        approvals = f"{p['approvals']}/{p['needed']}"
        who = ", ".join(str(m.get("name") or short(m.get("public_key"), 8))
                        for m in p.get("approved_by") or [])  # fmt: skip
        rows.append((str(p["proposal"]), [
            short(str(p["proposal"]), 12), str(p["action"]), str(p["name"]),
            short(p.get("public_key"), 12), approvals, who, str(p["height"]),
        ]))  # fmt: skip
    return rows


def history_rows(validator_set: Json) -> list[Row]:
    """One row per roster since genesis (scheduled ones included), newest first."""
    rows: list[Row] = []
    for r in reversed(validator_set.get("history") or []):
        until = "-" if r.get("until_height") is None else str(r["until_height"])
        state = str(r.get("state", ""))
        names = ", ".join(str(m["name"]) for m in r.get("validators") or [])
        rows.append((str(r["from_height"]), [
            str(r["from_height"]), until, Text(state, style=_STATE_STYLE.get(state, "")),
            f"{len(r.get('validators') or [])} (quorum {r.get('quorum')})", names,
        ]))  # fmt: skip
    return rows


def set_summary(validator_set: Json) -> str:
    """``4 validators, quorum 3; 1 change pending; next set from height 9``."""
    if not validator_set:
        return "validator set: unknown (the node predates validator-set changes)"
    text = (f"{len(validator_set.get('validators') or [])} validators, quorum "
            f"{validator_set.get('quorum')}")  # fmt: skip
    pending = len(validator_set.get("pending") or [])
    text += f"; {pending or 'no'} change{'' if pending == 1 else 's'} pending"
    scheduled = validator_set.get("scheduled") or []
    if scheduled:
        text += f"; next set from height {scheduled[0]['from_height']}"
    return text


class ValidatorsScreen(ExplorerScreen):
    """The validator set: pending changes and its history, refreshed with every poll."""

    DEFAULT_CSS = """
    ValidatorsScreen Label { padding: 1 1 0 1; text-style: bold; }
    ValidatorsScreen DataTable { height: auto; max-height: 16; }
    """

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Label("Validator set", id="set-label")
            yield Label("Pending changes", id="pending-label")
            pending: DataTable[str | Text] = DataTable(id="pending", cursor_type="row")
            pending.add_columns("proposal", "action", "name", "new key", "approvals",
                                "approved by", "proposed at")  # fmt: skip
            yield pending
            yield Label("The set since genesis (newest first)")
            history: DataTable[str | Text] = DataTable(id="history", cursor_type="row")
            history.add_columns("from height", "until", "state", "size", "validators")
            yield history

    def on_poll(self, link: Link, snap: Snapshot | None) -> None:
        if snap is None:
            return
        vset = snap.validator_set
        self.query_one("#set-label", Label).update(f"Validator set: {set_summary(vset)}")
        pending = len(vset.get("pending") or [])
        self.query_one("#pending-label", Label).update(f"Pending changes ({pending or 'none'})")
        sync_table(self.query_one("#pending", DataTable), pending_rows(vset))
        sync_table(self.query_one("#history", DataTable), history_rows(vset))
