"""Rate limiting decisions and the UDP worker's reply table (pure, no sockets)."""

from __future__ import annotations

import dns.flags
import dns.message

from ledgerdns.dns.rrl import ALLOW, DROP, SLIP, RateLimiter, slip_reply
from ledgerdns.dns.udpworker import ReplyTable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_prefix_gets_rate_responses_per_second_then_slips_every_second_one() -> None:
    clock = Clock()
    limiter = RateLimiter(3, 2, clock=clock)
    verdicts = [limiter.check("203.0.113.7") for _ in range(7)]
    assert verdicts == [ALLOW, ALLOW, ALLOW, DROP, SLIP, DROP, SLIP]
    # The same /24 shares the budget; another /24 has its own.
    assert limiter.check("203.0.113.200") == DROP
    assert limiter.check("198.51.100.1") == ALLOW
    clock.now += 1
    assert limiter.check("203.0.113.7") == ALLOW


def test_ipv6_clients_are_grouped_by_their_56_and_exempt_networks_are_not_limited() -> None:
    limiter = RateLimiter(1, 0, exempt=["2001:db8:ffff::/48"], clock=Clock())
    assert limiter.check("2001:db8:0:1::1") == ALLOW
    assert limiter.check("2001:db8:0:2::1") == DROP  # same /56, slip 0 drops all
    assert limiter.check("2001:db8:0:100::1") == ALLOW  # another /56
    assert all(limiter.check("2001:db8:ffff::9") == ALLOW for _ in range(10))


def test_rate_zero_turns_limiting_off() -> None:
    limiter = RateLimiter(0)
    assert not limiter.enabled
    assert all(limiter.check("203.0.113.7") == ALLOW for _ in range(1000))


def test_a_slipped_reply_is_the_question_with_tc_set() -> None:
    query = dns.message.make_query("Alice.p2p", "A", id=4242)
    wire = slip_reply(query.to_wire())
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.id == 4242 and reply.flags & dns.flags.QR and reply.flags & dns.flags.TC
    assert reply.flags & dns.flags.RD and reply.question[0].name.to_text() == "Alice.p2p."
    assert not reply.answer and not reply.authority and not reply.additional
    assert slip_reply(b"\x00\x01") is None and slip_reply(b"\x00" * 12) is None


def test_the_reply_table_forgets_what_a_block_made_stale() -> None:
    table = ReplyTable(max_entries=100)
    table.put(b"alice", b"A1", "alice.p2p", False, 0)
    table.put(b"bob", b"B1", "bob.p2p", False, 0)
    table.put(b"nx", b"NX", None, True, 0)  # holds the TLD's SOA: every block changes it
    table.put(b"carol", b"C1", "carol.p2p", False, 1_000)  # lapses at t=1000
    table.invalidate(["alice.p2p"], now_s=999)
    assert set(table.replies) == {b"bob", b"carol"}
    table.invalidate([], now_s=1_000)
    assert set(table.replies) == {b"bob"}
    table.put(b"bob", b"B2", "bob.p2p", False, 0)
    assert table.replies[b"bob"] == b"B2" and len(table) == 1
    table.invalidate(["bob.p2p"], now_s=1_001)
    assert len(table) == 0


def test_the_reply_table_is_bounded_and_empties_when_full() -> None:
    table = ReplyTable(max_entries=3)
    for i in range(3):
        table.put(bytes([i]), b"r", f"d{i}.p2p", i % 2 == 0, 0)
    assert len(table) == 3
    for i in range(3, 5):
        table.put(bytes([i]), b"r", f"d{i}.p2p", i % 2 == 0, 0)
        assert len(table) <= 3
    assert list(table.replies) == [b"\x03", b"\x04"]
    assert not table._serial - set(table.replies) and table._by_zone.keys() == {"d3.p2p", "d4.p2p"}
    table.invalidate(["d3.p2p"], now_s=0)  # d3 by zone; d4 is serial-bound
    assert len(table) == 0


def test_the_reply_table_keeps_one_zone_index_slot_per_key() -> None:
    table = ReplyTable(max_entries=100)
    table.put(b"a1", b"A", "alice.p2p", False, 0)
    table.put(b"a2", b"A", "alice.p2p", False, 0)
    table.put(b"b1", b"B", "bob.p2p", False, 0)
    table.put(b"a1", b"A2", "alice.p2p", False, 0)  # kept again: still one slot
    table.put(b"a3", b"A", "alice.p2p", False, 0)
    table.invalidate(["alice.p2p"], now_s=0)
    assert set(table.replies) == {b"b1"}
    table.put(b"a1", b"A3", "alice.p2p", False, 0)
    table.invalidate(["alice.p2p"], now_s=0)
    assert set(table.replies) == {b"b1"}


def test_the_reply_tables_lapse_heap_is_bounded_by_its_entries() -> None:
    table = ReplyTable(max_entries=10)
    for i in range(5_000):  # the same questions kept again and again, as after updates
        table.put(bytes([i % 20]), b"r", f"d{i % 20}.p2p", False, 10_000 + i)
    kept = len(table)
    assert 0 < kept <= 10
    assert len(table._expiring) <= 2 * len(table) + 1024
    table.invalidate([], now_s=9_999)
    assert len(table) == kept
    table.invalidate([], now_s=20_000)
    assert len(table) == 0
