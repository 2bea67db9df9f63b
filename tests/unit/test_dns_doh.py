"""The DoH application (RFC 8484) on its own: requests in, DNS messages or HTTP errors out.

The dispatch here is a stand-in that answers every query with a fixed reply
(what the node's TCP answer path would), so the HTTP side is checked alone;
tests/integration/test_dns_tls.py serves it for real.
"""

from __future__ import annotations

import base64
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
import pytest
import trio

from ledgerdns.dns.doh import MEDIA_TYPE, DohApp

QUERY = dns.message.make_query("alice.p2p.", "A")


def _reply(*ttls: int, rcode: int = dns.rcode.NOERROR) -> bytes:
    reply = dns.message.make_response(QUERY)
    reply.set_rcode(rcode)
    for i, ttl in enumerate(ttls):
        reply.answer.append(dns.rrset.from_text("alice.p2p.", ttl, "IN", "A", f"10.0.0.{i + 1}"))
    return reply.to_wire()


class Asked:
    """A dispatch that records what it was asked and answers `reply` (None: nothing)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.asked: list[tuple[bytes, Any]] = []

    def __call__(self, data: bytes, peer: Any) -> tuple[bytes | None, None]:
        self.asked.append((data, peer))
        return self.reply, None


def request(
    app: DohApp,
    method: str,
    *,
    path: str = "/dns-query",
    query_string: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {
        "type": "http", "method": method, "path": path, "query_string": query_string,
        "headers": headers or [], "client": ("192.0.2.7", 40000),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []
    chunks = [body[:10], body[10:]]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    trio.run(app, scope, receive, send)
    start, content = sent
    return start["status"], dict(start["headers"]), content["body"]


def get_param(message: bytes) -> bytes:
    return b"dns=" + base64.urlsafe_b64encode(message).rstrip(b"=")


def test_get_answers_from_the_dispatch_with_the_clients_address() -> None:
    asked = Asked(_reply(300, 60))
    status, headers, body = request(DohApp(asked), "GET", query_string=get_param(QUERY.to_wire()))
    assert status == 200
    assert headers[b"content-type"] == MEDIA_TYPE.encode()
    assert headers[b"cache-control"] == b"max-age=60"  # the smallest TTL (RFC 8484 5.1)
    assert headers[b"content-length"] == str(len(body)).encode()
    assert body == asked.reply
    assert asked.asked == [(QUERY.to_wire(), ("192.0.2.7", 40000))]


def test_post_reads_the_whole_body() -> None:
    asked = Asked(_reply(300))
    headers = [(b"content-type", b"application/dns-message")]
    status, _, body = request(DohApp(asked), "POST", headers=headers, body=QUERY.to_wire())
    assert (status, body) == (200, asked.reply)
    assert asked.asked[0][0] == QUERY.to_wire()


def test_no_cache_lifetime_for_an_error_or_an_empty_answer() -> None:
    for reply in (_reply(rcode=dns.rcode.SERVFAIL), _reply()):
        _, headers, _ = request(DohApp(Asked(reply)), "GET", query_string=get_param(b"x" * 12))
        assert b"cache-control" not in headers


def test_a_slow_answer_is_awaited() -> None:
    async def slow() -> bytes:
        await trio.sleep(0)
        return b"reply"

    app = DohApp(lambda data, peer: slow())
    status, _, body = request(app, "GET", query_string=get_param(QUERY.to_wire()))
    assert (status, body) == (200, b"reply")


@pytest.mark.parametrize(
    ("method", "path", "query_string", "headers", "body", "status"),
    [
        ("GET", "/dns-query", b"", [], b"", 400),  # no dns parameter
        ("GET", "/dns-query", b"dns=%%%", [], b"", 400),  # not base64url
        ("GET", "/dns-query", b"dns=AAAA=", [], b"", 400),  # padded
        ("GET", "/dns-query", b"dns=" + b"A" * 90_000, [], b"", 400),  # longer than a message
        ("GET", "/", b"", [], b"", 404),
        ("PUT", "/dns-query", b"", [], b"", 405),
        ("POST", "/dns-query", b"", [(b"content-type", b"text/plain")], b"x" * 12, 415),
        ("POST", "/dns-query", b"", [(b"content-type", b"application/dns-message")],
         b"x" * 70_000, 413),
    ],
)  # fmt: skip
def test_bad_requests_get_http_errors(
    method: str,
    path: str,
    query_string: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    status: int,
) -> None:
    asked = Asked(_reply(300))
    got, reply_headers, text = request(
        DohApp(asked), method, path=path, query_string=query_string, headers=headers, body=body
    )
    assert got == status
    assert reply_headers[b"content-type"].startswith(b"text/plain")
    assert text.endswith(b"\n")
    assert asked.asked == []


def test_a_client_gone_mid_body_is_not_answered() -> None:
    asked = Asked(_reply(300))
    sent: list[Any] = []
    messages = [
        {"type": "http.request", "body": b"0123456789", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": "/dns-query", "query_string": b"",
        "headers": [(b"content-type", b"application/dns-message")], "client": ("192.0.2.7", 1),
    }  # fmt: skip
    trio.run(DohApp(asked), scope, receive, send)
    assert sent == [] and asked.asked == []


def test_no_reply_from_the_dispatch_is_a_bad_request() -> None:
    status, _, text = request(DohApp(Asked(None)), "GET", query_string=get_param(b"not dns"))
    assert status == 400
    assert b"not a DNS query" in text
