"""The dashboard: finalized height and age, rates, mempool, peers, validators, evidence.

The validators listed are the set deciding the next block (it changes on chain);
the line under the summary says what changes are pending or scheduled, and the
validators screen (v) shows them and the set's history.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Label, Static

from ledgerdns.explorer.data import Link, Snapshot
from ledgerdns.explorer.widgets import ExplorerScreen, Row, age, short, sync_table

MAX_SET_LINE = 3  # pending or scheduled changes named on the dashboard; the rest: press v


def summary(snap: Snapshot, now_ms: int) -> Table:
    """The key figures of one poll, as a two-column grid."""
    status = snap.status
    blocks_s, txs_s = snap.rates(now_ms)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row(
        "finalized height", Text(str(snap.height), style="bold cyan"),
        "chain", str(status.get("chain_id", "?")),
    )  # fmt: skip
    grid.add_row(
        "head age", age(snap.age_s(now_ms)),
        "head", short(str(status.get("head_hash", ""))),
    )  # fmt: skip
    grid.add_row(
        "block rate", f"{blocks_s * 60:.2f} blocks/min",
        "consensus", f"h{status.get('consensus_height')} r{status.get('consensus_round')} "
        f"{status.get('consensus_step')}",
    )  # fmt: skip
    grid.add_row(
        "transactions", f"{txs_s:.3f} tx/s",
        "this node", f"{status.get('validator') or 'follower'} "
        f"{'(syncing to ' + str(status.get('sync_target')) + ')' if status.get('syncing') else ''}",
    )  # fmt: skip
    grid.add_row(
        "mempool", f"{snap.mempool_count} txs, {snap.mempool_bytes} bytes",
        "peers", f"{status.get('peers')} connected, {len(snap.peers)} known",
    )  # fmt: skip
    return grid


def set_changes_text(snap: Snapshot) -> str:
    """The set's changes under way, one clause each: ``add v4 (2/3 approvals)``, ``from h9: …``."""
    vset = snap.validator_set
    parts = [f"{p['action']} {p['name']} ({p['approvals']}/{p['needed']} approvals)"
             for p in vset.get("pending") or []]  # fmt: skip
    parts += [f"from height {r['from_height']}: {', '.join(m['name'] for m in r['validators'])}"
              for r in vset.get("scheduled") or []]  # fmt: skip
    if not parts:
        return "no change of the set under way"
    more = f"; {len(parts) - MAX_SET_LINE} more" if len(parts) > MAX_SET_LINE else ""
    return "set changes: " + "; ".join(parts[:MAX_SET_LINE]) + more + " (press v)"


def validator_rows(snap: Snapshot, now_ms: int) -> list[Row]:
    """One row per validator of the set deciding the next block."""
    rows: list[Row] = []
    for v in snap.validators:
        online = Text("online", style="green") if v["online"] else Text("offline", style="red")
        vote = "-" if int(v["last_vote_height"]) < 0 else (
            f"h{v['last_vote_height']} r{v['last_vote_round']}"
        )  # fmt: skip
        seen = "never" if not v["last_seen_ms"] else age((now_ms - int(v["last_seen_ms"])) / 1000)
        rows.append((str(v["name"]), [str(v["name"]), online, vote, seen, short(v["public_key"])]))
    return rows


def evidence_rows(snap: Snapshot) -> list[Row]:
    """One row per equivocation the node recorded."""
    rows: list[Row] = []
    for i, e in enumerate(snap.evidence):
        first, second = e.get("first") or {}, e.get("second") or {}
        rows.append((
            f"{i}:{e.get('hex', '')[:16]}",
            [str(e["validator"]), str(e["type"]), str(e["height"]), str(e["round"]),
             short(first.get("block_hash") or "nil", 12), short(second.get("block_hash") or "nil", 12)],
        ))  # fmt: skip
    return rows


class DashboardScreen(ExplorerScreen):
    """Live figures of the node, refreshed every poll."""

    DEFAULT_CSS = """
    DashboardScreen #summary { height: auto; padding: 1 1; border: round $primary; }
    DashboardScreen DataTable { height: auto; max-height: 12; }
    DashboardScreen Label { padding: 1 1 0 1; text-style: bold; }
    """

    def compose_body(self) -> ComposeResult:
        yield Static("waiting for the node…", id="summary")
        yield Label("Validators", id="validators-label")
        validators: DataTable[str | Text] = DataTable(id="validators", cursor_type="row")
        validators.add_columns("name", "status", "last vote", "last seen", "key")
        yield validators
        yield Label("Evidence of misbehaviour", id="evidence-label")
        evidence: DataTable[str | Text] = DataTable(id="evidence", cursor_type="row")
        evidence.add_columns("validator", "vote", "height", "round", "first", "second")
        yield evidence

    def on_poll(self, link: Link, snap: Snapshot | None) -> None:
        if snap is None:
            return  # keep the last figures on screen; the link bar says they are stale
        now_ms = self.explorer.data.now_ms()
        self.query_one("#summary", Static).update(summary(snap, now_ms))
        sync_table(self.query_one("#validators", DataTable), validator_rows(snap, now_ms))
        quorum = snap.validator_set.get("quorum")
        label = f"Validators (quorum {quorum}): {set_changes_text(snap)}" if quorum else "Validators"
        self.query_one("#validators-label", Label).update(label)
        sync_table(self.query_one("#evidence", DataTable), evidence_rows(snap))
        label = f"Evidence of misbehaviour ({len(snap.evidence) or 'none'})"
        self.query_one("#evidence-label", Label).update(label)
