"""The UDP worker process: answers repeat questions from its own table of encoded replies.

The node binds the UDP socket and starts one or more workers on it
(``python -m ledgerdns.dns.udpworker``, see `ledgerdns.dns.workers`). A worker
blocks in ``recvfrom`` and, for a question it has answered before (the same
bytes after the ID), sends the stored reply with the new ID: no parsing, no
event loop, and nothing the node does (applying blocks, gossip) can stall it.
Anything else goes up to the node, which answers it (from the ledger, the
forwarder, ...) and sends the reply back down with whether and how long it may
be kept. After each block the node sends down what the block made stale.

Two socket pairs join a worker to the node: "up" (worker to node,
non-blocking: when the node is behind, the query is dropped rather than
stalling the worker) and "down" (node to worker, read by a second thread).
Messages are `marshal`-encoded tuples between our own processes. The worker
exits when the node closes "down" (also when the node dies). Stdlib only, so
it starts fast.
"""

from __future__ import annotations

import heapq
import json
import marshal
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from ledgerdns.dns import mmsg
from ledgerdns.dns.nametable import NameTable
from ledgerdns.dns.rrl import ALLOW, SLIP, RateLimiter, slip_reply

MAX_QUERY = 16_384
# Bound of a worker's reply table: entries, about 300 bytes each for a one-record
# answer (`ReplyTable`, measured with tracemalloc), so some 60 MiB full.
DEFAULT_ENTRIES = 200_000

# Messages (first element of the tuple).
UP_READY = "ready"  # ("ready", pid)
UP_QUERY = "q"  # ("q", address, data)
UP_FILLED = "f"  # ("f", names): the name table holds every active domain (after a fill)
UP_APPLIED = "a"  # ("a", seq): every change sent before invalidation `seq` is in place
UP_STATS = "s"  # ("s", answered, limited, names): counts since the worker started
STATS_S = 1.0  # how often a worker sends its counts up
DOWN_REPLY = "r"  # ("r", address, reply, key | None, zone | None, serial_bound, expires_at)
DOWN_INVALIDATE = "i"  # ("i", [zone, ...], now_s, seq): answered with ("a", seq)
DOWN_CLEAR = "c"  # ("c",)
# ("n", now_s, [(apex, [(name, blob), ...], extend), ...], last of a fill): `NameTable.replace`
DOWN_NAMES = "n"


class ReplyTable:
    """Reply tails (the reply after its ID) by query tail, with what makes each stale.

    Written by the control thread only; the serving thread only reads `replies`.
    Bounded by `max_entries` (emptied when full). An entry is kept once per
    question asked, so its bookkeeping is as small as the hot path allows
    (issue 21): the reply `Entry` the batched sender needs, the zone's name,
    one slot in the zone index (a set only for a zone with several questions
    kept) and, when the zone can lapse, one heap item.
    """

    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        self.replies: dict[bytes, mmsg.Entry] = {}
        self._zone: dict[bytes, str | None] = {}  # key -> its zone (None: no zone)
        # zone -> its key, or a set of them when more than one is kept
        self._by_zone: dict[str, bytes | set[bytes]] = {}
        self._serial: set[bytes] = set()
        # (lapse time, key); an item may outlive its entry (dropped or kept again
        # since): then it drops the key's reply early at worst, a harmless miss.
        self._expiring: list[tuple[int, bytes]] = []
        self._max = max_entries

    def __len__(self) -> int:
        return len(self.replies)

    def put(
        self, key: bytes, tail: bytes, zone: str | None, serial_bound: bool, expires_at: int
    ) -> None:
        """Keep `tail` for `key`; when full, everything else goes first."""
        if key in self.replies:
            self._drop(key)
        elif len(self.replies) >= self._max:
            # Everything at once: dropping the oldest entry one at a time costs a scan
            # over every slot dropped before it (CPython's dict), ~20 us a put when full.
            self.clear()
        self._zone[key] = zone
        if zone is not None:
            kept = self._by_zone.get(zone)
            if kept is None:
                self._by_zone[zone] = key
            elif isinstance(kept, set):
                kept.add(key)
            else:
                self._by_zone[zone] = {kept, key}
        if serial_bound:
            self._serial.add(key)
        if expires_at:
            heapq.heappush(self._expiring, (expires_at, key))
            if len(self._expiring) > 2 * len(self.replies) + 1024:
                self._compact_expiring()
        self.replies[key] = tail

    def invalidate(self, changed: list[str], now_s: int) -> None:
        """Drop what a block made stale: its zones, serial-bound replies, lapsed domains."""
        for zone in changed:
            kept = self._by_zone.pop(zone, None)
            for key in (kept,) if isinstance(kept, bytes) else kept or ():
                self._drop(key)
        for key in list(self._serial):
            self._drop(key)
        while self._expiring and self._expiring[0][0] <= now_s:
            self._drop(heapq.heappop(self._expiring)[1])

    def clear(self) -> None:
        """Drop everything."""
        self.replies.clear()
        self._zone.clear()
        self._by_zone.clear()
        self._serial.clear()
        self._expiring.clear()

    def _compact_expiring(self) -> None:
        """Forget heap items of dropped keys, and all but the earliest of a key's.

        Every put of a lapsing zone's reply pushes an item, so without this the
        heap would grow with puts (a name updated and asked again and again)
        rather than with entries. The earliest item is the safe one to keep.
        """
        earliest: dict[bytes, int] = {}
        for expires_at, key in self._expiring:
            if key in self.replies and expires_at < earliest.get(key, expires_at + 1):
                earliest[key] = expires_at
        self._expiring = [(expires_at, key) for key, expires_at in earliest.items()]
        heapq.heapify(self._expiring)

    def _drop(self, key: bytes) -> None:
        self.replies.pop(key, None)
        self._serial.discard(key)
        zone = self._zone.pop(key, None)
        if zone is None:
            return
        kept = self._by_zone.get(zone)
        if isinstance(kept, set):
            kept.discard(key)
            if len(kept) == 1:
                self._by_zone[zone] = kept.pop()
        elif kept == key:
            del self._by_zone[zone]


class Worker:
    """One worker's serving loop and control loop."""

    def __init__(
        self,
        sock: socket.socket,
        up: socket.socket,
        down: socket.socket,
        limiter: RateLimiter,
        table: ReplyTable,
        names: NameTable | None = None,
    ) -> None:
        self.sock = sock
        self.up = up
        self.down = down
        self.limiter = limiter
        self.table = table
        self.names = names if names is not None else NameTable()
        self.dropped = 0
        self.answered = 0  # replies sent from the tables (the plain loop's count)
        self.limited = 0  # queries dropped or slipped by rate limiting
        self._batch: mmsg.BatchServer | None = None

    def serve(self) -> None:
        """Answer forever: batched where the system has ``recvmmsg``, else one by one."""
        if mmsg.available():
            check = self.limiter.check if self.limiter.enabled else None
            self._batch = mmsg.BatchServer(
                self.sock.fileno(), self.table.replies, check, self._other, self.names.answer
            )
            self._batch.serve()
        else:
            self._serve_plain()

    def stats(self) -> tuple[str, int, int, int]:
        """The `UP_STATS` message: replies sent from the tables, queries rate-limited, names."""
        answered = self._batch.answered if self._batch is not None else self.answered
        return (UP_STATS, answered, self.limited, len(self.names))

    def _other(self, data: bytes, address: Any, verdict: int) -> None:
        """A datagram the batched loop did not answer: slip, drop or pass it up."""
        if verdict != ALLOW:
            self.limited += 1
        if verdict == SLIP:
            reply = slip_reply(data)
            if reply is not None:
                _send(self.sock.sendto, reply, address)
        elif verdict == ALLOW:
            try:
                self.up.send(marshal.dumps((UP_QUERY, address, data)))
            except OSError:
                self.dropped += 1

    def _serve_plain(self) -> None:
        """The one-by-one loop (the hot loop: keep it short)."""
        recv = self.sock.recvfrom
        send = self.sock.sendto
        get = self.table.replies.get
        from_names = self.names.answer
        up = self.up.send
        dumps = marshal.dumps
        check = self.limiter.check if self.limiter.enabled else None
        while True:
            try:
                data, address = recv(MAX_QUERY)
            except OSError:
                continue  # an ICMP error for an earlier reply, on some systems
            if len(data) < 12 or data[2] & 0x80:
                continue  # not even a header, or a response: never answered
            if check is not None:
                verdict = check(address[0])
                if verdict != ALLOW:
                    self.limited += 1
                    if verdict == SLIP:
                        reply = slip_reply(data)
                        if reply is not None:
                            _send(send, reply, address)
                    continue
            tail = data[2:]
            entry = get(tail)
            if entry is None:
                entry = from_names(tail)
            if entry is not None:
                _send(send, data[:2] + entry, address)
                self.answered += 1
                continue
            try:
                up(dumps((UP_QUERY, address, data)))
            except OSError:
                self.dropped += 1  # the node is behind: drop, as a busy server would

    def control(self) -> None:
        """Apply what the node sends down, send counts up; exit the process when it hangs up."""
        send = self.sock.sendto
        table = self.table
        names = self.names
        self.down.settimeout(STATS_S)
        while True:
            try:
                message = self.down.recv(1 << 20)
            except TimeoutError:
                self._tell_up(marshal.dumps(self.stats()))
                continue
            except OSError:
                message = b""
            if not message:
                os._exit(0)  # the node closed its end or died: nothing left to serve for
            item: tuple[Any, ...] = marshal.loads(message)
            kind = item[0]
            if kind == DOWN_REPLY:
                _, address, reply, key, zone, serial_bound, expires_at = item
                if reply:
                    _send(send, reply, address)
                if key is not None:
                    table.put(key, reply[2:], zone, serial_bound, expires_at)
            elif kind == DOWN_NAMES:
                names.set_now(item[1])
                for apex, entries, extend in item[2]:
                    names.replace(apex, entries, extend=extend)
                names.forget_recent()
                if item[3]:
                    self._tell_up(marshal.dumps((UP_FILLED, len(names))))
            elif kind == DOWN_INVALIDATE:
                names.set_now(item[2])
                names.forget_recent()
                table.invalidate(item[1], item[2])
                self._tell_up(marshal.dumps((UP_APPLIED, item[3])))
            elif kind == DOWN_CLEAR:
                table.clear()
                names.clear()


    def _tell_up(self, message: bytes) -> None:
        """Send the node a message that must not be dropped (the up socket is non-blocking)."""
        while True:
            try:
                self.up.send(message)
                return
            except BlockingIOError:
                time.sleep(0.001)  # the node is busy: it reads the up socket again soon
            except OSError:
                return  # the node is gone: `control` exits when it sees that


def _send(send: Any, reply: bytes, address: Any) -> None:
    try:
        send(reply, address)
    except OSError:
        pass  # the client's port is gone, or the buffer is full: UDP may lose it


def main(argv: list[str]) -> int:
    """``udpworker UDP_FD UP_FD DOWN_FD SETTINGS_JSON``."""
    # Ctrl-C and SIGTERM are the node's to handle: a signal to the whole process group (a
    # terminal, systemd's KillMode=control-group, the cluster tools) would otherwise kill the
    # worker first and the node, still serving, would log it as a crash and start another.
    # The worker still ends with the node: it exits when the node hangs up (`control`).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    udp_fd, up_fd, down_fd = (int(a) for a in argv[:3])
    options = json.loads(argv[3])
    sock = socket.socket(fileno=udp_fd)
    sock.setblocking(True)
    up = socket.socket(fileno=up_fd)
    up.setblocking(False)
    down = socket.socket(fileno=down_fd)
    down.setblocking(True)
    limiter = RateLimiter(
        options["rrl_rate"],
        options["rrl_slip"],
        ipv4_prefix=options["rrl_ipv4_prefix"],
        ipv6_prefix=options["rrl_ipv6_prefix"],
        exempt=options["rrl_exempt"],
    )
    worker = Worker(
        sock,
        up,
        down,
        limiter,
        ReplyTable(options.get("entries", DEFAULT_ENTRIES)),
        NameTable(options.get("payload", 1232)),
    )
    threading.Thread(target=worker.control, name="control", daemon=True).start()
    up.setblocking(True)
    up.send(marshal.dumps((UP_READY, os.getpid())))
    up.setblocking(False)
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
