"""``wallet rotate DOMAIN``: move a domain to a new key of this wallet, safely.

1. A new key is derived from the wallet's seed (so the words restore it) and
   written to disk, synced, before anything is signed.
2. The rotation is written down (``rotations.json``: domain, old key, new key,
   then the transfer's txid), so a crash or a timeout can be resumed.
3. The old key signs a transfer of the domain to the new key (the chain's
   ``transfer`` op), and the command waits until a finalized block holds it:
   the node's finalized state names the new key as owner.
4. Only then is the old key marked retired for that domain (``retired.json``)
   and the rotation's record dropped. The old key file is never removed: it
   signed the domain's history and may own other domains.

Running ``rotate DOMAIN`` again while a rotation is recorded resumes it: it
waits for a transfer still pending, finishes one that became final, or sends
the transfer again (to the same new key) if the node dropped it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import RenderableType

from chain.crypto import PublicKey
from chain.tx import Op
from ledgerdns.wallet import writes
from ledgerdns.wallet.context import Outcome, Wallet
from ledgerdns.wallet.errors import NodeError, UsageError, WalletError
from ledgerdns.wallet.index import view_summary
from ledgerdns.wallet.keystore import validate_key_name, write_private
from ledgerdns.wallet.link import view_from_json
from ledgerdns.wallet.seed import create_key

FORMAT_VERSION = 1
MAX_SUBMIT_WAIT_S = 60.0  # the RPC's limit on one submit's wait
POLL_S = 0.25


class NotFinal(WalletError):
    """The transfer was sent but is not final yet; the old key stays in use."""

    code = "not-final"

    def __init__(self, message: str, data: dict[str, Any]) -> None:
        super().__init__(message)
        self.data = data


class RotationAbandoned(WalletError):
    """The domain went to a key that is neither the old nor the new one."""

    code = "rotation-abandoned"


# -- the record of rotations in progress --


def _path(wallet: Wallet) -> Path:
    return wallet.root / "rotations.json"


def pending_rotations(wallet: Wallet) -> dict[str, dict[str, Any]]:
    """Rotations sent but not yet final, by domain."""
    try:
        doc = json.loads(_path(wallet).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise WalletError(f"cannot read {_path(wallet)}: {exc}") from None
    pending = doc.get("pending") if isinstance(doc, dict) else None
    if not isinstance(pending, dict):
        raise WalletError(f"{_path(wallet)} is not a list of rotations")
    return {str(k): v for k, v in pending.items() if isinstance(v, dict)}


def _save(wallet: Wallet, pending: dict[str, dict[str, Any]]) -> None:
    text = json.dumps({"version": FORMAT_VERSION, "pending": pending}, indent=2, sort_keys=True)
    write_private(_path(wallet), text + "\n", replace=True)


def _record(wallet: Wallet, domain: str, entry: dict[str, Any] | None) -> None:
    pending = pending_rotations(wallet)
    if entry is None:
        pending.pop(domain, None)
    else:
        pending[domain] = entry
    _save(wallet, pending)


# -- the command --


def default_key_name(wallet: Wallet, domain: str) -> str:
    """``DOMAIN-N`` for the first N from 1 that names no key yet."""
    stem = domain[:56].rstrip(".-")
    taken = set(wallet.keystore.names())
    n = 1
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


def rotate(
    wallet: Wallet,
    domain: str,
    new_name: str | None,
    wait_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Rotate `domain` to a new key (or resume a recorded rotation), waiting until final.

    Raises:
        NotOwner, NodeError: the wallet does not own the domain, or the node refuses.
        NotFinal: the transfer is not final after `wait_s` seconds (run again to resume).
        RotationAbandoned: the domain meanwhile went to another key.
    """
    target = writes.load_target(wallet, domain)
    entry = pending_rotations(wallet).get(domain)
    if entry is not None:
        if new_name is not None and new_name != entry["new_key"]:
            raise UsageError(
                f"a rotation of {domain} to key {entry['new_key']!r} is in progress: run "
                f"`ledgerdns wallet rotate {domain}` without --new-key to finish it"
            )
        return _resume(wallet, target, entry, wait_s, sleep)
    old_key = writes.owner_key_name(wallet, target.view)
    name = validate_key_name(new_name) if new_name else default_key_name(wallet, domain)
    insecure = not wallet.keystore.info(old_key).encrypted  # the new key is kept as the old was
    info, seed_made = create_key(wallet.keystore, wallet.passphrases, name, insecure=insecure)
    entry = {
        "old_key": old_key,
        "new_key": name,
        "new_public_key": bytes(info.public_key).hex(),
        "started_ms": wallet.now_ms(),
        "txid": None,
        "seed_created": seed_made,
    }
    _record(wallet, domain, entry)  # before signing: a crash after it can be resumed
    return _send_and_wait(wallet, target, entry, wait_s, sleep)


def _resume(
    wallet: Wallet,
    target: writes.Target,
    entry: dict[str, Any],
    wait_s: float,
    sleep: Callable[[float], None],
) -> Outcome:
    domain, view = target.view.domain, target.view
    new_public = PublicKey(bytes.fromhex(entry["new_public_key"]))
    final = _final_owner(wallet, domain)
    if final == new_public:
        return _finish(wallet, domain, entry, entry.get("height"))
    if view.owner == new_public:  # the transfer is pending: wait for it
        return _wait_final(wallet, domain, entry, wait_s, sleep)
    old = wallet.keystore.find(view.owner) if view.owner is not None else None
    if view.status != "active" or old != entry["old_key"]:
        _record(wallet, domain, None)
        owner = "nobody" if view.owner is None else bytes(view.owner).hex()
        raise RotationAbandoned(
            f"{domain} is {view.status}, owned by {owner}: neither the old key "
            f"{entry['old_key']!r} nor the new one {entry['new_key']!r}; the rotation was dropped"
        )
    return _send_and_wait(wallet, target, entry, wait_s, sleep)  # the node dropped it: again


def _send_and_wait(
    wallet: Wallet,
    target: writes.Target,
    entry: dict[str, Any],
    wait_s: float,
    sleep: Callable[[float], None],
) -> Outcome:
    domain = target.view.domain
    new_public = PublicKey(bytes.fromhex(entry["new_public_key"]))
    started = wallet.now_ms()
    sent = writes.send(
        wallet, target, Op.TRANSFER, entry["old_key"],
        wait=min(wait_s, MAX_SUBMIT_WAIT_S), new_owner=new_public,
    )  # fmt: skip
    entry = {**entry, "txid": sent.data["txid"]}
    _record(wallet, domain, entry)
    if sent.data["status"] == "finalized":
        return _finish(wallet, domain, entry, sent.data["height"])
    left = max(0.0, wait_s - (wallet.now_ms() - started) / 1000)
    return _wait_final(wallet, domain, entry, left, sleep)


def _final_owner(wallet: Wallet, domain: str) -> PublicKey | None:
    """The owner in the node's finalized state (pending transactions not counted)."""
    doc = wallet.node().domain(domain)
    if doc is None:
        return None
    try:
        return PublicKey(bytes.fromhex(doc["owner"]))
    except (KeyError, TypeError, ValueError):
        raise NodeError(f"the node's reply about {domain} has no owner", code="bad-reply") from None


def _wait_final(
    wallet: Wallet,
    domain: str,
    entry: dict[str, Any],
    wait_s: float,
    sleep: Callable[[float], None],
) -> Outcome:
    new_public = PublicKey(bytes.fromhex(entry["new_public_key"]))
    deadline = wallet.now_ms() + int(wait_s * 1000)
    while True:
        if _final_owner(wallet, domain) == new_public:
            return _finish(wallet, domain, entry, None)
        if wallet.now_ms() >= deadline:
            break
        sleep(POLL_S)
    data = {"domain": domain, "old_key": entry["old_key"], "new_key": entry["new_key"],
            "txid": entry["txid"], "status": "pending"}  # fmt: skip
    raise NotFinal(
        f"the transfer of {domain} to the new key {entry['new_key']!r} (tx "
        f"{str(entry['txid'])[:16]}) is not final after {wait_s:g} s; {entry['old_key']!r} stays "
        f"the key in use. Run `ledgerdns wallet rotate {domain}` again to wait for it",
        data,
    )


def _finish(
    wallet: Wallet, domain: str, entry: dict[str, Any], height: int | None
) -> Outcome:
    """The transfer is final: retire the old key for `domain`, drop the record, report."""
    old, new = entry["old_key"], entry["new_key"]
    if height is None:
        steps = wallet.node().history(domain)
        height = next((s.get("height") for s in steps if s.get("txid") == entry["txid"]), None)
    old_public = bytes(wallet.keystore.info(old).public_key).hex()
    wallet.keystore.retire(old, {
        "domain": domain, "successor": new, "successor_public_key": entry["new_public_key"],
        "txid": entry["txid"], "retired_ms": wallet.now_ms(),
    })  # fmt: skip
    _record(wallet, domain, None)
    view = view_from_json(domain, wallet.node().domain(domain))
    wallet.index.update(view)
    still = sorted(
        name for name, summary in wallet.index.load().items()
        if name != domain and summary.get("owner") == old_public
    )  # fmt: skip
    data: dict[str, Any] = {
        "ok": True,
        "action": "rotated",
        "domain": domain,
        "old_key": old,
        "old_public_key": old_public,
        "new_key": new,
        "new_public_key": entry["new_public_key"],
        "txid": entry["txid"],
        "height": height,
        "status": "finalized",
        "old_key_still_owns": still,
        "state": view_summary(view),
    }
    show: list[RenderableType] = [
        f"rotated {domain}: key {new!r} ({entry['new_public_key'][:16]}…) owns it in a finalized "
        f"block; {old!r} is retired for it (kept in the wallet, not deleted)",
    ]
    if entry.get("seed_created"):
        show.append("this wallet now has a seed, and the new key comes from it: write its words "
                    "down with `ledgerdns wallet backup` (they do not restore the older keys)")
    if still:
        show.append(f"{old!r} still owns {', '.join(still)}: rotate those too if it leaked")
    return Outcome(data=data, show=show)
