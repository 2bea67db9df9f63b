"""Shared pieces of the multi-process tests: a local network and DNS/RPC helpers.

`network` is one 4-validator + 1-follower cluster per test module (starting five
nodes costs several seconds on two cores); tests that stop nodes bring them back
or run last. Every wait here has a deadline, and every failure says what was
seen last.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from chain.crypto import PrivateKey
from chain.params import ConsensusParams
from chain.records import Record
from chain.tx import Op, Transaction, TxBody
from ledgerdns.api.client import NodeUnreachable, RpcClient, RpcError
from tools.localnet import Cluster, ClusterNode

T = TypeVar("T")

# Short rounds keep a network with a validator down moving; no heartbeat, so an
# idle network grows no blocks and heights only move when a test writes.
FAST = ConsensusParams(
    timeout_propose_ms=1000, timeout_prevote_ms=500, timeout_precommit_ms=500,
    timeout_delta_ms=250, heartbeat_ms=0,
)  # fmt: skip


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Four validators and one follower, all READY and connected."""
    with Cluster(tmp_path_factory.mktemp("net"), validators=4, followers=1, consensus=FAST) as cluster:
        cluster.start()
        cluster.wait_peers(1, timeout=30)
        yield cluster


def eventually(check: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """`check()`'s first truthy result; its last error or value in the failure after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except (AssertionError, NodeUnreachable, RpcError, dns.exception.DNSException) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s (last: {last!r})")
        time.sleep(interval)


def dns_a(node: ClusterNode, name: str, timeout: float = 2.0) -> set[str]:
    """The A addresses `node`'s DNS server answers for `name` over UDP (empty on NXDOMAIN)."""
    host, port = node.dns
    reply = dns.query.udp(dns.message.make_query(name, "A"), host, port=port, timeout=timeout)
    if reply.rcode() == dns.rcode.NXDOMAIN:
        return set()
    assert reply.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(reply.rcode())
    return {
        item.to_text()
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.A
        for item in rrset
    }


def wait_dns(nodes: list[ClusterNode], name: str, expected: set[str], timeout: float) -> None:
    """Wait until every node answers `expected` for `name`."""
    for node in nodes:
        eventually(lambda n=node: dns_a(n, name) == expected, timeout,  # type: ignore[misc]
                   f"node {node.index} answering {name} A {sorted(expected)}")  # fmt: skip


def chain_time(client: RpcClient) -> int:
    """The head block time in seconds: what `valid_until` is judged against."""
    return int(client.status()["head_time_ms"]) // 1000


def update_tx(
    client: RpcClient, chain_id: str, owner: PrivateKey, domain: str, record: str, *,
    seq: int | None = None, prev: bytes | None = None,
) -> Transaction:
    """The next update of `domain` (from `client`'s view unless `seq`/`prev` are given)."""
    if seq is None or prev is None:
        state = client.domain(domain)
        assert state is not None and state["seq"] is not None, f"{domain} is not registered"
        seq, prev = int(state["seq"]) + 1, bytes.fromhex(state["head"])
    body = TxBody(
        chain_id=chain_id, domain=domain, seq=seq, prev=prev, op=Op.UPDATE,
        records=(Record.from_text(record, origin=domain),), owner=owner.public_key,
        valid_until=chain_time(client) + 3600,
    )  # fmt: skip
    genesis_hash = bytes.fromhex(client.status()["genesis_hash"])  # as the wallet learns it
    return Transaction.sign(body, owner, genesis_hash)
