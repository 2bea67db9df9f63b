"""DNS benchmark: the node against Knot and dnsmasq on the same names, same machine, same run.

Builds (or reuses, cached under ``--work-dir``) a single-validator devnet data
directory holding N names (``d<i>.p2p``, one A record each; see
`tools.benchchain`) and starts the real ``ledgerdns node`` on it; Knot (``knotd``)
serving the same names as one zone (``p2p.``, one A record per name); and
dnsmasq serving them from a hosts file. Every server runs on the same pinned CPU
and gets the same dnsperf options. Three workloads:

- **cold**: every name asked exactly once, in random order, right after every
  server was started. One pass per server; nothing asks those names before it
  (servers are checked ready with the node's READY line followed by its
  "name table filled" log line, Knot's SOA and a name of dnsmasq's hosts file
  outside the set; the 20-name answer checks come after the pass). As Knot
  answers once its zone is loaded, the node answers every name at full speed
  once its UDP workers hold every name (`ledgerdns.dns.nametable`): the wait
  for that is reported as ``names_fill_s``, seconds after READY.
- **zipf**: all servers started again, then one pass over ``--zipf-queries``
  queries drawn over all N names with weight 1/rank (Zipf, s = 1.0; the ranks
  are a seeded shuffle of the names): a long tail, as real traffic is. What the
  node keeps from the first asks of a name is part of what this measures.
- **warm** (the old benchmark): ``--warm-names`` names repeated: one warm-up
  pass, then R rounds of S seconds per server, the order rotating each round
  (saturating: dnsperf keeps ``-q`` queries in flight), reported as the median;
  then latency passes, servers alternating, at one fixed rate
  (``--latency-load`` of the slowest server's median), with ``dnsperf -v``
  giving every query's latency: p50 and p99 are the medians of the passes'
  percentiles.

The JSON fields ``large_ratio`` / ``qps_large`` (a second node on a larger
ledger) are gone: they timed 10,000 names the warm-up pass had already put in
that node's reply table, so they measured the cache, not the ledger. The cold
and Zipf workloads over all N names replace them.

Prints a table on stderr and ends with one JSON line on stdout: ``qps_node``,
``qps_knot``, ``qps_dnsmasq``, ``qps_ratio_knot``, ``qps_ratio`` (to dnsmasq)
for the warm workload; ``cold_qps_node``, ``cold_qps_knot``,
``cold_ratio_knot``; ``zipf_qps_node``, ``zipf_qps_knot``, ``zipf_ratio_knot``
(dnsmasq's too); ``rss_mib_node`` (the node's whole process group, its UDP
workers included), ``rss_mib_knot``, ``rss_mib_dnsmasq`` (the largest of the
samples taken after each workload); ``names_fill_s`` (the node's name-table
fill after READY, the longest of its starts); ``p99_ratio`` (node / dnsmasq),
``lost_node`` (every query of every workload), ``targets_met`` and details.

    python tools/bench_dns.py --quick    # 50,000 names, 500,000 Zipf queries, 3 rounds x 5 s (~100 s)
    python tools/bench_dns.py            # 1,000,000 names, 4,000,000 Zipf queries, 5 rounds x 10 s
                                         # (~20 min; the first time +4-7 min building the ledger)

Needs the Debian packages ``dnsperf``, ``knot`` and ``dnsmasq-base`` (``make sysdeps``).
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import itertools
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from tools import benchchain, dnsperf, dnsservers
from tools.bench_dns_report import Measured, Plan, print_table, summarize
from tools.dnsservers import (
    BenchError,
    MissingProgram,
    Server,
    await_names,
    await_ready,
    check_answers,
    cpu_seconds,
    rss_mib,
    spawn_node,
    start_dnsmasq,
    start_knot,
    stop_all,
)

console = Console(stderr=True)
_STARTED = time.monotonic()
SAMPLE = 20  # names checked with a real DNS client on every server, after its cold pass
EXIT_MISSING = 2  # a required program is not installed
WARMUP_CAP_S = 60.0  # the warm-up is one pass over the warm query file; this only bounds it
ZONE = f"{benchchain.TLD}."
PROBE = f"ready.{benchchain.TLD}"  # dnsmasq's readiness name: last in its hosts file, never queried
LABELS = ("node", "knot", "dnsmasq")
FILL_S: list[float] = []  # seconds from the node's READY to its workers' name tables filled


# -- set-up --


def say(message: str) -> None:
    """A progress line on stderr, stamped with the seconds since the start."""
    console.print(
        f"[{time.monotonic() - _STARTED:5.1f} s] {message}",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Binaries:
    dnsperf: str
    knotd: str
    dnsmasq: str


def find_binaries() -> Binaries:
    """The dnsperf, knotd and dnsmasq executables.

    Raises:
        MissingProgram: one is missing, naming the Debian package to install.
    """
    found = []
    for program, directory, package in (
        ("dnsperf", "/usr/bin", "dnsperf"),
        ("knotd", "/usr/sbin", "knot"),
        ("dnsmasq", "/usr/sbin", "dnsmasq-base"),
    ):
        path = shutil.which(program) or shutil.which(program, path=directory)
        if path is None:
            raise MissingProgram(f"{program} is not installed: apt-get install {package}")
        found.append(path)
    return Binaries(*found)


def build_chain(cache: Path, size: int) -> benchchain.BenchChain:
    """The cached data directory for `size` names, built with a progress bar if missing."""
    columns = (
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
    )  # fmt: skip
    # No refresh thread (auto_refresh off): the build forks its signing worker.
    with Progress(*columns, console=console, transient=False, auto_refresh=False) as bar:
        task = bar.add_task(f"ledger of {size:,} names", total=size, rate="")
        started = time.perf_counter()

        def advance(done: int, task: TaskID = task, started: float = started) -> None:
            rate = done / max(1e-9, time.perf_counter() - started)
            bar.update(task, completed=done, rate=f"{rate:,.0f}/s", refresh=True)

        chain = benchchain.ensure(cache, size, advance)
        bar.update(task, completed=size, rate="cached" if chain.cached else "built", refresh=True)
    how = "cached" if chain.cached else "built"
    console.print(
        f"  {how}: {chain.data_dir} (height {chain.height}, built in {chain.build_s:.1f} s)"
    )
    return chain


def write_queries(path: Path, indexes: list[int]) -> Path:
    """A dnsperf query file: one ``name A`` line per index, in the given order."""
    with path.open("w") as out:
        for start in range(0, len(indexes), 100_000):
            out.write(
                "".join(
                    f"{benchchain.domain_name(i)} A\n" for i in indexes[start : start + 100_000]
                )
            )
    return path


def zipf_indexes(names: int, count: int, rng: random.Random) -> list[int]:
    """`count` draws over names 0..`names`-1 with weight 1/rank (Zipf, s = 1.0).

    Which name has which rank is a seeded shuffle, so popularity has nothing to do
    with the order the names were registered in.
    """
    by_rank = list(range(names))
    rng.shuffle(by_rank)
    cumulative = list(itertools.accumulate(1.0 / rank for rank in range(1, names + 1)))
    return rng.choices(by_rank, cum_weights=cumulative, k=count)


@dataclass(frozen=True, slots=True)
class Inputs:
    """The files every start of the servers reads, and the query files."""

    data_dir: Path
    hosts: Path
    zone: Path
    cold: Path
    zipf: Path
    warm: Path
    zipf_distinct: int


def write_inputs(plan: Plan, chain: benchchain.BenchChain, run_dir: Path, seed: int) -> Inputs:
    """The hosts file, the zone file and the three query files (seeded)."""
    rng = random.Random(seed)
    benchchain.write_hosts(run_dir / "hosts", plan.names)
    with (run_dir / "hosts").open("a") as hosts:
        hosts.write(f"127.0.0.2 {PROBE}\n")  # last: answered once the whole file is read
    benchchain.write_zone(run_dir / "p2p.zone", plan.names)
    every = list(range(plan.names))
    rng.shuffle(every)
    zipf = zipf_indexes(plan.names, plan.zipf_queries, rng)
    warm = rng.sample(range(plan.names), plan.warm_names)
    return Inputs(
        data_dir=chain.data_dir, hosts=run_dir / "hosts", zone=run_dir / "p2p.zone",
        cold=write_queries(run_dir / "queries-cold.txt", every),
        zipf=write_queries(run_dir / "queries-zipf.txt", zipf),
        warm=write_queries(run_dir / "queries-warm.txt", warm), zipf_distinct=len(set(zipf)),
    )  # fmt: skip


def start_servers(
    plan: Plan,
    inputs: Inputs,
    bins: Binaries,
    run_dir: Path,
    node_args: list[str],
    live: list[Server],
) -> dict[str, Server]:
    """Node, Knot and dnsmasq freshly started (each added to `live` as it starts).

    None of them is asked for a benchmark name here.
    """
    node = spawn_node(inputs.data_dir, run_dir, "node", plan.names, node_args)
    live.append(node)
    knot = start_knot(
        bins.knotd, inputs.zone, ZONE, run_dir, plan.names
    )  # the node starts meanwhile
    live.append(knot)
    dnsmasq_ = start_dnsmasq(bins.dnsmasq, inputs.hosts, run_dir, plan.names, probe=PROBE)
    live.append(dnsmasq_)
    await_ready(node)
    fill_s = await_names(node)
    FILL_S.append(fill_s)
    say(f"servers up: node :{node.port} (names filled {fill_s:.1f} s after READY), "
        f"knot :{knot.port}, dnsmasq :{dnsmasq_.port}")  # fmt: skip
    return {"node": node, "knot": knot, "dnsmasq": dnsmasq_}


# -- measuring --


def one_pass(
    plan: Plan, dnsperf_bin: str, m: Measured, queries: Path, workload: str
) -> dnsperf.Result:
    """One pass over `queries` against `m`'s server (bounded by ``--pass-limit``)."""
    assert m.server is not None
    result = dnsperf.run(
        dnsperf_bin, m.server.port, queries, plan.options, seconds=plan.pass_limit_s, max_passes=1
    )
    m.rss_mib[workload] = round(rss_mib(m.server.pgid), 1)
    say(
        f"{workload:>4} {m.label:>8}: {result.qps:>9,.0f} q/s over {result.sent:,} queries, "
        f"mean {result.avg_latency_s * 1000:.2f} ms, lost {result.lost}, RSS {m.rss_mib[workload]:,.0f} MiB"
    )
    return result


def measure_warm(plan: Plan, dnsperf_bin: str, queries: Path, servers: list[Measured]) -> None:
    """Warm-up, rounds (rotating the order), then latency runs at one fixed rate."""
    opts = plan.options
    for m in servers:
        assert m.server is not None
        result = dnsperf.run(
            dnsperf_bin, m.server.port, queries, opts, seconds=plan.warmup_s, max_passes=1
        )
        m.warmup.append(result)
        say(f"warm-up {m.label:>8}: {result.qps:>9,.0f} q/s (first pass), lost {result.lost}")
    for r in range(plan.rounds):
        for m in servers[r % len(servers) :] + servers[: r % len(servers)]:
            assert m.server is not None
            before = cpu_seconds(m.server.pgid)
            result = dnsperf.run(dnsperf_bin, m.server.port, queries, opts, seconds=plan.round_s)
            m.cpu_s += cpu_seconds(m.server.pgid) - before
            m.rounds.append(result)
            say(
                f"round {r + 1}/{plan.rounds} {m.label:>8}: {result.qps:>9,.0f} q/s, "
                f"lost {result.lost}, mean {result.avg_latency_s * 1000:.2f} ms"
            )
    rate = plan.latency_load * min(m.qps for m in servers)
    for _ in range(plan.latency_passes):  # alternating, so a noisy moment hits all alike
        for m in servers:
            _latency_run(plan, dnsperf_bin, m, queries, rate)
    for m in servers:
        assert m.server is not None
        m.rss_mib["warm"] = round(rss_mib(m.server.pgid), 1)


def _latency_run(plan: Plan, dnsperf_bin: str, m: Measured, queries: Path, rate: float) -> None:
    """dnsperf -v at `rate` q/s: every query's latency, for the percentiles."""
    assert m.server is not None
    n = len(m.latency)
    out = m.server.run_dir / f"latency-{m.label}-{n + 1}.txt"
    result = dnsperf.run(
        dnsperf_bin, m.server.port, queries, plan.options,
        seconds=plan.latency_s, rate=rate, latencies_to=out,
    )  # fmt: skip
    m.latency.append(result)
    m.latencies.append(dnsperf.read_latencies(out, plan.options.timeout_s))
    say(
        f"latency {n + 1}/{plan.latency_passes} {m.label:>8} @ {rate:,.0f} q/s: "
        f"p50 {m.p_pass(n, 0.5):.3f} p99 {m.p_pass(n, 0.99):.3f} ms, lost {result.lost}"
    )


# -- main --


def plan_from(args: argparse.Namespace) -> Plan:
    quick = bool(args.quick)
    names = args.names or (50_000 if quick else 1_000_000)
    return Plan(
        names=names,
        warm_names=min(names, args.warm_names),
        zipf_queries=args.zipf_queries or min(10 * names, 4_000_000),
        rounds=args.rounds or (3 if quick else 5),
        round_s=args.round_seconds or (5.0 if quick else 10.0),
        warmup_s=WARMUP_CAP_S,
        pass_limit_s=args.pass_limit,
        latency_s=args.latency_seconds or (1.0 if quick else 5.0),
        latency_load=args.latency_load,
        latency_passes=args.latency_passes,
        options=dnsperf.Options(
            clients=args.clients, outstanding=args.outstanding, timeout_s=args.timeout
        ),
        quick=quick,
    )


def run(args: argparse.Namespace) -> dict[str, object]:
    """The whole benchmark; every server is stopped however it ends."""
    plan = plan_from(args)
    bins = find_binaries()
    chain = build_chain(Path(args.work_dir).expanduser(), plan.names)
    run_dir = Path(tempfile.mkdtemp(prefix="bdns-run-"))
    live: list[Server] = []
    measured = {label: Measured(label) for label in LABELS}
    rng = random.Random(args.seed + 1)  # the answer checks' names
    try:
        inputs = write_inputs(plan, chain, run_dir, args.seed)
        say(f"query files: cold {plan.names:,}, zipf {plan.zipf_queries:,} "
            f"({inputs.zipf_distinct:,} distinct), warm {plan.warm_names:,}")  # fmt: skip
        for workload, queries in (("cold", inputs.cold), ("zipf", inputs.zipf)):
            stop_all(live)
            live.clear()
            for label, server in start_servers(
                plan, inputs, bins, run_dir, args.node_arg, live
            ).items():
                measured[label].server = server
            for m in measured.values():
                setattr(m, workload, one_pass(plan, bins.dnsperf, m, queries, workload))
            for m in measured.values():  # after the pass: the checks must not warm anything
                assert m.server is not None
                check_answers(m.server, rng.sample(range(plan.names), min(SAMPLE, plan.names)))
        measure_warm(plan, bins.dnsperf, inputs.warm, list(measured.values()))  # zipf's servers
        result = summarize(plan, measured, chain, inputs.zipf_distinct)
        result["names_fill_s"] = round(max(FILL_S), 1)
        print_table(result, measured)
        return result
    finally:
        stop_all(live)
        if args.keep:
            console.print(f"logs and query files kept in {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


def _default_cache() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return str(Path(base) / "ledgerdns-bench")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false",
        help="do not pin dnsperf and the servers to separate CPUs (taskset)",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true", help="50,000 names, 3 rounds x 5 s (about 100 s)"
    )
    parser.add_argument(
        "--names", type=int, help="names every server holds (quick 50000, full 1000000)"
    )
    parser.add_argument(
        "--warm-names", type=int, default=10_000,
        help="names the warm workload repeats, drawn from all (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--zipf-queries", type=int,
        help="queries in the Zipf workload's one pass (default 10 x names, at most 4,000,000)",
    )  # fmt: skip
    parser.add_argument(
        "--pass-limit", type=float, default=900.0,
        help="seconds a cold or Zipf pass may take before it is cut short (default %(default)s)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, help="measured rounds per server (quick 3, full 5)")
    parser.add_argument(
        "--round-seconds", type=float, help="dnsperf -l per round (quick 5, full 10)"
    )
    parser.add_argument(
        "--latency-seconds", type=float, help="each fixed-rate latency pass (quick 1, full 5)"
    )
    parser.add_argument(
        "--latency-passes", type=int, default=5,
        help="latency passes per server, alternating; p50/p99 are their medians (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--latency-load",
        type=float,
        default=0.75,
        help="latency rate as a share of the slowest server's median q/s (default %(default)s)",
    )
    parser.add_argument("--clients", type=int, default=2, help="dnsperf -c (default %(default)s)")
    parser.add_argument(
        "--outstanding", type=int, default=100, help="dnsperf -q (default %(default)s)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        help="dnsperf -t: lost after this (default %(default)s s)",
    )
    parser.add_argument(
        "--work-dir",
        default=_default_cache(),
        help="where built ledgers are cached (default %(default)s)",
    )
    parser.add_argument(
        "--node-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra argument for `ledgerdns node` (repeatable)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="query files and samples (default %(default)s)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the run directory (logs, latencies)"
    )
    args = parser.parse_args(argv)
    names = (
        "names", "warm_names", "zipf_queries", "pass_limit", "rounds", "round_seconds",
        "latency_seconds", "latency_passes", "clients", "outstanding",
    )  # fmt: skip
    for name in names:
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if not 0 < args.latency_load <= 1 or args.timeout <= 0:
        parser.error("--latency-load must be in (0, 1] and --timeout positive")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: every server is stopped


def _pin(enabled: bool) -> dict[str, list[int]] | None:
    """Give dnsperf its own CPUs and the servers theirs (the last CPU), if asked and possible.

    On a small machine the client and the server otherwise fight over the same
    cores, and whoever the scheduler favours in a round wins it: pinning turns
    that noise into a fixed, equal arrangement for both servers.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
        return None
    client, server = cpus[:-1], cpus[-1:]
    dnsperf.CPU_PREFIX[:] = ["taskset", "-c", ",".join(map(str, client))]
    dnsservers.CPU_PREFIX[:] = ["taskset", "-c", ",".join(map(str, server))]
    return {"dnsperf": client, "servers": server}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.perf_counter()
    pinned = _pin(args.pin)
    try:
        result = run(args)
    except BenchError as exc:
        console.print(f"[red]error:[/] {exc}")
        return EXIT_MISSING if isinstance(exc, MissingProgram) else 1
    except dnsperf.DnsperfError as exc:
        console.print(f"[red]dnsperf failed:[/] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("interrupted: servers stopped")
        return 130
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["pinned"] = pinned
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
