"""Bounds of the core's memos and of LevelDB's own memory (issue 21): fill past each, check the size."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import plyvel
import pytest

from chain import consensus, consensus_buffer, rules
from chain import tx as tx_module
from chain.crypto import PrivateKey
from chain.quorum import Vote, VoteType
from chain.records import Record
from chain.store import WriteBatch
from chain.tx import ZERO_HASH, Op, Transaction, TxBody
from ledgerdns.dns import rrl
from ledgerdns.dns.forward import Forwarder
from ledgerdns.dns.settings import ForwardSettings
from ledgerdns.storage import leveldb
from tests.unit import test_consensus

KEY = PrivateKey.generate(b"memory bounds")


def tx_bytes(n: int, txt: int = 0) -> bytes:
    records = (Record.from_text(f'@ 300 TXT "{"x" * txt}"', origin="m.p2p"),) if txt else ()
    body = TxBody(
        chain_id="mem", domain=f"m{n:03}.p2p", seq=0, prev=ZERO_HASH, op=Op.REGISTER,
        records=records, owner=KEY.public_key, valid_until=int(time.time()) + 600,
    )  # fmt: skip
    return Transaction.sign(body, KEY, b"\x00" * 32).to_bytes()


@pytest.fixture
def fresh_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tx_module, "_decoded", {})
    monkeypatch.setattr(tx_module, "_decoded_bytes", [0])


@pytest.mark.usefixtures("fresh_memo")
def test_the_tx_decode_memo_is_bounded_in_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tx_module, "DECODED_CACHE_SIZE", 8)
    wires = [tx_bytes(i) for i in range(30)]
    for data in wires:
        assert Transaction.from_bytes(data).to_bytes() == data
    entries, size = tx_module.decoded_cached()
    assert entries == 8 and size == sum(len(d) for d in wires[-8:])  # the newest are kept
    assert Transaction.from_bytes(wires[-1]) is tx_module._decoded[wires[-1]]


@pytest.mark.usefixtures("fresh_memo")
def test_the_tx_decode_memo_is_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    big = [tx_bytes(i, txt=200) for i in range(20)]
    monkeypatch.setattr(tx_module, "DECODED_CACHE_BYTES", 5 * len(big[0]))
    for data in big:
        Transaction.from_bytes(data)
        assert tx_module.decoded_cached()[1] <= 5 * len(big[0])
    assert tx_module.decoded_cached() == (5, sum(len(d) for d in big[-5:]))


def test_leveldb_opens_with_every_memory_bound_explicit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    real = plyvel.DB

    def recording(path: str, **options: Any) -> Any:
        seen.update(options)
        return real(path, **options)

    monkeypatch.setattr(leveldb.plyvel, "DB", recording)
    with leveldb.LevelDBStore.open(tmp_path / "db"):
        pass
    assert seen["lru_cache_size"] == leveldb._LRU_CACHE_BYTES == 8 * 2**20
    assert seen["write_buffer_size"] == leveldb._WRITE_BUFFER_BYTES == 8 * 2**20
    assert seen["max_open_files"] == leveldb._MAX_OPEN_FILES == 256


def test_leveldb_memory_stays_within_its_block_cache_and_write_buffers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small bounds, so a few MB of writes and reads fill them; tables rewritten by
    # compaction leave their cached blocks behind, which only the bound pushes out.
    monkeypatch.setattr(leveldb, "_LRU_CACHE_BYTES", 256 * 1024)
    monkeypatch.setattr(leveldb, "_WRITE_BUFFER_BYTES", 256 * 1024)
    value = bytes(range(256)) * 2
    with leveldb.LevelDBStore.open(tmp_path / "db") as store:
        for generation in range(3):
            for start in range(0, 2400, 400):
                batch = WriteBatch()
                for i in range(start, start + 400):
                    batch.put(b"k%06d" % i, value + bytes([generation]))
                store.write(batch, sync=False)
            store.compact()
            for i in range(0, 2400, 2):
                assert store.get(b"k%06d" % i) == value + bytes([generation])
            # block cache + a full memtable + the one being written out, and slack
            assert store.memory_usage() <= 256 * 1024 * 3 + 64 * 1024
        store.flush()
        assert store.memory_usage() <= 256 * 1024 + 64 * 1024


@pytest.mark.usefixtures("fresh_memo")
def test_final_transactions_leave_the_decode_memo() -> None:
    wires = [tx_bytes(i) for i in range(10)]
    txs = [Transaction.from_bytes(d) for d in wires]
    tx_module.forget_decoded(txs[:7])
    assert tx_module.decoded_cached() == (3, sum(len(d) for d in wires[7:]))
    tx_module.forget_decoded(txs[:7])  # twice is harmless
    assert tx_module.decoded_cached()[0] == 3


def test_the_valid_owner_key_set_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "_VALID_KEYS_MAX", 4)
    monkeypatch.setattr(rules, "_valid_keys", set())
    for i in range(11):
        rules._validate_owner_key(PrivateKey.generate(b"owner %d" % i).public_key)
        assert len(rules._valid_keys) <= 4


def test_rrl_remembers_a_bounded_number_of_client_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rrl, "_MAX_TRACKED", 16)
    limiter = rrl.RateLimiter(1000, 2, clock=lambda: 0.0)
    for i in range(100):
        limiter.check(f"198.51.{i // 250}.{i % 250}")
        assert len(limiter._prefix_of) <= 16


def test_the_forwarder_cache_holds_at_most_cache_entries() -> None:
    fwd = Forwarder(ForwardSettings(upstreams=(), cache_entries=8))
    for i in range(50):
        fwd._store((f"name{i}", 1, 1), object())  # type: ignore[arg-type]
        assert len(fwd._entries) <= 8
    assert ("name49", 1, 1) in fwd._entries  # the newest stay


@pytest.mark.parametrize(("entries", "size", "kept"), [(5, 10**9, 5), (10**9, 3 * 256, 3)])
def test_the_next_height_buffer_is_bounded(
    monkeypatch: pytest.MonkeyPatch, entries: int, size: int, kept: int
) -> None:
    monkeypatch.setattr(consensus_buffer, "FUTURE_BUFFER", entries)
    monkeypatch.setattr(consensus_buffer, "FUTURE_BUFFER_BYTES", size)
    m, _ = test_consensus.machine(0)
    for r in range(consensus.ROUND_WINDOW + 1):
        for vtype in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            for key in test_consensus.KEYS:
                vote = Vote.create(
                    key, chain_id=test_consensus.GENESIS.chain_id,
                    genesis_hash=test_consensus.GENESIS.hash(), vtype=vtype, height=2, round_=r,
                    block_hash=b"",
                )  # fmt: skip
                m.on_vote(vote, test_consensus.NOW)
    assert len(m._future) == kept
