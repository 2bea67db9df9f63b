"""`chain.state.StateCache`: bounded in entries and in bytes (issue 21)."""

from __future__ import annotations

from chain import ledger
from chain.rdata import RType
from chain.records import Record
from chain.state import DomainState, DomainStatus, StateCache, cached_size
from chain.store import MemoryStore
from tools.benchchain import genesis


def state(n: int, records: int = 1, size: int = 4) -> DomainState:
    return DomainState(
        domain=f"d{n}.p2p", owner=b"\x02" * 33, seq=1, head=bytes(32),
        records=tuple(
            Record(name=f"r{k}", rtype=RType.TXT, ttl=300, rdata=bytes([size - 1]) + b"x" * (size - 1))
            for k in range(records)
        ),
        expires_at=0, status=DomainStatus.ACTIVE,
    )  # fmt: skip


def test_the_state_cache_is_bounded_in_entries_oldest_out_first() -> None:
    cache = StateCache(8, 10**9)
    for n in range(30):
        cache.put(f"d{n}.p2p", state(n) if n % 3 else None)
        assert len(cache) <= 8
    assert cache.lookup("d29.p2p") == (True, state(29))
    assert cache.lookup("d27.p2p") == (True, None)  # "not registered" is remembered too
    assert cache.lookup("d21.p2p") == (False, None)
    assert cache.bytes == sum(cached_size(cache.lookup(f"d{n}.p2p")[1]) for n in range(22, 30))


def test_the_state_cache_is_bounded_in_bytes() -> None:
    big = state(0, records=8, size=250)
    budget = 5 * cached_size(big)
    cache = StateCache(1000, budget)
    for n in range(40):
        cache.put(f"d{n}.p2p", state(n, records=8, size=250))
        assert cache.bytes <= budget
    assert len(cache) == 5
    cache.put("huge.p2p", state(1, records=200, size=250))  # larger than the whole cache
    assert cache.lookup("huge.p2p") == (False, None) and len(cache) == 5


def test_a_state_put_again_is_counted_once() -> None:
    cache = StateCache(4, 10**6)
    for _ in range(10):
        cache.put("a.p2p", state(1))
    assert len(cache) == 1 and cache.bytes == cached_size(state(1))
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0


def test_the_ledger_uses_the_documented_bounds() -> None:
    chain = ledger.Ledger(MemoryStore(), genesis())
    assert chain.tree._levels == ledger.TREE_CACHE_LEVELS == 12  # <= 4,095 nodes, ~1.1 MiB
    assert chain._states._size == ledger.STATE_CACHE_SIZE == 2048
    assert chain._states._max_bytes == ledger.STATE_CACHE_BYTES == 2 * 2**20
