"""The node's side of the UDP workers: starts them, answers what they pass up, keeps them fresh.

See `ledgerdns.dns.udpworker` for the worker itself. Each worker is a child
process sharing the bound UDP socket. Queries it cannot answer arrive here;
`answer` (the server's dispatch) gives either a reply at once, with the cache
facts that let the worker keep it, or an awaitable for the slow faces
(forwarding, UPDATE), which runs as a task. A worker that dies is restarted.
"""

from __future__ import annotations

import inspect
import json
import logging
import marshal
import math
import os
import signal
import socket as stdlib_socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from ledgerdns.dns import udpworker
from ledgerdns.dns.nametable import split_names
from ledgerdns.dns.nametable_build import NameTableSource
from ledgerdns.dns.settings import RrlSettings

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger(__name__)

Address = Any  # a socket address tuple, as recvfrom gives it
_MAX_PENDING = 2_048  # messages queued for one worker before new misses are shed
_MAX_SLOW_TASKS = 512  # concurrent forwarded/UPDATE queries from the workers
_READY_TIMEOUT_S = 20.0
_BATCH = 64  # queries answered per wake-up before other tasks get a turn
_RESTART_PAUSE_S = 0.5
# A fixed mmap threshold for the worker's allocator (glibc): the name table's arena is a few
# large buffers rewritten as it is compacted, and glibc's default raises the threshold past
# each one freed, so the next ones come from the heap and are never given back (measured:
# RSS 3x the arena after 40,000 updates of 10,000 names; with this, 1.2x).
_WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}
_SETTLE_TIMEOUT_S = 1.0
_SETTLE_POLL_S = 0.001
_FILL_AHEAD = 4  # name-table batches queued for a worker before the fill waits for it
_FILL_WAIT_S = 0.005


@dataclass(frozen=True, slots=True)
class Keep:
    """How a worker may keep a reply: until its zone changes, any block (serial-bound), or lapse."""

    zone: str | None
    serial_bound: bool
    expires_at: int


Immediate = tuple[bytes | None, Keep | None]
Answer = Callable[[bytes, Address], Immediate | Awaitable[bytes | None]]


class WorkerPool:
    """`count` worker processes on `sock`, answering misses with `answer`.

    Args:
        sock: the bound UDP socket (blocking; the node never reads it itself).
        count: how many workers (at least 1).
        rrl: rate limiting, applied by the workers.
        answer: the server's dispatch for one UDP query.
        names: where each worker's name table comes from (`ledgerdns.dns.nametable`):
            filled when the worker starts, kept current per block. None: no name
            table, a worker answers only repeats.
        payload: the node's EDNS payload size (what the worker's OPT advertises).
    """

    def __init__(
        self,
        sock: stdlib_socket.socket,
        count: int,
        rrl: RrlSettings,
        answer: Answer,
        *,
        names: NameTableSource | None = None,
        payload: int = 1232,
    ) -> None:
        self._sock = sock
        self._count = count
        self._answer = answer
        self._names = names
        self._payload = payload
        self._options = _options(rrl, payload)
        self._filling: set[int] = set()  # workers whose name table is not complete yet
        self._running: set[int] = set()  # workers started and ready
        self._sent_seq = 0  # the last invalidation sent to the workers
        self._applied: dict[int, int] = {}  # worker -> the last invalidation it applied
        self._stats: dict[int, tuple[int, int, int]] = {}  # worker -> its last `UP_STATS`
        self._retired = (0, 0)  # answered and limited of workers that exited
        self._fill_started = 0.0
        self._outboxes: list[trio.MemorySendChannel[bytes]] = []
        self._slow = trio.CapacityLimiter(_MAX_SLOW_TASKS)
        self.pids: list[int] = []
        self.shed = 0
        self.restarts = 0

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the workers, report started once all are ready, and keep them running."""
        async with trio.open_nursery() as nursery:
            for index in range(self._count):
                await nursery.start(self._supervise, index, nursery)
            task_status.started()

    @property
    def answered(self) -> int:
        """Replies the workers sent from their own tables (as of their last counts, each second)."""
        return self._retired[0] + sum(s[0] for s in self._stats.values())

    @property
    def limited(self) -> int:
        """Queries the workers dropped or slipped by rate limiting (as of their last counts)."""
        return self._retired[1] + sum(s[1] for s in self._stats.values())

    @property
    def names(self) -> int:
        """Names in the workers' name tables (the largest; each worker holds them all once filled)."""
        return max((s[2] for s in self._stats.values()), default=0)

    @property
    def names_complete(self) -> bool:
        """Whether every running worker holds every active domain's names (True without a name table)."""
        return not self._filling and len(self.pids) == self._count

    def set_rrl(self, rrl: RrlSettings) -> None:
        """Rate-limit with `rrl` from now on: the workers are restarted with it.

        A worker takes its limits when it starts; each is replaced within half
        a second (queries wait in the socket's buffer meanwhile) and refills its
        name table, passing up the names it lacks until then.
        """
        self._options = _options(rrl, self._payload)
        for pid in list(self.pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # already gone: its supervisor restarts it anyway

    def invalidate(self, changed: Collection[str], now_s: int) -> None:
        """Tell every worker what a new block changed: its domains' names, and what went stale."""
        if self._names is not None and changed:
            entries = self._names.changed(changed)
            for part in split_names(entries):
                self._broadcast(marshal.dumps((udpworker.DOWN_NAMES, now_s, part, False)))
        self._sent_seq += 1
        message = (udpworker.DOWN_INVALIDATE, sorted(changed), now_s, self._sent_seq)
        self._broadcast(marshal.dumps(message))

    async def settled(self, timeout_s: float = _SETTLE_TIMEOUT_S) -> bool:
        """Wait until every running worker has applied every block sent to it so far.

        What an UPDATE's reply waits for, so that a client that asks right after
        it gets the new records over UDP too. False if that took over `timeout_s`
        (a worker stuck or restarting: it is not waited for longer).
        """
        target = self._sent_seq
        with trio.move_on_after(timeout_s):
            while any(self._applied.get(index, 0) < target for index in self._running):
                await trio.sleep(_SETTLE_POLL_S)
            return True
        return False

    def clear(self) -> None:
        """Tell every worker to drop all its replies."""
        self._broadcast(marshal.dumps((udpworker.DOWN_CLEAR,)))

    def _broadcast(self, message: bytes) -> None:
        for outbox in self._outboxes:
            try:
                outbox.send_nowait(message)
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                pass  # a dead worker restarts with an empty table

    # -- one worker --

    async def _supervise(
        self,
        index: int,
        nursery: trio.Nursery,
        *,
        task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        first = True
        while True:
            try:
                await self._run_one(
                    index, nursery, task_status if first else trio.TASK_STATUS_IGNORED
                )
            except* OSError as failed:  # raised in its send or receive loop too (a group)
                log.error("dns worker %d failed error=%s", index, failed.exceptions[0])
            if first:
                first = False
            self.restarts += 1
            log.warning("dns worker %d exited; restarting", index)
            await trio.sleep(_RESTART_PAUSE_S)

    async def _run_one(self, index: int, nursery: trio.Nursery, task_status: Any) -> None:
        up_node, up_worker = stdlib_socket.socketpair(
            stdlib_socket.AF_UNIX, stdlib_socket.SOCK_SEQPACKET
        )
        down_node, down_worker = stdlib_socket.socketpair(
            stdlib_socket.AF_UNIX, stdlib_socket.SOCK_SEQPACKET
        )
        fds = (self._sock.fileno(), up_worker.fileno(), down_worker.fileno())
        process = subprocess.Popen(
            [sys.executable, "-m", "ledgerdns.dns.udpworker", *map(str, fds), self._options],
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **_WORKER_ENV},
        )
        up_worker.close()
        down_worker.close()
        up_node.setblocking(False)
        down_node.setblocking(False)
        send, receive = trio.open_memory_channel[bytes](math.inf)
        try:
            with up_node, down_node:
                with trio.fail_after(_READY_TIMEOUT_S):
                    await trio.lowlevel.wait_readable(up_node.fileno())
                if not up_node.recv(1 << 16):
                    raise OSError("the worker exited before it was ready")
                log.info("dns worker %d ready pid=%d", index, process.pid)
                self._outboxes.append(send)
                self.pids.append(process.pid)
                self._applied[index] = self._sent_seq  # it starts from the ledger as it is now
                self._running.add(index)
                task_status.started()
                async with trio.open_nursery() as inner:
                    inner.start_soon(self._send_loop, down_node, receive)
                    if self._names is not None:
                        self._filling.add(index)
                        inner.start_soon(self._fill, send)
                    await self._receive_loop(index, up_node, send, nursery)
                    inner.cancel_scope.cancel()
        finally:
            self._filling.discard(index)
            self._running.discard(index)
            last = self._stats.pop(index, None)
            if last is not None:
                self._retired = (self._retired[0] + last[0], self._retired[1] + last[1])
            if send in self._outboxes:
                self._outboxes.remove(send)
            if process.pid in self.pids:
                self.pids.remove(process.pid)
            process.kill()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(process.wait)

    async def _fill(self, outbox: trio.MemorySendChannel[bytes]) -> None:
        """Send a new worker every active domain's names, a batch at a time.

        Each batch is read from the ledger and queued in one step, so it is
        never older than a block applied before it; blocks applied during the
        fill send their own domains after it (`invalidate`). The last message
        asks the worker to say when it holds them all (`UP_FILLED`).
        """
        assert self._names is not None
        self._fill_started = trio.current_time()
        for batch in self._names.batches():
            while outbox.statistics().current_buffer_used > _FILL_AHEAD:
                await trio.sleep(_FILL_WAIT_S)
            now_s = self._names.now_s()
            for part in split_names(batch):
                outbox.send_nowait(marshal.dumps((udpworker.DOWN_NAMES, now_s, part, False)))
            await trio.lowlevel.checkpoint()
        now_s = self._names.now_s()
        outbox.send_nowait(marshal.dumps((udpworker.DOWN_NAMES, now_s, [], True)))

    async def _send_loop(
        self, down: stdlib_socket.socket, receive: trio.MemoryReceiveChannel[bytes]
    ) -> None:
        async for message in receive:
            while True:
                try:
                    down.send(message)
                    break
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(down.fileno())

    async def _receive_loop(
        self,
        index: int,
        up: stdlib_socket.socket,
        outbox: trio.MemorySendChannel[bytes],
        nursery: trio.Nursery,
    ) -> None:
        """Answer what the worker passes up, as many as are waiting before yielding."""
        while True:
            await trio.lowlevel.wait_readable(up.fileno())
            for _ in range(_BATCH):
                try:
                    message = up.recv(1 << 17)
                except BlockingIOError:
                    break
                if not message:
                    return  # the worker is gone
                self._handle(index, message, outbox, nursery)
            await trio.lowlevel.checkpoint()

    def _handle(
        self,
        index: int,
        message: bytes,
        outbox: trio.MemorySendChannel[bytes],
        nursery: trio.Nursery,
    ) -> None:
        item = marshal.loads(message)
        if item[0] == udpworker.UP_APPLIED:
            self._applied[index] = item[1]
            return
        if item[0] == udpworker.UP_STATS:
            self._stats[index] = item[1:]
            return
        if item[0] == udpworker.UP_FILLED:
            self._filling.discard(index)
            log.info(
                "dns worker %d name table filled names=%d seconds=%.1f",
                index,
                item[1],
                trio.current_time() - self._fill_started,
            )
            return
        kind, address, data = item
        if kind != udpworker.UP_QUERY:
            return
        if outbox.statistics().current_buffer_used > _MAX_PENDING:
            self.shed += 1
            return
        result = self._answer(data, address)
        if isinstance(result, tuple):
            reply, keep = result
            _post(outbox, address, data, reply, keep)
        elif self._slow.statistics().tasks_waiting > _MAX_SLOW_TASKS:
            self.shed += 1
            if inspect.iscoroutine(result):
                result.close()
        else:
            nursery.start_soon(self._slow_answer, result, address, data, outbox)

    async def _slow_answer(
        self,
        pending: Awaitable[bytes | None],
        address: Address,
        data: bytes,
        outbox: trio.MemorySendChannel[bytes],
    ) -> None:
        async with self._slow:
            reply = await pending
        _post(outbox, address, data, reply, None)


def _options(rrl: RrlSettings, payload: int) -> str:
    """A worker's settings, as its command line carries them."""
    return json.dumps(
        {
            "rrl_rate": rrl.rate,
            "rrl_slip": rrl.slip,
            "rrl_ipv4_prefix": rrl.ipv4_prefix,
            "rrl_ipv6_prefix": rrl.ipv6_prefix,
            "rrl_exempt": [str(n) for n in rrl.exempt],
            "payload": payload,
        }
    )


def _post(
    outbox: trio.MemorySendChannel[bytes],
    address: Address,
    data: bytes,
    reply: bytes | None,
    keep: Keep | None,
) -> None:
    if reply is None:
        return
    key = data[2:] if keep is not None else None
    zone, serial_bound, expires_at = (
        (keep.zone, keep.serial_bound, keep.expires_at) if keep else (None, False, 0)
    )
    message = marshal.dumps(
        (udpworker.DOWN_REPLY, address, reply, key, zone, serial_bound, expires_at)
    )
    try:
        outbox.send_nowait(message)
    except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
        pass  # the worker is gone; the client retries
