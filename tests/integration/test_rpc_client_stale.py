"""The RPC client survives a server that closes an idle kept-alive connection (issue 20).

A reused connection that the server closed while it sat idle answers nothing
("Server disconnected without sending a response", or a reset). The client
must send the (idempotent) call again on a fresh connection, not fail. The
server here is a real HTTP/1.1 server on a loopback socket that does exactly
that: it answers the first request on a connection with keep-alive, then
closes the connection on the next request without answering.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from ledgerdns.api.client import NodeUnreachable, RpcClient

pytestmark = pytest.mark.integration

BODY = b'{"height": 7}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\nConnection: keep-alive\r\n\r\n" + BODY
)


def _read_request(conn: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return False
        data += chunk
    return True


class ClosingServer:
    """Answers one request per connection, then drops the connection at the next one."""

    def __init__(self, *, answer_again: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._answer_again = answer_again
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                if _read_request(conn):
                    conn.sendall(RESPONSE)
                if _read_request(conn) and self._answer_again:
                    conn.sendall(RESPONSE)
                # otherwise: close without answering, as a server timing out the connection does

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[ClosingServer]:
    s = ClosingServer()
    yield s
    s.close()


def test_a_call_on_a_connection_the_server_dropped_is_sent_again(server: ClosingServer) -> None:
    with RpcClient(f"http://127.0.0.1:{server.port}", "token") as client:
        assert client.status() == {"height": 7}
        assert client.status() == {"height": 7}  # the pooled connection is dead: sent again
        assert client.status() == {"height": 7}
    assert server.connections >= 2


def test_a_node_that_never_answers_is_still_unreachable() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def drop() -> None:  # accept and close at once, every time
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=drop, daemon=True).start()
    try:
        with RpcClient(f"http://127.0.0.1:{port}", "token", timeout=2) as client:
            with pytest.raises(NodeUnreachable):
                client.status()
    finally:
        listener.close()
