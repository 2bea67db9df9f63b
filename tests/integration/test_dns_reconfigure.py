"""`DnsServer.reconfigure` (what SIGHUP does) on a serving server, over real sockets."""

from __future__ import annotations

import dataclasses

import dns.flags
import dns.message
import dns.rcode
import pytest
import trio

from ledgerdns.dns import DnsServer
from ledgerdns.dns.settings import DnsSettings, RrlSettings, TcpSettings
from tests.integration.test_dns_compliance import CONFIG, HOST, node, udp  # noqa: F401
from tests.support.instant_node import InstantNode

pytestmark = [pytest.mark.integration, pytest.mark.trio]


async def truncated(address: tuple[str, int], count: int) -> int:
    """How many of `count` back-to-back queries come back truncated (RRL's slip)."""
    got = 0
    for _ in range(count):
        reply = await udp(address, dns.message.make_query("alice.p2p", "A"))
        assert reply.rcode() == dns.rcode.NOERROR
        got += bool(reply.flags & dns.flags.TC)
    return got


async def test_rrl_changes_at_once_when_udp_is_served_in_process(
    node: InstantNode,  # noqa: F811
) -> None:
    settings = DnsSettings(workers=0, rrl=RrlSettings(rate=0))  # no limit
    server = DnsServer(node.ledger, HOST, 0, blocks=node, config=CONFIG, settings=settings)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.run)
        assert await truncated(address, 20) == 0
        strict = RrlSettings(rate=1, slip=1, exempt=())  # one a second, the rest truncated
        later = server.reconfigure(
            dataclasses.replace(settings, rrl=strict, tcp=TcpSettings(max_connections=5)),
            forwarder=None, updater=None, transfers=None, notifier=None,
        )  # fmt: skip
        assert later == ["dns.tcp"]  # the new rate is in force; the TCP cap waits for a restart
        assert await truncated(address, 20) > 0
        nursery.cancel_scope.cancel()


async def test_with_udp_workers_new_rrl_restarts_them_with_it(node: InstantNode) -> None:  # noqa: F811
    settings = DnsSettings(workers=1, rrl=RrlSettings(rate=0))
    server = DnsServer(node.ledger, HOST, 0, blocks=node, config=CONFIG, settings=settings)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.run)
        pool = server.workers
        assert pool is not None
        assert await truncated(address, 20) == 0
        (before,) = server.worker_pids
        strict = RrlSettings(rate=1, slip=1, exempt=())
        later = server.reconfigure(
            dataclasses.replace(settings, rrl=strict),
            forwarder=None, updater=None, transfers=None, notifier=None,
        )  # fmt: skip
        assert later == []
        with trio.fail_after(15):
            while server.worker_pids in ([], [before]) or not pool.names_complete:
                await trio.sleep(0.05)
        assert await truncated(address, 20) > 0  # the new worker limits
        nursery.cancel_scope.cancel()
