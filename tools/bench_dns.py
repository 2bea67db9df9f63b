"""DNS benchmark: the node against dnsmasq on the same names, same machine, same run.

Builds (or reuses, cached under ``--work-dir``) a single-validator devnet data
directory holding N domains (``d<i>.p2p``, one A record each; see
`tools.benchchain`) and starts the real ``ledgerdns node`` on it; starts dnsmasq
serving the same names and addresses from a hosts file; then runs dnsperf
alternately against each, several rounds, with the same options for both. With
``--large`` a second node holds a bigger ledger and is measured in the same
rounds on 10,000 of its names drawn at random.

Phases: a warm-up pass over each server's query file (its rate is reported as
the cold rate); R rounds of S seconds per server, the order rotating each round
(saturating: dnsperf keeps ``-q`` queries in flight), reported as the median
queries per second; then latency passes, node and dnsmasq alternating, at one
fixed rate (``--latency-load`` of the slower server's median), with
``dnsperf -v`` giving every query's latency: p50 and p99 are the medians of the
passes' percentiles. ``lost_node`` counts every query of every phase.

Prints a table on stderr and ends with one JSON line on stdout: ``qps_node``,
``qps_dnsmasq``, ``qps_ratio``, ``p99_ratio`` (node p99 / dnsmasq p99),
``lost_node`` (every query against the node that went unanswered), ``qps_large``,
``large_ratio``, ``large_domains`` and details. ``--quick`` runs under 90 s.

    python tools/bench_dns.py --quick    # 3 rounds x 5 s; large ledger 50,000 names
    python tools/bench_dns.py            # 5 rounds x 10 s; large ledger 1,000,000 names

Needs the Debian packages ``dnsperf`` and ``dnsmasq-base``.
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
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
    await_ready,
    check_answers,
    cpu_seconds,
    spawn_node,
    start_dnsmasq,
    stop_all,
)

console = Console(stderr=True)
_STARTED = time.monotonic()
LARGE_QUERIES = 10_000  # names drawn from the large ledger for its query file
SAMPLE = 20  # names checked with a real DNS client on every server before measuring
EXIT_MISSING = 2  # a required program is not installed
WARMUP_CAP_S = 60.0  # the warm-up is one pass over the query file; this only bounds it


# -- set-up --


def say(message: str) -> None:
    """A progress line on stderr, stamped with the seconds since the start."""
    console.print(
        f"[{time.monotonic() - _STARTED:5.1f} s] {message}", markup=False, highlight=False
    )


def find_binaries() -> tuple[str, str]:
    """The dnsperf and dnsmasq executables.

    Raises:
        MissingProgram: one is missing, naming the Debian package to install.
    """
    found = []
    for program, directory, package in (
        ("dnsperf", "/usr/bin", "dnsperf"),
        ("dnsmasq", "/usr/sbin", "dnsmasq-base"),
    ):
        path = shutil.which(program) or shutil.which(program, path=directory)
        if path is None:
            raise MissingProgram(f"{program} is not installed: apt-get install {package}")
        found.append(path)
    return found[0], found[1]


def build_chains(cache: Path, sizes: list[int]) -> dict[int, benchchain.BenchChain]:
    """The cached data directories for `sizes`, built with a progress bar where missing."""
    chains: dict[int, benchchain.BenchChain] = {}
    columns = (
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
    )  # fmt: skip
    for size in sizes:
        # No refresh thread (auto_refresh off): the build forks its signing worker.
        with Progress(*columns, console=console, transient=False, auto_refresh=False) as bar:
            task = bar.add_task(f"ledger of {size:,} names", total=size, rate="")
            started = time.perf_counter()

            def advance(done: int, task: TaskID = task, started: float = started) -> None:
                rate = done / max(1e-9, time.perf_counter() - started)
                bar.update(task, completed=done, rate=f"{rate:,.0f}/s", refresh=True)

            chain = benchchain.ensure(cache, size, advance)
            bar.update(
                task, completed=size, rate="cached" if chain.cached else "built", refresh=True
            )
        how = "cached" if chain.cached else "built"
        console.print(
            f"  {how}: {chain.data_dir} (height {chain.height}, built in {chain.build_s:.1f} s)"
        )
        chains[size] = chain
    return chains


def write_queries(path: Path, indexes: list[int]) -> Path:
    """A dnsperf query file: one ``name A`` line per index, in the given order."""
    path.write_text("".join(f"{benchchain.domain_name(i)} A\n" for i in indexes))
    return path


# -- measuring --


def measure(plan: Plan, dnsperf_bin: str, servers: list[Measured]) -> None:
    """Warm-up, rounds (rotating the order), then latency runs at one fixed rate."""
    opts = plan.options
    for m in servers:
        result = dnsperf.run(
            dnsperf_bin, m.server.port, m.queries, opts, seconds=plan.warmup_s, max_passes=1
        )
        m.warmup.append(result)
        say(
            f"warm-up {m.server.label:>10}: {result.qps:>9,.0f} q/s (first pass), lost {result.lost}"
        )
    for r in range(plan.rounds):
        for m in servers[r % len(servers) :] + servers[: r % len(servers)]:
            before = cpu_seconds(m.server.pgid)
            result = dnsperf.run(dnsperf_bin, m.server.port, m.queries, opts, seconds=plan.round_s)
            m.cpu_s += cpu_seconds(m.server.pgid) - before
            m.rounds.append(result)
            say(
                f"round {r + 1}/{plan.rounds} {m.server.label:>10}: {result.qps:>9,.0f} q/s, "
                f"lost {result.lost}, mean {result.avg_latency_s * 1000:.2f} ms"
            )
    rate = plan.latency_load * min(servers[0].qps, servers[1].qps)
    for _ in range(plan.latency_passes):  # alternating, so a noisy moment hits both alike
        for m in servers[:2]:
            _latency_run(plan, dnsperf_bin, m, rate)


def _latency_run(plan: Plan, dnsperf_bin: str, m: Measured, rate: float) -> None:
    """dnsperf -v at `rate` q/s: every query's latency, for the percentiles."""
    n = len(m.latency)
    out = m.server.run_dir / f"latency-{m.server.label}-{n + 1}.txt"
    result = dnsperf.run(
        dnsperf_bin, m.server.port, m.queries, plan.options,
        seconds=plan.latency_s, rate=rate, latencies_to=out,
    )  # fmt: skip
    m.latency.append(result)
    m.latencies.append(dnsperf.read_latencies(out, plan.options.timeout_s))
    say(
        f"latency {n + 1}/{plan.latency_passes} {m.server.label:>7} @ {rate:,.0f} q/s: "
        f"p50 {m.p_pass(n, 0.5):.3f} p99 {m.p_pass(n, 0.99):.3f} ms, lost {result.lost}"
    )


# -- main --


def plan_from(args: argparse.Namespace) -> Plan:
    quick = bool(args.quick)
    large = args.large if args.large is not None else (50_000 if quick else 1_000_000)
    return Plan(
        domains=args.domains,
        large=large,
        rounds=args.rounds or (3 if quick else 5),
        round_s=args.round_seconds or (5.0 if quick else 10.0),
        warmup_s=WARMUP_CAP_S,
        latency_s=args.latency_seconds or (1.0 if quick else 5.0),
        latency_load=args.latency_load,
        latency_passes=args.latency_passes,
        options=dnsperf.Options(
            clients=args.clients, outstanding=args.outstanding, timeout_s=args.timeout
        ),
        quick=quick,
    )


def start_servers(
    plan: Plan,
    chains: dict[int, benchchain.BenchChain],
    dnsmasq_bin: str,
    run_dir: Path,
    args: argparse.Namespace,
    servers: list[Server],
) -> list[Measured]:
    """Query files, hosts file, and every server up (each added to `servers` as it starts)."""
    rng = random.Random(args.seed)
    small = list(range(plan.domains))
    rng.shuffle(small)
    queries = [write_queries(run_dir / "queries.txt", small)] * 2
    benchchain.write_hosts(run_dir / "hosts", plan.domains)
    extra = list(args.node_arg)
    servers.append(spawn_node(chains[plan.domains].data_dir, run_dir, "node", plan.domains, extra))
    if plan.large:
        big = rng.sample(range(plan.large), min(LARGE_QUERIES, plan.large))
        queries.append(write_queries(run_dir / "queries-large.txt", big))
        large_dir = chains[plan.large].data_dir
        servers.append(spawn_node(large_dir, run_dir, "node-large", plan.large, extra))
    servers.insert(1, start_dnsmasq(dnsmasq_bin, run_dir / "hosts", run_dir, plan.domains))
    for server in servers:  # the nodes started meanwhile
        if server.label != "dnsmasq":
            await_ready(server)
    measured = [Measured(server, q) for server, q in zip(servers, queries, strict=True)]
    say(f"servers up: {', '.join(f'{m.server.label} :{m.server.port}' for m in measured)}")
    for m in measured:
        check_answers(m.server, _sample(m.queries, rng))
    return measured


def run(args: argparse.Namespace) -> dict[str, object]:
    """The whole benchmark; every server is stopped however it ends."""
    plan = plan_from(args)
    dnsperf_bin, dnsmasq_bin = find_binaries()
    chains = build_chains(
        Path(args.work_dir).expanduser(), sorted({plan.domains, plan.large} - {0})
    )
    run_dir = Path(tempfile.mkdtemp(prefix="bdns-run-"))
    servers: list[Server] = []
    try:
        measured = start_servers(plan, chains, dnsmasq_bin, run_dir, args, servers)
        measure(plan, dnsperf_bin, measured)
        result = summarize(plan, measured, chains)
        print_table(result, measured)
        return result
    finally:
        stop_all(servers)
        if args.keep:
            console.print(f"logs and query files kept in {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


def _sample(queries: Path, rng: random.Random) -> list[int]:
    names = [line.split()[0] for line in queries.read_text().splitlines()]
    return [int(name.split(".")[0][1:]) for name in rng.sample(names, min(SAMPLE, len(names)))]


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
        "--quick", action="store_true", help="3 rounds x 5 s, large ledger 50,000 (under 90 s)"
    )
    parser.add_argument(
        "--domains", type=int, default=10_000, help="names both servers hold (default %(default)s)"
    )
    parser.add_argument(
        "--large", type=int, help="names in the large ledger (quick 50000, full 1000000; 0 = skip)"
    )
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
        help="latency rate as a share of the slower server's median q/s (default %(default)s)",
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
        "--seed", type=int, default=1, help="query order and samples (default %(default)s)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the run directory (logs, latencies)"
    )
    args = parser.parse_args(argv)
    if args.domains < 1 or (args.large is not None and args.large < 0):
        parser.error("--domains must be positive and --large not negative")
    if args.large == args.domains:
        parser.error("--large must differ from --domains (each node needs its own ledger)")
    names = (
        "rounds",
        "round_seconds",
        "latency_seconds",
        "latency_passes",
        "clients",
        "outstanding",
    )
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
