"""Lying upstreams for ``ledgerdns resolver``: DNS proxies that tamper with a real node's replies.

A `LyingProxy` listens on a free 127.0.0.1 port (UDP and TCP), passes each
query to a real node over the same transport, and hands the node's reply to a
`Tamper` before sending it back. The tampers are the lies of issue 16:

- `Rewrite`: edits bytes in flight (an address in the answer and in the
  proof's domain state), as a compromised node or a man in the middle would.
- `Replay`: keeps the first reply to each question and serves it ever after
  (the ID patched): a node that stopped while the network went on, with
  genuine, ever older proofs.
- `GarbageProof`: replaces the proof option's data with random bytes.

The proxy threads are daemons bounded by socket timeouts; `close` stops them.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

import dnslib

from chain.dns_proof import PROOF_OPTION_CODE
from tools.dnsservers import free_port

LOOPBACK = "127.0.0.1"
Address = tuple[str, int]
_TIMEOUT_S = 2.0
_MAX = 65535


class Tamper(Protocol):
    """What a lying proxy does to a node's reply."""

    def __call__(self, query: bytes, reply: bytes, tcp: bool) -> bytes:
        """The reply to send instead of `reply` (which came over TCP when `tcp`)."""


@dataclass(slots=True)
class Rewrite:
    """Replace every occurrence of `old` with `new` in the reply (answer and proof alike).

    Attributes:
        edits: replies changed so far (a test checks the lie was told).
    """

    old: bytes
    new: bytes
    edits: int = 0

    def __call__(self, query: bytes, reply: bytes, tcp: bool) -> bytes:
        if self.old in reply:
            self.edits += 1
        return reply.replace(self.old, self.new)


@dataclass(slots=True)
class Replay:
    """Serve the first reply seen for each question forever (with each query's ID).

    Attributes:
        replays: replies served from the recording.
    """

    recorded: dict[tuple[bytes, bool], bytes] = field(default_factory=dict)
    replays: int = 0

    def __call__(self, query: bytes, reply: bytes, tcp: bool) -> bytes:
        key = (_question(query), tcp)  # a UDP reply may be a truncated one
        old = self.recorded.setdefault(key, reply)
        if old is not reply:
            self.replays += 1
        return query[:2] + old[2:]


@dataclass(slots=True)
class GarbageProof:
    """Replace the proof option's data with random bytes of the same length."""

    edits: int = 0

    def __call__(self, query: bytes, reply: bytes, tcp: bool) -> bytes:
        record = dnslib.DNSRecord.parse(reply)
        for rr in record.ar:
            if rr.rtype == dnslib.QTYPE.OPT:
                for option in rr.rdata:
                    if option.code == PROOF_OPTION_CODE:
                        option.data = os.urandom(len(option.data))
                        self.edits += 1
        return bytes(record.pack())


def _question(query: bytes) -> bytes:
    """The question section's bytes, lower-cased (name, type, class)."""
    end = 12
    while query[end]:
        end += 1 + query[end]
    return query[12 : end + 5].lower()


class LyingProxy:
    """A DNS proxy in front of `target` that passes replies through `tamper`."""

    def __init__(self, target: Address, tamper: Tamper) -> None:
        self.target = target
        self.tamper = tamper
        self.queries = 0
        self._stop = threading.Event()
        for _ in range(5):
            port = free_port()
            try:
                self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._udp.bind((LOOPBACK, port))
                self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self._tcp.bind((LOOPBACK, port))
                break
            except OSError:
                self._udp.close()
                continue
        else:
            raise OSError("no free port for the lying proxy")
        self._tcp.listen(16)
        self._udp.settimeout(0.2)
        self._tcp.settimeout(0.2)
        self.address: Address = (LOOPBACK, port)
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> LyingProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and close the sockets."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._udp.close()
        self._tcp.close()

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self._udp.recvfrom(_MAX)
            except TimeoutError:
                continue
            except OSError:
                return
            self.queries += 1
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
                    out.settimeout(_TIMEOUT_S)
                    out.connect(self.target)
                    out.send(query)
                    reply = out.recv(_MAX)
                self._udp.sendto(self.tamper(query, reply, False), peer)
            except OSError:
                continue

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(_TIMEOUT_S)
                try:
                    query = _read_framed(conn)
                    self.queries += 1
                    with socket.create_connection(self.target, timeout=_TIMEOUT_S) as out:
                        out.sendall(struct.pack("!H", len(query)) + query)
                        reply = _read_framed(out)
                    lie = self.tamper(query, reply, True)
                    conn.sendall(struct.pack("!H", len(lie)) + lie)
                except OSError:
                    continue


def _read_framed(sock: socket.socket) -> bytes:
    size = struct.unpack("!H", _read_exactly(sock, 2))[0]
    return _read_exactly(sock, size)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed early")
        data.extend(chunk)
    return bytes(data)
