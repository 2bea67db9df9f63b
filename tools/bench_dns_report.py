"""The results of `tools/bench_dns.py`: what was measured per server, the JSON line and the table."""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field

from rich import box
from rich.console import Console
from rich.table import Table

from tools import benchchain, dnsperf
from tools.dnsservers import Server

WIDTH = 132  # the table's width when stderr is not a terminal (rich would assume 80)
console = Console(stderr=True, width=None if sys.stderr.isatty() else WIDTH)

# The targets (issue 17 §1): the node against Knot on the same names, same run.
TARGETS = {"qps_ratio_knot": 1.0, "cold_ratio_knot": 0.5, "zipf_ratio_knot": 1.0, "qps_ratio": 1.0}


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What one run measures."""

    names: int  # every server holds names 0..names-1
    warm_names: int  # how many of them the warm workload repeats
    zipf_queries: int  # length of the Zipf query file (one pass)
    rounds: int
    round_s: float
    warmup_s: float
    pass_limit_s: float  # a single pass (cold, Zipf) stops after this long, finished or not
    latency_s: float
    latency_load: float
    latency_passes: int
    options: dnsperf.Options
    quick: bool


@dataclass(slots=True)
class Measured:
    """Every dnsperf result for one server, by workload (the server is restarted between some)."""

    label: str
    server: Server | None = None  # the running instance, while there is one
    cold: dnsperf.Result | None = None  # one pass over every name, freshly started
    zipf: dnsperf.Result | None = None  # one pass over the Zipf file, freshly started
    warmup: list[dnsperf.Result] = field(default_factory=list)
    rounds: list[dnsperf.Result] = field(default_factory=list)
    latency: list[dnsperf.Result] = field(default_factory=list)
    latencies: list[list[float]] = field(default_factory=list)  # per latency pass, seconds
    cpu_s: float = 0.0  # server CPU time over the warm rounds
    rss_mib: dict[str, float] = field(default_factory=dict)  # after each workload

    def runs(self) -> list[dnsperf.Result]:
        passes = [r for r in (self.cold, self.zipf) if r is not None]
        return passes + self.warmup + self.rounds + self.latency

    @property
    def qps(self) -> float:
        """The warm workload's rate: the median of the rounds."""
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


def _qps(result: dnsperf.Result | None) -> int | None:
    return round(result.qps) if result is not None else None


def summarize(
    plan: Plan,
    servers: dict[str, Measured],
    chain: benchchain.BenchChain,
    zipf_distinct: int,
) -> dict[str, object]:
    """The JSON line (`servers` by label: node, knot, dnsmasq)."""
    node, knot, dnsmasq_ = servers["node"], servers["knot"], servers["dnsmasq"]
    every = list(servers.values())
    per_query = {
        m.label: round(1e6 * m.cpu_s / max(1, sum(r.completed for r in m.rounds)), 1) for m in every
    }
    result: dict[str, object] = {
        "qps_node": round(node.qps),
        "qps_knot": round(knot.qps),
        "qps_dnsmasq": round(dnsmasq_.qps),
        "qps_ratio_knot": _ratio(node.qps, knot.qps),
        "qps_ratio": _ratio(node.qps, dnsmasq_.qps),
        "cold_qps_node": _qps(node.cold),
        "cold_qps_knot": _qps(knot.cold),
        "cold_qps_dnsmasq": _qps(dnsmasq_.cold),
        "cold_ratio_knot": _ratio(_qps(node.cold), _qps(knot.cold)),
        "zipf_qps_node": _qps(node.zipf),
        "zipf_qps_knot": _qps(knot.zipf),
        "zipf_qps_dnsmasq": _qps(dnsmasq_.zipf),
        "zipf_ratio_knot": _ratio(_qps(node.zipf), _qps(knot.zipf)),
        "rss_mib_node": round(max(node.rss_mib.values()), 1),
        "rss_mib_knot": round(max(knot.rss_mib.values()), 1),
        "rss_mib_dnsmasq": round(max(dnsmasq_.rss_mib.values()), 1),
        "p99_ratio": _ratio(node.p(0.99), dnsmasq_.p(0.99)),
        "p99_ratio_knot": _ratio(node.p(0.99), knot.p(0.99)),
        "lost_node": node.lost,
        "p99_node_ms": _ms(node.p(0.99)),
        "p99_knot_ms": _ms(knot.p(0.99)),
        "p99_dnsmasq_ms": _ms(dnsmasq_.p(0.99)),
        "p50_node_ms": _ms(node.p(0.5)),
        "p50_knot_ms": _ms(knot.p(0.5)),
        "p50_dnsmasq_ms": _ms(dnsmasq_.p(0.5)),
        "names": plan.names,
        "warm_names": plan.warm_names,
        "zipf_queries": plan.zipf_queries,
        "zipf_distinct": zipf_distinct,
    }
    result["targets_met"] = {key: _meets(result[key], floor) for key, floor in TARGETS.items()}
    result |= {
        "lost": {m.label: m.lost for m in every},
        "errors": {m.label: m.errors for m in every},
        "cold_avg_ms": {m.label: _avg_ms(m.cold) for m in every},
        "zipf_avg_ms": {m.label: _avg_ms(m.zipf) for m in every},
        "passes_complete": {
            m.label: {
                "cold": m.cold is not None and m.cold.sent == plan.names,
                "zipf": m.zipf is not None and m.zipf.sent == plan.zipf_queries,
            }
            for m in every
        },
        "rss_mib_by_workload": {m.label: m.rss_mib for m in every},
        "latency_qps": round(plan.latency_load * min(m.qps for m in every)),
        "p99_passes_ms": {
            m.label: [round(m.p_pass(i, 0.99), 3) for i in range(len(m.latencies))] for m in every
        },
        "qps_warm_first_pass": {m.label: round(m.warmup[0].qps) for m in every},
        "qps_rounds": {m.label: [round(r.qps) for r in m.rounds] for m in every},
        "cpu_us_per_query": per_query,
        "response_bytes": {m.label: m.rounds[0].response_bytes for m in every},
        "rounds": plan.rounds,
        "round_s": plan.round_s,
        "dnsperf": " ".join(plan.options.args()),
        "build_s": round(chain.build_s, 1),
        "quick": plan.quick,
    }
    return result


def _meets(value: object, floor: float) -> bool:
    return isinstance(value, int | float) and value >= floor


def _avg_ms(result: dnsperf.Result | None) -> float | None:
    return round(result.avg_latency_s * 1000, 3) if result is not None else None


def _k(qps: float | None) -> str:
    return f"{qps / 1000:.1f}k" if qps is not None else "-"


def _ms_cell(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


def print_table(result: dict[str, object], servers: dict[str, Measured]) -> None:
    """The results on stderr: one row per server, then the ratios against their targets."""
    table = Table(
        title=f"DNS: node vs Knot vs dnsmasq, the same {result['names']:,} names, same run",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    headers = (
        "server", "warm q/s", "min-max", "cold q/s", "cold ms", "zipf q/s", "zipf ms",
        "lost", "p50 ms", "p99 ms", "RSS MiB", "µs/q",
    )  # fmt: skip
    for header in headers:
        table.add_column(header, justify="left" if header == "server" else "right", no_wrap=True)
    cpu, rss = result["cpu_us_per_query"], result["rss_mib_by_workload"]
    assert isinstance(cpu, dict) and isinstance(rss, dict)
    for m in servers.values():
        table.add_row(
            m.label, _k(m.qps),
            f"{min(r.qps for r in m.rounds) / 1000:.1f}-{_k(max(r.qps for r in m.rounds))}",
            _k(m.cold.qps if m.cold else None), _ms_cell(_avg_ms(m.cold)),
            _k(m.zipf.qps if m.zipf else None), _ms_cell(_avg_ms(m.zipf)),
            str(m.lost), _ms_cell(m.p(0.5)), _ms_cell(m.p(0.99)),
            f"{max(rss[m.label].values()):.0f}", str(cpu[m.label]),
        )  # fmt: skip
    console.print(table)
    met = result["targets_met"]
    assert isinstance(met, dict)
    for key, target in TARGETS.items():
        console.print(
            f"{key} {result[key]} (target >= {target}: {'met' if met[key] else 'MISSED'})"
        )
    console.print(
        f"p99_ratio {result['p99_ratio']} (vs dnsmasq, <= 1.0)  lost_node {result['lost_node']} (0)"
        f"  zipf: {result['zipf_queries']:,} queries over {result['zipf_distinct']:,} distinct names"
    )
    complete = result["passes_complete"]
    assert isinstance(complete, dict)
    for label, passes in complete.items():
        for workload, done in passes.items():
            if not done:
                console.print(f"[yellow]warning:[/] {label}'s {workload} pass hit --pass-limit")
