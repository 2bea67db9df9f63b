"""What ``--metrics`` exposes: the node's counters as Prometheus metrics, and its readiness.

`NodeCollector` reads the counters the parts keep anyway (the ledger head,
the consensus machine, the mempool, the p2p service, the DNS server, the
syncer) when Prometheus scrapes, so nothing on the query or consensus paths
does more work for it. Only the per-block consensus timings are observed as
they happen (`CommitTimes`, once per stored block). `readiness` decides
``/readyz``. Every metric is listed in docs/operations.md ("Monitoring").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import trio
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from chain.consensus import Step
from ledgerdns.dns.forward import Forwarder
from ledgerdns.dns.stats import rcode_label, type_label
from ledgerdns.node.health import make_health_app
from ledgerdns.rpc.server import serve_asgi

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from chain.quorum import CommitCertificate
    from ledgerdns.node.node import Node

_HEIGHT_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
_ROUND_BUCKETS = (0.0, 1.0, 2.0, 3.0, 5.0, 10.0)
# A peer may report the block being stored right now: one block behind is still ready, so
# /readyz does not flap at every commit.
READY_LAG_BLOCKS = 1


class CommitTimes:
    """Per stored block: how long the height took here, and the round that decided it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.height_seconds = Histogram(
            "ledgerdns_consensus_height_seconds",
            "Time from one block stored to the next, for blocks decided while not syncing.",
            buckets=_HEIGHT_BUCKETS,
            registry=registry,
        )
        self.decided_round = Histogram(
            "ledgerdns_consensus_decided_round",
            "The consensus round whose precommits finalized each stored block (0: first round).",
            buckets=_ROUND_BUCKETS,
            registry=registry,
        )
        self._last: float | None = None

    def committed(self, certificate: CommitCertificate, *, syncing: bool) -> None:
        """Note one stored block (blocks fetched by sync say nothing about round times)."""
        now = trio.current_time()
        self.decided_round.observe(certificate.round)
        if self._last is not None and not syncing:
            self.height_seconds.observe(now - self._last)
        self._last = None if syncing else now


async def serve_metrics(
    node: Node,
    host: str,
    port: int,
    *,
    task_status: TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` for `node` on ``host:port`` until cancelled.

    Raises:
        OSError: the address cannot be bound.
    """
    node.registry.register(NodeCollector(node))
    app = make_health_app(node.registry, lambda: readiness(node))
    await serve_asgi(app, host, port, name="metrics", task_status=task_status)


def readiness(node: Node) -> tuple[bool, str]:
    """Whether the node serves current data: listening, caught up, and connected (or alone).

    Returns:
        (ready, one line saying why).
    """
    if not node.ready:
        return False, "starting: not every listener is bound yet"
    height = node.ledger.height
    target = node.syncer.target
    if node.syncer.syncing or target > height + READY_LAG_BLOCKS:
        return False, f"syncing: at height {height} of {target}"
    if not node.p2p.connected_peers() and not _alone(node):
        return False, f"no peers: height {height} may be behind the network"
    return True, f"serving at height {height}"


def _alone(node: Node) -> bool:
    """This node is the network's only validator (a devnet): no peer to wait for."""
    validators = node.ledger.validators_at(node.ledger.height + 1)
    key = node.key
    return key is not None and validators.keys == (key.public_key,)


class NodeCollector(Collector):
    """The node's state and counters as Prometheus metrics, read at scrape time."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        yield from self._chain()
        yield from self._p2p()
        yield from self._dns()

    def _chain(self) -> Iterator[Metric]:
        node = self._node
        head = node.ledger.head
        machine = node.driver.machine
        info = InfoMetricFamily("ledgerdns_node", "What this node runs.")
        info.add_metric(
            [],
            {"chain_id": node.genesis.chain_id, "validator": node.validator_name or "",
             "peer_id": node.p2p.peer_id},
        )  # fmt: skip
        yield info
        ready, _ = readiness(node)
        yield _gauge("ledgerdns_ready", "1 when /readyz answers 200 (synced and serving).", ready)
        yield _gauge(
            "ledgerdns_finalized_height", "Height of the newest finalized block.", head.height
        )
        yield _gauge(
            "ledgerdns_head_age_seconds",
            "Seconds since the newest finalized block's timestamp.",
            max(0.0, (node.clock.now_ms() - head.time_ms) / 1000),
        )
        yield _gauge(
            "ledgerdns_consensus_height", "Height the consensus machine decides.", machine.height
        )
        yield _gauge("ledgerdns_consensus_round", "Round of that height.", machine.round)
        step = GaugeMetricFamily(
            "ledgerdns_consensus_step", "1 for the machine's current step.", labels=["step"]
        )
        for each in Step:
            step.add_metric([each.name.lower()], float(each == machine.step))
        yield step
        rounds = SummaryMetricFamily(
            "ledgerdns_consensus_round_seconds",
            "Duration of each consensus round, ended by a decision or a timeout into the next round.",
        )
        rounds.add_metric([], node.driver.rounds_ended, node.driver.round_seconds)
        yield rounds
        apply = SummaryMetricFamily(
            "ledgerdns_block_apply_seconds",
            "Time to check and store each block (taking its update and committing it).",
        )
        apply.add_metric([], node.driver.blocks_applied, node.driver.apply_seconds)
        yield apply
        yield _gauge(
            "ledgerdns_mempool_transactions",
            "Transactions waiting in the mempool.",
            len(node.mempool),
        )
        yield _gauge("ledgerdns_mempool_bytes", "Their encoded size.", node.mempool.size_bytes)
        syncer = node.syncer
        yield _gauge(
            "ledgerdns_sync_target_height",
            "Highest height a peer reported.",
            max(syncer.target, head.height),
        )
        yield _gauge("ledgerdns_syncing", "1 while fetching blocks from a peer.", syncer.syncing)
        yield _counter(
            "ledgerdns_sync_blocks",
            "Blocks stored through sync (not consensus).",
            syncer.blocks_via_sync,
        )

    def _p2p(self) -> Iterator[Metric]:
        p2p = self._node.p2p
        yield _gauge("ledgerdns_peers", "Connected libp2p peers.", len(p2p.connected_peers()))
        yield _counter("ledgerdns_peer_penalties", "Penalties given to peers.", p2p.penalties)
        yield _counter(
            "ledgerdns_peer_bans", "Peers banned (a penalty total over the threshold).", p2p.bans
        )
        received = _by_topic(
            "ledgerdns_gossip_received",
            "Gossip messages from peers handed to their topic's handler.",
        )
        published = _by_topic("ledgerdns_gossip_published", "Gossip messages this node published.")
        mesh = GaugeMetricFamily(
            "ledgerdns_gossip_mesh_peers", "Peers in our gossip mesh.", labels=["topic"]
        )
        for topic, n in p2p.received.items():
            received.add_metric([topic_name(topic)], n)
        for topic, n in p2p.published.items():
            published.add_metric([topic_name(topic)], n)
        for topic, n in p2p.mesh_sizes().items():
            mesh.add_metric([topic_name(topic)], n)
        refused = CounterMetricFamily(
            "ledgerdns_gossip_refused",
            "Gossip messages refused: reason=limit (over size or rate), invalid (failed checks).",
            labels=["topic", "reason"],
        )
        for (topic, reason), n in p2p.gossip_refused().items():
            refused.add_metric([topic_name(topic), reason], n)
        yield from (received, published, refused, mesh)

    def _dns(self) -> Iterator[Metric]:
        server = self._node.dns
        if server is None:
            return
        queries = CounterMetricFamily(
            "ledgerdns_dns_queries",
            "DNS messages answered by the node process (not replies UDP workers sent from their tables).",
            labels=["transport", "rcode", "type"],
        )
        for (transport, rcode, qtype), n in list(server.queries.counts.items()):
            queries.add_metric([transport, rcode_label(rcode), type_label(qtype)], n)
        yield queries
        pool = server.workers  # None with workers = 0: then no misses, sheds or restarts
        yield _counter(
            "ledgerdns_dns_worker_misses",
            "UDP queries the workers passed up to the node (no reply of their own).",
            server.queries.total("udp") if pool is not None else 0,
        )
        yield _counter(
            "ledgerdns_dns_worker_shed",
            "Worker misses dropped: the node was behind.",
            pool.shed if pool is not None else 0,
        )
        yield _counter(
            "ledgerdns_dns_worker_restarts",
            "UDP worker processes restarted.",
            pool.restarts if pool is not None else 0,
        )
        yield _gauge(
            "ledgerdns_dns_workers", "Running UDP worker processes.", len(server.worker_pids)
        )
        yield _counter(
            "ledgerdns_dns_worker_answered",
            "UDP replies the workers sent from their name and reply tables (counted each second).",
            pool.answered if pool is not None else 0,
        )
        yield _counter(
            "ledgerdns_dns_worker_rrl_limited",
            "UDP queries the workers dropped or slipped by rate limiting (counted each second).",
            pool.limited if pool is not None else 0,
        )
        yield _gauge(
            "ledgerdns_dns_worker_names",
            "Names in the workers' name tables (every registered name once filled).",
            pool.names if pool is not None else 0,
        )
        yield _gauge(
            "ledgerdns_dns_worker_names_complete",
            "1 once every worker's name table holds every active domain.",
            1 if pool is None or pool.names_complete else 0,
        )
        yield _counter(
            "ledgerdns_dns_rrl_limited", "UDP responses dropped or slipped by rate limiting in the node process.",
            server.rrl_limited,
        )  # fmt: skip
        yield _counter(
            "ledgerdns_dns_udp_dropped",
            "UDP replies dropped: the send queue was full.",
            server.udp_dropped,
        )
        yield _gauge(
            "ledgerdns_dns_tcp_connections", "Open DNS TCP connections.", server.tcp_connections
        )
        yield _counter(
            "ledgerdns_dns_tcp_refused",
            "DNS TCP connections refused at the cap.",
            server.tcp_refused,
        )
        open_ = GaugeMetricFamily(  # no samples without --dot/--doh
            "ledgerdns_dns_tls_connections", "Open DoT and DoH connections.", labels=["face"]
        )
        refused = CounterMetricFamily(
            "ledgerdns_dns_tls_refused",
            "DoT and DoH connections refused at the cap.",
            labels=["face"],
        )
        for face in self._node.tls_faces:
            open_.add_metric([face.name], face.front.connections)
            refused.add_metric([face.name], face.front.refused)
        yield open_
        yield refused
        yield _counter(
            "ledgerdns_dns_cache_hits",
            "Answers served from the node's answer cache.",
            server.cache.hits,
        )
        yield _counter(
            "ledgerdns_dns_cache_misses", "Answers built from the ledger.", server.cache.misses
        )
        forwarder = server.forwarder
        if isinstance(forwarder, Forwarder):
            stats = forwarder.stats()
            yield _counter(
                "ledgerdns_dns_forward_upstream_failures",
                "Upstream attempts that failed (timeout, error, or an rcode other than NOERROR/NXDOMAIN).",
                stats["upstream_failures"],
            )
            latency = SummaryMetricFamily(
                "ledgerdns_dns_forward_upstream_seconds",
                "Time upstreams took to answer, per answered attempt.",
            )
            latency.add_metric([], forwarder.upstream_answers, forwarder.upstream_seconds)
            yield latency
            yield _counter(
                "ledgerdns_dns_forward_cache_hits",
                "Forwarded questions answered from cache.",
                stats["hits"],
            )
            yield _counter(
                "ledgerdns_dns_forward_cache_misses",
                "Forwarded questions asked upstream.",
                stats["misses"],
            )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=float(value))


def _by_topic(name: str, documentation: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, labels=["topic"])


def topic_name(topic: str) -> str:
    """`/ledgerdns/<chain>/consensus/1` -> `consensus`."""
    parts = topic.strip("/").split("/")
    return parts[-2] if len(parts) >= 2 else topic
