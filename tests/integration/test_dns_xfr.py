"""Zone transfers (AXFR/IXFR), their access control, NOTIFY, and a real Knot secondary.

The ledger is an `InstantNode` (real LevelDB, every transaction finalized at
once). Transfers are checked three ways: `Transfers.answer` called directly
(message structure, refusals), dnspython's transfer client against the real
`DnsServer` on 127.0.0.1 (the zone it builds equals what the server answers),
and Knot as the secondary, refreshed by our NOTIFY after a wallet-style update.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.xfr
import dns.zone
import pytest
import trio

from chain.genesis import InitialDomain, make_single_validator_genesis
from chain.records import Record, RecordLimits, canonical_record_set
from chain.tx import Op
from ledgerdns.dns.notify import Notifier
from ledgerdns.dns.server import DnsServer
from ledgerdns.dns.settings import DnsSettings, TransferSettings, TsigKey
from ledgerdns.dns.xfr import Transfers
from ledgerdns.dns.zone import ZoneConfig
from tests.support.instant_node import VALIDATOR_KEY, InstantNode, now_ms
from tools.devchain import dev_key, next_tx, register_tx, soon

pytestmark = [pytest.mark.integration]

OWNER = dev_key("dns-owner", 0)
HOST = "127.0.0.1"
PEER = (HOST, 40000)
CONFIG = ZoneConfig(server_name="ns1.example.net")
TIMEOUT_S = 3.0
KEY = TsigKey("xfr.", "hmac-sha256", b"0123456789abcdef0123456789abcdef")
UPDATE_KEY = TsigKey("update.", "hmac-sha256", b"another secret, not for transfers")
WRONG = TsigKey("xfr.", "hmac-sha256", b"not the secret at all, but close")

ALICE = [
    "@ 300 A 192.0.2.1",
    "@ 300 MX 10 mail",
    '@ 300 TXT "hello world"',
    '@ 300 CAA 0 issue "letsencrypt.org"',
    "mail 300 A 192.0.2.2",
    "www 120 CNAME alice.p2p.",
    "_sip._tcp 300 SRV 10 5 5060 sip",
    "sip 300 A 192.0.2.3",
    "a.b 300 A 192.0.2.4",
    '*.wild 300 TXT "wild"',
    "sub 300 NS ns1.sub",
    "ns1.sub 300 A 192.0.2.53",
]


def records(domain: str, lines: list[str]) -> tuple[Record, ...]:
    return canonical_record_set(Record.from_text(line, origin=domain) for line in lines)


def settings(
    allow: tuple[str, ...] = ("127.0.0.0/8",),
    tsig: tuple[str, ...] = (),
    notify: tuple[tuple[str, int], ...] = (),
) -> DnsSettings:
    return DnsSettings(
        workers=0,
        tsig={KEY.name: KEY, UPDATE_KEY.name: UPDATE_KEY},
        transfer=TransferSettings(
            allow=tuple(ipaddress.ip_network(a) for a in allow), tsig=tsig, notify=notify
        ),
    )


def keyring(key: TsigKey) -> dict[dns.name.Name, dns.tsig.Key]:
    return {dns.name.from_text(key.name): dns.tsig.Key(key.name, key.secret, key.algorithm)}


def register(node: InstantNode, domain: str, lines: list[str]) -> int:
    tx = register_tx(
        node.genesis, OWNER, domain, records(domain, lines), valid_until=soon(node.ledger)
    )
    trio.run(node.submit, tx)
    return node.ledger.height


def update(node: InstantNode, domain: str, lines: list[str], op: Op = Op.UPDATE) -> int:
    """One signed step of the domain's chain, submitted as the wallet does."""
    recs = records(domain, lines) if op is not Op.RELEASE else ()
    tx = next_tx(
        node.genesis, node.ledger, OWNER, domain, recs, op=op, valid_until=soon(node.ledger)
    )
    trio.run(node.submit, tx)
    return node.ledger.height


@pytest.fixture
def node(tmp_path: Path) -> Iterator[InstantNode]:
    instant = InstantNode(tmp_path / "node")
    try:
        register(instant, "alice.p2p", ALICE)
        register(instant, "other.p2p", ["@ 300 A 192.0.2.99"])
        yield instant
    finally:
        instant.close()


# -- asking Transfers directly --


def request(
    zone: str, rdtype: str = "AXFR", *, serial: int | None = None, key: TsigKey | None = None
) -> dns.message.Message:
    query = dns.message.make_query(zone, rdtype, use_edns=False)
    if serial is not None:
        soa = f". . {serial} 0 0 0 0"
        query.authority.append(dns.rrset.from_text(f"{zone}.", 0, "IN", "SOA", soa))
    if key is not None:
        query.use_tsig(keyring(key), dns.name.from_text(key.name))
    return query


def transfer(
    transfers: Transfers, query: dns.message.Message, *, tcp: bool = True, peer: Any = PEER
) -> list[dns.message.Message]:
    """The replies, parsed (and their TSIG chain checked) as a secondary would."""
    wires = transfers.answer(query.to_wire(), peer, tcp=tcp)
    assert wires is not None
    out, context = [], None
    for wire in wires:
        reply = dns.message.from_wire(
            wire,
            keyring=query.keyring,
            request_mac=query.mac or b"",
            xfr=True,
            tsig_ctx=context,
            multi=len(wires) > 1,
            one_rr_per_rrset=True,
        )
        assert query.is_response(reply)
        context = reply.tsig_ctx
        out.append(reply)
    return out


def lines(replies: list[dns.message.Message]) -> list[str]:
    return [rrset.to_text() for reply in replies for rrset in reply.answer]


def soa_serials(replies: list[dns.message.Message]) -> list[int]:
    return [r[0].serial for m in replies for r in m.answer if r.rdtype == dns.rdatatype.SOA]


def rcode(replies: list[dns.message.Message]) -> int:
    assert len(replies) == 1
    return replies[0].rcode()


def test_ixfr_sends_the_condensed_difference(node: InstantNode) -> None:
    transfers = Transfers(settings(), node.ledger, CONFIG)
    state = node.ledger.get_domain("alice.p2p")
    assert state is not None
    first = node.ledger.get_tx_location(state.head)[0]
    changed = [*ALICE[:2], '@ 600 TXT "hello again"', *ALICE[3:5], "new 60 AAAA 2001:db8::7"]
    second = update(node, "alice.p2p", [line for line in changed if not line.startswith("mail")])
    register(node, "bob.p2p", ["@ 300 A 192.0.2.77"])  # another zone's block in between
    third = update(node, "alice.p2p", ["@ 300 A 192.0.2.9"])

    diff = lines(transfer(transfers, request("alice.p2p", "IXFR", serial=first)))
    soa = "alice.p2p. 300 IN SOA ns1.example.net. hostmaster.alice.p2p. {} 3600 600 604800 60"
    assert diff[:2] == [soa.format(third), soa.format(first)]
    middle = diff.index(soa.format(third), 1)
    deleted, added = diff[2:middle], diff[middle + 1 : -1]
    assert diff[-1] == soa.format(third)
    assert (
        "alice.p2p. 300 IN A 192.0.2.1" in deleted
        and "mail.alice.p2p. 300 IN A 192.0.2.2" in deleted
    )
    assert added == ["alice.p2p. 300 IN A 192.0.2.9"]
    assert "alice.p2p. 3600 IN NS ns1.example.net." not in deleted  # kept: not in the diff

    diff = lines(transfer(transfers, request("alice.p2p", "IXFR", serial=second)))
    assert diff[:2] == [soa.format(third), soa.format(second)]
    assert (
        'alice.p2p. 600 IN TXT "hello again"' in diff
        and "new.alice.p2p. 60 IN AAAA 2001:db8::7" in diff
    )

    current = transfer(transfers, request("alice.p2p", "IXFR", serial=third))
    assert lines(current) == [soa.format(third)]
    # A serial this zone never had (the bob.p2p block): the whole zone, AXFR-style.
    whole = lines(transfer(transfers, request("alice.p2p", "IXFR", serial=third - 1)))
    assert whole[0] == whole[-1] == soa.format(third) and len(whole) == 4  # SOA, NS, A, SOA
    # Over UDP: always the single current SOA (RFC 1995 2); a client behind retries over TCP.
    for serial in (first, third):
        udp = transfer(transfers, request("alice.p2p", "IXFR", serial=serial), tcp=False)
        assert lines(udp) == [soa.format(third)]


def test_ixfr_from_a_genesis_domain(tmp_path: Path) -> None:
    base = make_single_validator_genesis(
        VALIDATOR_KEY.public_key, genesis_time_ms=now_ms() - 1000, chain_id="instant-test"
    )
    initial = InitialDomain(
        domain="gen.p2p", owner=OWNER.public_key, records=records("gen.p2p", ["@ 300 A 192.0.2.5"])
    )
    node = InstantNode(tmp_path, dataclasses.replace(base, domains=(initial,)))
    try:
        transfers = Transfers(settings(), node.ledger, CONFIG)
        assert soa_serials(transfer(transfers, request("gen.p2p")))[0] == 0
        height = update(node, "gen.p2p", ["@ 300 A 192.0.2.6"])
        diff = lines(transfer(transfers, request("gen.p2p", "IXFR", serial=0)))
        assert diff[2:] == [
            "gen.p2p. 300 IN A 192.0.2.5",
            diff[0],
            "gen.p2p. 300 IN A 192.0.2.6",
            diff[0],
        ]
        assert f" {height} " in diff[0]
    finally:
        node.close()


def test_a_large_zone_spans_several_signed_messages(tmp_path: Path) -> None:
    base = make_single_validator_genesis(
        VALIDATOR_KEY.public_key, genesis_time_ms=now_ms() - 1000, chain_id="instant-test"
    )
    limits = RecordLimits(max_records=200, max_bytes=60_000)
    genesis = dataclasses.replace(
        base, params=dataclasses.replace(base.params, record_limits=limits)
    )
    node = InstantNode(tmp_path, genesis)
    try:
        big = [f'r{i:03} 300 TXT "{"x" * 200}"' for i in range(100)]
        register(node, "big.p2p", big)
        transfers = Transfers(settings(tsig=(KEY.name,)), node.ledger, CONFIG)
        replies = transfer(transfers, request("big.p2p", key=KEY))
        assert len(replies) >= 2 and all(len(m.to_wire()) <= 16_384 + 200 for m in replies)
        assert all(m.had_tsig and m.flags & dns.flags.AA for m in replies)
        assert len(lines(replies)) == 100 + 3  # SOA, NS, the TXT records, SOA
    finally:
        node.close()


def test_transfers_refused_outside_allow(node: InstantNode) -> None:
    transfers = Transfers(settings(allow=("10.0.0.0/8",)), node.ledger, CONFIG)
    for rdtype in ("AXFR", "IXFR"):
        replies = transfer(transfers, request("alice.p2p", rdtype, serial=1))
        assert rcode(replies) == dns.rcode.REFUSED and not replies[0].answer
    inside = transfer(transfers, request("alice.p2p"), peer=("10.1.2.3", 5353))
    assert inside[0].rcode() == dns.rcode.NOERROR


def tsig_failure(transfers: Transfers, key: TsigKey) -> tuple[int, int]:
    """The rcode and TSIG error of the reply to a request signed with `key` (not ours)."""
    wires = transfers.answer(request("alice.p2p", key=key).to_wire(), PEER, tcp=True)
    assert wires is not None and len(wires) == 1
    reply = dns.message.from_wire(wires[0], keyring=False)
    assert reply.tsig is not None and reply.tsig[0].mac == b""  # unsigned (RFC 8945 5.3.2)
    return reply.rcode(), reply.tsig[0].error


def test_tsig_is_required_when_configured(node: InstantNode) -> None:
    transfers = Transfers(settings(tsig=(KEY.name,)), node.ledger, CONFIG)
    unsigned = transfer(transfers, request("alice.p2p"))
    assert rcode(unsigned) == dns.rcode.REFUSED and not unsigned[0].answer
    # A TSIG that does not verify: the RFC 8945 errors, as for UPDATE.
    assert tsig_failure(transfers, WRONG) == (dns.rcode.NOTAUTH, dns.rcode.BADSIG)
    unknown = TsigKey("nobody.", "hmac-sha256", b"whatever secret")
    assert tsig_failure(transfers, unknown) == (dns.rcode.NOTAUTH, dns.rcode.BADKEY)
    # Signed with a key we know, but not one allowed for transfers: refused, and signed.
    other = transfer(transfers, request("alice.p2p", key=UPDATE_KEY))
    assert rcode(other) == dns.rcode.REFUSED and other[0].had_tsig
    signed = transfer(transfers, request("alice.p2p", key=KEY))
    assert signed[0].rcode() == dns.rcode.NOERROR and signed[-1].had_tsig
    # Without a transfer key configured, a signed request still gets signed replies.
    optional = transfer(Transfers(settings(), node.ledger, CONFIG), request("alice.p2p", key=UPDATE_KEY))
    assert optional[0].rcode() == dns.rcode.NOERROR and optional[-1].had_tsig


def test_a_wide_fudge_does_not_widen_the_clock_window(node: InstantNode) -> None:
    """A request may name a fudge of up to 65,535 s; we accept at most 300 s of skew."""
    query = request("alice.p2p")
    query.use_tsig(keyring(KEY), dns.name.from_text(KEY.name), fudge=65535)
    wire = query.to_wire()  # signed now
    signed = dns.message.from_wire(wire, keyring=False).tsig
    assert signed is not None
    signed_at = int(signed[0].time_signed)
    late = Transfers(settings(tsig=(KEY.name,)), node.ledger, CONFIG, now_s=lambda: signed_at + 1000)
    wires = late.answer(wire, PEER, tcp=True)
    assert wires is not None and len(wires) == 1
    reply = dns.message.from_wire(wires[0], keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH and reply.tsig is not None
    assert reply.tsig[0].error == dns.rcode.BADTIME and not reply.answer
    soon_after = Transfers(settings(tsig=(KEY.name,)), node.ledger, CONFIG, now_s=lambda: signed_at + 100)
    wires = soon_after.answer(wire, PEER, tcp=True)
    assert wires is not None
    assert dns.message.from_wire(wires[0], keyring=False).rcode() == dns.rcode.NOERROR


def test_transport_and_names(node: InstantNode) -> None:
    transfers = Transfers(settings(), node.ledger, CONFIG)
    assert rcode(transfer(transfers, request("alice.p2p"), tcp=False)) == dns.rcode.FORMERR
    assert rcode(transfer(transfers, request("alice.p2p", "IXFR"))) == dns.rcode.FORMERR  # no SOA
    for name in ("bob.p2p", "www.alice.p2p", "example.com", "."):
        assert rcode(transfer(transfers, request(name))) == dns.rcode.NOTAUTH, name
    tld = lines(transfer(transfers, request("p2p")))
    assert tld[1] == "p2p. 3600 IN NS ns1.example.net." and len(tld) == 3
    assert f" {node.ledger.height} " in tld[0]  # the TLD's serial is the head height
    # Plain queries are not ours; a TSIG-signed SOA query is (its reply must be signed).
    assert transfers.answer(request("alice.p2p", "SOA").to_wire(), PEER, tcp=False) is None
    assert transfers.answer(request("alice.p2p", "A", key=KEY).to_wire(), PEER, tcp=False) is None
    soa = transfer(transfers, request("alice.p2p", "SOA", key=KEY), tcp=False)
    assert soa[0].had_tsig and soa_serials(soa) == [1]


def test_a_delegated_domain_transfers_with_the_owners_ns(node: InstantNode) -> None:
    register(
        node, "deleg.p2p", ["@ 300 NS ns1", "@ 300 NS ns.example.net.", "ns1 300 A 192.0.2.53"]
    )
    transfers = Transfers(settings(), node.ledger, CONFIG)
    zone = lines(transfer(transfers, request("deleg.p2p")))
    assert sorted(zone[1:-1]) == [
        "deleg.p2p. 300 IN NS ns.example.net.",
        "deleg.p2p. 300 IN NS ns1.deleg.p2p.",
        "ns1.deleg.p2p. 300 IN A 192.0.2.53",
    ]  # no synthesized NS: the owner's NS replace it, as in answers


# -- over the network: the real server, dnspython as the secondary --


@asynccontextmanager
async def serving(
    node: InstantNode, dns_settings: DnsSettings, notifier: Notifier | None = None
) -> AsyncIterator[tuple[str, int]]:
    transfers = Transfers(dns_settings, node.ledger, CONFIG)
    server = DnsServer(
        node.ledger, HOST, 0, blocks=node, config=CONFIG, settings=dns_settings, transfers=transfers, notifier=notifier
    )
    async with trio.open_nursery() as nursery:
        yield await nursery.start(server.run)
        nursery.cancel_scope.cancel()


async def inbound(
    address: tuple[str, int],
    zone: dns.zone.Zone,
    serial: int | None = None,
    key: TsigKey | None = None,
    udp_mode: dns.query.UDPMode = dns.query.UDPMode.NEVER,
) -> None:
    ring = keyring(key) if key else None
    name = dns.name.from_text(key.name) if key else None
    query, _ = dns.xfr.make_query(zone, serial=serial, keyring=ring, keyname=name)
    call = functools.partial(
        dns.query.inbound_xfr,
        address[0],
        zone,
        query,
        port=address[1],
        timeout=TIMEOUT_S,
        lifetime=TIMEOUT_S * 2,
        udp_mode=udp_mode,
    )
    await trio.to_thread.run_sync(call)


async def ask(address: tuple[str, int], name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    call = functools.partial(dns.query.udp, query, address[0], port=address[1], timeout=TIMEOUT_S)
    reply: dns.message.Message = await trio.to_thread.run_sync(call)
    return reply


@pytest.mark.trio
async def test_axfr_holds_what_the_resolver_serves(node: InstantNode) -> None:
    async with serving(node, settings(tsig=(KEY.name,))) as address:
        zone = dns.zone.Zone("alice.p2p.", relativize=False)
        await inbound(address, zone, key=KEY)
        cut = dns.name.from_text("sub.alice.p2p.")
        seen = 0
        for name, rdataset in zone.iterate_rdatasets():
            if name.is_subdomain(cut) and name != cut:
                continue  # glue: served in referrals' additional section only
            rdtype = dns.rdatatype.to_text(rdataset.rdtype)
            reply = await ask(address, name.to_text(), rdtype)
            served = reply.answer if reply.flags & dns.flags.AA else reply.authority
            expected = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
            expected.update(rdataset)
            assert served[0] == expected and served[0].ttl == rdataset.ttl, (name, rdtype)
            seen += 1
        assert seen == len(ALICE) + 1  # every record set but the glue, plus SOA and NS

        # IXFR into the same zone object after an update: equal to a fresh AXFR.
        serial = zone.get_soa().serial
        await node.submit(
            next_tx(
                node.genesis,
                node.ledger,
                OWNER,
                "alice.p2p",
                records("alice.p2p", ["@ 300 A 192.0.2.42", "www 300 A 192.0.2.43"]),
                valid_until=soon(node.ledger),
            )
        )
        await inbound(address, zone, serial=serial, key=KEY, udp_mode=dns.query.UDPMode.TRY_FIRST)
        fresh = dns.zone.Zone("alice.p2p.", relativize=False)
        await inbound(address, fresh, key=KEY)
        assert zone == fresh and zone.get_soa().serial == node.ledger.height
        axfr_udp = await trio.to_thread.run_sync(
            functools.partial(
                dns.query.udp,
                request("alice.p2p", key=KEY),
                HOST,
                port=address[1],
                timeout=TIMEOUT_S,
            )
        )
        assert axfr_udp.rcode() == dns.rcode.FORMERR  # AXFR is TCP only (RFC 5936 4.2)


# -- NOTIFY --


@pytest.mark.trio
async def test_notify_is_signed_and_retransmitted(node: InstantNode) -> None:
    with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as secondary:
        await secondary.bind((HOST, 0))
        target = secondary.getsockname()
        notifier = Notifier(settings(tsig=(KEY.name,), notify=(target,)), node.ledger, CONFIG)
        async with trio.open_nursery() as nursery:
            await nursery.start(notifier.run)
            notifier.block_applied(node.ledger.height, frozenset({"alice.p2p", "gone.p2p"}))
            received: list[dns.message.Message] = []
            times: list[float] = []
            with trio.fail_after(5):
                while len(received) < 2:
                    data, source = await secondary.recvfrom(65535)
                    received.append(dns.message.from_wire(data, keyring=keyring(KEY)))
                    times.append(trio.current_time())
            assert times[1] - times[0] >= 0.9  # the first went unanswered: resent after 1 s
            assert received[0].id == received[1].id
            message = received[-1]
            assert message.opcode() == dns.opcode.NOTIFY and message.had_tsig
            assert message.flags & dns.flags.AA and not message.flags & dns.flags.RD
            assert message.question[0].to_text() == "alice.p2p. IN SOA"
            assert soa_serials([message]) == [1]
            reply = dns.message.make_response(message)
            await secondary.sendto(reply.to_wire(), source)
            with trio.fail_after(2):
                while notifier.acknowledged < 1:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert notifier.failed == 0  # gone.p2p is not a zone: nothing was sent for it


# -- a real secondary: Knot --

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KNOT_CONF = """\
server:
    rundir: "{dir}/run"
    listen: {host}@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{dir}/db"
log:
  - target: stderr
    any: info
{keys}remote:
  - id: ledger
    address: {host}@{primary}{use_key}
acl:
  - id: notify_from_ledger
    address: {host}
    action: notify{use_key}
template:
  - id: default
    storage: "{dir}/zones"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: none
zone:
  - domain: alice.p2p
    master: ledger
    acl: notify_from_ledger
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((HOST, 0))
        port: int = udp.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind((HOST, port))  # free for TCP too (knotd binds both)
    return port


@asynccontextmanager
async def knot_secondary(
    directory: Path, port: int, primary: int, key: TsigKey | None
) -> AsyncIterator[subprocess.Popen[bytes]]:
    for sub in ("run", "db", "zones"):
        (directory / sub).mkdir(parents=True)
    conf = directory / "knot.conf"
    keys = use_key = ""
    if key is not None:
        secret = base64.b64encode(key.secret).decode()
        keys = f"key:\n  - id: {key.name}\n    algorithm: {key.algorithm}\n    secret: {secret}\n"
        use_key = f"\n    key: {key.name}"
    conf.write_text(
        KNOT_CONF.format(
            dir=directory, host=HOST, port=port, primary=primary, keys=keys, use_key=use_key
        )
    )
    log = (directory / "knotd.log").open("wb")
    process = subprocess.Popen(
        [KNOTD, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


async def knot_answer(port: int, name: str, rdtype: str, want: str, timeout: float) -> list[str]:
    """What Knot serves for (name, rdtype), polled until `want` is in it (bounded)."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        query = dns.message.make_query(name, rdtype)
        try:
            reply = await trio.to_thread.run_sync(
                functools.partial(dns.query.udp, query, HOST, port=port, timeout=0.5)
            )
            seen = [line for rrset in reply.answer for line in rrset.to_text().splitlines()]
            if want in seen and reply.flags & dns.flags.AA:
                return seen
        except (dns.exception.Timeout, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"knot never served {want!r} for {name}/{rdtype}; last {seen}")
        await trio.sleep(0.1)


@pytest.mark.trio
@pytest.mark.skipif(not os.path.exists(KNOTD), reason="knotd not installed (apt-get install knot)")
@pytest.mark.parametrize("signed", [False, True], ids=["plain", "tsig"])
async def test_knot_secondary_follows_updates(
    node: InstantNode, tmp_path: Path, signed: bool
) -> None:
    knot_port = free_port()
    key = KEY if signed else None
    dns_settings = settings(notify=((HOST, knot_port),), tsig=(KEY.name,) if signed else ())
    notifier = Notifier(dns_settings, node.ledger, CONFIG)
    async with serving(node, dns_settings, notifier) as address:
        async with knot_secondary(tmp_path / "knot", knot_port, address[1], key) as knot:
            await knot_answer(knot_port, "alice.p2p", "A", "alice.p2p. 300 IN A 192.0.2.1", 10)
            kdig = shutil.which("kdig")
            if kdig is not None:
                with trio.fail_after(5):
                    result = await trio.run_process(
                        [kdig, f"@{HOST}", "-p", str(knot_port), "+short", "mail.alice.p2p", "A"],
                        capture_stdout=True,
                    )
                assert result.stdout.decode().strip() == "192.0.2.2"
            await node.submit(
                next_tx(
                    node.genesis,
                    node.ledger,
                    OWNER,
                    "alice.p2p",
                    records("alice.p2p", [*ALICE, "new 300 A 192.0.2.200"]),
                    valid_until=soon(node.ledger),
                )
            )
            # Knot's own refresh timer is an hour away: only our NOTIFY brings this in.
            await knot_answer(
                knot_port, "new.alice.p2p", "A", "new.alice.p2p. 300 IN A 192.0.2.200", 5
            )
            soa = (
                "alice.p2p. 300 IN SOA ns1.example.net. hostmaster.alice.p2p. {} 3600 600 604800 60"
            )
            await knot_answer(knot_port, "alice.p2p", "SOA", soa.format(node.ledger.height), 2)
            assert knot.poll() is None
        assert notifier.acknowledged >= 1 and notifier.failed == 0
