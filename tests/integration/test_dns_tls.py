"""DNS over TLS (RFC 7858) and over HTTPS (RFC 8484) on a real devnet node process.

One node started with ``--dot`` and ``--doh`` and no certificate (so it makes a
self-signed pair in its data directory, which the clients then trust), with a
short idle timeout and a small connection cap from ``[dns.tls]``. Clients: the
real kdig (Knot) and dig (BIND 9.18), dnspython's DoT and DoH clients, httpx
over HTTP/2, and plain TLS sockets for pipelining, idle connections and the cap.
Every wait is bounded by a socket timeout or `eventually`.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx
import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.integration.conftest import eventually
from tests.integration.test_node import PORTS, ROOT, Running

pytestmark = pytest.mark.integration

IDLE_S = 3
CAP = 3
SOCKET_TIMEOUT_S = IDLE_S + 20  # a connection the server should close, waited for at most this
KDIG = shutil.which("kdig")
DIG = shutil.which("dig")
needs_kdig = pytest.mark.skipif(KDIG is None, reason="kdig not installed (Debian: knot-dnsutils)")
needs_dig = pytest.mark.skipif(DIG is None, reason="dig not installed (Debian: bind9-dnsutils)")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("tls")
    settings = tmp / "node.toml"
    settings.write_text(f"[dns.tls]\nidle_timeout_s = {IDLE_S}\nmax_connections = {CAP}\n")
    running = Running(
        tmp / "node", "--config", str(settings), "--dot", "127.0.0.1:0", "--doh", "127.0.0.1:0",
        "--metrics", "127.0.0.1:0",
    )  # fmt: skip
    yield running
    running.close()


def port(node: Running, face: str) -> int:
    return int(node.ready[face].rsplit(":", 1)[1])


def cert(node: Running) -> Path:
    return node.data_dir / "tls.crt"


def trust(node: Running) -> ssl.SSLContext:
    """A client context trusting the node's self-signed certificate."""
    return ssl.create_default_context(cafile=str(cert(node)))


def connect(node: Running, face: str, alpn: list[str]) -> ssl.SSLSocket:
    """A TLS connection to `face` that trusts the node's certificate for ``localhost``."""
    context = trust(node)
    context.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port(node, face)), timeout=SOCKET_TIMEOUT_S)
    try:
        return context.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def frame(message: dns.message.Message) -> bytes:
    wire = message.to_wire()
    return len(wire).to_bytes(2, "big") + wire


def receive_exactly(sock: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def read_reply(sock: ssl.SSLSocket) -> dns.message.Message:
    size = int.from_bytes(receive_exactly(sock, 2), "big")
    return dns.message.from_wire(receive_exactly(sock, size))


def read_to_end(sock: ssl.SSLSocket) -> bytes:
    """Everything until the server closes (a socket timeout fails the test)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def soa_query() -> dns.message.Message:
    return dns.message.make_query("p2p.", "SOA")


def is_soa(reply: dns.message.Message) -> bool:
    return reply.rcode() == dns.rcode.NOERROR and any(
        rrset.rdtype == dns.rdatatype.SOA for rrset in reply.answer
    )


def test_ready_line_and_a_self_signed_certificate(node: Running) -> None:
    assert {"dot", "doh"} <= set(node.ready)
    key = node.data_dir / "tls.key"
    assert key.stat().st_mode & 0o077 == 0
    certificate = x509.load_pem_x509_certificate(cert(node).read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(a) for a in names.get_values_for_type(x509.IPAddress)}
    assert json.loads((node.data_dir / "node.json").read_text())["dot"] == node.ready["dot"]


def test_dot_pipelined_queries_on_one_connection(node: Running) -> None:
    queries = [
        soa_query(), dns.message.make_query("p2p.", "NS"),
        dns.message.make_query("nobody.p2p.", "A"), dns.message.make_query("p2p.", "SOA"),
    ]  # fmt: skip
    with connect(node, "dot", ["dot"]) as sock:
        assert sock.selected_alpn_protocol() == "dot"
        sock.sendall(b"".join(frame(q) for q in queries))  # all sent before any reply is read
        replies = [read_reply(sock) for _ in queries]
        assert [r.id for r in replies] == [q.id for q in queries]
        assert [dns.rcode.to_text(r.rcode()) for r in replies] == [
            "NOERROR", "NOERROR", "NXDOMAIN", "NOERROR",
        ]  # fmt: skip
        # dnspython's DoT client, on the same connection
        again = dns.query.tls(
            soa_query(), "127.0.0.1", port=port(node, "dot"), sock=sock, timeout=5
        )
        assert is_soa(again)


def test_dnspython_dot_verifies_the_certificate(node: Running) -> None:
    reply = dns.query.tls(
        soa_query(), "127.0.0.1", port=port(node, "dot"), timeout=5,
        server_hostname="localhost", verify=str(cert(node)),
    )  # fmt: skip
    assert is_soa(reply)


@pytest.mark.parametrize("post", [False, True], ids=["get", "post"])
def test_dnspython_doh_over_http2(node: Running, post: bool) -> None:
    reply = dns.query.https(
        soa_query(), "127.0.0.1", port=port(node, "doh"), timeout=5, verify=trust(node),
        post=post, http_version=dns.query.HTTPVersion.H2,
    )  # fmt: skip
    assert is_soa(reply)


def test_doh_several_queries_on_one_http2_connection(node: Running) -> None:
    url = f"https://127.0.0.1:{port(node, 'doh')}/dns-query"
    with httpx.Client(http2=True, verify=trust(node), timeout=5) as client:
        local_ports = set()
        for name in ("p2p.", "nobody.p2p.", "p2p."):
            wire = dns.message.make_query(name, "SOA").to_wire()
            response = client.post(
                url, content=wire, headers={"content-type": "application/dns-message"}
            )
            assert (response.http_version, response.status_code) == ("HTTP/2", 200)
            assert response.headers["content-type"] == "application/dns-message"
            assert dns.message.from_wire(response.content).id == int.from_bytes(wire[:2], "big")
            stream = response.extensions["network_stream"]
            local_ports.add(stream.get_extra_info("client_addr")[1])
        assert len(local_ports) == 1  # one connection for all three
        assert response.headers["cache-control"].startswith("max-age=")
        assert client.get(url).status_code == 400  # no ?dns=
        assert client.get(url.replace("/dns-query", "/")).status_code == 404


def test_doh_keeps_a_connection_past_a_thousand_requests(node: Running) -> None:
    """Hypercorn's default closes a connection after 1,000 requests; a DoH client's stays."""
    url = f"https://127.0.0.1:{port(node, 'doh')}/dns-query"
    wire = soa_query().to_wire()
    headers = {"content-type": "application/dns-message"}
    local_ports = set()
    with httpx.Client(http2=True, verify=trust(node), timeout=5) as client:
        for _ in range(1010):
            response = client.post(url, content=wire, headers=headers)
            assert response.status_code == 200
            local_ports.add(response.extensions["network_stream"].get_extra_info("client_addr")[1])
    assert len(local_ports) == 1


@needs_kdig
@pytest.mark.parametrize("mode", ["+tls", "+https"])
def test_kdig(node: Running, mode: str) -> None:
    face = "dot" if mode == "+tls" else "doh"
    done = subprocess.run(
        [KDIG or "kdig", mode, f"+tls-ca={cert(node)}", "+tls-hostname=localhost",
         "@127.0.0.1", "-p", str(port(node, face)), "p2p.", "SOA", "+short"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ns.ledgerdns.invalid. hostmaster.p2p."), (
        done.stdout + done.stderr
    )


@needs_dig
@pytest.mark.parametrize("mode", ["+tls", "+https", "+https-get"])
def test_dig(node: Running, mode: str) -> None:
    face = "dot" if mode == "+tls" else "doh"
    done = subprocess.run(
        [DIG or "dig", mode, f"+tls-ca={cert(node)}", "+tls-hostname=localhost",
         "@127.0.0.1", "-p", str(port(node, face)), "p2p.", "SOA", "+short"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ns.ledgerdns.invalid. hostmaster.p2p."), (
        done.stdout + done.stderr
    )


def test_idle_dot_connection_is_closed(node: Running) -> None:
    with connect(node, "dot", ["dot"]) as sock:
        sock.sendall(frame(soa_query()))
        assert is_soa(read_reply(sock))
        assert read_to_end(sock) == b""  # closed by the node after IDLE_S without a query


def test_idle_doh_connections_are_closed(node: Running) -> None:
    h2, http1 = connect(node, "doh", ["h2"]), connect(node, "doh", ["http/1.1"])
    with h2, http1:
        assert (h2.selected_alpn_protocol(), http1.selected_alpn_protocol()) == ("h2", "http/1.1")
        assert read_to_end(http1) == b""
        read_to_end(h2)  # the node's SETTINGS, then GOAWAY, then the end


def dot_query_works(node: Running) -> bool:
    """One query on a new DoT connection; False if the node closed it (the cap was full)."""
    try:
        with connect(node, "dot", ["dot"]) as sock:
            sock.sendall(frame(soa_query()))
            return is_soa(read_reply(sock))
    except OSError:
        return False


def doh_query_works(node: Running) -> bool:
    """One query on a new DoH connection; False if the node closed it (the cap was full)."""
    url = f"https://127.0.0.1:{port(node, 'doh')}/dns-query"
    try:
        with httpx.Client(http2=True, verify=trust(node), timeout=5) as client:
            response = client.post(
                url, content=soa_query().to_wire(),
                headers={"content-type": "application/dns-message"},
            )  # fmt: skip
    except httpx.TransportError:
        return False
    return response.status_code == 200 and is_soa(dns.message.from_wire(response.content))


def test_dot_connections_over_the_cap_are_refused(node: Running) -> None:
    eventually(lambda: dot_query_works(node), 10, "a DoT query")  # earlier tests' connections gone
    held = [connect(node, "dot", ["dot"]) for _ in range(CAP)]
    try:
        for sock in held:  # each answered, so each counted; and none idle now
            sock.sendall(frame(soa_query()))
            assert is_soa(read_reply(sock))
        before = refused(node, "dot")
        with pytest.raises(OSError):  # closed by the node before the handshake ends
            connect(node, "dot", ["dot"]).close()
        assert refused(node, "dot") == before + 1
        held.pop().close()
        eventually(lambda: dot_query_works(node), 10, "a DoT query once one connection closed")
    finally:
        for sock in held:
            sock.close()


def test_doh_connections_over_the_cap_are_refused(node: Running) -> None:
    eventually(lambda: doh_query_works(node), 10, "a DoH query")
    held = [connect(node, "doh", ["http/1.1"]) for _ in range(CAP)]
    try:
        for sock in held:  # a request whose body never comes: busy, so never idle
            sock.sendall(
                b"POST /dns-query HTTP/1.1\r\nhost: localhost\r\n"
                b"content-type: application/dns-message\r\ncontent-length: 40\r\n\r\n"
            )
        before = refused(node, "doh")
        with pytest.raises(OSError):
            connect(node, "doh", ["h2"]).close()
        assert refused(node, "doh") == before + 1
        held.pop().close()
        eventually(lambda: doh_query_works(node), 10, "a DoH query once one connection closed")
    finally:
        for sock in held:
            sock.close()


def scrape(node: Running) -> list[Sample]:
    text = httpx.get(f"{node.ready['metrics']}/metrics", timeout=5).text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def refused(node: Running, face: str) -> float:
    return sum(
        s.value
        for s in scrape(node)
        if s.name == "ledgerdns_dns_tls_refused_total" and s.labels["face"] == face
    )


def test_metrics_count_dot_and_doh(node: Running) -> None:
    assert dot_query_works(node) and doh_query_works(node)
    by_transport: dict[str, float] = {}
    samples = scrape(node)
    for sample in samples:
        if sample.name == "ledgerdns_dns_queries_total":
            transport = sample.labels["transport"]
            by_transport[transport] = by_transport.get(transport, 0) + sample.value
    assert by_transport.get("dot", 0) > 0 and by_transport.get("doh", 0) > 0, by_transport
    faces = {s.labels["face"] for s in samples if s.name == "ledgerdns_dns_tls_connections"}
    assert faces == {"dot", "doh"}


def test_tls_options_are_checked(tmp_path: Path) -> None:
    def node(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ledgerdns", "node", "--data-dir", str(tmp_path / "n"),
             *PORTS, *args],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    half = node("--dot", "127.0.0.1:0", "--tls-cert", str(tmp_path / "c.pem"))
    assert half.returncode == 2
    assert "--tls-cert and --tls-key go together" in half.stderr
    assert "Traceback" not in half.stderr
    genesis = str(ROOT / "genesis" / "localnet-4.json")
    no_cert = node("--genesis", genesis, "--doh", "127.0.0.1:0")
    assert no_cert.returncode == 2, no_cert.stderr
    assert "--dot/--doh need a certificate" in no_cert.stderr
    assert "Traceback" not in no_cert.stderr
