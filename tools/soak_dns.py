"""The soak's DNS side: real UDP queries to every node, each answer checked against the load's ledger.

`Prober` runs in a thread: ``rate`` A queries a second for random names whose
registration is accepted, spread over the nodes in turn, one UDP socket per
node, at most `MAX_IN_FLIGHT` outstanding per node. An answer is **wrong** if it
is not NOERROR with exactly one A record, or its address is not one the load
signed for that name, or it is older than the newest version accepted
`STALE_S` before the query was sent (a node may lag a block or two, not more).
No answer within `TIMEOUT_S` is a **timeout**. `check_all` asks every node for
every name once the network has settled and wants exactly the last version.

Replies are parsed here (header, question, A rdata): dnspython costs ~20x more
per reply and would take CPU from the nodes being measured.
"""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tools.soak_load import Ledger, Name, address, seq_of

TIMEOUT_S = 2.0  # a stub resolver gives up about then
STALE_S = 3.0  # how far behind the ledger an answer may be
MAX_IN_FLIGHT = 400  # per node
RETRIES = 3  # check_all: a timed-out name is asked again this many times
TICK_S = 0.01


@dataclass
class DnsStats:
    queries: int = 0
    answered: int = 0
    wrong: int = 0
    timeouts: int = 0
    stale_ok: int = 0  # behind the ledger, within STALE_S
    examples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(text)


def a_records(reply: bytes, qlen: int) -> tuple[int, list[str]] | None:
    """(rcode, A addresses) of a reply whose question section is `qlen` bytes; None if malformed."""
    if len(reply) < 12 + qlen:
        return None
    rcode = reply[3] & 0x0F
    ancount = struct.unpack_from("!H", reply, 6)[0]
    pos, out = 12 + qlen, []
    try:
        for _ in range(ancount):
            pos = _skip_name(reply, pos)
            rtype, _cls, _ttl, rdlen = struct.unpack_from("!HHIH", reply, pos)
            pos += 10
            if rtype == 1 and rdlen == 4:
                out.append(".".join(str(b) for b in reply[pos : pos + 4]))
            pos += rdlen
    except (IndexError, struct.error):
        return None
    return rcode, out


def _skip_name(buf: bytes, pos: int) -> int:
    for _ in range(128):
        length = buf[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length
        if length == 0:
            return pos
    raise IndexError("name too long")


class Prober:
    """A bounded UDP query loop over `nodes` ((host, port) each) checking answers with `ledger`."""

    def __init__(self, nodes: list[tuple[str, int]], ledger: Ledger, *, rate: float,
                 rng: random.Random) -> None:  # fmt: skip
        self.nodes, self.ledger, self.rate, self.rng = nodes, ledger, rate, rng
        self.stats = DnsStats()
        self._socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in nodes]
        for s in self._socks:
            s.setblocking(False)
        # per node: query id -> (name, sent_at, question length, expected check)
        self._flight: list[dict[int, tuple[Name, float, int, Callable[[Name, str, float], bool]]]]
        self._flight = [{} for _ in nodes]
        self._ids = [0] * len(nodes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-dns", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def close(self) -> None:
        for s in self._socks:
            s.close()

    # -- the running load --

    def _run(self) -> None:
        credit, turn, last = 0.0, 0, time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            credit = min(credit + (now - last) * self.rate, self.rate * 0.1)
            last = now
            with self.ledger.lock:
                live = self.ledger.live
                picks = (
                    [live[self.rng.randrange(len(live))] for _ in range(int(credit))]
                    if live
                    else []
                )
            for name in picks:
                self._send(turn % len(self.nodes), name, self._fresh_enough)
                turn += 1
            credit -= len(picks)
            self._receive(TICK_S)
            self._expire(time.monotonic())
        self._settle_flight()

    def _fresh_enough(self, name: Name, addr: str, sent_at: float) -> bool:
        """The answer is a version the load signed, no older than `STALE_S` allows."""
        seq = seq_of(addr)
        if address(name.k, seq) != addr:
            return False
        with self.ledger.lock:
            floor = self.ledger.floor_seq(name, sent_at - STALE_S)
            newest = name.seq + (1 if name.pending is not None else 0)
        if seq < floor or seq > newest:
            return False
        if seq < name.seq:
            self.stats.stale_ok += 1
        return True

    # -- queries --

    def _send(self, i: int, name: Name, check: Callable[[Name, str, float], bool]) -> bool:
        flight = self._flight[i]
        if len(flight) >= MAX_IN_FLIGHT:
            return False
        qid = self._ids[i] = (self._ids[i] + 1) % 65536
        while qid in flight:
            qid = self._ids[i] = (self._ids[i] + 1) % 65536
        wire = _query(name.domain)
        wire = struct.pack("!H", qid) + wire[2:]
        try:
            self._socks[i].sendto(wire, self.nodes[i])
        except BlockingIOError:
            return False
        flight[qid] = (name, time.monotonic(), len(wire) - 12, check)
        self.stats.queries += 1
        return True

    def _receive(self, wait: float) -> None:
        ready, _, _ = select.select(self._socks, [], [], wait)
        for sock in ready:
            i = self._socks.index(sock)
            for _ in range(256):
                try:
                    reply = sock.recv(4096)
                except BlockingIOError:
                    break
                self._answer(i, reply)

    def _answer(self, i: int, reply: bytes) -> None:
        if len(reply) < 12:
            return
        entry = self._flight[i].pop(struct.unpack_from("!H", reply)[0], None)
        if entry is None:  # a late answer to a query already counted as a timeout
            return
        name, sent_at, qlen, check = entry
        self.stats.answered += 1
        parsed = a_records(reply, qlen)
        if parsed is not None and parsed[0] == 3 and check == self._fresh_enough:
            with self.ledger.lock:  # NXDOMAIN for a name registered moments ago: a lagging node
                young = name.accepted_at[0][1] > sent_at - STALE_S
            if young:
                self.stats.stale_ok += 1
                return
        ok = parsed is not None and parsed[0] == 0 and len(parsed[1]) == 1
        if ok and parsed is not None:
            ok = check(name, parsed[1][0], sent_at)
        if not ok:
            self.stats.wrong += 1
            age = time.monotonic() - name.accepted_at[0][1] if name.accepted_at else None
            self.stats.note(
                f"node {i} {name.domain}: {parsed} (ledger seq {name.seq}, registration accepted "
                f"{age and round(age, 1)} s ago, asked {round(time.monotonic() - sent_at, 2)} s ago)"
            )

    def _expire(self, now: float) -> None:
        for i, flight in enumerate(self._flight):
            late = [q for q, (_, at, _, _) in flight.items() if now - at > TIMEOUT_S]
            for qid in late:
                name = flight.pop(qid)[0]
                self.stats.timeouts += 1
                self.stats.note(f"node {i} {name.domain}: timeout")

    def _settle_flight(self) -> None:
        deadline = time.monotonic() + TIMEOUT_S + 0.5
        while any(self._flight) and time.monotonic() < deadline:
            self._receive(0.05)
            self._expire(time.monotonic())

    # -- after the load --

    def check_all(self, names: list[Name]) -> DnsStats:
        """Every name on every node, once settled: the answer must be the name's last version.

        A timed-out query is asked again (up to `RETRIES` times) and counts as a
        timeout only if every try timed out.
        """
        before, self.stats = self.stats, DnsStats()

        def exact(name: Name, addr: str, _sent: float) -> bool:
            return addr == address(name.k, name.seq)

        try:
            for i in range(len(self.nodes)):
                todo = list(names)
                for _ in range(RETRIES + 1):
                    todo = self._ask_all(i, todo, exact)
                    if not todo:
                        break
                self.stats.timeouts += len(todo)
                for name in todo[:5]:
                    self.stats.note(f"node {i} {name.domain}: timeout {RETRIES + 1} times")
            return self.stats
        finally:
            self.stats = before

    def _ask_all(
        self, i: int, names: list[Name], check: Callable[[Name, str, float], bool]
    ) -> list[Name]:
        """Ask node `i` for `names`, 100 in flight; the names that got no answer in time."""
        timed_out: list[Name] = []
        pending = list(reversed(names))
        flight = self._flight[i]
        deadline = time.monotonic() + 60 + len(names) / 200
        while (pending or flight) and time.monotonic() < deadline:
            while pending and len(flight) < 100 and self._send(i, pending[-1], check):
                pending.pop()
            self._receive(0.02)
            now = time.monotonic()
            for qid in [q for q, (_, at, _, _) in flight.items() if now - at > TIMEOUT_S]:
                timed_out.append(flight.pop(qid)[0])
        timed_out += [entry[0] for entry in flight.values()] + pending
        flight.clear()
        return timed_out


def _query(domain: str) -> bytes:
    """An A query for `domain` (ID 0, RD set, no EDNS), built by hand: it is sent 1,000 times a second."""
    labels = b"".join(bytes([len(x)]) + x.encode("ascii") for x in domain.rstrip(".").split("."))
    return struct.pack("!6H", 0, 0x0100, 1, 0, 0, 0) + labels + b"\0\0\x01\0\x01"
