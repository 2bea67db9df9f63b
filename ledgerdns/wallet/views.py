"""The commands that only read: new (a key), list, show, history, export-zone."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from chain.txbuilder import DomainView
from ledgerdns.api.codec import domain_json
from ledgerdns.wallet.context import Outcome, Wallet
from ledgerdns.wallet.errors import NodeError, WalletError
from ledgerdns.wallet.index import view_summary
from ledgerdns.wallet.link import view_from_json
from ledgerdns.wallet.pending import PendingStore
from ledgerdns.wallet.proofs import Trust, Unverified, Verdict, check_domain, proven_history
from ledgerdns.wallet.seed import create_key
from ledgerdns.wallet.writes import load_target
from ledgerdns.wallet.zonefile import write_zone


def _when(unix_s: int) -> str:
    if not unix_s:
        return "never"
    return datetime.datetime.fromtimestamp(unix_s, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


RENEW_SOON_S = 30 * 86400  # `show` suggests a renewal this long before a name lapses


def _span(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _expiry(expires_at: int, now_s: int) -> str:
    """When a name lapses, with how long from now ("never" for a name that never expires)."""
    if not expires_at:
        return "never"
    if expires_at <= now_s:
        return f"{_when(expires_at)} (expired {_span(now_s - expires_at)} ago)"
    return f"{_when(expires_at)} (in {_span(expires_at - now_s)})"


class RegisterBar:
    """`wallet register`'s progress on stderr: the stamp search, then the heights to wait.

    A `ledgerdns.wallet.commitreveal.RegisterProgress`; drawn only on a terminal.
    """

    def __init__(self, console: Console, *, disable: bool) -> None:
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TimeElapsedColumn(), console=console, transient=True, disable=disable,
        )  # fmt: skip
        self._task: TaskID | None = None
        self._kind = ""
        self._quiet = disable

    def __enter__(self) -> RegisterBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _show(self, kind: str, description: str, completed: int, total: int) -> None:
        if self._kind != kind or self._task is None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(description, total=total)
            self._kind = kind
        self._progress.update(self._task, completed=min(completed, total), total=total,
                              description=description)  # fmt: skip

    def stamp(self, evaluations: int, expected: int) -> None:
        """The stamp search's evaluations against their expected number."""
        self._show("stamp", "stamp (proof of work)", evaluations, expected)

    def heights(self, head: int, target: int) -> None:
        """The chain's height against the one the reveal waits for."""
        self._show("heights", f"waiting for height {target} (at {head})", head, target)

    def note(self, text: str) -> None:
        """A step begins: print it above the bar."""
        if not self._quiet:
            self._progress.console.print(text, highlight=False)


def _short(hex_text: str | None) -> str:
    return "-" if not hex_text else f"{hex_text[:16]}…"


def _cells(*values: str) -> list[Text]:
    """Table cells shown as typed (a TXT record's "[x]" is not rich markup)."""
    return [Text(value) for value in values]


def new_key(wallet: Wallet, name: str, *, insecure: bool) -> Outcome:
    """Derive the next key from the wallet's seed and store it (encrypted unless `insecure`)."""
    info, seed_made = create_key(wallet.keystore, wallet.passphrases, name, insecure=insecure)
    assert info.derivation is not None
    data = {
        "ok": True,
        "name": info.name,
        "public_key": bytes(info.public_key).hex(),
        "encrypted": info.encrypted,
        "path": str(wallet.keystore.key_dir / f"{name}.json"),
        "seed": info.derivation.seed,
        "index": info.derivation.index,
        "seed_created": seed_made,
    }
    lines: list[RenderableType] = [f"created key {name!r}: {data['public_key']}"]
    if insecure:
        lines.append(Text("warning: stored without a passphrase", style="yellow"))
    if seed_made:
        lines.append("this wallet now has a seed: write its words down with "
                     "`ledgerdns wallet backup` (they restore every key made from now on)")
    return Outcome(data=data, show=lines)


def list_wallet(wallet: Wallet) -> Outcome:
    """The wallet's keys and tracked domains, refreshed from the node when it answers."""
    keys = wallet.keystore.keys()
    by_key = {bytes(k.public_key).hex(): k.name for k in keys}
    domains = wallet.index.load()
    refreshed, note = False, None
    if domains:
        try:
            node = wallet.node()
            for name in sorted(domains):
                domains[name] = view_summary(view_from_json(name, node.domain(name)))
            wallet.index.save(domains)
            refreshed = True
        except NodeError as exc:  # offline: the cached state is still worth showing
            note = f"not refreshed: {exc}"
    rows = [
        {"domain": name, "key": by_key.get(str(entry.get("owner"))), **entry}
        for name, entry in sorted(domains.items())
    ]
    retired = wallet.keystore.retired()  # keys rotated off domains (`wallet rotate`): kept, not used
    data: dict[str, Any] = {
        "ok": True,
        "wallet": str(wallet.root),
        "keys": [
            {"name": k.name, "public_key": bytes(k.public_key).hex(), "encrypted": k.encrypted,
             "retired_from": sorted(str(e.get("domain")) for e in retired.get(k.name, []))}
            for k in keys
        ],
        "domains": rows,
        "refreshed": refreshed,
    }
    keys_table = Table(title=f"keys in {wallet.root}")
    for column in ("name", "public key", "encrypted", "retired from"):
        keys_table.add_column(column, overflow="fold")
    for k in data["keys"]:
        keys_table.add_row(*_cells(
            k["name"], k["public_key"], "yes" if k["encrypted"] else "NO", ", ".join(k["retired_from"]),
        ))  # fmt: skip
    domain_table = Table(title="domains" + ("" if refreshed else " (cached)"))
    for column in ("domain", "status", "owner", "seq", "records", "expires"):
        domain_table.add_column(column)
    for row in rows:
        owner = row["key"] or f"{_short(row.get('owner'))} (not in wallet)"
        domain_table.add_row(*_cells(
            row["domain"], str(row.get("status")), owner, str(row.get("seq")),
            str(row.get("records")), _expiry(int(row.get("expires_at") or 0), wallet.now_s()),
        ))
    show: list[RenderableType] = [keys_table, domain_table]
    under_way = PendingStore(wallet.root).all()
    data["registrations_under_way"] = [
        {"domain": p.domain, "key": p.key, "commit_height": p.commit_height,
         "stamp_done": p.stamp is not None}
        for p in under_way
    ]  # fmt: skip
    if under_way:
        pending_table = Table(title="registrations under way (run `wallet register` again to finish)")
        for column in ("domain", "key", "step"):
            pending_table.add_column(column)
        for p in under_way:
            step = ("stamp" if p.stamp is None else "commit" if p.commit_height is None
                    else f"reveal (commit in block {p.commit_height})")  # fmt: skip
            pending_table.add_row(*_cells(p.domain, p.key, step))
        show.append(pending_table)
    if note:
        data["note"] = note
        show.append(Text(note, style="yellow"))
    return Outcome(data=data, show=show)


def _proven_view(verdict: Verdict, pending: int) -> DomainView:
    """The finalized state the proof shows, judged at its header's block time (as the node does)."""
    proof = verdict.proof
    if proof.state is None:
        return DomainView.free(proof.domain)
    doc = domain_json(proof.state, [], proof.header.time_ms // 1000)
    return dataclasses.replace(view_from_json(proof.domain, doc), pending=pending)


def show_domain(wallet: Wallet, domain: str, trust: Trust | Unverified) -> Outcome:
    """A domain's state as the node has it, pending updates included.

    With a `Trust`, the finalized state is taken from the node's proof, checked
    against the trusted genesis and the freshness bound (pending updates are
    only counted: nothing proves them); `Unverified` says why it is not.

    Raises:
        ProofRefused: the proof does not verify or is too old.
    """
    view = load_target(wallet, domain).view
    verdict = check_domain(wallet.node(), domain, trust, wallet.now_ms())
    if isinstance(verdict, Verdict):
        view = _proven_view(verdict, view.pending)
    owner = None if view.owner is None else bytes(view.owner).hex()
    key = None if view.owner is None else wallet.keystore.find(view.owner)
    if key is not None or domain in wallet.index.load():
        wallet.index.update(view)  # registered or received with this wallet
    data: dict[str, Any] = {
        "ok": True,
        "domain": domain,
        "status": view.status,
        "owner": owner,
        "key": key,
        "seq": view.seq if view.status != "free" else None,
        "head": view.head.hex() if view.status != "free" else None,
        "expires_at": view.expires_at,
        "expires_in_s": view.expires_at - wallet.now_s() if view.expires_at else None,
        "pending": view.pending,
        "records": [r.to_text(domain) for r in view.records],
    }
    data.update(verdict.to_json())
    verdict_line: list[RenderableType] = [_verdict_line(verdict)]
    if view.status == "free":
        return Outcome(data=data, show=[f"{domain} is not registered", *verdict_line])
    summary = Table(title=domain, show_header=False)
    summary.add_column("field", no_wrap=True)
    summary.add_column("value", overflow="fold")
    unproven = ", not verified" if isinstance(verdict, Verdict) else ""
    summary.add_row(
        "status", view.status + (f" ({view.pending} pending{unproven})" if view.pending else "")
    )
    summary.add_row("owner", f"{owner}" + (f" (key {key!r})" if key else " (not in this wallet)"))
    summary.add_row("seq", str(view.seq))
    summary.add_row("head", view.head.hex())
    now_s = wallet.now_s()
    summary.add_row("expires", _expiry(view.expires_at, now_s))
    records = Table(title="records")
    for column in ("name", "ttl", "type", "data"):
        records.add_column(column, overflow="fold")
    for r in view.records:
        records.add_row(*_cells(r.name, str(r.ttl), r.rtype.name, r.rdata_text()))
    hints: list[RenderableType] = []
    if view.status == "expired":
        hints.append(Text(f"{domain} expired: DNS answers NXDOMAIN for it and anyone may "
                          f"register it (`ledgerdns wallet register {domain}`)", style="yellow"))
    elif view.expires_at and view.expires_at - now_s < RENEW_SOON_S and key is not None:
        hints.append(Text(f"{domain} expires soon: `ledgerdns wallet renew {domain}` extends it",
                          style="yellow"))
    return Outcome(data=data, show=[summary, records, *hints, *verdict_line])


def _verdict_line(verdict: Verdict | Unverified) -> Text:
    """The line saying whether, and against what, the answer was proven."""
    if isinstance(verdict, Verdict):
        return Text(verdict.to_text(), style="green")
    return Text(verdict.to_text(), style="dim" if verdict.reason == "--no-verify" else "yellow")


def history(wallet: Wallet, domain: str, trust: Trust | Unverified) -> Outcome:
    """The domain's finalized chain, oldest first, proven by its hash links (`proven_history`).

    Raises:
        ProofRefused: the proof does not verify, is too old, or the chain does not
            hash down from the proven head.
    """
    load_target(wallet, domain)  # checks the name and the node
    steps, verdict = proven_history(wallet.node(), domain, trust, wallet.now_ms())
    if not steps:
        raise NodeError(f"{domain} was never registered: it has no history", code="not-found")
    entries = []
    for step in steps:
        tx = step.get("tx") or {}
        entries.append({
            "seq": step.get("seq"),
            "txid": step.get("txid"),
            "height": step.get("height"),
            "op": "genesis" if step.get("genesis") else tx.get("op"),
            "owner": tx.get("owner"),
            "records": tx.get("records", []),
        })
    table = Table(title=f"history of {domain}")
    for column in ("seq", "block", "op", "owner", "records", "txid"):
        table.add_column(column)
    for e in entries:
        table.add_row(*_cells(
            str(e["seq"]), str(e["height"]), str(e["op"]), _short(e["owner"]),
            str(len(e["records"])), _short(e["txid"]),
        ))
    data = {"ok": True, "domain": domain, "history": entries, **verdict.to_json()}
    return Outcome(data=data, show=[table, _verdict_line(verdict)])


def export_zone(wallet: Wallet, domain: str, out: Path | None) -> Outcome:
    """The domain's records as an RFC 1035 zone file (to `out`, or printed)."""
    view = load_target(wallet, domain).view
    if view.status == "free":
        raise WalletError(f"{domain} is not registered: there is no zone to export")
    header = [f"{domain}: seq {view.seq}, status {view.status}, head {view.head.hex()}"]
    text = write_zone(domain, view.records, header=header)
    data: dict[str, Any] = {"ok": True, "domain": domain, "records": len(view.records)}
    if out is None:
        data["zone"] = text
        return Outcome(data=data, show=[text.rstrip("\n")])
    out.write_text(text, encoding="utf-8")
    data["path"] = str(out)
    return Outcome(data=data, show=[f"wrote {len(view.records)} records of {domain} to {out}"])
