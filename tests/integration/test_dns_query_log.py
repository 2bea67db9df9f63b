"""The JSON query log over real sockets: every query logged, also those the UDP workers
could answer alone (with the log on they get no name table and keep no replies)."""

from __future__ import annotations

import json
from pathlib import Path

import dns.message
import dns.rcode
import pytest
import trio

from ledgerdns.clock import ManualClock
from ledgerdns.dns import DnsServer
from ledgerdns.dns.querylog import QueryLog
from tests.integration.test_dns_compliance import CONFIG, HOST, node, tcp, udp  # noqa: F401
from tests.support.instant_node import InstantNode

pytestmark = [pytest.mark.integration, pytest.mark.trio]


async def test_every_query_is_logged(node: InstantNode, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "queries.jsonl"
    server = DnsServer(node.ledger, HOST, 0, blocks=node, config=CONFIG)
    server.query_log = QueryLog(path, ManualClock(1_796_700_000_123).now_ms)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.run)
        assert server.worker_pids  # UDP through a worker process
        with trio.fail_after(10):  # (with a name table, it would be filled first)
            while not server.names_complete:
                await trio.sleep(0.05)
        for _ in range(3):  # a worker would answer repeats from its tables
            reply = await udp(address, dns.message.make_query("alice.p2p", "A"))
            assert reply.rcode() == dns.rcode.NOERROR
        await tcp(address, dns.message.make_query("nobody.alice.p2p", "TXT"))
        await udp(address, dns.message.make_query("example.com", "A"))
        nursery.cancel_scope.cancel()
    server.query_log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["qname"], e["qtype"], e["rcode"], e["transport"]) for e in lines] == [
        ("alice.p2p.", "A", "NOERROR", "udp"),
        ("alice.p2p.", "A", "NOERROR", "udp"),
        ("alice.p2p.", "A", "NOERROR", "udp"),
        ("nobody.alice.p2p.", "TXT", "NXDOMAIN", "tcp"),
        ("example.com.", "A", "REFUSED", "udp"),
    ]
    assert {e["time"] for e in lines} == {"2026-12-08T03:20:00.123Z"}
    assert {e["client"] for e in lines} == {"127.0.0.1"}
    assert all(isinstance(e["latency_ms"], float) and e["latency_ms"] >= 0 for e in lines)
