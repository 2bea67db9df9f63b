"""UDP served by worker processes: repeat answers, freshness after blocks, restarts, rate limiting.

A real `DnsServer` over an `InstantNode` (real LevelDB), its real worker
processes, and real UDP packets from dnspython.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest
import trio

from chain.records import Record, canonical_record_set
from ledgerdns.dns import DnsServer, ZoneConfig
from ledgerdns.dns.settings import DnsSettings, RrlSettings
from tests.integration.test_dns_server import OWNER, query, udp
from tests.support.instant_node import InstantNode
from tools.devchain import next_tx, register_tx, soon

pytestmark = [pytest.mark.integration, pytest.mark.trio]

HOST = "127.0.0.1"


def records(domain: str, *lines: str) -> tuple[Record, ...]:
    return canonical_record_set(Record.from_text(line, origin=domain) for line in lines)


@asynccontextmanager
async def serving(node: InstantNode, settings: DnsSettings) -> AsyncIterator[DnsServer]:
    server = DnsServer(
        node.ledger, HOST, 0, blocks=node, config=ZoneConfig(server_name="ns1.example.net"), settings=settings
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        yield server
        nursery.cancel_scope.cancel()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[InstantNode]:
    instant = InstantNode(tmp_path)
    try:
        recs = records("alice.p2p", "@ 300 A 192.0.2.1")
        await instant.submit(
            register_tx(instant.genesis, OWNER, "alice.p2p", recs, valid_until=soon(instant.ledger))
        )
        yield instant
    finally:
        instant.close()


def a_records(reply: dns.message.Message) -> list[str]:
    return [rr.to_text() for rrset in reply.answer for rr in rrset]


@pytest.fixture(params=["batched", "plain"])
def worker_io(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Workers with recvmmsg/sendmmsg (where the system has them) and with the plain loop."""
    if request.param == "plain":
        monkeypatch.setenv("LEDGERDNS_DNS_NO_MMSG", "1")  # read by the worker process
    return str(request.param)


async def test_repeat_questions_are_answered_by_the_worker_and_stay_fresh(
    node: InstantNode, worker_io: str
) -> None:
    async with serving(node, DnsSettings(workers=1)) as server:
        assert len(server.worker_pids) == 1
        first = await udp(server.address, query("alice.p2p"))
        misses = server.cache.misses + server.cache.hits
        for _ in range(20):
            reply = await udp(server.address, query("alice.p2p"))
            assert a_records(reply) == ["192.0.2.1"] and reply.flags & dns.flags.AA
        assert a_records(first) == ["192.0.2.1"]
        # The node itself saw none of the repeats: the worker answered them.
        assert server.cache.misses + server.cache.hits == misses

        # A new block changes the record: the worker's copy goes, the next answer is new.
        update = next_tx(
            node.genesis,
            node.ledger,
            OWNER,
            "alice.p2p",
            records("alice.p2p", "@ 300 A 192.0.2.99"),
            valid_until=soon(node.ledger),
        )
        await node.submit(update)
        with trio.fail_after(5):
            while a_records(await udp(server.address, query("alice.p2p"))) != ["192.0.2.99"]:
                await trio.sleep(0.01)  # the invalidation travels to the worker asynchronously


async def test_each_spelling_gets_its_own_case_in_the_reply(
    node: InstantNode, worker_io: str
) -> None:
    async with serving(node, DnsSettings(workers=1)) as server:
        for name in ["alice.p2p", "AlIcE.P2p", "alice.p2p", "ALICE.P2P", "AlIcE.P2p"]:
            reply = await udp(server.address, query(name))
            assert reply.question[0].name.to_text() == name + "."
            assert a_records(reply) == ["192.0.2.1"]


async def test_a_killed_worker_is_restarted(node: InstantNode) -> None:
    async with serving(node, DnsSettings(workers=1)) as server:
        (pid,) = server.worker_pids
        os.kill(pid, signal.SIGKILL)
        with trio.fail_after(15):
            while server.worker_pids in ([], [pid]):
                await trio.sleep(0.05)
        reply = await udp(server.address, query("alice.p2p"))
        assert a_records(reply) == ["192.0.2.1"]


async def test_two_workers_share_the_port(node: InstantNode, worker_io: str) -> None:
    async with serving(node, DnsSettings(workers=2)) as server:
        assert len(set(server.worker_pids)) == 2
        for _ in range(30):
            assert a_records(await udp(server.address, query("alice.p2p"))) == ["192.0.2.1"]


def burst(address: tuple[str, int], count: int) -> list[dns.message.Message]:
    """Send `count` queries at once from one socket; collect the replies that come within 1 s."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        for i in range(count):
            sock.sendto(query("alice.p2p", id=i + 1).to_wire(), address)
        replies = []
        try:
            while len(replies) < count:
                replies.append(dns.message.from_wire(sock.recv(4096)))
        except TimeoutError:
            pass
        return replies


@pytest.mark.parametrize("workers", [0, 1])
async def test_responses_to_one_prefix_are_rate_limited(
    node: InstantNode, workers: int, worker_io: str
) -> None:
    rrl = RrlSettings(rate=10, slip=2, exempt=())  # loopback is exempt by default; not here
    async with serving(node, DnsSettings(workers=workers, rrl=rrl)) as server:
        # The limit counts per second of the monotonic clock (system-wide, so the worker's
        # too): a burst that straddles two seconds is allowed twice the rate (seen once on a
        # loaded machine: 20 full answers). Start it at the top of a second.
        await trio.sleep(1.02 - time.monotonic() % 1.0)
        replies = await trio.to_thread.run_sync(burst, server.address, 60)
        full = [r for r in replies if not r.flags & dns.flags.TC]
        slipped = [r for r in replies if r.flags & dns.flags.TC]
        assert len(full) == 10 and all(a_records(r) == ["192.0.2.1"] for r in full)
        # Of the 50 over the limit, every second one slips out truncated, with its question.
        assert len(slipped) == 25
        assert all(not r.answer and r.question[0].name.to_text() == "alice.p2p." for r in slipped)
        await trio.sleep(1.1)  # the next one-second window
        assert a_records(await udp(server.address, query("alice.p2p"))) == ["192.0.2.1"]


async def test_exempt_clients_are_never_limited(node: InstantNode) -> None:
    rrl = RrlSettings(rate=5, exempt=(ipaddress.ip_network("127.0.0.0/8"),))
    async with serving(node, DnsSettings(workers=1, rrl=rrl)) as server:
        replies = await trio.to_thread.run_sync(burst, server.address, 40)
        assert len(replies) == 40 and not any(r.flags & dns.flags.TC for r in replies)


async def test_garbage_and_responses_do_not_reach_the_node_or_stop_the_worker(
    node: InstantNode,
) -> None:
    async with serving(node, DnsSettings(workers=1)) as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for payload in [b"", b"\x00", b"\x12\x34\x81\x00" + bytes(8), os.urandom(700)]:
                sock.sendto(payload, server.address)
        reply = await udp(server.address, query("alice.p2p"))
        assert reply.rcode() == dns.rcode.NOERROR and a_records(reply) == ["192.0.2.1"]


async def test_repeat_answers_do_not_wait_for_a_busy_node(node: InstantNode) -> None:
    """The worker answers while the node's event loop is stuck (a block being applied, say)."""
    async with serving(node, DnsSettings(workers=1)) as server:
        await udp(server.address, query("alice.p2p"))  # now the worker holds the reply
        latencies: list[float] = []

        def ask_while_busy() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(0.5)
                wire = query("alice.p2p").to_wire()
                for _ in range(20):
                    started = time.monotonic()
                    sock.sendto(wire, server.address)
                    sock.recv(4096)
                    latencies.append(time.monotonic() - started)

        asker = threading.Thread(target=ask_while_busy)
        asker.start()
        time.sleep(1.0)  # block this (the node's) event loop outright
        asker.join()
        assert len(latencies) == 20 and max(latencies) < 0.5


async def wait_names(server: DnsServer) -> None:
    with trio.fail_after(15):
        while not server.names_complete:
            await trio.sleep(0.01)


async def test_registered_names_are_answered_by_the_worker_on_first_ask(
    node: InstantNode, worker_io: str
) -> None:
    async with serving(node, DnsSettings(workers=1)) as server:
        await wait_names(server)
        seen = server.cache.misses + server.cache.hits
        reply = await udp(server.address, query("ALICE.p2p"))  # never asked before
        assert a_records(reply) == ["192.0.2.1"] and reply.flags & dns.flags.AA
        nodata = await udp(server.address, query("alice.p2p", "AAAA"))
        assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer and nodata.authority
        assert server.cache.misses + server.cache.hits == seen  # the node answered none

        # A domain registered later reaches the worker with its block.
        recs = records("bob.p2p", "@ 300 A 192.0.2.7", "www 300 CNAME @")
        await node.submit(register_tx(node.genesis, OWNER, "bob.p2p", recs, valid_until=soon(node.ledger)))
        with trio.fail_after(5):
            while a_records(await udp(server.address, query("www.bob.p2p"))) != ["bob.p2p.", "192.0.2.7"]:
                await trio.sleep(0.01)
        assert server.cache.misses + server.cache.hits == seen


async def test_workers_report_what_they_answered_and_hold(node: InstantNode) -> None:
    async with serving(node, DnsSettings(workers=1)) as server:
        await wait_names(server)
        pool = server.workers
        assert pool is not None
        for _ in range(5):
            assert a_records(await udp(server.address, query("alice.p2p"))) == ["192.0.2.1"]
        with trio.fail_after(5):  # each worker reports every second
            while pool.answered < 5 or pool.names != 1:
                await trio.sleep(0.05)
        assert pool.names_complete and pool.limited == 0


async def test_a_block_changing_many_domains_reaches_the_worker_in_parts(node: InstantNode) -> None:
    async with serving(node, DnsSettings(workers=1)) as server:
        await wait_names(server)
        node.hold = True
        for i in range(1_300):  # ~260 KB of entries: more than one message can carry
            name = f"bulk{i}.p2p"
            recs = records(name, f"@ 300 A 192.0.2.{i % 250 + 1}")
            await node.submit(register_tx(node.genesis, OWNER, name, recs, valid_until=soon(node.ledger)))
        node.hold = False
        node.finalize_pending()
        seen = server.cache.misses + server.cache.hits
        with trio.fail_after(10):
            while a_records(await udp(server.address, query("bulk1299.p2p"))) != ["192.0.2.50"]:
                await trio.sleep(0.01)
        assert a_records(await udp(server.address, query("bulk0.p2p"))) == ["192.0.2.1"]
        assert server.workers is not None and server.workers.restarts == 0
        assert server.cache.misses + server.cache.hits <= seen + 1  # the worker answered
