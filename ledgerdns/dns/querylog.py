"""The JSON query log: one line per query the node answers (``--query-log FILE``).

Each line is one JSON object::

    {"time": "2026-12-08T04:10:00.123Z", "client": "127.0.0.1", "qname": "alice.p2p.",
     "qtype": "A", "rcode": "NOERROR", "transport": "udp", "latency_ms": 0.21}

``latency_ms`` is the time the node took to answer (a forwarded query's includes
the upstream's). A message that is no query (unreadable) logs ``qname`` and
``qtype`` as null; one that gets no reply logs ``rcode`` null. While the log is
on, the UDP workers keep no replies of their own, so every query reaches the
node and its line. The file is opened for appending, written a line at a time,
and reopened on SIGHUP (so logrotate can move it away).
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

import dnslib
import trio

from ledgerdns.dns.wire import HEADER_SIZE, Query, parse_query

log = logging.getLogger(__name__)


def _name(query: Query) -> str:
    return ".".join(label.decode("ascii", "backslashreplace") for label in query.qname) + "."


def _rcode(reply: bytes | None) -> str | None:
    if reply is None or len(reply) < HEADER_SIZE:
        return None
    code = reply[3] & 0x0F
    return str(dnslib.RCODE.get(code, str(code)))


class QueryLog:
    """Appends a JSON line per query to `path`.

    Args:
        path: the log file (created if missing, appended to).
        now_ms: the wall clock, unix milliseconds, for each line's ``time``.

    Raises:
        OSError: the file cannot be opened.
    """

    def __init__(self, path: Path, now_ms: Callable[[], int]) -> None:
        self.path = path
        self._now_ms = now_ms
        self._file: IO[str] = self._open()

    def _open(self) -> IO[str]:
        return self.path.open("a", encoding="utf-8", buffering=1)

    def reopen(self) -> None:
        """Close and open the file again (after logrotate moved it)."""
        fresh = self._open()
        self._file.close()
        self._file = fresh

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def logged(
        self,
        result: tuple[bytes | None, object] | list[bytes] | Awaitable[bytes | None],
        data: bytes,
        client: str,
        *,
        tcp: bool,
        started: float,
    ) -> tuple[bytes | None, None] | list[bytes] | Awaitable[bytes | None]:
        """`result` of answering `data` (as `DnsServer.dispatch` returns it), logged.

        An immediate reply is logged now and handed on without its `Keep`
        (so a UDP worker keeps no copy and every query comes back here); an
        awaitable one is logged when it is ready. `started` is trio's clock when
        answering began.
        """
        transport = "tcp" if tcp else "udp"
        if isinstance(result, tuple):
            self.write(data, result[0], client, transport, trio.current_time() - started)
            return result[0], None
        if isinstance(result, list):
            first = result[0] if result else None
            self.write(data, first, client, transport, trio.current_time() - started)
            return result
        return self._later(result, data, client, transport, started)

    async def _later(
        self,
        pending: Awaitable[bytes | None],
        data: bytes,
        client: str,
        transport: str,
        started: float,
    ) -> bytes | None:
        reply = await pending
        self.write(data, reply, client, transport, trio.current_time() - started)
        return reply

    def write(
        self, data: bytes, reply: bytes | None, client: str, transport: str, seconds: float
    ) -> None:
        """One line: the query `data`, its `reply`, who asked, over what, how long it took."""
        query = parse_query(data)
        when = datetime.datetime.fromtimestamp(self._now_ms() / 1000, datetime.UTC)
        line = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "client": client,
            "qname": _name(query) if isinstance(query, Query) else None,
            "qtype": dnslib.QTYPE.get(query.qtype, str(query.qtype))
            if isinstance(query, Query)
            else None,
            "rcode": _rcode(reply),
            "transport": transport,
            "latency_ms": round(seconds * 1000, 3),
        }
        try:
            self._file.write(json.dumps(line) + "\n")
        except (OSError, ValueError) as exc:  # a full disk must not stop answering
            log.error("query log write failed path=%s error=%s", self.path, exc)
