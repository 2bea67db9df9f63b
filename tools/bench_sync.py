"""State-sync benchmark: a new node joining a big network by snapshot vs by replaying every block.

Builds (or reuses, cached like `tools/bench_dns.py`'s) a single-validator devnet
data directory holding N names (`tools.benchchain`), copies it, and starts real
``ledgerdns node`` processes on 127.0.0.1:

1. **source**: the validator on the copy, ``--snapshot-interval H`` with H its head,
   so it takes a snapshot of the head at start (not timed: what a serving node has
   on disk already).
2. **liar**: a follower on another copy, serving the same snapshot with its chunks
   corrupted on disk (one value byte flipped; every ``--bad-every``-th, default all):
   the joiner must catch the first one it gets, penalize and drop the liar, and take
   the chunk from the source. The joiner asks chunk i first of the (i mod 2)-th peer,
   so the liar is asked for about half the chunks until it is caught.
3. **statesync joiner**: an empty data directory, ``--state-sync``, bootstrapping
   from both. ``statesync_join_s``: from its start to its READY line (it is READY
   once the state is restored; its log says how many bad chunks it caught).
4. **replay joiner**: an empty data directory, block sync from the source.
   ``replay_join_s``: from its start until its RPC reports height >= H.

Both joiners run with ``--dns-workers`` UDP workers (default 0, the DNS answered in the
node): with a worker, a follower syncing the benchmark's blocks of 2,000 new names
exits today ("Message too long" sending the name-table update to the worker).

Ends with one JSON line: ``domains``, ``statesync_join_s``, ``replay_join_s``,
``speedup``, ``snapshot_mib``, ``disk_mib_full`` (the source's ``chain/``: every
block), ``disk_mib_pruned`` (the state-synced joiner's ``chain/``: the state, its
snapshot block and certificates, no history), ``bad_chunks_caught``, ``targets_met``.

    python tools/bench_sync.py --quick   # 100,000 names (first run builds the ledger, ~1 min)
    python tools/bench_sync.py           # 1,000,000 names; --no-replay skips the long replay

Targets (issue 17): 1,000,000 names joined by state sync in <= 60 s; ``--quick`` speedup >= 5.
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from chain import keys
from chain.errors import NetworkError
from chain.snapshot import Chunk
from ledgerdns.api.client import RpcClient
from ledgerdns.storage.leveldb import LevelDBStore
from tools.bench_dns import build_chain
from tools.dnsservers import BenchError, Server, spawn_node, stop_all

console = Console(stderr=True)
READY = "READY "
JOINED = re.compile(r"joined at height (\d+) \((\d+) bad chunks caught\)")
TARGET_JOIN_S = 60.0
TARGET_SPEEDUP = 5.0


def say(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")


def mib(path: Path) -> float:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return total / (1 << 20)


def ready_line(server: Server, timeout: float) -> dict[str, object]:
    """The node's READY object (BenchError if it exits or takes longer than `timeout`)."""
    out = server.run_dir / f"{server.label}.out"
    deadline = time.monotonic() + timeout
    while True:
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith(READY):
                ready: dict[str, object] = json.loads(line[len(READY) :])
                return ready
        if not server.running():
            raise BenchError(f"{server.label} exited before READY:\n{server.log_tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"{server.label}: no READY in {timeout:g} s:\n{server.log_tail()}")
        time.sleep(0.05)


def wait_snapshot(data_dir: Path, height: int, server: Server, timeout: float) -> Path:
    path = data_dir / "snapshots" / str(height)
    deadline = time.monotonic() + timeout
    while not (path / "manifest").exists():
        if not server.running() or time.monotonic() > deadline:
            raise BenchError(f"no snapshot at {height} from {server.label}:\n{server.log_tail()}")
        time.sleep(0.2)
    return path


def corrupt(snapshot: Path, every: int) -> int:
    """Flip a value byte in every `every`-th chunk; how many were corrupted."""
    count = 0
    for path in sorted(snapshot.glob("chunk-*"), key=lambda p: int(p.name[6:])):
        if int(path.name[6:]) % every:
            continue
        chunk = Chunk.from_bytes(path.read_bytes())
        if not chunk.items:
            continue
        ident, value = chunk.items[0]
        items = ((ident, value[:-1] + bytes([value[-1] ^ 1])), *chunk.items[1:])
        path.write_bytes(Chunk(height=chunk.height, index=chunk.index, items=items).to_bytes())
        count += 1
    return count


def dns_settings(data_dir: Path, workers: int) -> None:
    """A joiner's ``node.toml``: its UDP worker count (the same for both joins)."""
    (data_dir / "node.toml").write_text(f"[dns]\nworkers = {workers}\n")


def head_of(data_dir: Path) -> int:
    """The head height of a (stopped) node's data directory."""
    store = LevelDBStore.open(data_dir / "chain")
    try:
        raw = store.get(keys.make_meta_key(keys.META_HEAD))
        return 0 if raw is None else keys.read_u64(raw)
    finally:
        store.close()


def node_args(ready: dict[str, object]) -> list[str]:
    p2p = ready["p2p"]
    assert isinstance(p2p, list)
    return ["--bootstrap", str(p2p[0])]


def run(args: argparse.Namespace) -> dict[str, object]:
    names = 100_000 if args.quick else args.domains
    chain = build_chain(Path(args.cache), names)
    height = chain.height
    run_dir = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    live: list[Server] = []
    try:
        src, liar_dir = run_dir / "source", run_dir / "liar"
        shutil.copytree(chain.data_dir, src)
        height = head_of(src)  # the cached ledger may have grown since it was built
        genesis = src / "genesis.json"
        interval = ["--snapshot-interval", str(height)]
        source = spawn_node(src, run_dir, "source", names, [*interval, "--log-level", "info"])
        live.append(source)
        source_ready = ready_line(source, 300)
        started = time.monotonic()
        snapshot = wait_snapshot(src, height, source, 600)
        say(
            f"source snapshot at {height}: {mib(snapshot):.1f} MiB in {time.monotonic() - started:.1f} s"
        )
        shutil.copytree(
            chain.data_dir,
            liar_dir,
            ignore=shutil.ignore_patterns("validator.pem", "snapshots", "node.*"),
        )
        shutil.copytree(snapshot, liar_dir / "snapshots" / str(height))
        corrupted = corrupt(liar_dir / "snapshots" / str(height), args.bad_every)
        liar = spawn_node(liar_dir, run_dir, "liar", names, [*interval, *node_args(source_ready)])
        live.append(liar)
        liar_ready = ready_line(liar, 300)
        say(f"liar up with {corrupted} corrupted chunks")

        joiner_dir = run_dir / "joiner"
        joiner_dir.mkdir(mode=0o700)
        dns_settings(joiner_dir, args.dns_workers)
        started = time.monotonic()
        joiner = spawn_node(
            joiner_dir, run_dir, "joiner", names,
            ["--genesis", str(genesis), "--state-sync", "--snapshot-interval", "0",
             "--log-level", "info", *node_args(source_ready), *node_args(liar_ready)],
        )  # fmt: skip
        live.append(joiner)
        ready_line(joiner, 600)
        statesync_s = time.monotonic() - started
        joined = JOINED.search(joiner.log.read_text(errors="replace"))
        if joined is None:
            raise BenchError(f"the joiner did not join by state sync:\n{joiner.log_tail()}")
        bad = int(joined.group(2))
        say(
            f"state sync: joined at {joined.group(1)} in {statesync_s:.1f} s, {bad} bad chunks caught"
        )
        stop_all([joiner, liar])
        pruned_mib = mib(joiner_dir / "chain")

        replay_s = None
        if not args.no_replay:
            replay_dir = run_dir / "replay"
            replay_dir.mkdir(mode=0o700)
            dns_settings(replay_dir, args.dns_workers)
            started = time.monotonic()
            replay = spawn_node(
                replay_dir, run_dir, "replay", names,
                ["--genesis", str(genesis), "--snapshot-interval", "0", *node_args(source_ready)],
            )  # fmt: skip
            live.append(replay)
            ready_line(replay, 300)
            client = RpcClient.for_node(replay_dir)
            deadline = started + args.replay_timeout
            while int(client.status()["height"]) < height:
                if time.monotonic() > deadline:
                    raise BenchError(f"replay did not reach {height} in {args.replay_timeout:g} s")
                time.sleep(0.2)
            replay_s = time.monotonic() - started
            client.close()
            say(f"replay: height {height} in {replay_s:.1f} s")
        result: dict[str, object] = {
            "domains": names,
            "height": height,
            "statesync_join_s": round(statesync_s, 2),
            "replay_join_s": None if replay_s is None else round(replay_s, 2),
            "speedup": None if replay_s is None else round(replay_s / statesync_s, 1),
            "snapshot_mib": round(mib(snapshot), 1),
            "disk_mib_full": round(mib(src / "chain"), 1),
            "disk_mib_pruned": round(pruned_mib, 1),
            "bad_chunks_caught": bad,
            "bad_chunks_served": corrupted,
        }
        met = bad >= 1
        if names >= 1_000_000:
            met = met and statesync_s <= TARGET_JOIN_S
        if replay_s is not None and args.quick:
            met = met and replay_s / statesync_s >= TARGET_SPEEDUP
        result["targets_met"] = met
        return result
    finally:
        stop_all([s for s in live if s.running()])
        if args.keep:
            say(f"logs and data kept in {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


def _default_cache() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return str(Path(base) / "ledgerdns-bench")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="100,000 names (under 90 s once the ledger is cached)"
    )
    parser.add_argument(
        "--domains", type=int, default=1_000_000, help="names in the ledger (default %(default)s)"
    )
    parser.add_argument(
        "--cache", default=_default_cache(), help="benchmark ledgers' cache (default %(default)s)"
    )
    parser.add_argument(
        "--bad-every",
        type=int,
        default=1,
        help="the liar corrupts every Nth chunk (default %(default)s: every chunk it serves)",
    )
    parser.add_argument(
        "--no-replay", action="store_true", help="skip the replay join (long at 1,000,000 names)"
    )
    parser.add_argument(
        "--replay-timeout", type=float, default=1800.0, help="seconds (default %(default)s)"
    )
    parser.add_argument(
        "--dns-workers",
        type=int,
        default=0,
        choices=range(0, 17),
        metavar="N",
        help="the joiners' UDP DNS workers (default 0: with a worker, a node syncing a block of "
        "2,000 new names currently exits with EMSGSIZE from the name-table update)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs, data)")
    args = parser.parse_args(argv)
    if args.domains < 1 or args.bad_every < 1:
        parser.error("--domains and --bad-every must be positive")
    try:
        result = run(args)
    except (BenchError, NetworkError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
