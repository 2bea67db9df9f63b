"""DNS over HTTPS (RFC 8484): ``/dns-query`` over HTTP/2 (and HTTP/1.1) on TLS, by Hypercorn.

`DohApp` is the ASGI application: GET with ``?dns=`` (the query, base64url
without padding) or POST with an ``application/dns-message`` body; the answer
comes from the same dispatch as DNS over TCP and goes back as
``application/dns-message`` with a ``cache-control: max-age`` no longer than
its smallest TTL (RFC 8484 section 5.1). `DohFront` accepts connections (at
most `max_connections` at once, as the TCP face does), wraps them in TLS and
hands each to Hypercorn's connection server, which speaks HTTP (h2 when the
client offers it by ALPN) and closes a connection idle for `idle_s`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import ssl
from typing import Any, cast
from urllib.parse import parse_qs

import dns.exception
import dns.message
import dns.rcode
import trio
from hypercorn.config import Config
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ASGIFramework, ConnectionState
from hypercorn.utils import wrap_app

from ledgerdns.dns.tcp import CappedListener, Dispatch

log = logging.getLogger(__name__)
http_log = logging.getLogger("ledgerdns.dns.doh.hypercorn")

PATH = "/dns-query"
MEDIA_TYPE = "application/dns-message"
MAX_MESSAGE = 65535  # a DNS message is at most this long (RFC 8484 section 6: as over TCP)

Scope = dict[str, Any]
Receive = Any
Send = Any


class _Disconnected(Exception):
    """The client went away in the middle of its request."""


class DohApp:
    """The ASGI application answering ``/dns-query`` with `dispatch` (the TCP answer path)."""

    def __init__(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets: nothing to do
        try:
            status, headers, body = await self._respond(scope, receive)
        except _Disconnected:
            return  # nothing to answer, and nobody to answer it to
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), *headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _respond(self, scope: Scope, receive: Receive) -> tuple[int, list[Any], bytes]:
        if scope["path"] != PATH:
            return _text(404, f"not found: DNS queries go to {PATH}")
        method = scope["method"]
        if method == "GET":
            query = _from_get(scope.get("query_string", b""))
            if isinstance(query, str):
                return _text(400, query)
        elif method == "POST":
            if _content_type(scope) != MEDIA_TYPE:
                return _text(415, f"the body must be {MEDIA_TYPE}")
            body = await _read_body(receive)
            if body is None:
                return _text(413, f"a DNS message is at most {MAX_MESSAGE} bytes")
            query = body
        else:
            status, headers, text = _text(405, "use GET or POST")
            return status, [*headers, (b"allow", b"GET, POST")], text
        client = scope.get("client") or ("0.0.0.0", 0)
        reply = await self._answer(query, (client[0], client[1]))
        if reply is None:
            return _text(400, "not a DNS query")
        headers = [(b"content-type", MEDIA_TYPE.encode())]
        max_age = _max_age(reply)
        if max_age is not None:
            headers.append((b"cache-control", f"max-age={max_age}".encode()))
        return 200, headers, reply

    async def _answer(self, query: bytes, peer: tuple[str, int]) -> bytes | None:
        result = self._dispatch(query, peer)
        if isinstance(result, list):  # a zone transfer: one HTTP response holds one message
            return result[0] if len(result) == 1 else None
        return result[0] if isinstance(result, tuple) else await result


def _text(status: int, message: str) -> tuple[int, list[Any], bytes]:
    return status, [(b"content-type", b"text/plain; charset=utf-8")], message.encode() + b"\n"


def _from_get(query_string: bytes) -> bytes | str:
    """The query in ``?dns=``, or what is wrong with it."""
    values = parse_qs(query_string.decode("latin-1")).get("dns")
    if not values:
        return "missing the dns parameter (the query, base64url)"
    text = values[0]
    if len(text) > (MAX_MESSAGE * 4 + 2) // 3 or "=" in text:
        return "the dns parameter is too long or padded"
    try:
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):  # ValueError: also a non-ASCII character
        return "the dns parameter is not base64url"


def _content_type(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return str(value.decode("latin-1").split(";")[0].strip().lower())
    return ""


async def _read_body(receive: Receive) -> bytes | None:
    """The request body; None if longer than a DNS message."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected  # before the whole body came
        body.extend(message.get("body", b""))
        if len(body) > MAX_MESSAGE:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def _max_age(reply: bytes) -> int | None:
    """The smallest TTL of the answer (or, for a negative answer, the authority) section."""
    try:
        message = dns.message.from_wire(reply, ignore_trailing=True)
    except dns.exception.DNSException:  # e.g. TSIG-signed: no key here to check it with
        return None
    if message.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return None
    ttls = [rrset.ttl for rrset in message.answer or message.authority]
    return min(ttls) if ttls else None


class _Connection(TCPServer):
    """Hypercorn's connection server, which also lets go once the client has gone.

    Hypercorn waits for its idle timer (`keep_alive_timeout`) even after the
    client closed, so every closed connection would hold a slot of the cap for
    that long; stopping the timer when reading ends closes it at once.
    """

    async def _read_data(self) -> None:
        await super()._read_data()
        await self.idle_task.stop()


class DohFront(CappedListener):
    """Serves `DohApp` over TLS with Hypercorn, one task per connection."""

    what = "dns over https"

    def __init__(
        self,
        dispatch: Dispatch,
        *,
        context: ssl.SSLContext,
        idle_s: float,
        max_connections: int,
    ) -> None:
        super().__init__(max_connections=max_connections)
        self._context = context
        config = Config()
        config.keep_alive_timeout = idle_s
        # Hypercorn closes a connection after 1,000 requests by default: a DoH client keeps
        # one connection for as many queries as it likes (dnsperf's clients stopped dead).
        config.keep_alive_max_requests = 2**62
        config.ssl_handshake_timeout = idle_s
        config.include_server_header = False
        config.errorlog = http_log
        config.accesslog = None
        self._config = config
        self._app = wrap_app(cast(ASGIFramework, DohApp(dispatch)), 0, "asgi")
        self._worker = WorkerContext(None)

    async def handle(self, stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, self._context, server_side=True, https_compatible=True)
        state = ConnectionState({})
        # Hypercorn's per-connection server: the handshake, ALPN, HTTP/1.1 or h2, the
        # keep-alive timeout, and closing the stream.
        await _Connection(self._app, self._config, self._worker, state, tls)
