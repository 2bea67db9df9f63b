"""``ledgerdns validator``: propose, approve and list changes of the validator set (issue 15).

A change (add a validator, remove one, rotate one's key) is a transaction
signed by a current validator's key (``--validator-key``); once approvals by a
quorum of the set in force are final, it takes effect two heights later
(chain/validators.py, docs/operations.md "Changing the validator set"). The
commands talk to a node as the wallet does (``--node DATA_DIR`` or ``--rpc URL
--token-file FILE``, through `ledgerdns.wallet.link`), wait for the block that
holds the transaction, and say whether the change is now scheduled (from which
height) or how many approvals it still needs. ``--json`` prints one object,
also on failure (``{"ok": false, "error", "message"}``, by `ledgerdns.cli`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from chain.crypto import PrivateKey, PublicKey
from chain.errors import InvalidUpdate, RejectReason
from chain.quorum import ValidatorSet
from chain.tx import Op, Transaction
from chain.txbuilder import build_validator_tx, valid_until
from chain.validators import CHANGE_DELAY, ChangeAction, Roster, ValidatorChange
from ledgerdns.clock import SYSTEM_CLOCK
from ledgerdns.console import emit_json, make_console
from ledgerdns.keyfiles import load_key
from ledgerdns.validator_args import (
    DEFAULT_NODE_DIR,
    add_commands,
    proposal_argument,
    public_key_argument,
    wait_argument,
)
from ledgerdns.wallet.errors import NodeError, UsageError
from ledgerdns.wallet.link import RpcLink, connect
from ledgerdns.wallet.writes import genesis_hash_of

Json = dict[str, Any]
EXIT_OK, EXIT_INTERRUPTED = 0, 130

# The node's refusals of a validator op, in the operator's terms.
_REFUSED = {
    RejectReason.NOT_VALIDATOR.value: "the node says the signing key is not a validator now",
    RejectReason.PROPOSAL_NOT_FOUND.value: "the node has no such pending proposal",
    RejectReason.BAD_VALIDATOR_CHANGE.value: "the change does not apply to the validator set",
    RejectReason.DUPLICATE.value: "the node already has this (approved or proposed already)",
}


def send(link: RpcLink, tx: Transaction, wait: float | None) -> Json:
    """Submit a validator op; a refusal is said in the operator's terms."""
    try:
        return link.submit(tx, wait)
    except NodeError as exc:
        why = _REFUSED.get(exc.code)
        if why is None:
            raise
        detail = str(exc).split(": ", 2)[-1]
        raise NodeError(f"{why}: {detail}", code=exc.code) from None


# -- reading the node's answers --


def roster_from_json(entry: Json) -> Roster:
    """A ``history`` entry of ``GET /v1/validators`` as a `Roster`.

    Raises:
        NodeError: the entry is not one.
    """
    try:
        members = entry["validators"]
        keys = tuple(PublicKey(bytes.fromhex(m["public_key"])) for m in members)
        return Roster(tuple(str(m["name"]) for m in members), ValidatorSet(keys))
    except (KeyError, TypeError, ValueError, InvalidUpdate) as exc:
        raise NodeError(f"the node's validator history is not understood: {exc}",
                        code="bad-reply") from None  # fmt: skip


def scheduled_at(vset: Json, change: ValidatorChange, approved_from: int) -> Json | None:
    """The history entry whose roster is the one before it with `change` applied.

    The first such one from ``approved_from + CHANGE_DELAY`` on: a change
    completed in block ``H`` takes effect at ``H + 2`` or later.
    """
    history = list(vset.get("history") or [])
    for before, after in zip(history, history[1:], strict=False):
        if int(after["from_height"]) < approved_from + CHANGE_DELAY:
            continue
        try:
            if roster_from_json(before).applied(change) == roster_from_json(after):
                return dict(after)
        except InvalidUpdate:
            continue
    return None


def member_name(vset: Json, key: PublicKey) -> str | None:
    """The name of `key` in the set deciding the next block, None if it is not in it."""
    for member in vset.get("validators") or []:
        if member.get("public_key") == bytes(key).hex():
            return str(member.get("name"))
    return None


def _signer(vset: Json, key: PrivateKey, path: str) -> str:
    name = member_name(vset, key.public_key)
    if name is None:
        names = ", ".join(str(m.get("name")) for m in vset.get("validators") or [])
        raise NodeError(
            f"the key in {path} ({bytes(key.public_key).hex()}) is not a validator at height "
            f"{int(vset.get('height', 0)) + 1} (the validators: {names}); only a validator "
            "may propose or approve a change",
            code=RejectReason.NOT_VALIDATOR.value,
        )
    return name


def _brief(change: ValidatorChange) -> str:
    """``add v4 02ab34cd…``: the change with its key cut short, for a progress line."""
    key = f" {change.key.hex()[:12]}…" if change.key else ""
    return f"{change.action.name.lower()} {change.name}{key}"


def _why(exc: InvalidUpdate) -> str:
    """The rule's own words, without the reason code in front."""
    return str(exc.args[0]) if exc.args else str(exc)


# -- the commands --


def _send(
    link: RpcLink, key: PrivateKey, op: Op, change: bytes, wait: float | None, what: str,
    progress: Console | None,
) -> tuple[Transaction, Json]:  # fmt: skip
    status = link.status()
    lifetime = status.get("max_tx_lifetime_s")
    tx = build_validator_tx(
        op=op, change=change, key=key, chain_id=str(status["chain_id"]),
        genesis_hash=genesis_hash_of(status),
        deadline=valid_until(int(status.get("head_time_ms") or 0), SYSTEM_CLOCK.now_ms() // 1000,
                             lifetime if isinstance(lifetime, int) else None),
    )  # fmt: skip
    if progress is None or not wait:
        return tx, send(link, tx, wait)
    line = (f"sending {what} (tx {tx.txid.hex()[:16]}); waiting up to {wait:g} s for the block "
            "that makes it final…")  # fmt: skip
    if not progress.is_terminal:  # no spinner on a pipe or a file: one plain line instead
        progress.print(line, markup=False, highlight=False, soft_wrap=True)
        return tx, send(link, tx, wait)
    with progress.status(line):
        return tx, send(link, tx, wait)


def _outcome(
    link: RpcLink, tx: Transaction, result: Json, proposal: str, change: ValidatorChange
) -> Json:
    """What became of the change once `tx` was sent: pending, scheduled, or not known."""
    data: Json = {
        "ok": True, "proposal": proposal, "change": change.describe(), "txid": tx.txid.hex(),
        "status": str(result.get("status", "pending")), "height": result.get("height"),
        "approvals": None, "needed": None, "takes_effect_at": None, "state": "sent",
    }  # fmt: skip
    if data["status"] != "finalized":
        return data
    vset = link.validator_set()
    data["needed"] = vset.get("quorum")
    found = next((p for p in vset.get("pending") or [] if p.get("proposal") == proposal), None)
    if found is not None:
        data.update(state="pending", approvals=found.get("approvals"), needed=found.get("needed"),
                    approved_by=[m.get("name") for m in found.get("approved_by") or []])  # fmt: skip
        return data
    entry = scheduled_at(vset, change, int(data["height"]))
    if entry is None:
        data["state"] = "gone"  # lapsed, or refused by its last approval (the set had changed)
        return data
    data.update(state="scheduled", approvals=data["needed"], takes_effect_at=entry["from_height"],
                validators_after=[m["name"] for m in entry.get("validators") or []])  # fmt: skip
    return data


def _message(data: Json, wait: float | None) -> list[str]:
    lines = [f"proposal {data['proposal']}", f"  change: {data['change']}"]
    if data["status"] != "finalized":
        waited = f"not in a block after {wait:g} s" if wait else "not waiting for a block"
        return [*lines, f"  sent (tx {data['txid'][:16]}), {waited}; `ledgerdns validator "
                        "list` shows it once its block is final"]  # fmt: skip
    lines.append(f"  final in block {data['height']} (tx {data['txid'][:16]})")
    if data["state"] == "scheduled":
        lines.append(f"  approved by a quorum: scheduled, the new set decides from height "
                     f"{data['takes_effect_at']} ({', '.join(data['validators_after'])})")
    elif data["state"] == "pending":
        more = int(data["needed"]) - int(data["approvals"])
        lines.append(f"  {data['approvals']} of {data['needed']} approvals; {more} more needed: "
                     f"other validators run `ledgerdns validator approve {data['proposal']} "
                     "--validator-key THEIR_KEY.pem`")  # fmt: skip
    else:
        lines.append("  no longer pending and not scheduled (lapsed, or the set changed so it "
                     "no longer applies): see `ledgerdns validator list`")
    return lines


def propose(args: argparse.Namespace, link: RpcLink, progress: Console | None) -> Json:
    """Sign and send a proposal; wait for it; what became of it."""
    change = change_argument(args)
    key = load_key(Path(os.path.expanduser(args.validator_key)))
    vset = link.validator_set()
    _signer(vset, key, args.validator_key)
    history = list(vset.get("history") or [])
    if history:  # refused here rather than by the node, with the same words
        try:
            roster_from_json(history[-1]).applied(change)
        except InvalidUpdate as exc:
            raise NodeError(f"{change.describe()}: {_why(exc)}", code=exc.code) from None
    wait = wait_argument(args)
    tx, result = _send(link, key, Op.VALIDATOR_PROPOSE, change.to_bytes(), wait,
                       f"proposal {_brief(change)}", progress)  # fmt: skip
    return _outcome(link, tx, result, tx.txid.hex(), change)


def approve(args: argparse.Namespace, link: RpcLink, progress: Console | None) -> Json:
    """Sign and send an approval of a pending proposal; wait for it; what became of it."""
    wanted = proposal_argument(args.proposal_id)
    key = load_key(Path(os.path.expanduser(args.validator_key)))
    vset = link.validator_set()
    name = _signer(vset, key, args.validator_key)
    pending = list(vset.get("pending") or [])
    matches = [p for p in pending if str(p.get("proposal", "")).startswith(wanted)]
    if len(matches) != 1:
        listed = "; ".join(f"{p['proposal'][:16]}… {p['change']}" for p in pending) or "none"
        why = "matches several proposals" if matches else "is not a pending proposal"
        raise NodeError(
            f"{args.proposal_id} {why} (approved already, lapsed, or not in a final block "
            f"yet); pending now: {listed}",
            code=RejectReason.PROPOSAL_NOT_FOUND.value,
        )
    found = matches[0]
    if any(m.get("public_key") == bytes(key.public_key).hex() for m in found["approved_by"]):
        raise NodeError(f"{name} approved proposal {found['proposal'][:16]}… already",
                        code=RejectReason.DUPLICATE.value)  # fmt: skip
    change = ValidatorChange(
        action=ChangeAction[str(found["action"]).upper()], name=str(found["name"]),
        key=bytes.fromhex(found["public_key"]) if found.get("public_key") else b"",
    )  # fmt: skip
    wait = wait_argument(args)
    tx, result = _send(link, key, Op.VALIDATOR_APPROVE, bytes.fromhex(found["proposal"]), wait,
                       f"approval of {_brief(change)}", progress)  # fmt: skip
    data = _outcome(link, tx, result, str(found["proposal"]), change)
    data["approver"] = name
    return data


def change_argument(args: argparse.Namespace) -> ValidatorChange:
    """The change ``propose add|remove|rotate`` names.

    Raises:
        UsageError: a bad name or key.
    """
    action = ChangeAction[args.change_action.upper()]
    key = bytes(public_key_argument(args.pubkey)) if action != ChangeAction.REMOVE else b""
    try:
        return ValidatorChange(action=action, name=args.name, key=key)
    except InvalidUpdate as exc:
        raise UsageError(_why(exc)) from None


# -- list --


def list_table(vset: Json) -> list[Table]:
    """The set in force, the pending changes and the history, as tables."""
    now = Table(title=f"validators deciding height {int(vset['height']) + 1} "
                      f"(quorum {vset['quorum']} of {len(vset['validators'])})")  # fmt: skip
    for column in ("name", "public key", "status", "last vote"):
        now.add_column(column, overflow="fold")
    for v in vset["validators"]:
        vote = "-" if int(v["last_vote_height"]) < 0 else f"h{v['last_vote_height']}"
        now.add_row(v["name"], v["public_key"], "online" if v["online"] else "offline", vote)
    pending = Table(title=f"pending changes ({len(vset['pending']) or 'none'})")
    for column in ("proposal", "change", "approvals", "proposed at", "approved by"):
        pending.add_column(column, overflow="fold")
    for p in vset["pending"]:
        pending.add_row(p["proposal"], p["change"], f"{p['approvals']}/{p['needed']}",
                        str(p["height"]), ", ".join(str(m["name"]) for m in p["approved_by"]))
    history = Table(title="the set since genesis")
    for column in ("from height", "until", "state", "validators"):
        history.add_column(column, overflow="fold")
    for r in vset["history"]:
        until = "-" if r["until_height"] is None else str(r["until_height"])
        history.add_row(str(r["from_height"]), until, r["state"],
                        ", ".join(m["name"] for m in r["validators"]))  # fmt: skip
    return [now, pending, history]


def run(args: argparse.Namespace, out: Console) -> int:
    """Run the chosen ``validator`` command and print its result; the exit status.

    Errors (`LedgerError`, `OSError`) go up to `ledgerdns.cli.main`, which
    prints them as one line or one JSON object.
    """
    if args.node and args.rpc:
        raise UsageError("pass either --node or --rpc, not both")
    if args.validator_command != "list":  # a bad command line fails before any node is asked
        wait_argument(args)
        if args.validator_command == "propose":
            change_argument(args)
        else:
            proposal_argument(args.proposal_id)
        load_key(Path(os.path.expanduser(args.validator_key)))
    node_dir = None if args.rpc else Path(os.path.expanduser(args.node or DEFAULT_NODE_DIR))
    token = Path(os.path.expanduser(args.token_file)) if args.token_file else None
    link = connect(node_dir, args.rpc, token)
    progress = None if args.json else make_console(stderr=True)
    try:
        if args.validator_command == "list":
            data = {"ok": True, **link.validator_set()}
            show: list[Any] = list_table(data)
        else:
            action = propose if args.validator_command == "propose" else approve
            data = action(args, link, progress)
            show = _message(data, wait_argument(args))
    except KeyboardInterrupt:
        make_console(stderr=True).print("interrupted (a transaction already sent may still land)")
        return EXIT_INTERRUPTED
    finally:
        link.close()
    if args.json:
        emit_json(out, data)
    else:
        for item in show:
            out.print(item, markup=False, highlight=False, soft_wrap=isinstance(item, str))
    return EXIT_OK



def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``validator`` command to the main parser."""
    add_commands(commands, run)
