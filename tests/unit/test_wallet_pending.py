"""The wallet's record of registrations under way (ledgerdns/wallet/pending.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ledgerdns.wallet.errors import WalletError
from ledgerdns.wallet.pending import PendingRegistration, PendingStore

GENESIS = b"\x22" * 32


def entry(**changes: object) -> PendingRegistration:
    base = PendingRegistration(domain="alice.p2p", genesis_hash=GENESIS, key="default",
                               salt=b"s" * 16, work=4608, records=("@ 300 IN A 192.0.2.1",))  # fmt: skip
    return base.but(**changes)


def test_round_trip_each_step(tmp_path: Path) -> None:
    store = PendingStore(tmp_path)
    assert store.load("alice.p2p", GENESIS) is None and store.all() == []
    for step in (entry(), entry(stamp=b"n" * 128), entry(stamp=b"n" * 128, commit_tx=b"tx", commit_height=7)):
        store.save(step)
        assert store.load("alice.p2p", GENESIS) == step
    path = next((tmp_path / "pending").glob("*.json"))
    assert path.name == f"{GENESIS.hex()[:16]}-alice.p2p.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.load("alice.p2p", b"\x33" * 32) is None  # another network's is another file
    store.drop("alice.p2p", GENESIS)
    assert store.load("alice.p2p", GENESIS) is None


def test_a_damaged_file_is_reported_and_skipped_in_lists(tmp_path: Path) -> None:
    store = PendingStore(tmp_path)
    store.save(entry(domain="bob.p2p"))
    (tmp_path / "pending" / f"{GENESIS.hex()[:16]}-alice.p2p.json").write_text("{not json")
    with pytest.raises(WalletError, match="remove it to start over"):
        store.load("alice.p2p", GENESIS)
    assert [p.domain for p in store.all()] == ["bob.p2p"]
