"""TSIG on ordinary queries (RFC 8945), as BIND answers them, over real sockets.

A real `DnsServer` (one UDP worker process) with one TSIG key, backed by the
compliance tests' `InstantNode`, asked with dnspython and with the real
`dig -y` (BIND) and `kdig -y` (Knot): a good key gets a signed reply the
client verifies, an unknown key NOTAUTH/BADKEY and a wrong secret
NOTAUTH/BADSIG, both unsigned.
"""

from __future__ import annotations

import base64
import queue
import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdtypes.ANY.TSIG
import dns.tsig
import pytest
import trio

from ledgerdns.dns.settings import DnsSettings, TsigKey
from tests.integration.test_dns_compliance import (
    DIG,
    KDIG,
    Address,
    needs_dig,
    needs_kdig,
    node,  # noqa: F401  (a fixture)
    run,
    serving,
    statuses,
    texts,
)
from tests.support.instant_node import InstantNode

pytestmark = pytest.mark.integration

SECRET = b"query-tsig-test-secret-0123456789"
KEY = TsigKey("query.", "hmac-sha256", SECRET)
GOOD = dns.tsig.Key("query.", SECRET, "hmac-sha256")
WRONG = dns.tsig.Key("query.", b"another secret", "hmac-sha256")
UNKNOWN = dns.tsig.Key("nobody.", SECRET, "hmac-sha256")
TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def address(node: InstantNode) -> Iterator[Address]:  # noqa: F811
    """A server with the key `query.`, in its own trio loop in a thread."""
    started: queue.Queue[tuple[Address, trio.CancelScope, trio.lowlevel.TrioToken]] = queue.Queue()
    settings = DnsSettings(tsig={KEY.name: KEY})

    async def serve() -> None:
        async with serving(node, settings=settings) as (_, bound):
            with trio.CancelScope() as scope:
                started.put((bound, scope, trio.lowlevel.current_trio_token()))
                await trio.sleep_forever()

    thread = threading.Thread(target=trio.run, args=(serve,), name="dns-tsig", daemon=True)
    thread.start()
    bound, scope, token = started.get(timeout=30)
    try:
        yield bound
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(TIMEOUT_S)
        assert not thread.is_alive()


def signed(name: str, rdtype: str, key: dns.tsig.Key) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=0)
    query.use_tsig(key)
    return query


def tsig_error(reply: dns.message.Message) -> int:
    assert reply.tsig is not None
    rdata = reply.tsig[0]
    assert isinstance(rdata, dns.rdtypes.ANY.TSIG.TSIG)
    return int(rdata.error)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_signed_query_gets_a_signed_answer(address: Address, transport: str) -> None:
    query = signed("alice.p2p", "A", GOOD)
    ask = dns.query.udp if transport == "udp" else dns.query.tcp
    # dnspython verifies the reply's MAC against the request's (it raises if it does not).
    reply = ask(query, address[0], port=address[1], timeout=TIMEOUT_S)
    assert reply.rcode() == dns.rcode.NOERROR and reply.had_tsig
    assert texts(reply.answer) == ["alice.p2p. 300 IN A 192.0.2.1"]
    assert tsig_error(reply) == 0


def test_a_signed_query_for_a_missing_name_is_signed_too(address: Address) -> None:
    reply = dns.query.udp(
        signed("nobody.alice.p2p", "A", GOOD), address[0], port=address[1], timeout=TIMEOUT_S
    )
    assert reply.rcode() == dns.rcode.NXDOMAIN and reply.had_tsig


@pytest.mark.parametrize(("key", "error"), [(UNKNOWN, dns.rcode.BADKEY), (WRONG, dns.rcode.BADSIG)])
def test_a_bad_signature_is_notauth_unsigned(
    address: Address, key: dns.tsig.Key, error: dns.rcode.Rcode
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT_S)
        sock.sendto(signed("alice.p2p", "A", key).to_wire(), address)
        data = sock.recv(65535)
    wire = dns.message.from_wire(data, keyring=False)  # its MAC is empty: nothing to check
    assert wire.rcode() == dns.rcode.NOTAUTH and not wire.answer
    assert tsig_error(wire) == error
    assert wire.tsig is not None and wire.tsig[0].mac == b""


def _y(key: dns.tsig.Key) -> str:
    return f"hmac-sha256:{key.name.to_text()}:{base64.b64encode(key.secret).decode()}"


@needs_dig
@pytest.mark.trio
async def test_dig_y(address: Address) -> None:
    out = await run(DIG, address, "-y", _y(GOOD), "alice.p2p", "A")
    assert statuses(out) == ["NOERROR"], out
    assert "TSIG PSEUDOSECTION" in out and "NOERROR 0" in out
    assert "Couldn't verify" not in out and "could not be validated" not in out
    bad = await run(DIG, address, "-y", _y(WRONG), "alice.p2p", "A")
    assert statuses(bad) == ["NOTAUTH"] and "BADSIG" in bad, bad
    unknown = await run(DIG, address, "-y", _y(UNKNOWN), "alice.p2p", "A")
    assert statuses(unknown) == ["NOTAUTH"] and "BADKEY" in unknown, unknown


@needs_kdig
@pytest.mark.trio
async def test_kdig_y(address: Address) -> None:
    for transport in ("+notcp", "+tcp"):
        out = await run(KDIG, address, transport, "-y", _y(GOOD), "alice.p2p", "MX")
        assert "status: NOERROR" in out, out
        assert "TSIG PSEUDOSECTION" in out and "WARNING: TSIG" not in out, out
    bad = await run(KDIG, address, "-y", _y(WRONG), "alice.p2p", "A")
    assert "status: BADSIG" in bad, bad  # kdig names the TSIG error as the status
