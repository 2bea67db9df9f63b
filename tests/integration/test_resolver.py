"""`ledgerdns resolver` against a real network, asked by real clients (issue 16).

Four validators on loopback (no heartbeat: idle between writes, so the
resolvers here take ``--max-staleness 3600``), names written over RPC, and
real ``ledgerdns resolver`` processes asked with dig and dnspython: A, CNAME,
wildcards, NXDOMAIN (proven absence), NODATA, a referral, TCP, AD=1, the cache,
names outside the ledger forwarded to dnsmasq (or REFUSED without
``--forward``), then unbound forwarding the ledger TLD to the resolver.
Bad flags, an unreadable genesis and a taken port end the command with one
line and exit code 2.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from tests.support.resolver_net import (
    Network,
    addresses,
    ask,
    ede_texts,
    is_authentic,
    rrs,
    start_network,
)
from tools import benchchain
from tools.dnsservers import start_dnsmasq
from tools.liars import LyingProxy
from tools.resolvers import UNBOUND, ResolverProcess, UnboundProcess, addr

pytestmark = [pytest.mark.integration]

DIG = shutil.which("dig")
DNSMASQ = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")
STALENESS_S = 3600.0
ALICE = [
    "@ A 192.0.2.1",
    "@ AAAA 2001:db8::1",
    "www CNAME @",
    "*.wild A 192.0.2.9",
    'txt TXT "hello ledger"',
    "sub NS ns1.sub",
    "ns1.sub A 192.0.2.53",
]


def _passthrough(query: bytes, reply: bytes, tcp: bool) -> bytes:
    return reply


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    network = start_network(tmp_path_factory.mktemp("net"), validators=4, heartbeat_ms=0)
    try:
        network.register("alice.p2p", ALICE)
        network.register("bob.p2p", ["@ A 192.0.2.2"])
        yield network
    finally:
        network.cluster.stop()


@pytest.fixture(scope="module")
def forward_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int] | None]:
    """dnsmasq answering host.lan.test (None when dnsmasq is not installed)."""
    if DNSMASQ is None:
        yield None
        return
    run_dir = tmp_path_factory.mktemp("dnsmasq")
    hosts = run_dir / "hosts"
    hosts.write_text(
        f"{benchchain.address(0)} {benchchain.domain_name(0)}\n192.0.2.10 host.lan.test\n"
    )
    server = start_dnsmasq(DNSMASQ, hosts, run_dir, 2)
    try:
        yield ("127.0.0.1", server.port)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def counter(net: Network) -> Iterator[LyingProxy]:
    """An honest proxy in front of node 1, counting the queries that reach the network."""
    with LyingProxy(net.dns(1), _passthrough) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def resolver(
    net: Network,
    counter: LyingProxy,
    forward_target: tuple[str, int] | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ResolverProcess]:
    forwards = [forward_target] if forward_target is not None else []
    with ResolverProcess(
        tmp_path_factory.mktemp("resolver"), net.genesis_path, [counter.address, net.dns(0)],
        forwards=forwards, max_staleness=STALENESS_S,
    ) as process:  # fmt: skip
        yield process


def test_ready_line_reports_the_bound_address_and_the_trust(
    resolver: ResolverProcess, net: Network
) -> None:
    ready = resolver.ready
    host, port = resolver.address
    assert host == "127.0.0.1" and port > 0
    genesis = net.cluster.genesis
    assert genesis is not None
    assert ready["genesis_hash"] == genesis.hash().hex() and ready["tlds"] == ["p2p"]
    assert ready["max_staleness_s"] == STALENESS_S
    assert ready["upstreams"][1] == addr(net.dns(0))


@pytest.mark.skipif(DIG is None, reason="dig is not installed (Debian: bind9-dnsutils)")
def test_dig_gets_a_verified_answer(resolver: ResolverProcess) -> None:
    host, port = resolver.address
    out = subprocess.run(
        [DIG or "dig", f"@{host}", "-p", str(port), "alice.p2p", "A", "+tries=1", "+time=5"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout  # fmt: skip
    assert "status: NOERROR" in out, out
    flags = next(line for line in out.splitlines() if line.startswith(";; flags:"))
    assert " ad" in flags.split(";")[2] and " aa" not in flags, flags
    assert "alice.p2p.\t\t300\tIN\tA\t192.0.2.1" in out, out
    short = subprocess.run(
        [DIG or "dig", f"@{host}", "-p", str(port), "+short", "+tcp", "www.alice.p2p", "A"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout  # fmt: skip
    assert short.split() == ["alice.p2p.", "192.0.2.1"]


@pytest.mark.parametrize("tcp", [False, True])
def test_answers_are_the_nodes_and_authentic(
    resolver: ResolverProcess, net: Network, tcp: bool
) -> None:
    questions = [
        ("alice.p2p", "A"),
        ("alice.p2p", "AAAA"),
        ("www.alice.p2p", "A"),  # CNAME
        ("x.wild.alice.p2p", "A"),  # wildcard
        ("txt.alice.p2p", "TXT"),
        ("alice.p2p", "TXT"),  # NODATA
        ("nothere.alice.p2p", "A"),  # NXDOMAIN inside a zone
        ("carol.p2p", "A"),  # never registered: proven absent
        ("host.sub.alice.p2p", "A"),  # referral
        ("p2p", "NS"),  # the TLD
    ]
    for name, rdtype in questions:
        ours = ask(resolver.address, name, rdtype, tcp=tcp)
        node = ask(net.dns(2), name, rdtype, tcp=tcp)
        assert ours.rcode() == node.rcode(), (name, rdtype)
        for section in ("answer", "additional"):
            assert rrs(ours, section) == rrs(node, section), (name, rdtype, section)
        assert len(ours.authority) == len(node.authority), (name, rdtype)
        assert is_authentic(ours) and not is_authentic(node), (name, rdtype)
    assert addresses(ask(resolver.address, "x.wild.alice.p2p", "A")) == {"192.0.2.9"}
    assert ask(resolver.address, "carol.p2p", "A").rcode() == dns.rcode.NXDOMAIN


def test_a_repeated_question_is_answered_from_the_cache(
    resolver: ResolverProcess, counter: LyingProxy
) -> None:
    first = ask(resolver.address, "bob.p2p", "A")
    asked = counter.queries
    assert asked >= 1 and addresses(first) == {"192.0.2.2"}
    time.sleep(1.1)
    again = ask(resolver.address, "BOB.p2p", "A")
    assert counter.queries == asked  # nothing reached the network
    assert addresses(again) == {"192.0.2.2"} and is_authentic(again)
    assert again.answer[0].ttl < first.answer[0].ttl  # counted down while kept
    assert str(again.question[0].name) == "BOB.p2p."


def test_a_new_record_is_seen_once_the_old_answer_expires(
    resolver: ResolverProcess, net: Network
) -> None:
    net.register("dave.p2p", ["@ 1 A 192.0.2.40"])  # TTL 1 s
    assert addresses(ask(resolver.address, "dave.p2p", "A")) == {"192.0.2.40"}
    net.update("dave.p2p", ["@ 1 A 192.0.2.41"])
    time.sleep(1.1)
    assert addresses(ask(resolver.address, "dave.p2p", "A")) == {"192.0.2.41"}


def test_names_outside_the_ledger_are_forwarded(
    resolver: ResolverProcess, forward_target: tuple[str, int] | None
) -> None:
    if forward_target is None:
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
    reply = ask(resolver.address, "host.lan.test", "A")
    assert reply.rcode() == dns.rcode.NOERROR and addresses(reply) == {"192.0.2.10"}
    assert not is_authentic(reply)  # dnsmasq proves nothing


def test_without_forward_other_names_are_refused(net: Network, tmp_path: Path) -> None:
    with ResolverProcess(
        tmp_path, net.genesis_path, [net.dns(0)], max_staleness=STALENESS_S
    ) as process:
        assert ask(process.address, "example.com", "A").rcode() == dns.rcode.REFUSED
        assert addresses(ask(process.address, "alice.p2p", "A")) == {"192.0.2.1"}
        transfer = ask(process.address, "alice.p2p", "AXFR", tcp=True)
        assert transfer.rcode() == dns.rcode.REFUSED and not transfer.answer


def test_an_unreachable_upstream_is_skipped_and_named(net: Network, tmp_path: Path) -> None:
    dead = ("127.0.0.1", 9)  # discard: nothing answers DNS there
    with ResolverProcess(
        tmp_path, net.genesis_path, [dead, net.dns(0)], max_staleness=STALENESS_S,
        extra=["--timeout", "0.5"],
    ) as process:  # fmt: skip
        assert addresses(ask(process.address, "alice.p2p", "A")) == {"192.0.2.1"}
        assert "upstream unreachable upstream=127.0.0.1:9" in process.log()
    with ResolverProcess(
        tmp_path, net.genesis_path, [dead], max_staleness=STALENESS_S, extra=["--timeout", "0.5"],
    ) as process:  # fmt: skip
        reply = ask(process.address, "alice.p2p", "A")
        assert reply.rcode() == dns.rcode.SERVFAIL and not reply.answer
        (error,) = ede_texts(reply)
        assert error.startswith("22: 127.0.0.1:9 "), error  # No Reachable Authority


@pytest.mark.skipif(
    UNBOUND is None, reason="unbound is not installed (Debian: apt-get install unbound)"
)
def test_unbound_forwards_the_ledger_tld_through_the_resolver(
    resolver: ResolverProcess, tmp_path: Path
) -> None:
    with UnboundProcess(tmp_path, {"p2p": [resolver.address]}, probe="alice.p2p") as unbound:
        reply = ask(unbound.address, "www.alice.p2p", "A")
        assert reply.rcode() == dns.rcode.NOERROR, unbound.log()
        assert addresses(reply) == {"192.0.2.1"}
        assert ask(unbound.address, "carol.p2p", "A").rcode() == dns.rcode.NXDOMAIN
        assert addresses(ask(unbound.address, "alice.p2p", "AAAA")) == {"2001:db8::1"}


# -- the command line's errors --


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledgerdns", "resolver", *argv],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_bad_flags_are_one_line_and_exit_2(net: Network, tmp_path: Path) -> None:
    genesis = str(net.genesis_path)
    bad_genesis = tmp_path / "bad.json"
    bad_genesis.write_text("{not json")
    cases = [
        (["--genesis", str(tmp_path / "missing.json"), "--upstream", "127.0.0.1:53",
          "--listen", "127.0.0.1:0"], "--genesis: cannot read"),
        (["--genesis", str(bad_genesis), "--upstream", "127.0.0.1:53", "--listen", "127.0.0.1:0"],
         "is not a valid genesis"),
        (["--genesis", genesis, "--upstream", "127.0.0.1:53", "--listen", "127.0.0.1:0"],
         "--max-staleness: the genesis sets no heartbeat"),
        (["--genesis", genesis, "--upstream", "node.example:53", "--listen", "127.0.0.1:0",
          "--max-staleness", "60"], "--upstream: 'node.example' is not an IP address"),
        (["--genesis", genesis, "--upstream", "127.0.0.1:53", "--listen", "127.0.0.1:0",
          "--max-staleness", "-1"], "--max-staleness: must be more than 0"),
        (["--genesis", genesis, "--upstream", "127.0.0.1:53", "--listen", "192.0.2.1:0",
          "--max-staleness", "60"], "--listen: cannot listen on 192.0.2.1:0"),
    ]  # fmt: skip
    for argv, message in cases:
        result = _run(*argv)
        assert result.returncode == 2, (argv, result.stderr)
        assert message in result.stderr, (argv, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert "READY" not in result.stdout


def test_a_taken_port_is_a_clear_error(resolver: ResolverProcess, net: Network) -> None:
    result = _run(
        "--genesis", str(net.genesis_path), "--upstream", addr(net.dns(0)),
        "--listen", addr(resolver.address), "--max-staleness", "60",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"--listen: cannot listen on {addr(resolver.address)}" in result.stderr
    assert "Traceback" not in result.stderr


LEDGERDNS = Path(sys.executable).parent / "ledgerdns"


@pytest.mark.skipif(not LEDGERDNS.exists(), reason="no ledgerdns console script next to python")
def test_the_ledgerdns_command_sheds_the_rest_of_the_cli(net: Network, tmp_path: Path) -> None:
    with ResolverProcess(
        tmp_path, net.genesis_path, [net.dns(0)], max_staleness=STALENESS_S,
        launcher=[str(LEDGERDNS)],
    ) as process:  # fmt: skip
        assert process.proc is not None
        cmdline = Path(f"/proc/{process.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:3] == [b"-m", b"ledgerdns.resolver"], cmdline  # re-executed, same pid
        assert addresses(ask(process.address, "alice.p2p", "A")) == {"192.0.2.1"}


def test_the_resolver_never_imports_libp2p() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ledgerdns", "resolver", "--help"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "libp2p" not in result.stderr
    assert "ledgerdns.resolver.service" not in result.stderr  # --help loads the parser only
    # What the running resolver loads: the command line and everything the server imports.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, ledgerdns.cli, ledgerdns.resolver.service; "
         "print(sorted(m for m in sys.modules if 'libp2p' in m or m.startswith('ledgerdns.node')))"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert "libp2p" not in loaded, loaded
