"""The commands that sign and send a transaction: register, set/add/remove, transfer, renew, release.

Each reads the domain's latest state from the node (pending updates included),
builds the next transaction on it, signs it with the wallet key that owns the
domain, sends it and, unless told not to, waits for the block that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.crypto import PublicKey, validate_public_key
from chain.errors import InvalidUpdate
from chain.names import normalize_name, validate_domain
from chain.records import Record
from chain.tx import Op
from chain.txbuilder import DomainView, build_tx, valid_until
from ledgerdns.wallet.commitreveal import (
    RegisterProgress,
    naming_from_status,
    register_by_commit,
    stamped_renewal,
)
from ledgerdns.wallet.context import Outcome, Wallet
from ledgerdns.wallet.edit import check_record_set, parse_records
from ledgerdns.wallet.errors import BadInput, NodeError, NotOwner, UsageError
from ledgerdns.wallet.index import view_summary
from ledgerdns.wallet.link import RpcLink, view_from_json
from ledgerdns.wallet.pending import PendingStore

_DONE = {
    Op.REGISTER: "registered",
    Op.UPDATE: "updated",
    Op.TRANSFER: "transferred",
    Op.RENEW: "renewed",
    Op.RELEASE: "released",
}


@dataclass(frozen=True, slots=True)
class Target:
    """A domain about to be changed: the node, its status document and the domain's view."""

    node: RpcLink
    status: dict[str, Any]
    view: DomainView


def domain_argument(text: str) -> str:
    """The canonical form of a domain typed by the user.

    Raises:
        BadInput: it is not a valid name.
    """
    try:
        return normalize_name(text)
    except InvalidUpdate as exc:
        raise BadInput(f"domain {text!r}: {exc.args[0]}") from None


def load_target(wallet: Wallet, domain: str) -> Target:
    """Ask the node for its status and the domain's latest state.

    Raises:
        BadInput: the domain is not under one of the network's TLDs.
        NodeError: the node cannot be reached or refuses.
    """
    node = wallet.node()
    status = node.status()
    tlds = status.get("tlds")
    if isinstance(tlds, list):
        try:
            validate_domain(domain, [str(t) for t in tlds])
        except InvalidUpdate as exc:
            raise BadInput(f"{exc.args[0]} (this network's TLDs: {', '.join(tlds)})") from None
    return Target(node=node, status=status, view=view_from_json(domain, node.domain(domain)))


def owner_key_name(wallet: Wallet, view: DomainView) -> str:
    """The wallet key that owns the domain.

    Raises:
        NodeError: the domain is not registered (or released or expired).
        NotOwner: its owner key is not in this wallet.
    """
    if view.status == "free":
        raise NodeError(
            f"{view.domain} is not registered; register it with "
            f"`ledgerdns wallet register {view.domain}`",
            code="name-not-active",
        )
    if view.status != "active":
        raise NodeError(
            f"{view.domain} is {view.status}; `ledgerdns wallet register {view.domain}` "
            "takes it again",
            code="name-not-active",
        )
    assert view.owner is not None
    name = wallet.keystore.find(view.owner)
    if name is None:
        raise NotOwner(
            f"{view.domain} is owned by {bytes(view.owner).hex()}, which is not a key in "
            f"this wallet ({wallet.root})"
        )
    return name


def send(
    wallet: Wallet,
    target: Target,
    op: Op,
    key_name: str,
    *,
    wait: float | None,
    records: tuple[Record, ...] | None = None,
    new_owner: PublicKey | None = None,
    progress: RegisterProgress | None = None,
) -> Outcome:
    """Unlock `key_name`, sign the next transaction, send it, and report.

    A renewal on a network with stamps carries one (searched here, `progress` told).

    Raises:
        WalletError: the key cannot be unlocked or the node refuses.
    """
    info = wallet.keystore.info(key_name)
    passphrase = wallet.passphrases.for_unlock(key_name) if info.encrypted else None
    key = wallet.keystore.unlock(key_name, passphrase)
    view, status = target.view, target.status
    deadline = valid_until(
        int(status.get("head_time_ms") or 0), wallet.now_s(), _int_or_none(status, "max_tx_lifetime_s")
    )
    tx = build_tx(
        view, op=op, key=key, chain_id=str(status["chain_id"]),
        genesis_hash=genesis_hash_of(status), deadline=deadline, records=records, new_owner=new_owner,
    )
    naming = naming_from_status(status)
    if op is Op.RENEW and naming is not None and naming.stamp_work:
        tx = stamped_renewal(tx, key, naming, genesis_hash_of(status), progress)
    result = target.node.submit(tx, wait)
    try:
        after: DomainView | None = view_from_json(
            view.domain, target.node.domain(view.domain)
        )
    except NodeError:  # sent already: report that, even if the node went away since
        after = None
    if after is not None:
        wallet.index.update(after)
    finalized = result.get("status") == "finalized"
    data: dict[str, Any] = {
        "ok": True,
        "action": _DONE[op],
        "domain": view.domain,
        "txid": tx.txid.hex(),
        "seq": tx.body.seq,
        "key": key_name,
        "owner": bytes(tx.body.owner).hex(),
        "records": [r.to_text(view.domain) for r in tx.body.records],
        "status": "finalized" if finalized else "pending",
        "height": result.get("height") if finalized else None,
        "state": None if after is None else view_summary(after),
    }
    return Outcome(data=data, show=[_message(data, op, wait)])


def genesis_hash_of(status: dict[str, Any]) -> bytes:
    """The node's genesis hash: what the signature binds the transaction to.

    Raises:
        NodeError: the node's status does not carry one.
    """
    text = status.get("genesis_hash")
    try:
        value = bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        value = b""
    if len(value) != 32:
        raise NodeError("the node's status has no valid genesis_hash", code="bad-reply")
    return value


def _int_or_none(doc: dict[str, Any], key: str) -> int | None:
    value = doc.get(key)
    return value if isinstance(value, int) else None


def _message(data: dict[str, Any], op: Op, wait: float | None) -> str:
    what = f"{data['action']} {data['domain']}"
    if op is Op.TRANSFER:
        what += f" to {data['owner']}"
    if data["status"] == "finalized":
        return f"{what} in block {data['height']} (tx {data['txid'][:16]})"
    waited = f"not in a block after {wait:g} s" if wait else "not waiting for a block"
    return (
        f"sent: {what} (tx {data['txid'][:16]}), {waited}; "
        f"`ledgerdns wallet show {data['domain']}` shows when it lands"
    )


# -- the commands --


def register(
    wallet: Wallet,
    domain: str,
    key_name: str,
    records: list[str],
    wait: float | None,
    progress: RegisterProgress | None = None,
) -> Outcome:
    """Register a free (or released, or expired) name with key `key_name`.

    On a network with commit-reveal this commits, waits and reveals, and a
    second run resumes a registration under way (`ledgerdns.wallet.commitreveal`).
    """
    parsed = check_record_set(parse_records(records, domain))
    wallet.keystore.info(key_name)  # an unknown key fails before the node is asked
    target = load_target(wallet, domain)
    view = target.view
    naming = naming_from_status(target.status)
    if naming is not None and naming.commit_reveal:
        genesis_hash = genesis_hash_of(target.status)
        under_way = PendingStore(wallet.root).load(domain, genesis_hash) is not None
        if view.status == "active" and not under_way:
            _refuse_taken(wallet, domain, view)
        info = wallet.keystore.info(key_name)
        passphrase = wallet.passphrases.for_unlock(key_name) if info.encrypted else None
        return register_by_commit(
            wallet, status=target.status, genesis_hash=genesis_hash, domain=domain,
            key_name=key_name, key=wallet.keystore.unlock(key_name, passphrase), records=parsed,
            naming=naming, wait=wait, progress=progress,
        )  # fmt: skip
    if view.status == "active":
        _refuse_taken(wallet, domain, view)
    return send(wallet, target, Op.REGISTER, key_name, wait=wait, records=parsed)


def _refuse_taken(wallet: Wallet, domain: str, view: DomainView) -> None:
    if view.status == "active":
        assert view.owner is not None
        mine = wallet.keystore.find(view.owner)
        whose = f"this wallet's key {mine!r}" if mine else bytes(view.owner).hex()
        raise NodeError(f"{domain} is already registered (owner: {whose})", code="name-taken")


def update_records(
    wallet: Wallet, target: Target, records: tuple[Record, ...], wait: float | None
) -> Outcome:
    """Replace the record set of a domain the wallet owns (no-op if unchanged)."""
    key_name = owner_key_name(wallet, target.view)
    if records == target.view.records:
        domain = target.view.domain
        data = {"ok": True, "action": "unchanged", "domain": domain, "txid": None,
                "records": [r.to_text(domain) for r in records]}
        return Outcome(data=data, show=[f"{domain} already has these records; nothing sent"])
    return send(wallet, target, Op.UPDATE, key_name, wait=wait, records=records)


def transfer(wallet: Wallet, domain: str, to: str, wait: float | None) -> Outcome:
    """Give a domain to another key: a key name of this wallet or a public key in hex."""
    receiver = receiver_key(wallet, to)
    target = load_target(wallet, domain)
    key_name = owner_key_name(wallet, target.view)
    if receiver == target.view.owner:
        raise UsageError(f"{domain} is already owned by {to}")
    return send(wallet, target, Op.TRANSFER, key_name, wait=wait, new_owner=receiver)


def receiver_key(wallet: Wallet, to: str) -> PublicKey:
    """The public key named by ``--to``.

    Raises:
        BadInput: it is neither a key of this wallet nor a valid public key.
    """
    if to in wallet.keystore.names():
        return wallet.keystore.info(to).public_key
    try:
        return validate_public_key(bytes.fromhex(to))
    except (ValueError, InvalidUpdate):
        raise BadInput(
            f"--to {to!r} is neither a key of this wallet nor a public key "
            "(66 hex digits, starting 02 or 03)"
        ) from None


def renew(
    wallet: Wallet, domain: str, wait: float | None, progress: RegisterProgress | None = None
) -> Outcome:
    """Extend a domain's lease (a name that never expires stays so); with a stamp where needed."""
    target = load_target(wallet, domain)
    key_name = owner_key_name(wallet, target.view)
    return send(wallet, target, Op.RENEW, key_name, wait=wait, progress=progress)


def release(wallet: Wallet, domain: str, wait: float | None) -> Outcome:
    """Give a domain up: its records go, and anyone may register it."""
    target = load_target(wallet, domain)
    return send(wallet, target, Op.RELEASE, owner_key_name(wallet, target.view), wait=wait)
