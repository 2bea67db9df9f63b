"""DNS over TLS and over HTTPS against the node's own UDP and TCP, same node, same run.

Builds a devnet data directory holding ``--names`` names (`tools.benchchain`, in a
temporary directory), starts the real ``ledgerdns node`` on it with ``--dot`` and
``--doh`` (no certificate given: the devnet makes its self-signed pair), and runs
dnsperf (DNS-OARC 2.10, which speaks ``-m udp|tcp|dot|doh``) against each face in
turn with the same clients, outstanding queries and duration, over the names in a
seeded random order: UDP, TCP, DoT, DoH with GET and DoH with POST. With
``--rounds R`` each face is measured R times (the order rotating each round) and
the median reported. Every dnsperf client keeps one connection (DoT, DoH: one TLS
session, HTTP/2 for DoH), so this measures the steady state of open connections,
not handshakes.

Prints one line per run on stderr and ends with one JSON line on stdout:
``qps`` per face, ``lost`` per face (every run), ``dot_vs_udp`` and ``doh_vs_udp``
(the DoT and DoH GET medians over the UDP one), and the parameters.

    python tools/bench_dot.py --quick    # 1,000 names, 1 round x 3 s per face (~30 s)
    python tools/bench_dot.py            # 10,000 names, 3 rounds x 10 s per face (~3 min)

Needs the Debian package ``dnsperf`` (``make sysdeps``).
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
import statistics
import sys
import tempfile
from pathlib import Path
from types import FrameType

from tools import benchchain, dnsperf
from tools.dnsservers import BenchError, Server, await_ready, spawn_node, stop_all
from tools.localnet import READY_PREFIX

FACES = {  # name -> (READY key, dnsperf flags)
    "udp": ("dns", ["-m", "udp"]),
    "tcp": ("dns", ["-m", "tcp"]),
    "dot": ("dot", ["-m", "dot"]),
    "doh_get": ("doh", ["-m", "doh", "-O", "doh-method=GET"]),
    "doh_post": ("doh", ["-m", "doh", "-O", "doh-method=POST"]),
}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ready_ports(server: Server) -> dict[str, int]:
    """The node's READY line: port per key (after `await_ready`)."""
    for line in (server.run_dir / f"{server.label}.out").read_text().splitlines():
        if line.startswith(READY_PREFIX):
            ready = json.loads(line[len(READY_PREFIX) :])
            return {k: int(str(ready[k]).rpartition(":")[2]) for k in ("dns", "dot", "doh")}
    raise BenchError("no READY line")


def measure(args: argparse.Namespace, work: Path) -> dict[str, object]:
    say(f"building a ledger of {args.names:,} names")
    chain = benchchain.build(work / "node", args.names, lambda done: None)
    # Only now: the build's forked signing worker must keep the default SIGTERM.
    signal.signal(signal.SIGTERM, _terminate)
    order = list(range(args.names))
    random.Random(args.seed).shuffle(order)
    queries = work / "queries.txt"
    queries.write_text("".join(f"{benchchain.domain_name(i)} A\n" for i in order))
    (work / "node.toml").write_text(f"[dns.tls]\nmax_connections = {args.clients + 10}\n")
    node = spawn_node(
        chain.data_dir, work, "node", args.names,
        ["--config", str(work / "node.toml"), "--dot", "127.0.0.1:0", "--doh", "127.0.0.1:0"],
    )  # fmt: skip
    try:
        await_ready(node)
        ports = ready_ports(node)
        options = dnsperf.Options(clients=args.clients, outstanding=args.outstanding, timeout_s=5)
        runs: dict[str, list[dnsperf.Result]] = {face: [] for face in FACES}
        names = list(FACES)
        for round_ in range(args.rounds):
            for face in names[round_ % len(names) :] + names[: round_ % len(names)]:
                key, flags = FACES[face]
                extra = [*flags]
                if face.startswith("doh"):
                    extra += ["-O", f"doh-uri=https://localhost:{ports[key]}/dns-query"]
                result = dnsperf.run(
                    args.dnsperf, ports[key], queries, options, seconds=args.seconds, extra=extra
                )
                runs[face].append(result)
                say(
                    f"round {round_ + 1} {face:>8}: {result.qps:>9,.0f} q/s, "
                    f"mean {result.avg_latency_s * 1000:.2f} ms, lost {result.lost}"
                )
                if not node.running():
                    raise BenchError(f"the node exited:\n{node.log_tail()}")
    finally:
        stop_all([node])
    qps = {face: round(statistics.median(r.qps for r in rs), 1) for face, rs in runs.items()}
    return {
        "tool": "bench_dot",
        "quick": args.quick,
        "names": args.names,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "clients": args.clients,
        "outstanding": args.outstanding,
        "cpus": os.cpu_count(),
        "qps": qps,
        "lost": {face: sum(r.lost for r in rs) for face, rs in runs.items()},
        "noerror": {face: sum(r.noerror for r in rs) for face, rs in runs.items()},
        "dot_vs_udp": round(qps["dot"] / qps["udp"], 3) if qps["udp"] else None,
        "doh_vs_udp": round(qps["doh_get"] / qps["udp"], 3) if qps["udp"] else None,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="DoT and DoH q/s against the node's own UDP and TCP (dnsperf); ends with "
        "one JSON line on stdout.",
    )
    parser.add_argument("--quick", action="store_true", help="1,000 names, 1 round x 3 s")
    parser.add_argument("--names", type=int, help="names in the ledger (default 10,000)")
    parser.add_argument("--rounds", type=int, help="runs per face, median reported (default 3)")
    parser.add_argument("--seconds", type=float, help="seconds per run (default 10)")
    parser.add_argument("--clients", type=int, default=8, help="dnsperf -c (default %(default)s)")
    parser.add_argument(
        "--outstanding", type=int, default=64, help="dnsperf -q (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=7, help="query order (default %(default)s)")
    parser.add_argument("--work-dir", help="keep the ledger and logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    quick = (1_000, 1, 3.0) if args.quick else (10_000, 3, 10.0)
    args.names = args.names or quick[0]
    args.rounds = args.rounds or quick[1]
    args.seconds = args.seconds or quick[2]
    if args.names < 1 or args.rounds < 1 or not 0 < args.seconds <= 600 or args.clients < 1:
        parser.error("--names, --rounds and --clients must be at least 1, --seconds in (0, 600]")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: the node is stopped, the temp dir removed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.dnsperf = shutil.which("dnsperf")
    if args.dnsperf is None:
        say("dnsperf is not installed (Debian: dnsperf; `make sysdeps`)")
        return 1
    try:
        if args.work_dir:
            work = Path(args.work_dir)
            if work.exists() and any(work.iterdir()):
                say(f"--work-dir {work} is not empty")
                return 2
            work.mkdir(parents=True, exist_ok=True)
            result = measure(args, work)
        else:
            with tempfile.TemporaryDirectory(prefix="bench-dot-") as tmp:
                result = measure(args, Path(tmp))
    except (BenchError, dnsperf.DnsperfError) as exc:
        say(f"bench_dot: {exc}")
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
