"""Network partitions (issue #7): split a 4 + 1 network in namespaces, heal it, check it converges.

Every node of a 4-validator + 1-follower network runs in its own network
namespace (`tools.netns.Lab`: a bridge, veth pairs, silent packet drops with tc;
``--mode reject`` uses prohibit routes instead). The tool itself stays in the
root namespace and reaches every node's RPC and DNS through the bridge, on both
sides of any partition. Quorum is 3 of 4 validators.

Each majority/minority round (``--rounds``; the lone validator rotates, 0, 1, 2, 3, …):

1. A few updates of the writer's domains (`tools.chaos_load.Writer`) are
   finalized and seen by every node.
2. Partition: majority {3 validators} | minority {1 validator + the follower}.
3. A registration of a fresh domain is submitted to a minority node (validator
   and follower in turn): it must be accepted ("pending"), not finalized.
4. For ``--partition`` seconds the writer sends updates to the majority only;
   once a second the minority is checked: heights unchanged, RPC status
   answers, and its DNS server (a real UDP query) answers the A record committed
   before the partition.
5. Heal. ``convergence_s``: from heal until every node has the same head hash
   and state root at or past the majority's height. Then the minority's write
   must be finalized (``minority_write_s`` from heal): a write accepted on the
   losing side is delayed, never silently lost.

Then one 2–2 round: {validators 0, 1 + follower} | {validators 2, 3}: writes go
to both sides, nobody may finalize anything; after heal finalization must
resume (``split.resumed_s``: heal until the writes made during the split are final).

At the end the writer's open updates are drained, the network must settle (one
head, empty mempools), and the crash loop's checks (`tools.chaos_checks`)
compare every node's block hashes and state root and look up every update the
writer (or the minority writes) saw finalized on every node.

A write accepted on the minority side stays "pending" in that node's mempool:
nothing there can finalize it, and the node re-gossips its pending local
submissions every 2 s while its height is stuck (`ConsensusGossip` in `ledgerdns/protocol/consensus_gossip.py`), so
once the cut heals the majority receives it and finalizes it. The tool requires
that (``minority_writes.lost`` must be 0); no node refuses such a write.

Why convergence takes seconds (measured, see ``--rto-max-ms``): with silent
drops, the TCP connections across the cut stay open and retransmit with a
doubling back-off, so after the heal each direction waits for its sender's next
retransmission (up to about as long as the cut lasted); only then do the
minority's sync requests get through. Capping the back-off at 1 s inside the
namespaces takes 15 s cuts from ~14 s to ~3 s.

Progress goes to stderr; stdout gets exactly one JSON line: ``rounds``,
``minority_finalized``, ``majority_blocks``, ``minority_reads_ok``,
``lost_updates``, ``diverged_nodes``, ``convergence_s`` (max over rounds),
``convergence_median_s``, ``minority_writes`` and per-round details. Exit code 0
when every check passed, 1 otherwise, 2 when namespaces are unavailable (not root).

    sudo .venv/bin/python tools/partition.py --quick          # 2 rounds + the 2–2 round, < 90 s
    sudo .venv/bin/python tools/partition.py --rounds 8 --partition 15
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import json
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from rich.console import Console
from rich.markup import escape

from chain.params import ConsensusParams
from chain.records import Record
from chain.tx import ZERO_HASH, Op, Transaction, TxBody
from ledgerdns.api.client import NodeUnreachable, RpcError
from tools.chaos_checks import (
    compare_chains,
    converge,
    find_lost,
    finish,
    node_height,
    raise_interrupt,
)
from tools.chaos_load import Finalized, Writer
from tools.localnet import Cluster, ClusterError
from tools.netns import Lab, LabError, available

console = Console(stderr=True, highlight=False, soft_wrap=True)

# As tests/integration/conftest.py FAST: short rounds keep a network with a
# validator cut off moving; no heartbeat, so blocks only come with writes.
FAST = ConsensusParams(
    timeout_propose_ms=1000, timeout_prevote_ms=500, timeout_precommit_ms=500,
    timeout_delta_ms=250, heartbeat_ms=0,
)  # fmt: skip
VALIDATORS, FOLLOWER = 4, 4  # nodes 0..3 validate, node 4 follows
SPLIT = ({0, 1, 4}, {2, 3})
POLL_S = 0.2


@dataclass(slots=True)
class RoundLog:
    """One majority/minority round."""

    number: int
    minority: list[int]
    majority: list[int]
    majority_blocks: int = 0
    minority_moved: int = 0  # blocks finalized by minority nodes during the partition (must be 0)
    reads_ok: bool = True
    reads: int = 0
    write_to: int = -1
    write_accepted: bool = False
    write_s: float | None = None  # heal -> the minority's write final everywhere it was asked
    convergence_s: float | None = None
    target_height: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.number,
            "minority": self.minority,
            "majority_blocks": self.majority_blocks,
            "minority_finalized": self.minority_moved,
            "minority_reads": self.reads,
            "minority_reads_ok": self.reads_ok,
            "minority_write_to": self.write_to,
            "minority_write_accepted": self.write_accepted,
            "minority_write_s": _r(self.write_s),
            "convergence_s": _r(self.convergence_s),
            "height": self.target_height,
            "notes": self.notes,
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


# -- helpers --


def pump(writer: Writer, seconds: float, every_second: Callable[[], None] | None = None) -> None:
    """Run the writer's steps in this thread for `seconds` (`every_second` between them)."""
    end = time.monotonic() + seconds
    tick = time.monotonic()
    n = 0
    while time.monotonic() < end:
        writer.step(writer.slots[n % len(writer.slots)])
        n += 1
        if every_second is not None and time.monotonic() >= tick:
            every_second()
            tick = time.monotonic() + 1.0
        time.sleep(1.0 / writer.rate)


def dns_a(cluster: Cluster, i: int, name: str, timeout: float = 2.0) -> set[str]:
    """The A addresses node `i`'s DNS server answers for `name` (one UDP query)."""
    host, port = cluster.nodes[i].dns
    reply = dns.query.udp(dns.message.make_query(name, "A"), host, port=port, timeout=timeout)
    if reply.rcode() != dns.rcode.NOERROR:
        return set()
    return {item.to_text() for rr in reply.answer if rr.rdtype == dns.rdatatype.A for item in rr}


def heads(cluster: Cluster) -> list[tuple[int, str] | str]:
    """Each node's (height, head hash), or why it could not be read."""
    out: list[tuple[int, str] | str] = []
    for i in range(len(cluster.nodes)):
        try:
            s = cluster.status(i)
            out.append((int(s["height"]), str(s["head_hash"])))
        except (NodeUnreachable, RpcError) as exc:
            out.append(type(exc).__name__)
    return out


def wait_same_head(cluster: Cluster, target: int, since: float, timeout: float) -> float | None:
    """Seconds from `since` until every node has one head hash and state root at height ≥ `target`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = heads(cluster)
        first = seen[0]
        if isinstance(first, tuple) and first[0] >= target and all(s == first for s in seen):
            at = time.monotonic()
            try:
                roots = {str(n.rpc.block(first[0])["state_root"]) for n in cluster.nodes}
            except (NodeUnreachable, RpcError):
                roots = set()
            if len(roots) == 1:
                return at - since
        time.sleep(POLL_S)
    return None


def tx_final(cluster: Cluster, nodes: list[int], txid: str) -> int | None:
    """The height at which every node in `nodes` has `txid` finalized (None: some do not)."""
    heights = set()
    for i in nodes:
        try:
            doc = cluster.nodes[i].rpc.tx(txid)
        except (NodeUnreachable, RpcError):
            return None
        if doc.get("status") != "finalized":
            return None
        heights.add(int(doc["height"]))
    return heights.pop() if len(heights) == 1 else None


def registration(writer: Writer, name: str, address: str) -> Transaction:
    """A signed registration of `name` (the writer's owner key) with one A record."""
    body = TxBody(
        chain_id=writer.genesis.chain_id, domain=name, seq=0, prev=ZERO_HASH, op=Op.REGISTER,
        records=(Record.from_text(f"@ 300 A {address}", origin=name),),
        owner=writer.owner.public_key, valid_until=int(time.time()) + 7200,
    )  # fmt: skip
    return Transaction.sign(body, writer.owner, writer.genesis.hash())


def _wait_for(done: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = done()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(POLL_S)


# -- the scenario --


class Scenario:
    """The network, the lab, the writer and what has been seen so far."""

    def __init__(
        self, cluster: Cluster, lab: Lab, writer: Writer, args: argparse.Namespace
    ) -> None:
        self.cluster, self.lab, self.writer, self.args = cluster, lab, writer, args
        self.rounds: list[RoundLog] = []
        self.failures: list[str] = []
        self.minority_final: list[Finalized] = []  # minority writes seen finalized
        self.minority_lost: list[str] = []
        self.split: dict[str, Any] = {}

    def fail(self, message: str) -> None:
        self.failures.append(message)
        console.print(f"[red]{escape(message)}[/]")

    def settle_writer(self, seconds: float) -> None:
        """Some updates, then every open one finalized (bounded)."""
        pump(self.writer, seconds)
        left = self.writer.drain(timeout=self.args.converge)
        if left:
            self.fail(f"{left} writer updates not final {self.args.converge:g} s after the load")

    def last_address(self, domain: str) -> tuple[str, int]:
        """The A address and height of `domain`'s newest update the writer saw final."""
        f = [x for x in self.writer.finalized if x.domain == domain][-1]
        return f.records[0].split()[-1], f.height

    def majority_round(self, number: int) -> RoundLog:
        cluster, lab, writer, args = self.cluster, self.lab, self.writer, self.args
        lone = (number - 1) % VALIDATORS
        minority = [lone, FOLLOWER]
        majority = [i for i in range(VALIDATORS) if i != lone]
        log = RoundLog(number, minority, majority)
        writer.down = set()
        self.settle_writer(args.before)
        probe = writer.slots[0].name
        address, height = self.last_address(probe)
        cluster.wait_height(height, timeout=args.converge)  # everyone saw it before the cut
        before = {i: node_height(cluster, i) or 0 for i in range(len(cluster.nodes))}

        lab.partition([majority, minority])
        console.print(f"round {number}: partition {majority} | {minority} at height {before[0]}")
        writer.down = set(minority)
        log.write_to = minority[(number - 1) % 2]  # the validator, then the follower, ...
        tx = registration(writer, f"part{number}.p2p", f"10.99.{number % 250}.1")
        txid = tx.txid.hex()
        try:
            doc = cluster.nodes[log.write_to].rpc.submit(tx)
            log.write_accepted = doc.get("status") == "pending"
        except (NodeUnreachable, RpcError) as exc:
            log.notes.append(f"minority write refused: {exc}")
        if not log.write_accepted:
            self.fail(f"round {number}: the minority write to node {log.write_to} was not accepted")

        def check_minority() -> None:
            for i in minority:
                log.reads += 1
                try:
                    h = int(cluster.status(i)["height"])
                    log.minority_moved = max(log.minority_moved, h - before[i])
                    got = dns_a(cluster, i, probe)
                except (NodeUnreachable, RpcError, dns.exception.DNSException, OSError) as exc:
                    log.reads_ok = False
                    log.notes.append(f"node {i} read failed: {exc!r}")
                    continue
                if got != {address}:
                    log.reads_ok = False
                    log.notes.append(f"node {i} answered {probe} A {sorted(got)}, not {address}")

        pump(writer, args.partition, check_minority)
        left = writer.drain(timeout=args.converge)  # the majority finalizes what it was sent
        if left:
            self.fail(f"round {number}: {left} updates sent to the majority not final")
        check_minority()
        try:
            status = cluster.nodes[log.write_to].rpc.tx(txid)
            if status.get("status") != "pending":
                self.fail(
                    f"round {number}: the minority write is {status.get('status')} during the partition"
                )
        except (NodeUnreachable, RpcError) as exc:
            self.fail(
                f"round {number}: the minority write is unknown to node {log.write_to}: {exc}"
            )
        top = max(node_height(cluster, i) or 0 for i in majority)
        log.target_height = top
        log.majority_blocks = top - before[majority[0]]
        if log.minority_moved:
            self.fail(f"round {number}: the minority finalized {log.minority_moved} blocks")
        if not log.reads_ok:
            self.fail(f"round {number}: minority reads failed: {log.notes[-3:]}")
        if log.majority_blocks < 1:
            self.fail(f"round {number}: the majority finalized nothing")

        lab.heal()
        healed = time.monotonic()
        writer.down = set()
        log.convergence_s = wait_same_head(cluster, top, healed, args.converge)
        if log.convergence_s is None:
            self.fail(
                f"round {number}: no convergence within {args.converge:g} s: {heads(cluster)}"
            )
        everyone = list(range(len(cluster.nodes)))
        final = _wait_for(lambda: tx_final(cluster, everyone, txid), args.converge)
        if final:
            log.write_s = time.monotonic() - healed
            self.minority_final.append(
                Finalized(txid=txid, domain=tx.body.domain, seq=0, height=int(final),
                          records=tuple(r.to_text(origin=tx.body.domain) for r in tx.body.records))
            )  # fmt: skip
        else:
            self.minority_lost.append(txid)
            self.fail(f"round {number}: the minority write {txid[:16]} not final "
                      f"{args.converge:g} s after heal")  # fmt: skip
        console.print(
            f"round {number}: majority {log.majority_blocks} blocks to height {top}, minority "
            f"+{log.minority_moved}, {log.reads} minority reads {'ok' if log.reads_ok else 'FAILED'}; "
            f"healed: converged in {_r(log.convergence_s)} s, minority write final in {_r(log.write_s)} s"
        )
        self.rounds.append(log)
        return log

    def split_round(self) -> None:
        """2–2 (+ follower): nothing may finalize; after heal finalization resumes."""
        cluster, lab, writer, args = self.cluster, self.lab, self.writer, self.args
        writer.down = set()
        self.settle_writer(args.before)
        before = [node_height(cluster, i) or 0 for i in range(len(cluster.nodes))]
        done_before = len(writer.finalized)
        lab.partition(list(SPLIT))
        console.print(
            f"split: partition {sorted(SPLIT[0])} | {sorted(SPLIT[1])} at height {max(before)}"
        )
        pump(writer, args.partition)  # to random nodes on both sides
        after = [node_height(cluster, i) or 0 for i in range(len(cluster.nodes))]
        moved = max(a - b for a, b in zip(after, before, strict=True))
        final_during = len(writer.finalized) - done_before
        open_now = sum(1 for s in writer.slots if s.outstanding is not None)
        lab.heal()
        healed = time.monotonic()
        resumed = None
        if writer.drain(timeout=args.converge) == 0:  # the writes of the split, finalized
            resumed = time.monotonic() - healed
        top = max(node_height(cluster, i) or 0 for i in range(len(cluster.nodes)))
        conv = wait_same_head(cluster, top, healed, args.converge)
        self.split = {
            "finalized_during": moved,
            "writer_final_during": final_during,
            "open_at_heal": open_now,
            "resumed_s": _r(resumed),
            "convergence_s": _r(conv),
            "height": top,
        }
        if moved or final_during:
            self.fail(
                f"split: {moved} blocks / {final_during} updates finalized during a 2-2 split"
            )
        if not open_now:
            self.fail("split: no write was pending at heal (the load did not run)")
        if resumed is None:
            self.fail(f"split: finalization did not resume within {args.converge:g} s")
        if conv is None:
            self.fail(f"split: no convergence within {args.converge:g} s: {heads(cluster)}")
        console.print(f"split: {moved} blocks during, {open_now} writes open at heal; resumed in "
                      f"{_r(resumed)} s, converged in {_r(conv)} s at height {top}")  # fmt: skip


def run(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """Build the lab and the network, run the rounds, check; the result document."""
    t0 = time.monotonic()
    rng = random.Random(args.seed)
    sysctls = {"net.ipv4.tcp_rto_max_ms": str(args.rto_max_ms)} if args.rto_max_ms else None
    with Lab(VALIDATORS + 1, mode=args.mode, sysctls=sysctls) as lab, Cluster(
        base, validators=VALIDATORS, followers=1, consensus=FAST, log_level=args.log_level,
        host_of=lab.host, wrap=lab.wrap,
    ) as cluster:  # fmt: skip
        cluster.start()
        cluster.wait_peers(2, timeout=30)
        assert cluster.genesis is not None
        writer = Writer(cluster, cluster.genesis, rate=args.rate, domains=args.domains, rng=rng)
        console.print(f"{len(cluster.nodes)} nodes up in {time.monotonic() - t0:.1f} s, namespaces "
                      f"{lab.prefix}n*, {lab.subnet}, mode {args.mode}; {base}")  # fmt: skip
        sc = Scenario(cluster, lab, writer, args)
        try:
            for number in range(1, args.rounds + 1):
                sc.majority_round(number)
            if not args.no_split:
                sc.split_round()
            remaining = writer.drain(timeout=args.converge)
            settled, seen = converge(cluster, time.monotonic(), args.converge)
            if settled is None:
                sc.fail(f"the network did not settle (one head, empty mempools): {seen}")
            diverged, top = compare_chains(cluster)
            lost = find_lost(cluster, writer.finalized + sc.minority_final)
            for txid, nodes in list(lost.items())[:20]:
                sc.fail(f"lost {txid[:16]} on nodes {sorted(nodes)}")
            sc.failures += writer.errors
        finally:
            writer.close()
        convs = [r.convergence_s for r in sc.rounds if r.convergence_s is not None]
        writes = [r.write_s for r in sc.rounds if r.write_s is not None]
        return {
            "rounds": len(sc.rounds),
            "minority_finalized": sum(r.minority_moved for r in sc.rounds),
            "majority_blocks": sum(r.majority_blocks for r in sc.rounds),
            "minority_reads_ok": all(r.reads_ok for r in sc.rounds) and bool(sc.rounds),
            "minority_reads": sum(r.reads for r in sc.rounds),
            "lost_updates": len(lost) + len(sc.minority_lost),
            "diverged_nodes": len(diverged),
            "convergence_s": _r(max(convs)) if len(convs) == len(sc.rounds) and convs else None,
            "convergence_median_s": _r(statistics.median(convs)) if convs else None,
            "minority_writes": {
                "submitted": len(sc.rounds),
                "accepted": sum(r.write_accepted for r in sc.rounds),
                "finalized": len(sc.minority_final),
                "lost": len(sc.minority_lost),
                "final_after_heal_max_s": _r(max(writes)) if writes else None,
            },
            "split": sc.split,
            "updates_finalized": len(writer.finalized),
            "updates_open": remaining,
            "height": top,
            "mode": args.mode,
            "tcp_rto_max_ms": args.rto_max_ms,
            "partition_s": args.partition,
            "seed": args.seed,
            "duration_s": round(time.monotonic() - t0, 1),
            "per_round": [r.to_json() for r in sc.rounds],
            "failures": sc.failures,
        }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true",
                        help="2 majority/minority rounds of 4 s + the 2-2 round (under 90 s)")  # fmt: skip
    parser.add_argument("--rounds", type=int, help="majority/minority rounds (quick 2, default 5)")
    parser.add_argument("--partition", type=float,
                        help="seconds each partition lasts (quick 4, default 10)")  # fmt: skip
    parser.add_argument("--before", type=float,
                        help="seconds of writes before each partition (quick 1, default 1.5)")  # fmt: skip
    parser.add_argument("--converge", type=float, default=60.0,
                        help="seconds allowed for each convergence / finality wait")  # fmt: skip
    parser.add_argument("--no-split", action="store_true", help="skip the 2-2 round")
    parser.add_argument("--mode", choices=("drop", "reject"), default="drop",
                        help="drop: silent packet loss (tc); reject: prohibit routes (EACCES at once)")  # fmt: skip
    parser.add_argument(
        "--rto-max-ms",
        type=int,
        help="diagnostic: cap TCP's retransmission back-off in the node namespaces "
        "(sysctl net.ipv4.tcp_rto_max_ms, Linux 6.15+); shows how much of the convergence "
        "time is connections that survived the cut waiting for their next retransmission",
    )
    parser.add_argument("--rate", type=float, default=6.0, help="writer RPC operations per second")
    parser.add_argument("--domains", type=int, default=3, help="domains the writer keeps updating")
    parser.add_argument(
        "--log-level", default="info", help="the nodes' --log-level (debug for detail)"
    )
    parser.add_argument("--seed", type=int, help="random seed (default: from the clock; printed)")
    parser.add_argument("--work-dir", help="cluster directory (default: a fresh /tmp/partition-*)")
    parser.add_argument("--keep", action="store_true", help="keep the cluster directory on success")
    args = parser.parse_args(argv)
    args.rounds = args.rounds if args.rounds is not None else (2 if args.quick else 5)
    args.partition = args.partition or (4.0 if args.quick else 10.0)
    args.before = args.before if args.before is not None else (1.0 if args.quick else 1.5)
    if args.rounds < 0 or args.partition <= 0 or args.rate <= 0 or args.domains < 1:
        parser.error("--rounds must be ≥ 0; --partition, --rate and --domains positive")
    if args.seed is None:
        args.seed = time.time_ns() % 1_000_000
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    ok, reason = available()
    if not ok:
        console.print(f"[yellow]network namespaces unavailable: {reason}[/]")
        print(json.dumps({"skipped": reason}), flush=True)
        return 2
    signal.signal(signal.SIGTERM, raise_interrupt)  # the lab and the cluster clean up on SIGTERM
    base = (
        Path(args.work_dir)
        if args.work_dir
        else Path(tempfile.mkdtemp(prefix="partition-", dir="/tmp"))
    )
    try:
        result = run(args, base)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted; cluster directory: {base}[/]")
        return 130
    except (ClusterError, LabError) as exc:
        console.print(f"[red]{escape(str(exc))}[/]\ncluster directory: {base}")
        print(json.dumps({"error": str(exc)[:2000]}), flush=True)
        return 1
    good = not (
        result["failures"] or result["lost_updates"] or result["diverged_nodes"]
        or result["minority_finalized"] or not result["minority_reads_ok"]
    )  # fmt: skip
    summary = (
        f"{result['rounds']} rounds, "
        f"majority {result['majority_blocks']} blocks, minority {result['minority_finalized']}, "
        f"convergence max {result['convergence_s']} s median {result['convergence_median_s']} s, "
        f"{result['lost_updates']} lost, {result['diverged_nodes']} diverged, {result['duration_s']} s"
    )
    return finish(result, good, "ok", summary, base, remove=not args.keep and not args.work_dir)

if __name__ == "__main__":
    sys.exit(main())
