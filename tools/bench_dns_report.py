"""The results of `tools/bench_dns.py`: what was measured per server, the JSON line and the table."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from tools import benchchain, dnsperf
from tools.dnsservers import Server

console = Console(stderr=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What one run measures."""

    domains: int
    large: int
    rounds: int
    round_s: float
    warmup_s: float
    latency_s: float
    latency_load: float
    latency_passes: int
    options: dnsperf.Options
    quick: bool


@dataclass(slots=True)
class Measured:
    """Every dnsperf result for one server, by phase."""

    server: Server
    queries: Path
    warmup: list[dnsperf.Result] = field(default_factory=list)
    rounds: list[dnsperf.Result] = field(default_factory=list)
    latency: list[dnsperf.Result] = field(default_factory=list)
    latencies: list[list[float]] = field(default_factory=list)  # per latency pass, seconds
    cpu_s: float = 0.0  # server CPU time over the rounds

    def runs(self) -> list[dnsperf.Result]:
        return self.warmup + self.rounds + self.latency

    @property
    def qps(self) -> float:
        return statistics.median(r.qps for r in self.rounds)

    @property
    def lost(self) -> int:
        return sum(r.lost for r in self.runs())

    @property
    def errors(self) -> int:
        """Answers that were not NOERROR (each name exists: there should be none)."""
        return sum(r.completed - r.noerror for r in self.runs())

    def p(self, fraction: float) -> float | None:
        """The median over the latency passes of each pass's `fraction` quantile, in ms."""
        per_pass = [self.p_pass(i, fraction) for i in range(len(self.latencies))]
        return statistics.median(per_pass) if per_pass else None

    def p_pass(self, index: int, fraction: float) -> float:
        """Latency pass `index`'s `fraction` quantile, in ms (a pass with no answers: nan)."""
        values = self.latencies[index]
        return dnsperf.percentile(values, fraction) * 1000 if values else float("nan")


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _ms(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def summarize(
    plan: Plan, servers: list[Measured], chains: dict[int, benchchain.BenchChain]
) -> dict[str, object]:
    """The JSON line."""
    node, dnsmasq_ = servers[0], servers[1]
    large = servers[2] if len(servers) > 2 else None
    per_query = {
        m.server.label: round(1e6 * m.cpu_s / max(1, sum(r.completed for r in m.rounds)), 1)
        for m in servers
    }
    return {
        "qps_node": round(node.qps),
        "qps_dnsmasq": round(dnsmasq_.qps),
        "qps_ratio": _ratio(node.qps, dnsmasq_.qps),
        "p99_ratio": _ratio(node.p(0.99), dnsmasq_.p(0.99)),
        "lost_node": node.lost,
        "p99_node_ms": _ms(node.p(0.99)),
        "p99_dnsmasq_ms": _ms(dnsmasq_.p(0.99)),
        "p50_node_ms": _ms(node.p(0.5)),
        "p50_dnsmasq_ms": _ms(dnsmasq_.p(0.5)),
        "latency_qps": round(plan.latency_load * min(node.qps, dnsmasq_.qps)),
        "p99_passes_ms": {
            m.server.label: [round(m.p_pass(i, 0.99), 3) for i in range(len(m.latencies))]
            for m in (node, dnsmasq_)
        },
        "qps_large": round(large.qps) if large else None,
        "large_ratio": _ratio(large.qps, node.qps) if large else None,
        "large_domains": plan.large,
        "lost_large": large.lost if large else None,
        "lost_dnsmasq": dnsmasq_.lost,
        "errors": {m.server.label: m.errors for m in servers},
        "qps_first_pass": {m.server.label: round(m.warmup[0].qps) for m in servers},
        "qps_rounds": {m.server.label: [round(r.qps) for r in m.rounds] for m in servers},
        "cpu_us_per_query": per_query,
        "response_bytes": {m.server.label: m.rounds[0].response_bytes for m in servers},
        "domains": plan.domains,
        "rounds": plan.rounds,
        "round_s": plan.round_s,
        "dnsperf": " ".join(plan.options.args()),
        "build_s": {str(n): round(c.build_s, 1) for n, c in chains.items()},
        "quick": plan.quick,
    }


def _k(qps: float) -> str:
    return f"{qps / 1000:.1f}k"


def _count(n: int) -> str:
    """1,000,000 as ``1M``, 50,000 as ``50k`` (table cells stay narrow)."""
    for size, suffix in ((1_000_000, "M"), (1000, "k")):
        if n >= size and n % (size // 10) == 0:
            return f"{n / size:g}{suffix}"
    return f"{n:,}"


def print_table(result: dict[str, object], servers: list[Measured]) -> None:
    """The results on stderr: one row per server, then the targets."""
    table = Table(
        title="DNS: ledgerdns node vs dnsmasq, same names, same run",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    headers = ("server", "names", "q/s", "min-max", "cold q/s", "lost", "p50 ms", "p99 ms")
    for header in headers:
        table.add_column(header, justify="left" if header == "server" else "right", no_wrap=True)
    cpu = result["cpu_us_per_query"]
    assert isinstance(cpu, dict)
    for m in servers:
        p50, p99 = m.p(0.5), m.p(0.99)
        table.add_row(
            m.server.label, _count(m.server.domains), _k(m.qps),
            f"{min(r.qps for r in m.rounds) / 1000:.1f}-{_k(max(r.qps for r in m.rounds))}",
            _k(m.warmup[0].qps), str(m.lost), f"{p50:.3f}" if p50 is not None else "-",
            f"{p99:.3f}" if p99 is not None else "-",
        )  # fmt: skip
    console.print(table)
    console.print(
        "server CPU per answered query: " + ", ".join(f"{k} {v} µs" for k, v in cpu.items())
    )
    console.print(
        f"qps_ratio {result['qps_ratio']} (target >= 1.0)  p99_ratio {result['p99_ratio']} (<= 1.0)  "
        f"lost_node {result['lost_node']} (0)  large_ratio {result['large_ratio']} (>= 0.9)"
    )
