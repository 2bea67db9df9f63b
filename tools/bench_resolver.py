"""Benchmark of ``ledgerdns resolver`` (issue 16): start-up, verified lookups, cache, memory, lies.

One run, one machine, real processes on 127.0.0.1: a network of ``--validators``
validators (no heartbeat, so the resolvers take ``--max-staleness 3600``) holding
N names ``r<i>.p2p`` (one A record each, 10.77.x.y), registered in batches over RPC.

- **cold_start_s**: process start to the first verified answer (AD=1, the right
  address): ``python -m ledgerdns resolver``, the median of three starts; the
  same through the ``ledgerdns`` console script (which loads the whole command
  line, then re-executes itself lean) is ``cold_start_script_s``.
- **verified_p50_ms / verified_p99_ms**: a fresh resolver asked every name once
  (nothing cached: each answer is a proof fetched from the node and checked),
  one query at a time over UDP with dnspython, timed at the client.
- **cached_qps / cached_qps_unbound**: the same N names, every one already
  asked once, answered from cache by the resolver and by unbound forwarding
  ``p2p`` to the node (``forward-zone``), each driven by dnsperf for S seconds;
  **cached_ratio_unbound** = resolver / unbound.
- **rss_mib**: the resolver's resident memory after the cached run.
- **forged_accepted**: the lying phase. Proxies in front of the node rewrite
  10.77 into 6.6 in flight (answer and proof) or put random bytes in the
  proof; a resolver with only those upstreams is asked every name (each must be
  SERVFAIL), then one with an honest node after them (each must be the true
  address). Every reply carrying any other address counts.

Ends with one JSON line on stdout (progress on stderr)::

    python tools/bench_resolver.py --quick    # 100 names, 5 s per dnsperf run: under 90 s
    python tools/bench_resolver.py            # 1,000 names, 15 s per dnsperf run

Needs dnsperf and unbound (``make sysdeps``); without them the cached figures are null.
Run it alone: ``flock /tmp/bench.lock python tools/bench_resolver.py --quick``.
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from chain.records import Record
from tools import dnsperf
from tools.devchain import dev_key, register_tx
from tools.liars import GarbageProof, LyingProxy, Rewrite
from tools.localnet import Cluster
from tools.resolvers import UNBOUND, ResolverProcess, UnboundProcess

Address = tuple[str, int]
STALENESS_S = 3600.0
BATCH = 500
FINALIZE_S = 60.0
DNSPERF = shutil.which("dnsperf")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def name_of(i: int) -> str:
    return f"r{i}.p2p"


def address_of(i: int) -> str:
    return f"10.77.{i >> 8 & 255}.{i & 255}"


@dataclass(frozen=True, slots=True)
class Plan:
    names: int
    dnsperf_s: float
    validators: int


# -- the network --


def register_names(cluster: Cluster, count: int) -> None:
    """Register `count` names in batches, waiting for the last one to be final everywhere."""
    genesis = cluster.genesis
    assert genesis is not None
    client = cluster.nodes[0].rpc
    until = int(client.status()["head_time_ms"]) // 1000 + 3600
    owner = dev_key("bench-resolver", 0)
    last = ""
    for start in range(0, count, BATCH):
        txs = [
            register_tx(
                genesis,
                owner,
                name_of(i),
                (Record.from_text(f"@ A {address_of(i)}", origin=name_of(i)),),
                valid_until=until,
            )  # fmt: skip
            for i in range(start, min(count, start + BATCH))
        ]
        results = client.submit_batch(txs)
        refused = [r for r in results if r.get("error")]
        if refused:
            raise RuntimeError(f"registration refused: {refused[0]}")
        last = txs[-1].txid.hex()
    height = int(client.tx(last, wait=FINALIZE_S)["height"])
    cluster.wait_height(height, timeout=FINALIZE_S)


# -- asking --


def ask(server: Address, name: str, timeout: float = 3.0) -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    return dns.query.udp(query, server[0], port=server[1], timeout=timeout)


def addresses(reply: dns.message.Message) -> set[str]:
    return {
        item.to_text()
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.A
        for item in rrset
    }


def verified(reply: dns.message.Message, i: int) -> bool:
    return (
        reply.rcode() == dns.rcode.NOERROR
        and bool(reply.flags & dns.flags.AD)
        and addresses(reply) == {address_of(i)}
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


# -- phases --


def cold_start(run_dir: Path, genesis: Path, node: Address, launcher: list[str]) -> float:
    """Seconds from spawning the resolver to its first verified answer for name 0."""
    process = ResolverProcess(
        run_dir, genesis, [node], max_staleness=STALENESS_S, launcher=launcher, name="cold"
    )
    started = time.monotonic()
    process.start()
    try:
        deadline = started + 30
        while time.monotonic() < deadline:
            try:
                if verified(ask(process.address, name_of(0), timeout=0.5), 0):
                    return round(time.monotonic() - started, 3)
            except dns.exception.Timeout:
                continue
        raise RuntimeError(f"no verified answer within 30 s:\n{process.log()[-2000:]}")
    finally:
        process.stop()


def verified_latencies(process: ResolverProcess, count: int) -> list[float]:
    """Milliseconds per uncached verified lookup, every name once."""
    out = []
    for i in range(count):
        started = time.perf_counter()
        reply = ask(process.address, name_of(i))
        elapsed = (time.perf_counter() - started) * 1000
        if not verified(reply, i):
            raise RuntimeError(f"{name_of(i)}: not a verified answer: {reply}")
        out.append(elapsed)
    return out


def warm(server: Address, count: int) -> None:
    for i in range(count):
        reply = ask(server, name_of(i))
        if addresses(reply) != {address_of(i)}:
            raise RuntimeError(f"{server}: {name_of(i)} answered {addresses(reply)}")


def perf(port: int, queries: Path, seconds: float) -> float | None:
    if DNSPERF is None:
        return None
    options = dnsperf.Options(clients=4, outstanding=64, timeout_s=2.0)
    result = dnsperf.run(DNSPERF, port, queries, options, seconds=seconds)
    if result.noerror < result.completed * 0.99:
        raise RuntimeError(f"dnsperf port {port}: {result.noerror} NOERROR of {result.completed}")
    return round(result.qps)


def lies(run_dir: Path, genesis: Path, node: Address, count: int) -> dict[str, int]:
    """Liars alone, then liars and one honest node: replies carrying a wrong address are counted."""
    forged = refused = honest_ok = 0
    with (
        LyingProxy(node, Rewrite(b"\x0a\x4d", b"\x06\x06")) as rewrite,
        LyingProxy(node, GarbageProof()) as garbage,
    ):
        liars = [rewrite.address, garbage.address]
        for upstreams, name in ((liars, "liars"), ([*liars, node], "liars-and-honest")):
            with ResolverProcess(
                run_dir, genesis, upstreams, max_staleness=STALENESS_S, name=name,
                extra=["--log-level", "error"],
            ) as process:  # fmt: skip
                for i in range(count):
                    reply = ask(process.address, name_of(i))
                    got = addresses(reply)
                    if got and got != {address_of(i)}:
                        forged += 1
                    elif reply.rcode() == dns.rcode.SERVFAIL:
                        refused += 1
                    elif verified(reply, i) and name == "liars-and-honest":
                        honest_ok += 1
    return {"forged_accepted": forged, "liar_servfails": refused, "honest_answers": honest_ok}


def run(plan: Plan, work: Path) -> dict[str, object]:
    started = time.monotonic()
    log(f"starting {plan.validators} validators")
    with Cluster(work / "net", validators=plan.validators, followers=0) as cluster:
        cluster.start()
        node = cluster.nodes[0].dns
        genesis = cluster.genesis_path
        log(f"registering {plan.names} names")
        register_names(cluster, plan.names)
        python = [sys.executable, "-m", "ledgerdns"]
        script = Path(sys.executable).parent / "ledgerdns"
        log("cold starts")
        colds = [cold_start(work / "cold", genesis, node, python) for _ in range(3)]
        script_cold = (
            cold_start(work / "cold", genesis, node, [str(script)]) if script.exists() else None
        )
        queries = work / "queries.txt"
        queries.write_text("".join(f"{name_of(i)} A\n" for i in range(plan.names)))
        log("verified lookups, then cached throughput")
        with ResolverProcess(
            work / "resolver", genesis, [node], max_staleness=STALENESS_S,
            extra=["--log-level", "warning"],
        ) as resolver:  # fmt: skip
            latencies = sorted(verified_latencies(resolver, plan.names))
            cached_qps = perf(resolver.address[1], queries, plan.dnsperf_s)
            assert resolver.proc is not None
            memory = rss_mib(resolver.proc.pid)
        unbound_qps = None
        if UNBOUND is not None and DNSPERF is not None:
            with UnboundProcess(work / "unbound", {"p2p": [node]}, probe=name_of(0)) as unbound:
                warm(unbound.address, plan.names)
                unbound_qps = perf(unbound.address[1], queries, plan.dnsperf_s)
        log("lying upstreams")
        lying = lies(work / "lies", genesis, node, min(plan.names, 50))
    ratio = None
    if cached_qps is not None and unbound_qps:
        ratio = round(cached_qps / unbound_qps, 3)
    return {
        "cold_start_s": statistics.median(colds),
        "cold_start_script_s": script_cold,
        "verified_p50_ms": round(latencies[len(latencies) // 2], 2),
        "verified_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "cached_qps": cached_qps,
        "cached_qps_unbound": unbound_qps,
        "cached_ratio_unbound": ratio,
        "rss_mib": memory,
        **lying,
        "names": plan.names,
        "validators": plan.validators,
        "dnsperf_s": plan.dnsperf_s,
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100 names, 5 s dnsperf runs (< 90 s)")
    parser.add_argument("--names", type=int, help="names registered (quick 100, full 1000)")
    parser.add_argument("--seconds", type=float, help="seconds per dnsperf run (quick 5, full 15)")
    parser.add_argument(
        "--validators", type=int, default=4, help="validators (default %(default)s)"
    )
    parser.add_argument("--work-dir", help="where the network and logs go (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(
        names=args.names or (100 if args.quick else 1000),
        dnsperf_s=args.seconds or (5.0 if args.quick else 15.0),
        validators=args.validators,
    )
    if plan.names < 1 or plan.validators < 1:
        print("error: --names and --validators must be at least 1", file=sys.stderr)
        return 2
    if args.work_dir:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        result = run(plan, work)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-resolver-") as tmp:
            result = run(plan, Path(tmp))
    print(json.dumps(result), flush=True)
    return 0 if result["forged_accepted"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
