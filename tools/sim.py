"""Run the consensus simulator over seeds 0..N-1 and print one JSON summary line.

Seeds cycle through the fault mixes of `tests/simulation/scenario.py`; each run
is the one `pytest tests/simulation -k seed-<n>` checks, reproduced from its
seed. Progress goes to stderr; stdout gets exactly one JSON line:

    {"seeds": ..., "violations": ..., "heights_finalized": ..., "faults_injected": ...,
     "max_rounds": ..., "quorum_restarts_past_round_0": ..., "max_proposals": ...,
     "max_vote_entries": ..., "max_conflicting_votes": ..., "max_buffered": ...,
     "max_buffered_bytes": ..., "max_evidence": ..., "max_rss_mib": ...,
     "validator_changes": ..., "validator_changes_by_action": {...}}

The ``max_*`` state sizes are the largest any honest validator's machine held in
any run (`StateSizes`: what the floods would grow without the machine's
bounds); ``max_rss_mib`` is the peak resident set of the largest process (a
worker with ``--jobs``); ``quorum_restarts_past_round_0`` counts the runs whose
quorum restart hit a validator at round >= 1. With ``--changes`` every seed also
makes 1-3 validator-set changes (add, remove, rotate a key) while its faults act
(`scenario.with_changes`); ``validator_changes`` counts those that took effect
(0 without the flag).

The exit status is 1 if any run reported a violation (each is printed to stderr).

    python tools/sim.py --seeds 10000
    python tools/sim.py --seeds 300 --quick     # small runs, stops starting new ones at 55 s
    python tools/sim.py --seeds 2000 --changes  # the same faults, with validator-set changes
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator
from multiprocessing import Pool

from tests.simulation.simnet import Report, StateSizes, run_seed

QUICK_BUDGET_S = 55.0


def _run(job: tuple[int, bool, bool]) -> Report:
    seed, quick, changes = job
    return run_seed(seed, quick=quick, changes=changes)


def _reports(seeds: range, quick: bool, changes: bool, jobs: int) -> Iterator[Report]:
    work = [(seed, quick, changes) for seed in seeds]
    if jobs <= 1:
        yield from map(_run, work)
        return
    with Pool(jobs) as pool:
        yield from pool.imap(_run, work, chunksize=8)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, required=True, help="run seeds start..start+N-1")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument(
        "--quick", action="store_true",
        help=f"small runs (n <= 4, <= 2 transactions); stop starting runs after {QUICK_BUDGET_S:.0f} s",
    )  # fmt: skip
    parser.add_argument(
        "--changes", action="store_true",
        help="add 1-3 validator-set changes (add, remove, rotate) to every seed's faults",
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    args = parser.parse_args()
    if args.seeds < 1 or args.jobs < 1:
        parser.error("--seeds and --jobs must be positive")

    started = time.monotonic()
    last_note = started
    runs = violations = heights = faults = max_rounds = restarts = 0
    state = StateSizes()
    changes: Counter[str] = Counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    slowest = (0.0, -1)  # (finalization time / liveness bound, seed)
    seeds = range(args.start, args.start + args.seeds)
    for report in _reports(seeds, args.quick, args.changes, args.jobs):
        runs += 1
        changes.update(report.validator_changes)
        heights += report.finalized
        faults += report.faults_injected
        max_rounds = max(max_rounds, report.max_round)
        restarts += any(round_ >= 1 for _, _, round_ in report.restarts)
        for name, value in vars(report.state).items():
            setattr(state, name, max(getattr(state, name), value))
        rss = max(rss, report.max_rss_mib)
        slowest = max(slowest, (report.max_latency_ratio, report.scenario.seed))
        if report.violations:
            violations += len(report.violations)
            print(f"VIOLATION {report.scenario.describe()}", file=sys.stderr)
            for text in report.violations:
                print(f"  {text}", file=sys.stderr)
        now = time.monotonic()
        if now - last_note >= 5 or runs == args.seeds:
            last_note = now
            print(
                f"{runs}/{args.seeds} seeds, {violations} violations, {heights} heights, "
                f"{now - started:.0f} s",
                file=sys.stderr,
            )
        if args.quick and now - started > QUICK_BUDGET_S:
            print(f"--quick: stopping after {runs} seeds at the time budget", file=sys.stderr)
            break
    print(
        f"slowest finalization: {slowest[0]:.0%} of its liveness bound (seed {slowest[1]}); "
        f"{time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    rss = max(rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    summary = {
        "seeds": runs,
        "violations": violations,
        "heights_finalized": heights,
        "faults_injected": faults,
        "max_rounds": max_rounds,
        "quorum_restarts_past_round_0": restarts,
        "max_proposals": state.proposals,
        "max_vote_entries": state.votes,
        "max_conflicting_votes": state.conflicting,
        "max_buffered": state.buffered,
        "max_buffered_bytes": state.buffered_bytes,
        "max_evidence": state.evidence,
        "max_rss_mib": round(rss, 1),
        "validator_changes": sum(changes.values()),
        "validator_changes_by_action": dict(sorted(changes.items())),
    }
    print(json.dumps(summary))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
