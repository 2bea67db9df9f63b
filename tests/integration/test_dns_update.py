"""RFC 2136 UPDATE with TSIG over real UDP and TCP sockets on 127.0.0.1, port 0.

The ledger is an `InstantNode` (real LevelDB, each transaction finalized at
once). Most tests use a small trio listener that hands opcode-5 messages to
`Updater.answer` and everything else to a `DnsServer`'s answer cache, so the
same port answers queries too; the last test goes through the real
`DnsServer(updater=...)`, with UDP in-process and in a worker. Clients are
dnspython (on trio sockets) and the real ``nsupdate`` (bind9-dnsutils).
"""

from __future__ import annotations

import base64
import dataclasses
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.tsig
import dns.update
import pytest
import trio

from chain.errors import ConfigError
from chain.records import Record, canonical_record_set
from ledgerdns.dns import DnsServer, ZoneConfig
from ledgerdns.dns.settings import DnsSettings, TsigKey, UpdateSettings
from ledgerdns.dns.signing_times import MAX_REMEMBERED, WINDOW_S, SigningTimes
from ledgerdns.dns.update import Updater
from ledgerdns.keyfiles import load_signer, load_signers
from ledgerdns.node.config import NodeConfig
from ledgerdns.node.dns import build_dns_server
from ledgerdns.wallet.keystore import Keystore
from ledgerdns.wallet.passphrase import ENV_PASSPHRASE
from tests.support.instant_node import InstantNode
from tools.devchain import dev_key, next_tx, register_tx, soon

pytestmark = [pytest.mark.integration, pytest.mark.trio]

OWNER = dev_key("dns-update-owner", 0)
STRANGER = dev_key("dns-update-stranger", 0)
HOST = "127.0.0.1"
ZONE = ZoneConfig(server_name="ns1.example.net")
TIMEOUT_S = 5.0
KEY = "update."
UNMAPPED = "unmapped."
SECRET = bytes(range(32))
SECRET_B64 = base64.b64encode(SECRET).decode()
TSIG_KEY = dns.tsig.Key(KEY, SECRET, "hmac-sha256")

ALICE = [
    "@ 300 A 192.0.2.1",
    "@ 300 MX 10 mail",
    "mail 300 A 192.0.2.2",
    "www 300 A 192.0.2.10",
    "www 300 A 192.0.2.11",
    '@ 300 TXT "apex"',
    'www 300 TXT "web"',
    "alias 300 CNAME www",
]

Address = tuple[str, int]


def records(domain: str, lines: list[str]) -> tuple[Record, ...]:
    return canonical_record_set(Record.from_text(line, origin=domain) for line in lines)


def lines_of(node: InstantNode, domain: str = "alice.p2p") -> set[str]:
    state = node.ledger.get_domain(domain)
    assert state is not None
    return {r.to_text(domain) for r in state.records}


def write_key(path: Path, mode: int = 0o600) -> Path:
    path.write_bytes(OWNER.to_pem())
    path.chmod(mode)
    return path


def settings(key_file: Path, wait_s: float = TIMEOUT_S) -> DnsSettings:
    tsig = {
        KEY: TsigKey(KEY, "hmac-sha256", SECRET),
        UNMAPPED: TsigKey(UNMAPPED, "hmac-sha256", b"another secret, not mapped"),
    }
    return DnsSettings(tsig=tsig, update=UpdateSettings(keys={KEY: key_file}, wait_s=wait_s))


def updater_for(config: DnsSettings, node: InstantNode, **options: Any) -> Updater:
    """The updater with the signing keys `config` maps, loaded as the composition root does."""
    return Updater(config, node.ledger, node, signers=load_signers(config.update.keys), **options)


# -- the server: the real DnsServer with the updater, UDP served in-process --


async def _read_exactly(stream: trio.abc.ReceiveStream, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


@asynccontextmanager
async def listening(config: DnsSettings, node: InstantNode) -> AsyncIterator[Address]:
    updater = updater_for(config, node, zone=ZONE)
    server = DnsServer(node.ledger, HOST, 0, blocks=node, config=ZONE, settings=config, updater=updater)
    async with trio.open_nursery() as nursery:
        yield await nursery.start(server.run)
        nursery.cancel_scope.cancel()


@dataclass
class Env:
    node: InstantNode
    address: Address
    key_file: Path


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[InstantNode]:
    instant = InstantNode(tmp_path)
    try:
        for domain, owner, lines in (
            ("alice.p2p", OWNER, ALICE),
            ("bob.p2p", STRANGER, ["@ 300 A 192.0.2.99"]),
        ):
            tx = register_tx(
                instant.genesis,
                owner,
                domain,
                records(domain, lines),
                valid_until=soon(instant.ledger),
            )
            await instant.submit(tx)
        yield instant
    finally:
        instant.close()


@pytest.fixture
async def env(node: InstantNode, tmp_path: Path) -> AsyncIterator[Env]:
    key_file = write_key(tmp_path / "owner.pem")
    async with listening(settings(key_file), node) as address:
        yield Env(node, address, key_file)


# -- clients --


async def exchange(address: Address, wire: bytes, *, tcp: bool = False) -> bytes:
    with trio.fail_after(TIMEOUT_S):
        if tcp:
            stream = await trio.open_tcp_stream(*address)
            async with stream:
                await stream.send_all(len(wire).to_bytes(2, "big") + wire)
                head = await _read_exactly(stream, 2)
                assert head is not None, "closed without a reply"
                reply = await _read_exactly(stream, int.from_bytes(head, "big"))
                assert reply is not None, "closed mid-reply"
                return reply
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            await sock.connect(address)
            await sock.send(wire)
            return bytes(await sock.recv(65535))


def new_update(
    zone: str = "alice.p2p", key: dns.tsig.Key | None = TSIG_KEY
) -> dns.update.UpdateMessage:
    return dns.update.UpdateMessage(zone, keyring=key)


async def send(
    address: Address, message: dns.update.UpdateMessage, *, tcp: bool = False
) -> dns.message.Message:
    """Send a signed update; the reply's TSIG is verified against the request."""
    wire = message.to_wire()
    reply = await exchange(address, wire, tcp=tcp)
    return dns.message.from_wire(reply, keyring=message.keyring, request_mac=message.mac)


async def query(address: Address, name: str, rdtype: str) -> list[str]:
    wire = dns.message.make_query(name, rdtype).to_wire()
    reply = dns.message.from_wire(await exchange(address, wire))
    return sorted(rd.to_text() for rrset in reply.answer for rd in rrset)


def height(env: Env) -> int:
    return env.node.ledger.height


# -- nsupdate, the real client --

nsupdate = pytest.mark.skipif(shutil.which("nsupdate") is None, reason="nsupdate not installed")


async def run_nsupdate(
    address: Address, script: str, *options: str
) -> subprocess.CompletedProcess[bytes]:
    text = f"server {address[0]} {address[1]}\n{script}"
    with trio.fail_after(15):
        return await trio.run_process(
            ["nsupdate", *options, "-y", f"hmac-sha256:{KEY}:{SECRET_B64}"],
            stdin=text.encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


@nsupdate
async def test_nsupdate_adds_a_record_over_udp(env: Env) -> None:
    before = height(env)
    done = await run_nsupdate(
        env.address,
        "zone alice.p2p\n"
        "prereq nxrrset new.alice.p2p. A\n"
        "update add new.alice.p2p. 600 A 192.0.2.77\n"
        "send\n",
    )
    assert done.returncode == 0, done.stderr.decode()
    assert "new 600 IN A 192.0.2.77" in lines_of(env.node)
    assert height(env) == before + 1
    assert await query(env.address, "new.alice.p2p", "A") == ["192.0.2.77"]


@nsupdate
async def test_nsupdate_over_tcp_deletes_and_reports_a_failed_prerequisite(env: Env) -> None:
    done = await run_nsupdate(
        env.address,
        "zone alice.p2p\nprereq yxrrset www.alice.p2p. A\nupdate delete www.alice.p2p. A\nsend\n",
        "-v",
    )
    assert done.returncode == 0, done.stderr.decode()
    assert await query(env.address, "www.alice.p2p", "A") == []
    assert await query(env.address, "www.alice.p2p", "TXT") == ['"web"']
    failed = await run_nsupdate(
        env.address,
        "zone alice.p2p\nprereq yxrrset www.alice.p2p. A\nupdate add x.alice.p2p. 300 A 192.0.2.5\nsend\n",
        "-v",
    )
    assert failed.returncode != 0
    assert b"NXRRSET" in failed.stdout + failed.stderr
    assert not any(line.startswith("x ") for line in lines_of(env.node))


# -- prerequisites (RFC 2136 3.2) --


def _rdataset(ttl: int, rdtype: str, *texts: str) -> dns.rdataset.Rdataset:
    return dns.rdataset.from_text("IN", rdtype, ttl, *texts)


PREREQUISITES: list[tuple[str, Callable[[dns.update.UpdateMessage], None], int]] = [
    ("rrset-exists", lambda u: u.present("www", "A"), dns.rcode.NOERROR),
    ("rrset-exists-missing", lambda u: u.present("www", "AAAA"), dns.rcode.NXRRSET),
    ("rrset-exists-apex-soa", lambda u: u.present("@", "SOA"), dns.rcode.NOERROR),
    (
        "rrset-value-match",
        lambda u: u.present("www", _rdataset(0, "A", "192.0.2.11", "192.0.2.10")),
        dns.rcode.NOERROR,
    ),
    ("rrset-value-partial", lambda u: u.present("www", "A", "192.0.2.10"), dns.rcode.NXRRSET),
    (
        "rrset-value-synthesized-ns",
        lambda u: u.present("@", "NS", "ns1.example.net."),
        dns.rcode.NOERROR,
    ),
    ("rrset-absent", lambda u: u.absent("www", "AAAA"), dns.rcode.NOERROR),
    ("rrset-absent-exists", lambda u: u.absent("www", "A"), dns.rcode.YXRRSET),
    ("name-in-use", lambda u: u.present("mail"), dns.rcode.NOERROR),
    ("name-in-use-missing", lambda u: u.present("nothere"), dns.rcode.NXDOMAIN),
    ("name-not-in-use", lambda u: u.absent("nothere"), dns.rcode.NOERROR),
    ("name-not-in-use-exists", lambda u: u.absent("www"), dns.rcode.YXDOMAIN),
    ("outside-zone", lambda u: u.present("www.bob.p2p.", "A"), dns.rcode.NOTZONE),
    (
        "nonzero-ttl",
        lambda u: u.present("www", _rdataset(300, "A", "192.0.2.10", "192.0.2.11")),
        dns.rcode.FORMERR,
    ),
]


@pytest.mark.parametrize(
    ("prerequisite", "rcode"),
    [(p[1], p[2]) for p in PREREQUISITES],
    ids=[p[0] for p in PREREQUISITES],
)
async def test_prerequisite(
    env: Env, prerequisite: Callable[[dns.update.UpdateMessage], None], rcode: int
) -> None:
    update = new_update()
    prerequisite(update)
    update.add("marker", 300, "TXT", '"applied"')
    reply = await send(env.address, update)
    assert reply.rcode() == rcode, dns.rcode.to_text(reply.rcode())
    applied = 'marker 300 IN TXT "applied"' in lines_of(env.node)
    assert applied == (rcode == dns.rcode.NOERROR)


# -- the update section (RFC 2136 3.4) --


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_several_changes_are_one_transaction(env: Env, tcp: bool) -> None:
    before = env.node.ledger.get_domain("alice.p2p")
    assert before is not None
    update = new_update()
    update.add("new", 120, "AAAA", "2001:db8::7")
    update.add("www", 60, "A", "192.0.2.12")  # joins the RRset: the RRset takes TTL 60
    update.delete("mail", "A", "192.0.2.2")  # delete an RR
    update.delete("alias")  # delete all RRsets at a name
    update.delete("@", "TXT")  # delete an RRset
    reply = await send(env.address, update, tcp=tcp)
    assert reply.rcode() == dns.rcode.NOERROR
    after = env.node.ledger.get_domain("alice.p2p")
    assert after is not None and after.seq == before.seq + 1
    assert lines_of(env.node) == {
        "@ 300 IN A 192.0.2.1",
        "@ 300 IN MX 10 mail.alice.p2p.",
        "new 120 IN AAAA 2001:db8::7",
        "www 60 IN A 192.0.2.10",
        "www 60 IN A 192.0.2.11",
        "www 60 IN A 192.0.2.12",
        'www 300 IN TXT "web"',
    }
    assert await query(env.address, "www.alice.p2p", "A") == [
        "192.0.2.10", "192.0.2.11", "192.0.2.12",
    ]  # fmt: skip


async def test_deleting_everything_at_the_apex_keeps_soa_and_ns(env: Env) -> None:
    update = new_update()
    update.add("@", 300, "NS", "ns1.elsewhere.example.")  # delegates the whole domain
    update.delete("www")
    update.delete("mail")
    update.delete("alias")
    reply = await send(env.address, update)
    assert reply.rcode() == dns.rcode.REFUSED  # @ A, MX, TXT beside NS at @: the ledger refuses
    update = new_update()
    update.delete("@")  # every RRset at @ but SOA and NS
    reply = await send(env.address, update)
    assert reply.rcode() == dns.rcode.NOERROR
    assert not any(line.startswith("@ ") for line in lines_of(env.node))
    assert await query(env.address, "alice.p2p", "NS") == ["ns1.example.net."]


async def test_changes_that_change_nothing_send_no_transaction(env: Env) -> None:
    before = height(env)
    update = new_update()
    update.add("www", 300, "A", "192.0.2.10")  # already there
    update.add("@", 300, "SOA", "a. b. 99 1 1 1 1")  # the SOA is synthesized: ignored
    update.delete("@", "NS")  # the apex NS RRset is never deleted
    update.delete("nothere")  # nothing there
    update.add("alias", 300, "A", "192.0.2.3")  # beside a CNAME: ignored
    update.add("www", 300, "CNAME", "mail")  # beside other data: ignored
    update.delete("www", "HINFO")  # a type the ledger does not hold: nothing to delete
    reply = await send(env.address, update)
    assert reply.rcode() == dns.rcode.NOERROR
    assert height(env) == before
    assert lines_of(env.node) == {r.to_text("alice.p2p") for r in records("alice.p2p", ALICE)}


async def test_a_cname_replaces_a_cname(env: Env) -> None:
    update = new_update()
    update.add("alias", 300, "CNAME", "mail")
    assert (await send(env.address, update)).rcode() == dns.rcode.NOERROR
    assert "alias 300 IN CNAME mail.alice.p2p." in lines_of(env.node)
    assert "alias 300 IN CNAME www.alice.p2p." not in lines_of(env.node)


@pytest.mark.parametrize(
    ("change", "rcode"),
    [
        (lambda u: u.add("host", 300, "PTR", "x.example."), dns.rcode.NOERROR),
        (lambda u: u.add("@", 300, "HTTPS", "1 CDN.Example. alpn=h2"), dns.rcode.NOERROR),
        (lambda u: u.add("host", 300, "HINFO", "a b"), dns.rcode.REFUSED),
        (lambda u: u.add("x.bob.p2p.", 300, "A", "192.0.2.1"), dns.rcode.NOTZONE),
        (lambda u: u.add("-bad-", 300, "A", "192.0.2.1"), dns.rcode.REFUSED),
        (lambda u: u.add("@", 300, "CAA", '0 issue ""'), dns.rcode.NOERROR),
    ],
    ids=["ptr-ok", "https-ok", "hinfo", "outside-zone", "bad-owner", "caa-ok"],
)
async def test_update_rejections(
    env: Env, change: Callable[[dns.update.UpdateMessage], None], rcode: int
) -> None:
    update = new_update()
    update.add("marker", 300, "TXT", '"applied"')
    change(update)
    reply = await send(env.address, update)
    assert reply.rcode() == rcode, dns.rcode.to_text(reply.rcode())
    assert ('marker 300 IN TXT "applied"' in lines_of(env.node)) == (rcode == dns.rcode.NOERROR)


async def test_concurrent_updates_of_one_domain_all_land(env: Env) -> None:
    before = height(env)
    rcodes: list[int] = []

    async def one(i: int) -> None:
        update = new_update()
        update.add(f"c{i}", 300, "A", f"192.0.2.{100 + i}")
        rcodes.append((await send(env.address, update)).rcode())

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(one, i)
    assert rcodes == [dns.rcode.NOERROR] * 6
    assert {f"c{i} 300 IN A 192.0.2.{100 + i}" for i in range(6)} <= lines_of(env.node)
    assert height(env) == before + 6


async def test_an_update_waits_for_pending_transactions_of_its_domain(env: Env) -> None:
    node = env.node
    node.hold = True
    wallet_records = (*records("alice.p2p", ALICE), *records("alice.p2p", ["w 300 A 192.0.2.50"]))
    await node.submit(
        next_tx(node.genesis, node.ledger, OWNER, "alice.p2p", canonical_record_set(wallet_records),
                valid_until=soon(node.ledger))
    )  # fmt: skip
    results: list[int] = []

    async def update_while_pending() -> None:
        update = new_update()
        update.absent("w")  # judged after the pending transaction lands: fails
        update.add("u", 300, "A", "192.0.2.51")
        results.append((await send(env.address, update)).rcode())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(update_while_pending)
        await trio.sleep(0.2)
        assert results == []  # still waiting for the pending one
        node.hold = False
        node.finalize_pending()
    assert results == [dns.rcode.YXDOMAIN]
    assert "w 300 IN A 192.0.2.50" in lines_of(node)


async def test_no_finality_in_time_is_servfail(node: InstantNode, tmp_path: Path) -> None:
    node.hold = True
    async with listening(settings(write_key(tmp_path / "k.pem"), wait_s=0.3), node) as address:
        update = new_update()
        update.add("slow", 300, "A", "192.0.2.8")
        assert (await send(address, update)).rcode() == dns.rcode.SERVFAIL
    assert len(node.mempool.pending_for("alice.p2p")) == 1


# -- the zone section and ownership (RFC 2136 3.1, 3.3) --


@pytest.mark.parametrize(
    ("zone", "rcode"),
    [
        ("example.com", dns.rcode.NOTAUTH),
        ("www.alice.p2p", dns.rcode.NOTAUTH),
        ("nobody.p2p", dns.rcode.NOTAUTH),
        ("p2p", dns.rcode.REFUSED),
        ("bob.p2p", dns.rcode.REFUSED),  # registered, but not by the mapped key
        ("ALICE.P2P", dns.rcode.NOERROR),
    ],
)
async def test_zone(env: Env, zone: str, rcode: int) -> None:
    update = new_update(zone)
    update.add(dns.name.from_text("marker", dns.name.from_text(zone)), 300, "TXT", '"z"')
    reply = await send(env.address, update)
    assert reply.rcode() == rcode, dns.rcode.to_text(reply.rcode())


async def test_zone_of_another_class_is_notauth(env: Env) -> None:
    update = dns.update.UpdateMessage("alice.p2p", rdclass=dns.rdataclass.CH, keyring=TSIG_KEY)
    assert (await send(env.address, update)).rcode() == dns.rcode.NOTAUTH


async def test_malformed_zone_sections(env: Env) -> None:
    empty = dns.update.UpdateMessage(None, keyring=TSIG_KEY)  # ZOCOUNT 0
    assert (await send(env.address, empty)).rcode() == dns.rcode.FORMERR
    wire = bytearray(new_update().to_wire())
    zone_end = 12 + len(dns.name.from_text("alice.p2p").to_digestable())
    struct.pack_into("!H", wire, zone_end, dns.rdatatype.A)  # a zone RR that is not SOA
    reply = dns.message.from_wire(await exchange(env.address, bytes(wire)))
    assert reply.rcode() == dns.rcode.FORMERR and reply.tsig is None


# -- TSIG (RFC 8945) --


def _tsig_of(reply: bytes) -> tuple[dns.message.Message, dns.rdtypes.ANY.TSIG.TSIG]:
    message = dns.message.from_wire(reply, keyring=False)
    assert message.tsig is not None, "the reply has no TSIG"
    rdata = message.tsig[0]
    assert isinstance(rdata, dns.rdtypes.ANY.TSIG.TSIG)
    return message, rdata


async def test_unsigned_is_notauth(env: Env) -> None:
    update = new_update(key=None)
    update.add("x", 300, "A", "192.0.2.1")
    reply = dns.message.from_wire(await exchange(env.address, update.to_wire()))
    assert reply.rcode() == dns.rcode.NOTAUTH and reply.tsig is None


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (dns.tsig.Key("nobody.", SECRET, "hmac-sha256"), dns.rcode.BADKEY),
        (dns.tsig.Key(KEY, SECRET, "hmac-sha512"), dns.rcode.BADKEY),
        (dns.tsig.Key(KEY, b"the wrong secret", "hmac-sha256"), dns.rcode.BADSIG),
    ],
    ids=["unknown-key", "wrong-algorithm", "bad-signature"],
)
async def test_tsig_failures_are_notauth_unsigned(env: Env, key: dns.tsig.Key, error: int) -> None:
    update = new_update(key=key)
    update.add("x", 300, "A", "192.0.2.1")
    message, tsig = _tsig_of(await exchange(env.address, update.to_wire()))
    assert message.rcode() == dns.rcode.NOTAUTH
    assert (tsig.error, tsig.mac) == (error, b"")
    assert not any(line.startswith("x ") for line in lines_of(env.node))


async def test_bad_time_is_notauth_signed_with_our_time(env: Env) -> None:
    update = new_update(key=None)
    update.add("x", 300, "A", "192.0.2.1")
    unsigned = update.to_wire()
    template = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
        dns.rdataclass.ANY, dns.rdatatype.TSIG, TSIG_KEY.algorithm, 0, 300, b"", update.id, 0, b""
    )
    an_hour_ago = int(time.time()) - 3600
    signed, _ = dns.tsig.sign(unsigned, TSIG_KEY, template, an_hour_ago, b"")  # type: ignore[no-untyped-call]
    update.tsig = dns.rrset.from_rdata(TSIG_KEY.name, 0, signed)
    update.want_tsig_sign = False
    reply = await exchange(env.address, update.to_wire())
    message, tsig = _tsig_of(reply)
    assert message.rcode() == dns.rcode.NOTAUTH and tsig.error == dns.rcode.BADTIME
    assert tsig.time_signed == an_hour_ago
    assert abs(int.from_bytes(tsig.other, "big") - time.time()) < 60
    # The MAC covers the request MAC, the reply without its TSIG, and the TSIG variables.
    tsig_size = len(TSIG_KEY.name.to_digestable()) + 10 + len(tsig.to_digestable())
    body = bytearray(reply[:-tsig_size])
    struct.pack_into("!H", body, 10, struct.unpack_from("!H", reply, 10)[0] - 1)
    expected, _ = dns.tsig.sign(  # type: ignore[no-untyped-call]
        bytes(body), TSIG_KEY, tsig.replace(mac=b""), tsig.time_signed, signed.mac
    )
    assert tsig.mac == expected.mac
    assert not any(line.startswith("x ") for line in lines_of(env.node))


async def test_a_key_not_mapped_to_a_signing_key_is_refused_signed(env: Env) -> None:
    update = new_update(key=dns.tsig.Key(UNMAPPED, b"another secret, not mapped", "hmac-sha256"))
    update.add("x", 300, "A", "192.0.2.1")
    reply = await send(env.address, update)  # verifies the reply's TSIG
    assert reply.rcode() == dns.rcode.REFUSED and reply.had_tsig


# -- signing keys in the config --


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda p: None, "no such key file"),
        (lambda p: write_key(p, 0o640), "readable by other users"),
        (lambda p: (p.write_bytes(b"not a key"), p.chmod(0o600)), "not a usable key"),
    ],
    ids=["missing", "group-readable", "not-a-key"],
)
async def test_signing_key_files_are_checked(
    node: InstantNode, tmp_path: Path, prepare: Callable[[Path], object], message: str
) -> None:
    path = tmp_path / "signer.pem"
    prepare(path)
    with pytest.raises(ConfigError) as caught:
        load_signers(settings(path).update.keys)
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert 'dns.update.keys."update."' in str(caught.value)
    with pytest.raises(ConfigError) as caught:  # the node's DNS server is not built
        build_dns_server(node_config(tmp_path, path), chain=node.ledger, blocks=node, writer=node)
    assert message in str(caught.value) and 'dns.update.keys."update."' in str(caught.value)


async def test_a_wallet_key_file_is_opened_with_the_passphrase_from_the_environment(
    node: InstantNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Keystore(tmp_path / "wallet", scrypt_n=2**10)
    store.create("alice", OWNER, "correct horse")
    path = store.key_dir / "alice.json"
    monkeypatch.setenv(ENV_PASSPHRASE, "correct horse")
    assert load_signer("update.", path).public_key == OWNER.public_key
    monkeypatch.setenv(ENV_PASSPHRASE, "wrong")
    with pytest.raises(ConfigError, match="wrong passphrase"):
        load_signers(settings(path).update.keys)
    monkeypatch.delenv(ENV_PASSPHRASE)
    with pytest.raises(ConfigError, match=f"{ENV_PASSPHRASE}"):
        load_signer("update.", path)


# -- through the real server (`DnsServer(updater=...)`) --


@pytest.mark.parametrize("workers", [0, 1], ids=["udp-in-process", "udp-workers"])
async def test_through_the_dns_server(node: InstantNode, tmp_path: Path, workers: int) -> None:
    config = dataclasses.replace(settings(write_key(tmp_path / "owner.pem")), workers=workers)
    updater = updater_for(config, node, zone=ZONE)
    server = DnsServer(node.ledger, HOST, 0, blocks=node, config=ZONE, settings=config, updater=updater)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.run)
        if shutil.which("nsupdate") is not None:
            done = await run_nsupdate(
                address, "zone alice.p2p\nupdate add n.alice.p2p. 300 A 192.0.2.60\nsend\n"
            )
            assert done.returncode == 0, done.stderr.decode()
        update = new_update()
        update.add("t", 300, "A", "192.0.2.61")
        assert (await send(address, update, tcp=True)).rcode() == dns.rcode.NOERROR
        update = new_update()
        update.absent("t")
        assert (await send(address, update)).rcode() == dns.rcode.YXDOMAIN
        assert await query(address, "t.alice.p2p", "A") == ["192.0.2.61"]
        if shutil.which("nsupdate") is not None:
            assert await query(address, "n.alice.p2p", "A") == ["192.0.2.60"]
        nursery.cancel_scope.cancel()


async def test_a_replayed_update_is_refused_with_badtime(env: Env) -> None:
    update = new_update()
    update.add("replay", 300, "A", "192.0.2.7")
    wire = update.to_wire()
    first = await exchange(env.address, wire)
    assert dns.message.from_wire(first, keyring=False).rcode() == dns.rcode.NOERROR
    assert "replay 300 IN A 192.0.2.7" in lines_of(env.node)
    before = height(env)
    # The same signed bytes again (a captured packet, within the clock skew window).
    again = await exchange(env.address, wire)
    message, tsig = _tsig_of(again)
    assert message.rcode() == dns.rcode.NOTAUTH and tsig.error == dns.rcode.BADTIME
    # A request never seen before, signed a minute earlier (a slow client), is not a replay.
    older = new_update(key=None)  # signed by hand below, a minute in the past
    older.add("older", 300, "A", "192.0.2.8")
    unsigned = older.to_wire()
    template = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
        dns.rdataclass.ANY, dns.rdatatype.TSIG, TSIG_KEY.algorithm, 0, 300, b"", older.id, 0, b""
    )
    signed, _ = dns.tsig.sign(unsigned, TSIG_KEY, template, int(time.time()) - 60, b"")  # type: ignore[no-untyped-call]
    older.tsig = dns.rrset.from_rdata(TSIG_KEY.name, 0, signed)
    older.want_tsig_sign = False
    accepted = await exchange(env.address, older.to_wire())
    assert dns.message.from_wire(accepted, keyring=False).rcode() == dns.rcode.NOERROR
    assert height(env) == before + 1 and "older 300 IN A 192.0.2.8" in lines_of(env.node)


# -- clock window and replay memory (issue #13 defect 5) --


def sign_at(update: dns.update.UpdateMessage, when: int, fudge: int = 300) -> bytes:
    """`update` signed with TSIG_KEY as if at unix second `when`, with `fudge`."""
    template = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
        dns.rdataclass.ANY, dns.rdatatype.TSIG, TSIG_KEY.algorithm, 0, fudge, b"", update.id, 0, b""
    )
    signed, _ = dns.tsig.sign(update.to_wire(), TSIG_KEY, template, when, b"")  # type: ignore[no-untyped-call]
    update.tsig = dns.rrset.from_rdata(TSIG_KEY.name, 0, signed)
    update.want_tsig_sign = False
    return update.to_wire()


def an_update(name: str, address: str, *, delete: bool = False) -> dns.update.UpdateMessage:
    update = new_update(key=None)
    if delete:
        update.delete(name, "A", address)
    else:
        update.add(name, 300, "A", address)
    return update


def node_config(tmp_path: Path, key_file: Path) -> NodeConfig:
    """A node's config whose settings file maps KEY to `key_file` (the composition root's input)."""
    toml = tmp_path / "node.toml"
    toml.write_text(
        f'[dns]\nworkers = 0\n\n[[dns.tsig]]\nname = "{KEY}"\nalgorithm = "hmac-sha256"\n'
        f'secret = "{SECRET_B64}"\n\n[dns.update]\nkeys = {{ "{KEY}" = "{key_file}" }}\n'
        f"wait_s = {TIMEOUT_S}\n"
    )
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    return NodeConfig(data_dir=data_dir, config_file=toml, dns=(HOST, 0))


@asynccontextmanager
async def node_dns(node: InstantNode, config: NodeConfig) -> AsyncIterator[Address]:
    """The DNS server as the node builds it (`build_dns_server`), running until the block ends."""
    server = build_dns_server(config, chain=node.ledger, blocks=node, writer=node)
    async with trio.open_nursery() as nursery:
        yield await nursery.start(server.run)
        nursery.cancel_scope.cancel()


async def test_a_captured_update_is_refused_after_a_restart(
    node: InstantNode, tmp_path: Path
) -> None:
    config = node_config(tmp_path, write_key(tmp_path / "owner.pem"))
    now = int(time.time())
    captured = sign_at(an_update("replay", "192.0.2.7"), now)
    async with node_dns(node, config) as address:
        reply = dns.message.from_wire(await exchange(address, captured), keyring=False)
        assert reply.rcode() == dns.rcode.NOERROR
        assert "replay 300 IN A 192.0.2.7" in lines_of(node)
        # The owner takes it back, in the same second (a different MAC: both are accepted).
        undo = sign_at(an_update("replay", "192.0.2.7", delete=True), now)
        reply = dns.message.from_wire(await exchange(address, undo), keyring=False)
        assert reply.rcode() == dns.rcode.NOERROR
        assert not any(line.startswith("replay ") for line in lines_of(node))
    before = node.ledger.height
    # The node restarts; the captured packet comes back within the clock window, over TCP.
    async with node_dns(node, config) as address:
        message, tsig = _tsig_of(await exchange(address, captured, tcp=True))
        assert message.rcode() == dns.rcode.NOTAUTH and tsig.error == dns.rcode.BADTIME
        assert node.ledger.height == before
        assert not any(line.startswith("replay ") for line in lines_of(node))
        # A new request of that same second still goes through.
        fresh = sign_at(an_update("fresh", "192.0.2.9"), now)
        reply = dns.message.from_wire(await exchange(address, fresh), keyring=False)
        assert reply.rcode() == dns.rcode.NOERROR
        assert "fresh 300 IN A 192.0.2.9" in lines_of(node)


@pytest.mark.parametrize(
    ("skew_s", "fudge", "rcode"),
    [
        (-1000, 65535, dns.rcode.NOTAUTH),
        (1000, 65535, dns.rcode.NOTAUTH),
        (-301, 65535, dns.rcode.NOTAUTH),
        (-100, 65535, dns.rcode.NOERROR),
        (-100, 60, dns.rcode.NOTAUTH),
    ],
    ids=["1000s-ago", "1000s-ahead", "301s-ago", "100s-ago", "100s-ago-fudge-60"],
)
async def test_the_clock_window_is_the_fudge_at_most_300_s(
    env: Env, skew_s: int, fudge: int, rcode: dns.rcode.Rcode
) -> None:
    when = int(time.time()) + skew_s
    wire = sign_at(an_update("skewed", "192.0.2.12"), when, fudge)
    message, tsig = _tsig_of(await exchange(env.address, wire))
    assert message.rcode() == rcode
    added = any(line.startswith("skewed ") for line in lines_of(env.node))
    assert added == (rcode == dns.rcode.NOERROR)
    if rcode == dns.rcode.NOTAUTH:
        assert tsig.error == dns.rcode.BADTIME and tsig.time_signed == when
        assert abs(int.from_bytes(tsig.other, "big") - time.time()) < 60


async def test_two_updates_signed_in_the_same_second_both_work(env: Env) -> None:
    """nsupdate signs with whole seconds and may send several updates within one."""
    now = int(time.time())
    first = sign_at(an_update("one", "192.0.2.21"), now)
    second = sign_at(an_update("two", "192.0.2.22"), now)
    for wire, tcp in ((first, False), (second, True)):
        reply = dns.message.from_wire(await exchange(env.address, wire, tcp=tcp), keyring=False)
        assert reply.rcode() == dns.rcode.NOERROR
    assert {"one 300 IN A 192.0.2.21", "two 300 IN A 192.0.2.22"} <= lines_of(env.node)
    message, tsig = _tsig_of(await exchange(env.address, first))  # but not the same one twice
    assert message.rcode() == dns.rcode.NOTAUTH and tsig.error == dns.rcode.BADTIME


async def test_an_update_is_not_carried_out_unless_its_signing_time_is_on_disk(
    node: InstantNode, tmp_path: Path
) -> None:
    times = SigningTimes(tmp_path / "no-such-dir" / "tsig-times.json")
    updater = updater_for(settings(write_key(tmp_path / "owner.pem")), node, signing_times=times)
    wire = sign_at(an_update("lost", "192.0.2.30"), int(time.time()))
    reply = await updater.answer(wire, (HOST, 5353))
    assert reply is not None
    assert dns.message.from_wire(reply, keyring=False).rcode() == dns.rcode.SERVFAIL
    assert not any(line.startswith("lost ") for line in lines_of(node))


async def test_the_replay_memory_is_bounded_and_kept_atomically(tmp_path: Path) -> None:
    path = tmp_path / "tsig-times.json"
    times = SigningTimes(path)
    now = 10_000
    macs = [i.to_bytes(32, "big") for i in range(MAX_REMEMBERED + 1)]
    assert all([await times.admit(KEY, now, mac, now_s=now) for mac in macs[:-1]])
    assert not await times.admit(KEY, now, macs[0], now_s=now)  # the same request again
    # Full: the oldest goes, and everything signed at or before its time is refused from then on.
    assert await times.admit(KEY, now + 1, macs[-1], now_s=now)
    assert not await times.admit(KEY, now, b"new but at the floor", now_s=now)
    assert await times.admit("other.", now, b"x", now_s=now)
    assert path.stat().st_mode & 0o777 == 0o600 and not path.with_name(path.name + ".tmp").exists()
    reopened = SigningTimes(path)
    assert not await reopened.admit(KEY, now + 1, macs[-1], now_s=now)
    assert not await reopened.admit("other.", now, b"x", now_s=now) and await reopened.admit(
        "other.", now, b"z", now_s=now
    )


async def test_requests_signed_out_of_order_are_all_accepted_and_each_only_once(
    tmp_path: Path,
) -> None:
    """Concurrent clients: one signed at second T+1 may arrive before one signed at T."""
    times = SigningTimes(tmp_path / "tsig-times.json")
    now = 50_000
    assert await times.admit(KEY, now + 1, b"second", now_s=now)
    assert await times.admit(KEY, now, b"first", now_s=now)  # earlier, but never seen: fine
    assert not await times.admit(KEY, now, b"first", now_s=now + 200)  # a replay, later
    # MACs that can no longer be on time are forgotten, keeping the memory small.
    assert await times.admit(KEY, now + WINDOW_S + 10, b"much later", now_s=now + WINDOW_S + 10)
    assert len(times._memory[KEY].macs) == 1


@pytest.mark.parametrize(
    "content",
    [b"{", b'{"version": 3, "keys": {}}', b'{"version": 2, "keys": {"update.": {"floor": -2, "macs": []}}}'],
    ids=["not-json", "other-version", "bad-entry"],
)
async def test_a_corrupt_replay_memory_stops_the_node(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "tsig-times.json").write_bytes(content)
    with pytest.raises(ConfigError, match="TSIG replay memory .* is corrupt"):
        SigningTimes(tmp_path / "tsig-times.json")
