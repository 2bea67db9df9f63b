"""Crash loop (issue #7): SIGKILL random nodes of a local 4 + 1 network under a steady update load.

A writer thread keeps a few domains moving: it registers each, then updates it
seq by seq, submitting every signed transaction over RPC to a random live node
at a bounded rate and recording each one it sees finalized (domain, seq,
records, height). Meanwhile every ``--interval`` seconds the chaos loop
SIGKILLs a random node (validator or follower; one node down at a time, so
three of four validators always keep quorum), waits ``--down`` seconds,
restarts it on the same data directory and ports, and lets it catch up
(bounded) before the next kill.

Afterwards the load stops; each update still open is checked (and sent again
every second: the node it went to may have died before gossiping it) until it is
final, then the tool waits (bounded) until every node has the same head and an
empty mempool; ``convergence_s`` runs from the last restart until then (a slow
convergence prints each node's height and mempool size as they moved). It then
compares every node's block hashes at every common height and the state root at
the lowest head (``diverged_nodes``), and looks up every update the writer saw
finalized in every node's domain history, plus the latest ones by txid
(``lost_updates``). A node that cannot restart ends the loop and is reported.

What the writer's re-sends hide is counted (issue 17): ``accepted_then_unknown``
is the updates a node accepted (its submit succeeded) that a live node did not
know when the writer sent them again, i.e. the accepting node was killed with
them in its mempool (a mempool is not durable; a client must re-send until it
sees its write final, as the wallet's `--wait` does). ``updates_open``, updates
still not final after the drain, fails the run like a lost or diverged one.

Progress goes to stderr (each restart with its time to READY and to catch up);
stdout gets exactly one JSON line: ``cycles``, ``lost_updates``,
``diverged_nodes``, ``convergence_s`` plus details, among them ``phases_s`` (the
seconds spent starting the nodes, registering, in the chaos loop, stopping the
writer, draining, converging, checking and stopping the nodes). Exit code
0 when nothing was lost, diverged or left open and every node restarted, else 1.
``--quick``: 5 cycles, 4 s apart (under 90 s on two cores). The load is in
`tools.chaos_load`, the end checks in `tools.chaos_checks`.

    python tools/chaos.py --quick
    python tools/chaos.py --cycles 100 --interval 5 --seconds 600
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from chain.params import ConsensusParams
from chain.quorum import CommitCertificate
from ledgerdns.api.client import NodeUnreachable, RpcError
from tools.chaos_change import rotate_key
from tools.chaos_checks import (
    compare_chains,
    converge,
    find_lost,
    finish,
    node_height,
    raise_interrupt,
)
from tools.chaos_load import Writer
from tools.localnet import Cluster, ClusterError

console = Console(stderr=True, highlight=False)

# As tests/integration/conftest.py FAST: short rounds keep a network with a
# validator down moving; no heartbeat, so blocks only come with writes.
FAST = ConsensusParams(
    timeout_propose_ms=1000, timeout_prevote_ms=500, timeout_precommit_ms=500,
    timeout_delta_ms=250, heartbeat_ms=0,
)  # fmt: skip


@dataclass(slots=True)
class ChaosLog:
    """What the chaos loop did."""

    cycles: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    last_restart: float = 0.0
    restart_s: list[float] = field(default_factory=list)  # restart until READY
    catchup_s: list[float] = field(default_factory=list)
    slow_catchups: int = 0  # restarts not at the others' height within --catchup
    failures: list[str] = field(default_factory=list)
    rotation: dict[str, Any] = field(default_factory=dict)  # --rotate: what `rotate_key` did


def chaos_loop(
    cluster: Cluster, writer: Writer, args: argparse.Namespace, rng: random.Random
) -> ChaosLog:
    """Kill, wait, restart, catch up: `args.cycles` times or until `args.seconds` pass."""
    log = ChaosLog(last_restart=time.monotonic())
    deadline = time.monotonic() + args.seconds
    for cycle in range(1, args.cycles + 1):
        started = time.monotonic()
        if args.rotate and cycle == (args.cycles + 1) // 2:
            _rotate(cluster, writer, log, args)
        victim = rng.randrange(len(cluster.nodes))
        node = cluster.nodes[victim]
        before = node_height(cluster, victim)
        with writer.lock:
            writer.down.add(victim)
        code = cluster.kill(victim, signal.SIGKILL)
        log.kills["validator" if node.validator else "follower"] += 1
        time.sleep(args.down)
        restarting = time.monotonic()
        try:
            cluster.restart(victim)
        except ClusterError as exc:
            log.failures.append(f"cycle {cycle}: node {victim} did not restart: {exc}")
            console.print(
                f"[red]cycle {cycle}: node {victim} did not restart[/]\n{escape(str(exc))}"
            )
            break
        log.last_restart = time.monotonic()
        log.restart_s.append(log.last_restart - restarting)
        with writer.lock:
            writer.down.discard(victim)
        after = node_height(cluster, victim)
        if before is not None and (after is None or after < before):
            log.failures.append(
                f"cycle {cycle}: node {victim} restarted at height {after} < {before}"
            )
        others = [h for i in range(len(cluster.nodes)) if i != victim
                  if (h := node_height(cluster, i)) is not None]  # fmt: skip
        target = max(others, default=0)
        try:
            cluster.wait_height(target, nodes=[victim], timeout=args.catchup)
            log.catchup_s.append(time.monotonic() - log.last_restart)
            caught = f"caught up to {target} in {log.catchup_s[-1]:.1f} s"
        except ClusterError as exc:
            log.slow_catchups += 1
            caught = f"[yellow]not at {target} after {args.catchup:g} s ({escape(str(exc))})[/]"
        log.cycles = cycle
        role = "validator" if node.validator else "follower"
        console.print(f"cycle {cycle}/{args.cycles}: killed {role} {victim} (exit {code}, height {before}), "
                      f"restarted at {after} ({log.restart_s[-1]:.1f} s), {caught}; "
                      f"{len(writer.finalized)} updates final, cycle {time.monotonic() - started:.1f} s")  # fmt: skip
        if cycle == args.cycles:
            break
        if started + args.interval >= deadline:  # no sleeping into the cap: it would count
            console.print(f"[yellow]--seconds {args.seconds:g} reached after {cycle} cycles[/]")
            break
        time.sleep(max(0.0, started + args.interval - time.monotonic()))
    return log


def _rotate(cluster: Cluster, writer: Writer, log: ChaosLog, args: argparse.Namespace) -> None:
    """``--rotate``: validator 1 rotates its key (approved by 0 and 2) and restarts with it."""
    with writer.lock:
        writer.down.add(1)
    try:
        log.rotation = rotate_key(cluster, 1, [0, 2], writer.live, timeout=args.catchup * 2)
        console.print(f"rotated {log.rotation['rotated']}'s key: the new one signs from height "
                      f"{log.rotation['from_height']} ({log.rotation['seconds']:.1f} s)")  # fmt: skip
    except (TimeoutError, ClusterError) as exc:
        log.failures.append(f"key rotation: {exc}")
        console.print(f"[red]key rotation failed: {escape(str(exc))}[/]")
    finally:
        with writer.lock:
            writer.down.discard(1)


# -- the checks at the end --


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="5 cycles, 4 s apart (under 90 s)")
    parser.add_argument("--cycles", type=int, help="kill/restart cycles (quick 5, default 20)")
    parser.add_argument(
        "--interval", type=float, help="seconds from one kill to the next (quick 4, default 5)"
    )
    parser.add_argument(
        "--seconds", type=float, default=3600.0, help="cap on the chaos loop's duration"
    )
    parser.add_argument("--down", type=float, default=1.0, help="seconds a killed node stays down")
    parser.add_argument(
        "--catchup", type=float, default=20.0, help="seconds a restarted node gets to catch up"
    )
    parser.add_argument(
        "--converge", type=float, default=60.0, help="seconds the network gets to converge"
    )
    parser.add_argument("--rate", type=float, default=8.0, help="writer RPC operations per second")
    parser.add_argument("--domains", type=int, default=6, help="domains the writer keeps updating")
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--followers", type=int, default=1)
    parser.add_argument("--log-level", default="info", help="the nodes' --log-level")
    parser.add_argument(
        "--rotate", action="store_true",
        help="halfway through, validator 1 rotates its key on chain and restarts with the new one",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, help="random seed (default: from the clock; printed)")
    parser.add_argument("--dir", help="cluster directory (default: a fresh /tmp/chaos-*)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the cluster directory even on success"
    )
    args = parser.parse_args(argv)
    args.cycles = args.cycles or (5 if args.quick else 20)
    args.interval = args.interval or (4.0 if args.quick else 5.0)
    if args.cycles < 1 or args.interval <= 0 or args.rate <= 0 or args.domains < 1:
        parser.error("--cycles, --interval, --rate and --domains must be positive")
    if args.seed is None:
        args.seed = time.time_ns() % 1_000_000
    return args


def run(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """Start the network, run load and chaos, check it; the result document."""
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    phases: dict[str, float] = {}
    mark = t0

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        phases[name] = round(now - mark, 2)
        mark = now

    with Cluster(
        base,
        validators=args.validators,
        followers=args.followers,
        consensus=FAST,
        log_level=args.log_level,
    ) as cluster:
        cluster.start()
        cluster.wait_peers(1, timeout=30)
        phase("start")
        assert cluster.genesis is not None
        writer = Writer(
            cluster,
            cluster.genesis,
            rate=args.rate,
            domains=args.domains,
            rng=random.Random(rng.random()),
        )
        console.print(f"{len(cluster.nodes)} nodes up in {time.monotonic() - t0:.1f} s in {base}; "
                      f"seed {args.seed}; load {args.rate:g} ops/s on {args.domains} domains")  # fmt: skip
        writer.start()
        _wait_for(lambda: len(writer.finalized) >= args.domains, 30)  # every domain registered
        phase("register")
        try:
            log = chaos_loop(cluster, writer, args, rng)
        finally:
            phase("chaos")
            writer.stop()
            phase("stop_writer")
        # Updates still open: finalized, or sent again until they are (one whose node was
        # killed before gossiping it exists nowhere else). Then no more blocks are coming.
        remaining = writer.drain(timeout=10)
        phase("drain")
        converged, seen = converge(cluster, log.last_restart, args.converge)
        phase("converge")
        heads = Counter(f"{x[0]}:{x[1][:12]}" if isinstance(x, tuple) else str(x) for x in seen)
        peers = [_peers(cluster, i) for i in range(len(cluster.nodes))]
        console.print(
            f"load stopped: {len(writer.finalized)} updates final, {remaining} still open; converged: "
            f"{'no' if converged is None else f'{converged:.1f} s'}; heads {dict(heads)}; "
            f"peers {peers}"
        )
        writer.close()
        height = max((x[0] for x in seen if isinstance(x, tuple)), default=0)
        result = _check(cluster, writer, log, converged, remaining, height)
        phase("checks")
    phase("stop")  # every node SIGTERMed and gone
    return result | {
        "seed": args.seed,
        "duration_s": round(time.monotonic() - t0, 1),
        "phases_s": phases,
    }


def _check(
    cluster: Cluster,
    writer: Writer,
    log: ChaosLog,
    converged: float | None,
    remaining: int,
    converged_height: int,
) -> dict[str, Any]:
    """Compare the chains, look for lost updates; the result document (and the summary)."""
    diverged, top = compare_chains(cluster)
    for height in range(converged_height + 1, top + 1):  # blocks made after the heads agreed
        txs = cluster.nodes[0].rpc.block(height)["txs"]
        console.print(f"block {height} after convergence: {[(t['domain'], t['seq']) for t in txs]}")
    lost = find_lost(cluster, writer.finalized)
    for txid, nodes in list(lost.items())[:20]:
        f = next(x for x in writer.finalized if x.txid == txid)
        console.print(
            f"[red]lost {f.domain} seq {f.seq} ({txid[:16]}, height {f.height}) on nodes {nodes}[/]"
        )
    rotation = _rotation_check(cluster, log.rotation, top) if log.rotation else {}
    failures = (
        log.failures + writer.errors + ([] if converged is not None else ["did not converge"])
        + rotation.pop("failures", [])
    )
    for line in failures:
        console.print(f"[red]{escape(line)}[/]")
    return {
        "cycles": log.cycles,
        "lost_updates": len(lost),
        "diverged_nodes": len(diverged),
        "convergence_s": None if converged is None else round(converged, 2),
        "nodes": len(cluster.nodes),
        "kills": sum(log.kills.values()),
        "kills_validator": log.kills["validator"],
        "kills_follower": log.kills["follower"],
        "updates_finalized": len(writer.finalized),
        "updates_open": remaining,
        "accepted_then_unknown": len(writer.accepted_then_unknown),
        "height": top,
        "restart_max_s": round(max(log.restart_s, default=0.0), 2),
        "catchup_max_s": round(max(log.catchup_s, default=0.0), 2),
        "slow_catchups": log.slow_catchups,
        "failures": failures,
        "writer": dict(writer.stats),
    } | ({"rotation": rotation} if rotation else {})


def _rotation_check(cluster: Cluster, rotation: dict[str, Any], top: int) -> dict[str, Any]:
    """After ``--rotate``: the node runs its new key as a member, and how many certificates it signed."""
    out = dict(rotation)
    failures: list[str] = []
    name, start = rotation["rotated"], int(rotation["from_height"])
    try:
        as_seen = cluster.status(1).get("validator")
    except (NodeUnreachable, RpcError) as exc:
        as_seen = f"unreachable: {exc}"
    if as_seen != name:
        failures.append(f"key rotation: node 1 runs as {as_seen!r}, not {name!r}")
    signed = 0
    for height in range(start, top + 1):
        cert = CommitCertificate.from_bytes(bytes.fromhex(cluster.nodes[0].rpc.block(height)["certificate"]["hex"]))
        signed += any(index == 1 for index, _ in cert.signatures)
    out.update(new_key_signed=signed, blocks_since=max(0, top - start + 1), failures=failures)
    return out


def _peers(cluster: Cluster, i: int) -> int | None:
    try:
        return int(cluster.status(i)["peers"])
    except (NodeUnreachable, RpcError):
        return None


def _wait_for(done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)  # Ctrl-C and SIGTERM both stop every node
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp"))
    try:
        result = run(args, base)
    except KeyboardInterrupt:  # the cluster's context manager has stopped every node by now
        console.print(f"[yellow]interrupted; cluster directory: {base}[/]")
        return 130
    ok = not (
        result["lost_updates"] or result["diverged_nodes"] or result["failures"] or result["updates_open"]
    )
    summary = (
        f"{result['cycles']} cycles "
        f"({result['kills_validator']} validator, {result['kills_follower']} follower kills), "
        f"{result['updates_finalized']} updates final, {result['lost_updates']} lost, "
        f"{result['updates_open']} still open, {result['accepted_then_unknown']} accepted by a "
        "node that died with them (re-sent), "
        f"{result['diverged_nodes']} diverged, converged in {result['convergence_s']} s, "
        f"height {result['height']}, {result['duration_s']} s"
    )
    return finish(result, ok, "survived", summary, base, remove=not args.keep and not args.dir)

if __name__ == "__main__":
    sys.exit(main())
