"""Long fuzzing runs with atheris (libFuzzer) over the targets in `tests.fuzz.targets`.

    python tools/fuzz.py TARGET --seconds 600      # one target
    python tools/fuzz.py --all --seconds 300       # every target, 300 s each
    python tools/fuzz.py --quick                   # every target for a few seconds
    python tools/fuzz.py --list
    python tools/fuzz.py --seed-corpus             # (re)write the valid seeds

Each target runs in its own process (libFuzzer stops at the first crash; the
run is restarted for the rest of its time). It starts from the kept corpus,
``tests/fuzz/corpus/TARGET`` (read only), and grows a working corpus in
``--work`` (default ``/tmp/fuzz-work/TARGET``). An input that makes a target
raise, or take longer than `TIME_LIMIT_S` (libFuzzer ``-timeout``), is saved in
``tests/fuzz/crashers/TARGET/``: fix the bug, then move the file into the
corpus so that ``tests/fuzz/test_fuzz.py`` replays it on every CI run.

The last line printed is one JSON object:
``{"targets": n, "execs": total, "crashes": c, "hangs": h}``; the exit status
is 1 if anything was found.

atheris is in the ``test`` extra on x86-64 Linux (a prebuilt wheel). Elsewhere:
``pip install atheris`` needs clang and libFuzzer to build (see its README).
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import hashlib
import importlib
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
CRASHERS = ROOT / "tests" / "fuzz" / "crashers"
QUICK_SECONDS = 4
MAX_LEN = 8192
MAX_RESTARTS = 20

_EXECS = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_DONE = re.compile(r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one target's run found."""

    target: str
    execs: int
    crashes: int
    hangs: int
    seconds: float


def _target_names() -> list[str]:
    from tests.fuzz.targets import TARGETS

    return list(TARGETS)


# -- the child: one target under libFuzzer --


def _child(name: str, libfuzzer_args: list[str]) -> None:
    """Run target `name` under atheris in this process (libFuzzer exits it)."""
    atheris = importlib.import_module("atheris")
    with atheris.instrument_imports(include=["chain", "ledgerdns", "dns", "dnslib", "cbor2"]):
        from tests.fuzz.targets import TARGETS
        from tests.fuzz.world import world
    world()
    run = TARGETS[name].run
    atheris.Setup([sys.argv[0], *libfuzzer_args], run)
    atheris.Fuzz()


# -- the parent: restarts, artifacts, totals --


def _artifact(kind: str, data: bytes, name: str) -> Path:
    where = CRASHERS / name
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{kind}-{hashlib.sha1(data).hexdigest()}"
    path.write_bytes(data)
    return path


def _collect(scratch: Path, name: str) -> tuple[int, int]:
    """Move libFuzzer's artifacts out of `scratch`; (crashes, hangs)."""
    crashes = hangs = 0
    for path in sorted(scratch.glob("*-*")):
        kind = path.name.split("-", 1)[0]
        if kind not in ("crash", "timeout", "oom", "slow"):
            continue
        saved = _artifact(
            "hang" if kind in ("timeout", "slow") else "crash", path.read_bytes(), name
        )
        print(f"[{name}] {kind}: {saved.relative_to(ROOT)}", file=sys.stderr)
        if kind in ("timeout", "slow"):
            hangs += 1
        else:
            crashes += 1
        path.unlink()
    return crashes, hangs


def _run_once(name: str, seconds: int, work: Path, scratch: Path, log: Path) -> tuple[int, int]:
    """One libFuzzer process for up to `seconds`; (execs, exit code)."""
    args = [
        f"-max_total_time={seconds}",
        "-timeout=1",  # TIME_LIMIT_S: an input slower than this is a hang
        "-report_slow_units=1",
        f"-max_len={MAX_LEN}",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={scratch}/",
        str(work),
        str(CORPUS / name),
    ]
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--", *args]
    with log.open("ab") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    text = log.read_text(errors="replace")
    tail = text[text.rfind("INFO: Running with entropic") :] if "entropic" in text else text
    found = _EXECS.findall(tail) or _DONE.findall(tail)
    return (int(found[-1]) if found else 0), code


def fuzz_target(name: str, seconds: int, work_root: Path) -> Outcome:
    """Fuzz `name` for `seconds`, restarting after each crash."""
    work = work_root / name
    scratch = work_root / f"{name}.artifacts"
    for folder in (work, scratch):
        folder.mkdir(parents=True, exist_ok=True)
    log = work_root / f"{name}.log"
    log.write_bytes(b"")
    started = time.monotonic()
    execs = crashes = hangs = 0
    for _ in range(MAX_RESTARTS):
        left = int(seconds - (time.monotonic() - started))
        if left < 1:
            break
        with log.open("ab") as out:
            out.write(b"\nINFO: Running with entropic (restart marker)\n")
        ran, code = _run_once(name, left, work, scratch, log)
        execs += ran
        found_crashes, found_hangs = _collect(scratch, name)
        crashes += found_crashes
        hangs += found_hangs
        if code == 0:
            break
        if not (found_crashes or found_hangs):
            print(f"[{name}] fuzzer exited {code}; see {log}", file=sys.stderr)
            crashes += 1
            break
    elapsed = time.monotonic() - started
    print(
        f"[{name}] {execs} execs in {elapsed:.0f} s, {crashes} crashes, {hangs} hangs",
        file=sys.stderr,
    )
    return Outcome(name, execs, crashes, hangs, elapsed)


def seed_corpus() -> int:
    """Write every target's valid seeds into its corpus directory; how many were new."""
    from tests.fuzz.targets import TARGETS
    from tests.fuzz.world import seeds

    new = 0
    for name in TARGETS:
        folder = CORPUS / name
        folder.mkdir(parents=True, exist_ok=True)
        for data in seeds(name):
            path = folder / f"seed-{hashlib.sha1(data).hexdigest()}"
            if not path.exists():
                path.write_bytes(data)
                new += 1
    return new


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", help="a target name (see --list)")
    parser.add_argument("--all", action="store_true", help="every target")
    parser.add_argument(
        "--quick", action="store_true", help=f"every target, {QUICK_SECONDS} s each"
    )
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="targets at once")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fuzz-work"), help="scratch dir")
    parser.add_argument("--list", action="store_true", help="list the targets")
    parser.add_argument("--seed-corpus", action="store_true", help="write the valid seeds")
    args = parser.parse_args(argv)
    names = _target_names()
    if args.list:
        print("\n".join(names))
        return 0
    if args.seed_corpus:
        print(f"{seed_corpus()} new seed files under {CORPUS.relative_to(ROOT)}")
        return 0
    if args.quick:
        args.all, args.seconds = True, QUICK_SECONDS
    chosen = names if args.all else [args.target]
    if not args.all and args.target not in names:
        parser.error(f"give a target ({', '.join(names)}) or --all")
    try:
        importlib.import_module("atheris")
    except ImportError:
        print("atheris is not installed: pip install atheris (see tools/fuzz.py)", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(lambda n: fuzz_target(n, args.seconds, args.work), chosen))
    total = {
        "targets": len(outcomes),
        "execs": sum(o.execs for o in outcomes),
        "crashes": sum(o.crashes for o in outcomes),
        "hangs": sum(o.hangs for o in outcomes),
    }
    print(json.dumps(total))
    return 1 if total["crashes"] or total["hangs"] else 0


if __name__ == "__main__":
    sys.exit(main())
