"""`ledgerdns node --metrics`: Prometheus metrics and health probes of a real node, scraped over HTTP."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rrset
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import eventually
from tests.integration.test_node import ROOT, Running, _register

pytestmark = pytest.mark.integration

METRICS = ["--metrics", "127.0.0.1:0"]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(node: Running) -> Samples:
    """Every sample of the node's /metrics, parsed by the Prometheus client's own parser."""
    response = httpx.get(node.ready["metrics"] + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def documented_metrics() -> set[str]:
    """The metric names docs/operations.md's Monitoring table lists (families: no ``_total``)."""
    text = (ROOT / "docs" / "operations.md").read_text()
    table = text[text.index("### What it reports") : text.index("### What to chart")]
    return {name.removesuffix("_total") for name in re.findall(r"`(ledgerdns_[a-z_]+)", table)}


def documented_queries() -> list[str]:
    """The PromQL of docs/operations.md's "What to chart" block and of docs/grafana-dashboard.json."""
    text = (ROOT / "docs" / "operations.md").read_text()
    block = text[text.index("```promql") + len("```promql") :]
    block = block[: block.index("```")]
    queries = [line.split("  #")[0].strip() for line in block.splitlines()]
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    queries += [t["expr"].replace("$instance", ".*") for p in dashboard["panels"] for t in p["targets"]]
    return [q for q in queries if q and not q.startswith("#")]


def families(node: Running) -> set[str]:
    response = httpx.get(node.ready["metrics"] + "/metrics", timeout=5)
    return {family.name for family in text_string_to_metric_families(response.text)}


def probe(node: Running, path: str) -> tuple[int, str]:
    response = httpx.get(node.ready["metrics"] + path, timeout=5)
    return response.status_code, response.text


@pytest.fixture
def upstream() -> Iterator[int]:
    """A UDP resolver on loopback answering every A question with 192.0.2.1 (its port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            reply = dns.message.make_response(dns.message.from_wire(wire))
            reply.answer.append(dns.rrset.from_text(reply.question[0].name, 60, "IN", "A", "192.0.2.1"))
            sock.sendto(reply.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    sock.close()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_node_reports_height_queries_and_readiness(tmp_path: Path, upstream: int) -> None:
    data = tmp_path / "devnet"
    data.mkdir()
    (data / "node.toml").write_text(
        "[dns]\nworkers = 0\n"  # UDP answered (and counted) in the node
        f'[dns.forward]\nupstreams = ["127.0.0.1:{_closed_port()}", "127.0.0.1:{upstream}"]\ntimeout_s = 1\n'
    )
    node = Running(data, *METRICS)
    try:
        assert node.ready["metrics"].startswith("http://127.0.0.1:")
        assert probe(node, "/healthz") == (200, "ok\n")
        assert probe(node, "/readyz") == (200, "ready: serving at height 0\n")  # a devnet has no peers
        before = scrape(node)
        assert value(before, "ledgerdns_finalized_height") == 0
        assert value(before, "ledgerdns_ready") == 1
        assert value(before, "ledgerdns_node_info", chain_id="ledgerdns-devnet", validator="validator-0",
                     peer_id=node.ready["peer_id"]) == 1  # fmt: skip

        wallet = tmp_path / "wallet"
        assert _register(data, wallet, "new").returncode == 0
        done = _register(data, wallet, "register", "alice.p2p", "--record", "@ 300 A 10.0.0.7")
        assert done.returncode == 0, done.stderr
        host, port = node.dns
        for _ in range(3):
            reply = dns.query.udp(dns.message.make_query("alice.p2p", "A"), host, port=port, timeout=2)
            assert reply.rcode() == dns.rcode.NOERROR and reply.answer
        for _ in range(2):
            reply = dns.query.tcp(dns.message.make_query("nobody.p2p", "MX"), host, port=port, timeout=2)
            assert reply.rcode() == dns.rcode.NXDOMAIN
        reply = dns.query.udp(dns.message.make_query("www.example.com", "A"), host, port=port, timeout=5)
        assert [rr.to_text() for rr in reply.answer[0]] == ["192.0.2.1"]  # from the second upstream
        dig = shutil.which("dig")
        if dig is not None:  # the real client an operator uses
            out = subprocess.run([dig, f"@{host}", "-p", str(port), "+tries=1", "+time=2", "alice.p2p", "AAAA"],
                                 capture_output=True, text=True, timeout=10)  # fmt: skip
            assert "status: NOERROR" in out.stdout, out.stdout

        after = scrape(node)
        assert value(after, "ledgerdns_finalized_height") == 1
        assert value(after, "ledgerdns_consensus_height") == 2
        assert value(after, "ledgerdns_block_apply_seconds_count") == 1
        assert value(after, "ledgerdns_block_apply_seconds_sum") > 0
        assert value(after, "ledgerdns_consensus_decided_round_count") == 1
        assert value(after, "ledgerdns_consensus_round_seconds_count") >= 1  # height 1's round ended
        assert value(after, "ledgerdns_consensus_round_seconds_sum") > 0
        assert value(after, "ledgerdns_mempool_transactions") == 0
        assert value(after, "ledgerdns_dns_workers") == 0

        def delta(**labels: str) -> float:
            name = "ledgerdns_dns_queries_total"
            return value(after, name, **labels) - value(before, name, **labels)

        assert delta(transport="udp", rcode="NOERROR", type="A") == 3 + 1  # and the forwarded one
        assert value(after, "ledgerdns_dns_forward_upstream_failures_total") == 1  # the closed port
        assert value(after, "ledgerdns_dns_forward_upstream_seconds_count") == 1
        assert 0 < value(after, "ledgerdns_dns_forward_upstream_seconds_sum") < 5
        assert delta(transport="tcp", rcode="NXDOMAIN", type="MX") == 2
        assert delta(transport="udp", rcode="NOERROR", type="AAAA") == (1 if dig else 0)
        assert probe(node, "/readyz")[0] == 200
        assert documented_metrics() - families(node) == set()  # every metric the docs list is served
        promtool = shutil.which("promtool")
        if promtool is not None:  # Prometheus's own linter of an exposition (naming, types, help)
            text = httpx.get(node.ready["metrics"] + "/metrics", timeout=5).text
            lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                                  text=True, timeout=30)  # fmt: skip
            assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr
        assert value(after, "ledgerdns_dns_worker_misses_total") == 0  # no workers, no misses
    finally:
        node.close()


def test_readyz_follows_a_follower_in_and_out_of_sync(tmp_path: Path) -> None:
    data = tmp_path / "devnet"
    validator = Running(data)
    follower: Running | None = None
    try:
        wallet = tmp_path / "wallet"
        assert _register(data, wallet, "new").returncode == 0
        assert _register(data, wallet, "register", "bob.p2p", "--record", "@ 60 A 10.0.0.1").returncode == 0
        follower = Running(
            tmp_path / "follower", "--genesis", str(data / "genesis.json"),
            "--bootstrap", validator.ready["p2p"][0], *METRICS,
        )  # fmt: skip
        ready = eventually(lambda: probe(follower, "/readyz") == (200, "ready: serving at height 1\n"),
                           timeout=30, what="the follower ready at height 1")  # fmt: skip
        assert ready
        synced = scrape(follower)
        assert value(synced, "ledgerdns_peers") >= 1
        assert value(synced, "ledgerdns_finalized_height") == value(synced, "ledgerdns_sync_target_height") == 1
        assert value(synced, "ledgerdns_gossip_mesh_peers", topic="blocks") >= 0
        assert value(synced, "ledgerdns_ready") == 1

        assert validator.stop(signal.SIGTERM) == 0  # its only peer goes away
        code, text = eventually(lambda: _not_ready(follower), timeout=30, what="/readyz to say 503")
        assert text.startswith("not ready: no peers"), text
        assert value(scrape(follower), "ledgerdns_ready") == 0
        assert probe(follower, "/healthz") == (200, "ok\n")  # alive all along
    finally:
        validator.close()
        if follower is not None:
            follower.close()


def _not_ready(node: Running) -> tuple[int, str] | None:
    code, text = probe(node, "/readyz")
    return (code, text) if code == 503 else None


def test_the_documented_queries_name_served_metrics_and_parse(tmp_path: Path) -> None:
    queries = documented_queries()
    assert len(queries) > 20
    served = documented_metrics() | {"ledgerdns_consensus_round", "ledgerdns_dns_cache_misses",
                                     "ledgerdns_dns_forward_cache_misses"}  # fmt: skip
    for query in queries:
        for name in re.findall(r"ledgerdns_[a-z_]+", query):
            family = re.sub(r"_(total|bucket|sum|count)$", "", name)
            assert family in served, f"{name} in {query!r} is not a documented metric"
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian prometheus) is not installed: the PromQL syntax is not checked")
    rules = {"groups": [{"name": "docs", "rules": [
        {"record": f"ledgerdns:docs_query_{i}", "expr": q} for i, q in enumerate(queries)
    ]}]}  # fmt: skip
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
