"""The record types BIND users rely on, end to end, and one NS set for a network of nodes.

A real devnet node process: the wallet CLI imports a zone file holding PTR,
NAPTR, DS, SSHFP, TLSA, SVCB and HTTPS records (parentheses over lines
included), exports it back, and the real `dig` asks the node for each type;
dig's answers are read back with dnspython. Then three real node processes of
one network whose genesis names the public nameservers, each started with its
own ``--dns-name``, all answer the same NS and SOA.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from chain.params import ConsensusParams
from chain.records import canonical_record_set
from ledgerdns.wallet.zonefile import read_zone
from tests.integration.test_node import ROOT, Running
from tools.localnet import Cluster

pytestmark = pytest.mark.integration

PASSPHRASE = "node records test"
SHA256 = "0123456789abcdef" * 4
ZONE = f"""$ORIGIN rec.p2p.
$TTL 300
@           A      192.0.2.1
@           MX     10 mail
mail        A      192.0.2.2
mail        AAAA   2001:db8::2
@           HTTPS  1 . alpn=h2,h3 (
                   ipv4hint=192.0.2.1 )   ; continued over two lines
_svc        SVCB   1 svc port=8443 mandatory=port
svc         A      192.0.2.3
4.2.0.192   PTR    mail
@           NAPTR  100 10 "S" "SIP+D2U" "" _sip._udp
_sip._udp   SRV    10 5 5060 sip
sip         A      192.0.2.5
_443._tcp.www TLSA 3 1 1 {SHA256}
www         A      192.0.2.80
host        SSHFP  4 2 {SHA256}
sub         NS     ns1.sub
sub         DS     12345 13 2 {SHA256}
ns1.sub     A      192.0.2.53
"""
# (name, type, rdata as dnspython would write it, relative to rec.p2p.)
EXPECTED = [
    ("4.2.0.192", "PTR", "mail"),
    ("@", "NAPTR", '100 10 "S" "SIP+D2U" "" _sip._udp'),
    ("_443._tcp.www", "TLSA", f"3 1 1 {SHA256}"),
    ("host", "SSHFP", f"4 2 {SHA256}"),
    ("@", "HTTPS", "1 . alpn=h2,h3 ipv4hint=192.0.2.1"),
    ("_svc", "SVCB", "1 svc mandatory=port port=8443"),
    ("sub", "DS", f"12345 13 2 {SHA256}"),
]
DIG = shutil.which("dig")


def wallet(wallet_dir: Path, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledgerdns", "wallet", "--wallet-dir", str(wallet_dir),
         "--node", str(data_dir), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LEDGERDNS_PASSPHRASE": PASSPHRASE},
    )  # fmt: skip


def dig(node: tuple[str, int], name: str, rdtype: str) -> list[tuple[str, dns.rdata.Rdata]]:
    """The answer section `dig` prints, each line's rdata read by dnspython."""
    assert DIG is not None
    done = subprocess.run(
        [DIG, f"@{node[0]}", "-p", str(node[1]), "+norec", "+tries=1", "+time=5",
         "+noall", "+answer", name, rdtype],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0 and "bad packet" not in done.stdout, done.stdout + done.stderr
    out = []
    for line in done.stdout.splitlines():
        owner, _ttl, rclass, shown_type, rdata = line.split(None, 4)
        assert rclass == "IN" and shown_type == rdtype, line
        out.append((owner, dns.rdata.from_text("IN", rdtype, rdata)))
    return out


def ask(node: tuple[str, int], name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return dns.query.udp(query, node[0], port=node[1], timeout=3)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, Path]]:
    base = tmp_path_factory.mktemp("records")
    wallet_dir, data_dir = base / "wallet", base / "node"
    running = Running(data_dir, "--dns-name", "ns1.example.net")
    try:
        made = wallet(wallet_dir, data_dir, "new", "--name", "owner")
        assert made.returncode == 0, made.stderr
        zone = base / "rec.zone"
        zone.write_text(ZONE)
        done = wallet(wallet_dir, data_dir, "register", "rec.p2p")
        assert done.returncode == 0, done.stdout + done.stderr
        done = wallet(wallet_dir, data_dir, "import-zone", "rec.p2p", str(zone))
        assert done.returncode == 0, done.stdout + done.stderr
        done = wallet(
            wallet_dir, data_dir, "register", "signed.p2p",
            "--record", "@ 300 NS ns.example.net.",
            "--record", f"@ 3600 DS 12345 13 2 {SHA256}",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        yield running, wallet_dir
    finally:
        running.close()


def test_zone_file_import_and_export_round_trip(served: tuple[Running, Path]) -> None:
    running, wallet_dir = served
    exported = wallet(wallet_dir, running.data_dir, "export-zone", "rec.p2p")
    assert exported.returncode == 0, exported.stderr
    for word in ("PTR", "NAPTR", "TLSA", "SSHFP", "HTTPS", "SVCB", "DS"):
        assert f" IN {word} " in exported.stdout
    back = canonical_record_set(read_zone(exported.stdout, "rec.p2p").records)
    assert back == canonical_record_set(read_zone(ZONE, "rec.p2p").records)


@pytest.mark.skipif(DIG is None, reason="dig is not installed (apt-get install bind9-dnsutils)")
@pytest.mark.parametrize(("owner", "rdtype", "rdata"), EXPECTED)
def test_dig_reads_every_type(
    served: tuple[Running, Path], owner: str, rdtype: str, rdata: str
) -> None:
    running, _ = served
    origin = dns.name.from_text("rec.p2p.")
    name = "rec.p2p." if owner == "@" else f"{owner}.rec.p2p."
    expected = dns.rdata.from_text("IN", rdtype, rdata, origin=origin, relativize=False)
    assert dig(running.dns, name, rdtype) == [(name, expected)]
    reply = ask(running.dns, name, rdtype)
    assert reply.flags & dns.flags.AA and list(reply.answer[0]) == [expected]


@pytest.mark.skipif(DIG is None, reason="dig is not installed (apt-get install bind9-dnsutils)")
def test_ds_of_a_delegated_domain_comes_from_the_tld(served: tuple[Running, Path]) -> None:
    running, _ = served
    expected = dns.rdata.from_text("IN", "DS", f"12345 13 2 {SHA256}")
    assert dig(running.dns, "signed.p2p", "DS") == [("signed.p2p.", expected)]
    assert ask(running.dns, "signed.p2p", "DS").flags & dns.flags.AA


def test_mx_and_srv_answers_carry_target_addresses(served: tuple[Running, Path]) -> None:
    running, _ = served
    mx = ask(running.dns, "rec.p2p", "MX")
    assert sorted(rr.to_text() for rr in mx.additional) == [
        "mail.rec.p2p. 300 IN A 192.0.2.2",
        "mail.rec.p2p. 300 IN AAAA 2001:db8::2",
    ]
    srv = ask(running.dns, "_sip._udp.rec.p2p", "SRV")
    assert [rr.to_text() for rr in srv.additional] == ["sip.rec.p2p. 300 IN A 192.0.2.5"]


NAMESERVERS = ("ns1.example.net", "ns2.example.org")
FAST = ConsensusParams(timeout_propose_ms=1000, heartbeat_ms=0)


def test_every_node_of_a_network_answers_one_ns_set(tmp_path: Path) -> None:
    with Cluster(
        tmp_path, validators=1, followers=2, consensus=FAST, nameservers=NAMESERVERS
    ) as cluster:
        for node in cluster.nodes:  # each node its own name: not what NS says
            node.extra_args = ["--dns-name", f"node{node.index}.example.com"]
        cluster.start()
        seen = set()
        for node in cluster.nodes:
            host, port = str(node.ready["dns"]).rsplit(":", 1)
            address = (host, int(port))
            ns = ask(address, "p2p", "NS")
            soa = ask(address, "p2p", "SOA")
            nxdomain = ask(address, "nobody.p2p", "A")
            seen.add(
                (
                    tuple(sorted(rd.target.to_text() for rd in ns.answer[0])),
                    soa.answer[0][0].mname.to_text(),
                    nxdomain.authority[0][0].mname.to_text(),
                )
            )
        assert seen == {(("ns1.example.net.", "ns2.example.org."), "ns1.example.net.",
                         "ns1.example.net.")}  # fmt: skip
