"""The packed map under the UDP worker's name table, against a dict."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerdns.dns.arena import Arena

keys = st.binary(min_size=1, max_size=40)
values = st.binary(max_size=300)
ops = st.lists(st.tuples(st.sampled_from(["put", "pop"]), keys, values), max_size=300)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_it_behaves_as_a_dict(steps: list[tuple[str, bytes, bytes]]) -> None:
    arena, model = Arena(), {}
    for op, key, value in steps:
        if op == "put":
            arena[key] = value
            model[key] = value
        else:
            arena.pop(key)
            model.pop(key, None)
        assert len(arena) == len(model)
    for key, value in model.items():
        assert arena.get(key) == value
    for _, key, _ in steps:
        if key not in model:
            assert arena.get(key) is None


def test_growth_and_compaction_keep_every_entry_and_give_memory_back() -> None:
    rng = random.Random(7)
    arena, model = Arena(), {}
    for i in range(60_000):  # grows the index several times
        key = b"name%d.p2p" % i
        model[key] = arena_value = rng.randbytes(rng.randrange(20, 120))
        arena[key] = arena_value
    full = arena.nbytes
    for _ in range(5):  # every value replaced 5 times: garbage would be 5x the live bytes
        for key in list(model):
            model[key] = value = rng.randbytes(rng.randrange(20, 120))
            arena[key] = value
    assert all(arena.get(key) == value for key, value in model.items())
    assert arena.nbytes < 1.5 * full  # compacted as it went
    for key in list(model)[::2]:
        arena.pop(key)
        del model[key]
    assert len(arena) == len(model)
    assert all(arena.get(key) == value for key, value in model.items())
    arena.clear()
    assert len(arena) == 0 and arena.get(b"name1.p2p") is None
