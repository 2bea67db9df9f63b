"""What a proof answer costs the node against a plain answer (issue 16: proofs over DNS).

Starts the real ``ledgerdns node`` on a cached benchmark chain of N names
(`tools.benchchain`, ``d<i>.p2p``), checks that a proof answer verifies against
the chain's genesis (a present name and an absent one), then runs dnsperf over
TCP with the same names, the same load and the same options, alternately
without and with the proof option (65353, the request of a client that knows
only the genesis set): R rounds of S seconds each, saturating (``-q`` queries in
flight), reported as medians. Then one latency pass each at a fixed rate (half
the proof median), every query's latency from ``dnsperf -v``: p50 and p99. A
plain UDP pass is measured too, for reference (the UDP workers' path).

Prints progress on stderr and ends with one JSON line on stdout:
``qps_plain_tcp``, ``qps_proof_tcp``, ``proof_cost_ratio`` (plain / proof),
``p50_ms_proof``, ``p99_ms_proof``, ``p50_ms_plain``, ``p99_ms_plain``,
``qps_plain_udp``, ``proof_bytes`` (the option's data), ``reply_bytes_proof``,
``lost`` (every query of every phase), ``verified``.

    python tools/bench_dns_proof.py --quick    # 3 rounds x 4 s, under 90 s
    python tools/bench_dns_proof.py            # 5 rounds x 10 s

Needs dnsperf (DNS-OARC, 2.x, ``-m tcp`` and ``-E``). Run it alone on the
machine (``flock /tmp/bench.lock``): both it and the node want the CPU.
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chain.dns_proof import PROOF_OPTION_CODE, ProofRequest, verify_answer
from chain.errors import LedgerError
from ledgerdns.dns.proof_query import fetch_proof_sync
from tools import benchchain, dnsperf
from tools.dnsservers import BenchError, Server, await_ready, spawn_node, stop_all

_STARTED = time.monotonic()
LOOPBACK = "127.0.0.1"
EXIT_MISSING = 2
REQUEST_HEX = ProofRequest().to_bytes().hex()


def say(message: str) -> None:
    """A progress line on stderr, stamped with the seconds since the start."""
    print(f"[{time.monotonic() - _STARTED:5.1f} s] {message}", file=sys.stderr, flush=True)


def run_dnsperf(
    binary: str,
    port: int,
    queries: Path,
    args: argparse.Namespace,
    *,
    proof: bool,
    tcp: bool = True,
    rate: float | None = None,
    latencies_to: Path | None = None,
) -> dnsperf.Result:
    """One dnsperf run over TCP (or UDP), with or without the proof option.

    Raises:
        dnsperf.DnsperfError: it failed, hung or printed no statistics.
    """
    seconds = args.latency_seconds if rate is not None else args.seconds
    cmd = [
        binary, "-s", LOOPBACK, "-p", str(port), "-d", str(queries), "-l", f"{seconds:g}",
        "-m", "tcp" if tcp else "udp", "-c", str(args.clients), "-q", str(args.outstanding),
        "-t", "5",
    ]  # fmt: skip
    if proof:
        cmd += ["-E", f"{PROOF_OPTION_CODE}:{REQUEST_HEX}"]
    if rate is not None:
        cmd += ["-Q", str(max(1, round(rate)))]
    limit = seconds + 5 + dnsperf.SLACK_S
    try:
        if latencies_to is None:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
            text = done.stdout
        else:
            with latencies_to.open("w") as out:
                done = subprocess.run(
                    [*cmd, "-v"], stdout=out, stderr=subprocess.PIPE, text=True, timeout=limit,
                    check=False,
                )  # fmt: skip
            text = "".join(
                line
                for line in latencies_to.read_text().splitlines(True)
                if not line.startswith("> ")
            )
    except subprocess.TimeoutExpired:
        raise dnsperf.DnsperfError(f"dnsperf did not finish within {limit:g} s") from None
    if done.returncode != 0:
        raise dnsperf.DnsperfError(f"dnsperf exited with {done.returncode}: {' '.join(cmd)}")
    return dnsperf.Result.from_text(text)


def check_proofs(port: int, names: int) -> tuple[int, int]:
    """A present and an absent name's proofs verify against the bench genesis.

    Returns:
        ``(option data bytes, whole reply bytes)`` of the present name's proof answer.

    Raises:
        BenchError: a proof is missing or does not verify.
    """
    params = benchchain.genesis().params
    size = (0, 0)
    for name, present in ((benchchain.domain_name(names // 2), True), ("nobody-here.p2p", False)):
        reply = fetch_proof_sync(LOOPBACK, port, name, "A", ProofRequest(), tcp_only=True)
        if reply.proof is None:
            raise BenchError(f"{name}: the node sent no proof")
        # The bench chain's blocks are dated 2023: authenticity only, no freshness bound.
        result = verify_answer(
            reply.proof, params=params, known=None, qname=name, now_ms=reply.proof.header.time_ms,
            max_age_ms=None,
        )  # fmt: skip
        if (result.state is not None) != present:
            raise BenchError(f"{name}: proven {'absent' if present else 'present'}")
        if present:
            size = (len(reply.proof.to_bytes()), len(reply.record.pack()))
    return size


def measure(
    binary: str, port: int, queries: Path, args: argparse.Namespace, work: Path
) -> dict[str, object]:
    """The rounds, the latency passes and the UDP reference; see the module doc."""
    plain: list[float] = []
    proof: list[float] = []
    lost = 0
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        for with_proof in order:
            res = run_dnsperf(binary, port, queries, args, proof=with_proof)
            lost += res.lost
            (proof if with_proof else plain).append(res.qps)
            say(f"round {r + 1}: {'proof' if with_proof else 'plain'} tcp {res.qps:,.0f} q/s "
                f"(response {res.response_bytes} B, lost {res.lost})")  # fmt: skip
    rate = statistics.median(proof) / 2
    latency: dict[str, list[float]] = {}
    for label, with_proof in (("plain", False), ("proof", True)):
        path = work / f"latency-{label}.txt"
        res = run_dnsperf(
            binary, port, queries, args, proof=with_proof, rate=rate, latencies_to=path
        )
        lost += res.lost
        latency[label] = dnsperf.read_latencies(path, 5.0)
        say(f"latency {label} at {rate:,.0f} q/s: {len(latency[label])} answers")
    udp = run_dnsperf(binary, port, queries, args, proof=False, tcp=False)
    lost += udp.lost
    say(f"plain udp {udp.qps:,.0f} q/s")
    qps_plain, qps_proof = statistics.median(plain), statistics.median(proof)

    def ms(label: str, q: float) -> float:
        return round(dnsperf.percentile(latency[label], q) * 1000, 3)

    return {
        "qps_plain_tcp": round(qps_plain), "qps_proof_tcp": round(qps_proof),
        "proof_cost_ratio": round(qps_plain / qps_proof, 2) if qps_proof else None,
        "p50_ms_proof": ms("proof", 0.5), "p99_ms_proof": ms("proof", 0.99),
        "p50_ms_plain": ms("plain", 0.5), "p99_ms_plain": ms("plain", 0.99),
        "latency_rate_qps": round(rate), "qps_plain_udp": round(udp.qps), "lost": lost,
        "rounds_plain_tcp": [round(q) for q in plain], "rounds_proof_tcp": [round(q) for q in proof],
    }  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, object]:
    """Build or reuse the chain, start the node, verify, measure, stop."""
    binary = shutil.which("dnsperf")
    if binary is None:
        raise FileNotFoundError("dnsperf is not installed (Debian package dnsperf)")
    chain = benchchain.ensure(Path(args.work_dir), args.names, lambda done: None)
    say(f"chain of {chain.domains:,} names ({'cached' if chain.cached else 'built'})")
    with tempfile.TemporaryDirectory(prefix="bench-dns-proof-") as tmp:
        work = Path(tmp)
        rng = random.Random(16)
        queries = work / "queries.txt"
        picks = [rng.randrange(args.names) for _ in range(10_000)]
        queries.write_text("".join(f"{benchchain.domain_name(i)} A\n" for i in picks))
        data = work / "node"
        shutil.copytree(chain.data_dir, data)  # the node writes: keep the cache pristine
        servers: list[Server] = []
        try:
            node = spawn_node(data, work, "node", args.names, [])
            servers.append(node)
            await_ready(node)
            say(f"node ready dns={LOOPBACK}:{node.port}")
            proof_bytes, reply_bytes = check_proofs(node.port, args.names)
            say(f"proofs verify: option {proof_bytes} B, reply {reply_bytes} B")
            result = measure(binary, node.port, queries, args, work)
        finally:
            stop_all(servers)
    return {
        **result, "proof_bytes": proof_bytes, "reply_bytes_proof": reply_bytes, "verified": True,
        "names": args.names, "clients": args.clients, "outstanding": args.outstanding,
        "seconds_per_round": args.seconds, "cpus": os.cpu_count(),
        "elapsed_s": round(time.monotonic() - _STARTED, 1),
    }  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds of 4 s: under 90 s")
    parser.add_argument(
        "--names", type=int, default=50_000, help="names in the chain (default %(default)s)"
    )
    parser.add_argument("--rounds", type=int, help="rounds per kind (quick 3, full 5)")
    parser.add_argument("--seconds", type=float, help="seconds per round (quick 4, full 10)")
    parser.add_argument(
        "--latency-seconds", type=float, help="seconds per latency pass (quick 4, full 10)"
    )
    parser.add_argument(
        "--clients", type=int, default=4, help="dnsperf -c, TCP connections (default %(default)s)"
    )
    parser.add_argument(
        "--outstanding", type=int, default=32, help="dnsperf -q (default %(default)s)"
    )
    parser.add_argument(
        "--work-dir", default=str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ledgerdns-bench"),
        help="where benchmark chains are cached (shared with tools/bench_dns.py)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.names < 2 or args.clients < 1 or args.outstanding < 1:
        parser.error("--names must be at least 2, --clients and --outstanding at least 1")
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.seconds = args.seconds or (4.0 if args.quick else 10.0)
    args.latency_seconds = args.latency_seconds or (4.0 if args.quick else 10.0)
    if args.rounds < 1 or args.seconds <= 0 or args.latency_seconds <= 0:
        parser.error("--rounds, --seconds and --latency-seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MISSING
    except (BenchError, dnsperf.DnsperfError, LedgerError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
