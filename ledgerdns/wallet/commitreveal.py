"""`wallet register` on a network with commit-reveal: commit, wait, reveal (docs/naming.md).

The steps, each recorded in the wallet (`ledgerdns.wallet.pending`) before it
is taken so that running the same command again resumes:

1. a fresh random salt, saved;
2. the proof-of-work stamp for ``commitment(genesis, domain, owner, salt)``
   (about `stamp_count * stamp_work` Argon2id evaluations), saved;
3. the signed commit, saved, then sent, and its block height, saved once final;
4. waiting until the next block may carry the reveal (`reveal_delay` heights);
5. the reveal: the registration with the salt, built on the name's latest
   state (after a later commit's reveal, it takes the name over).

Nothing names the domain to the node before step 5, and step 5 only happens
once the commit is in a finalized block.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import Any, Protocol

from chain.commits import build_commit, build_reveal, make_commitment
from chain.crypto import PrivateKey
from chain.params import NamingParams
from chain.records import Record
from chain.stamp import renewal_seed, solve_stamp, stamp_seed
from chain.tx import Transaction
from chain.txbuilder import DomainView, valid_until
from ledgerdns.wallet.context import Outcome, Wallet
from ledgerdns.wallet.errors import NodeError, UsageError
from ledgerdns.wallet.index import view_summary
from ledgerdns.wallet.link import view_from_json
from ledgerdns.wallet.pending import PendingRegistration, PendingStore

POLL_S = 0.25
COMMIT_WAIT_S = 60.0  # how long to wait for the commit's block (the RPC's limit)


class RegisterProgress(Protocol):
    """What `register_by_commit` tells the user while it works (a progress bar, or nothing)."""

    def stamp(self, evaluations: int, expected: int) -> None:
        """The stamp search has done `evaluations` of about `expected`."""

    def heights(self, head: int, target: int) -> None:
        """The chain is at `head`; the reveal may go once it reaches `target`."""

    def note(self, text: str) -> None:
        """A step begins."""


class _Quiet:
    def stamp(self, evaluations: int, expected: int) -> None:
        return None

    def heights(self, head: int, target: int) -> None:
        return None

    def note(self, text: str) -> None:
        return None


def naming_from_status(status: dict[str, Any]) -> NamingParams | None:
    """The network's naming rules from the node's status (None: an older node without them).

    Raises:
        NodeError: the status carries a malformed ``naming`` object.
    """
    doc = status.get("naming")
    if doc is None:
        return None
    known = {f.name for f in dataclasses.fields(NamingParams)}
    try:
        values: dict[str, Any] = {
            k: tuple(int(x) for x in v) if isinstance(v, list) else int(v)
            for k, v in doc.items()
            if k in known
        }
        return NamingParams(**values)
    except (AttributeError, TypeError, ValueError):
        raise NodeError("the node's status has a malformed naming object", code="bad-reply") from None


def register_by_commit(
    wallet: Wallet,
    *,
    status: dict[str, Any],
    genesis_hash: bytes,
    domain: str,
    key_name: str,
    key: PrivateKey,
    records: tuple[Record, ...],
    naming: NamingParams,
    wait: float | None,
    progress: RegisterProgress | None = None,
) -> Outcome:
    """Register `domain` by commit and reveal, resuming a registration under way.

    Raises:
        UsageError: another key's registration of the name is under way.
        NodeError: the node refused a step, or the commit's reveal window closed.
    """
    progress = progress or _Quiet()
    store = PendingStore(wallet.root)
    entry = store.load(domain, genesis_hash)
    if entry is not None and entry.key != key_name:
        raise UsageError(
            f"a registration of {domain} with key {entry.key!r} is under way in this wallet; "
            f"run `ledgerdns wallet register {domain} --key {entry.key}` to finish it"
        )
    if entry is None:
        entry = PendingRegistration(
            domain=domain, genesis_hash=genesis_hash, key=key_name, salt=secrets.token_bytes(16),
            work=naming.required_work(domain), records=tuple(r.to_text(domain) for r in records),
        )  # fmt: skip
        store.save(entry)  # the salt is kept before anything can depend on it
    else:
        saved = tuple(Record.from_text(line, origin=domain) for line in entry.records)
        if records and records != saved:
            raise UsageError(
                f"a registration of {domain} with other records is under way in this wallet "
                f"({'; '.join(entry.records) or 'no records'}); run the command without --record "
                "to finish it, then change the records"
            )
        records = saved
    chain_id = str(status["chain_id"])
    if entry.stamp is None:
        progress.note(f"computing the registration stamp for {domain}")
        commitment = make_commitment(genesis_hash, domain, key.public_key, entry.salt)
        seed = stamp_seed(genesis_hash, commitment, key.public_key, entry.work)
        expected = naming.stamp_count * entry.work
        stamp = solve_stamp(seed, entry.work, naming,
                            progress=lambda n, _found: progress.stamp(n, expected))  # fmt: skip
        entry = entry.but(stamp=stamp)
        store.save(entry)
    if entry.commit_height is None:
        entry = _commit(wallet, store, entry, status, chain_id, key, wait, progress)
        if entry.commit_height is None:
            return _sent_only(entry)
    height = _await_reveal_height(wallet, store, entry, naming, progress)
    outcome = _reveal(wallet, store, entry, height, chain_id, key, records, wait, progress)
    if outcome.data.get("status") == "finalized" and entry.commit_height is not None:
        until = entry.commit_height + naming.reveal_window
        outcome.data["provisional_until"] = until
        outcome.show.append(
            f"until height {until} an earlier commit of the same name could still take it, "
            "so its records and owner cannot change before then"
        )
    return outcome


def _deadline(wallet: Wallet, status: dict[str, Any]) -> int:
    lifetime = status.get("max_tx_lifetime_s")
    return valid_until(
        int(status.get("head_time_ms") or 0), wallet.now_s(), lifetime if isinstance(lifetime, int) else None
    )


def _commit(
    wallet: Wallet, store: PendingStore, entry: PendingRegistration, status: dict[str, Any],
    chain_id: str, key: PrivateKey, wait: float | None, progress: RegisterProgress,
) -> PendingRegistration:  # fmt: skip
    """Send the commit (again: the same bytes are harmless) and note its height once final."""
    assert entry.stamp is not None
    node = wallet.node()
    tx = None if entry.commit_tx is None else Transaction.from_bytes(entry.commit_tx)
    if tx is None or tx.body.valid_until < wallet.now_s():
        tx = build_commit(
            key=key, chain_id=chain_id, genesis_hash=entry.genesis_hash,
            commitment=make_commitment(entry.genesis_hash, entry.domain, key.public_key, entry.salt),
            work=entry.work, stamp=entry.stamp, deadline=_deadline(wallet, status),
        )  # fmt: skip
        entry = entry.but(commit_tx=tx.to_bytes())
        store.save(entry)  # before it leaves: a resumed run re-sends these bytes
    progress.note("sending the commit (the name stays hidden)")
    result = node.submit(tx, None if wait is None else max(wait, COMMIT_WAIT_S))
    if result.get("status") != "finalized":
        return entry
    entry = entry.but(commit_height=int(result["height"]))
    store.save(entry)
    return entry


def _sent_only(entry: PendingRegistration) -> Outcome:
    data = {
        "ok": True, "action": "committed", "domain": entry.domain, "status": "pending",
        "txid": None if entry.commit_tx is None else Transaction.from_bytes(entry.commit_tx).txid.hex(),
    }  # fmt: skip
    return Outcome(data=data, show=[
        f"sent the commit for {entry.domain}, not in a block yet; run the same "
        "`ledgerdns wallet register` again to continue"
    ])  # fmt: skip


def _await_reveal_height(
    wallet: Wallet, store: PendingStore, entry: PendingRegistration, naming: NamingParams,
    progress: RegisterProgress,
) -> int:  # fmt: skip
    """Wait until the next block may carry the reveal; that block's height."""
    assert entry.commit_height is not None
    first = entry.commit_height + naming.reveal_delay
    last = entry.commit_height + naming.reveal_window
    while True:
        head = int(wallet.node().status()["height"])
        if head + 1 > last:
            store.drop(entry.domain, entry.genesis_hash)
            raise NodeError(
                f"the commit for {entry.domain} (block {entry.commit_height}) could be revealed "
                f"until height {last}, the chain is at {head}: run the command again to start over",
                code="reveal-too-late",
            )
        if head + 1 >= first:
            return head + 1
        progress.heights(head, first - 1)
        time.sleep(POLL_S)


def _reveal(
    wallet: Wallet, store: PendingStore, entry: PendingRegistration, height: int, chain_id: str,
    key: PrivateKey, records: tuple[Record, ...], wait: float | None, progress: RegisterProgress,
) -> Outcome:  # fmt: skip
    assert entry.commit_height is not None
    node = wallet.node()
    view = view_from_json(entry.domain, node.domain(entry.domain))
    if view.status == "active" and view.owner == key.public_key:
        return _already_ours(wallet, store, entry, view)  # an earlier run's reveal landed or waits
    progress.note(f"revealing {entry.domain} (commit in block {entry.commit_height})")
    tx = build_reveal(
        key=key, chain_id=chain_id, genesis_hash=entry.genesis_hash, domain=entry.domain,
        seq=view.seq + 1, prev=view.head, records=records, salt=entry.salt,
        commit_height=entry.commit_height, deadline=_deadline(wallet, node.status()),
    )  # fmt: skip
    try:
        result = node.submit(tx, wait)
    except NodeError as exc:
        if exc.code in ("commit-not-found", "reveal-too-late", "stamp-too-weak"):
            store.drop(entry.domain, entry.genesis_hash)  # this commit can never register it
        raise
    after = view_from_json(entry.domain, node.domain(entry.domain))
    wallet.index.update(after)
    finalized = result.get("status") == "finalized"
    if finalized:
        store.drop(entry.domain, entry.genesis_hash)
    data: dict[str, Any] = {
        "ok": True, "action": "registered", "domain": entry.domain, "txid": tx.txid.hex(),
        "seq": tx.body.seq, "key": entry.key, "owner": bytes(key.public_key).hex(),
        "records": list(entry.records), "status": "finalized" if finalized else "pending",
        "height": result.get("height") if finalized else None, "commit_height": entry.commit_height,
        "expires_at": after.expires_at, "state": view_summary(after),
    }  # fmt: skip
    if finalized:
        line = (f"registered {entry.domain} in block {data['height']} (commit in block "
                f"{entry.commit_height}, tx {data['txid'][:16]})")  # fmt: skip
    else:
        line = (f"sent: reveal of {entry.domain} (tx {data['txid'][:16]}), not in a block yet; "
                f"`ledgerdns wallet show {entry.domain}` shows when it lands")  # fmt: skip
    return Outcome(data=data, show=[line])



def stamped_renewal(
    tx: Transaction,
    key: PrivateKey,
    naming: NamingParams,
    genesis_hash: bytes,
    progress: RegisterProgress | None = None,
) -> Transaction:
    """`tx` (a renewal) with the stamp a network with stamps asks of it, signed again."""
    progress = progress or _Quiet()
    body = tx.body
    work = naming.required_work(body.domain)
    progress.note(f"computing the renewal stamp for {body.domain}")
    seed = renewal_seed(genesis_hash, body.domain, body.owner, body.prev, work)
    expected = naming.stamp_count * work
    stamp = solve_stamp(seed, work, naming, progress=lambda n, _found: progress.stamp(n, expected))
    return Transaction.sign(dataclasses.replace(body, stamp_work=work, stamp=stamp), key, genesis_hash)


def _already_ours(
    wallet: Wallet, store: PendingStore, entry: PendingRegistration, view: DomainView
) -> Outcome:
    wallet.index.update(view)
    final = view.pending == 0
    if final:
        store.drop(entry.domain, entry.genesis_hash)
    data: dict[str, Any] = {
        "ok": True, "action": "registered", "domain": entry.domain, "txid": view.head.hex(),
        "seq": view.seq, "key": entry.key, "owner": bytes(view.owner or b"").hex(),
        "records": list(entry.records), "status": "finalized" if final else "pending",
        "height": None, "commit_height": entry.commit_height, "expires_at": view.expires_at,
        "state": view_summary(view),
    }  # fmt: skip
    line = (f"{entry.domain} is registered to this wallet's key {entry.key!r}" if final else
            f"{entry.domain}: the reveal is sent and waits for a block; run again to see it land")
    return Outcome(data=data, show=[line])
