"""Running dnsperf (DNS-OARC dnsperf 2.10) and reading what it prints.

`run` starts one dnsperf against 127.0.0.1:PORT and returns its statistics.
With `latencies_to`, dnsperf runs with ``-v``: one line per query
(``> NOERROR d7.p2p A 0.000212``, or ``> T d7.p2p A`` for a query that timed
out), written to that file and parsed by `read_latencies`; dnsperf 2.10 has no
latency histogram of its own.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
SLACK_S = 30.0  # beyond -l plus -t, a dnsperf run is stuck: killed

_NUMBERS = {
    "sent": re.compile(r"Queries sent:\s+(\d+)"),
    "completed": re.compile(r"Queries completed:\s+(\d+)"),
    "lost": re.compile(r"Queries lost:\s+(\d+)"),
    "interrupted": re.compile(r"Queries interrupted:\s+(\d+)"),
    "qps": re.compile(r"Queries per second:\s+([\d.]+)"),
    "avg_latency_s": re.compile(r"Average Latency \(s\):\s+([\d.]+)"),
    "response_bytes": re.compile(r"Average packet size:\s+request \d+, response (\d+)"),
}
_NOERROR = re.compile(r"Response codes:.*?\bNOERROR (\d+)")


class DnsperfError(RuntimeError):
    """dnsperf failed or printed no statistics."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """The load: the same for every server of a run.

    Attributes:
        clients: ``-c``, simulated clients (one UDP socket each).
        outstanding: ``-q``, queries in flight at most, over all clients.
        timeout_s: ``-t``, an unanswered query counts as lost after this long.
    """

    clients: int
    outstanding: int
    timeout_s: float

    def args(self) -> list[str]:
        """The dnsperf flags for these options."""
        return ["-c", str(self.clients), "-q", str(self.outstanding), "-t", f"{self.timeout_s:g}"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """What one dnsperf run reported."""

    sent: int
    completed: int
    lost: int
    interrupted: int
    noerror: int
    qps: float
    avg_latency_s: float
    response_bytes: int

    @classmethod
    def from_text(cls, text: str) -> Result:
        """Parse dnsperf's final statistics.

        Raises:
            DnsperfError: the statistics are missing.
        """
        found: dict[str, float] = {}
        for key, pattern in _NUMBERS.items():
            match = pattern.search(text)
            if match is not None:
                found[key] = float(match.group(1))
        missing = {"sent", "completed", "lost", "qps"} - set(found)
        if missing:
            raise DnsperfError(f"no {sorted(missing)[0]} in dnsperf's output:\n{text[-2000:]}")
        noerror = _NOERROR.search(text)
        return cls(
            sent=int(found["sent"]),
            completed=int(found["completed"]),
            lost=int(found["lost"]),
            interrupted=int(found.get("interrupted", 0)),
            noerror=int(noerror.group(1)) if noerror else 0,
            qps=found["qps"],
            avg_latency_s=found.get("avg_latency_s", 0.0),
            response_bytes=int(found.get("response_bytes", 0)),
        )


# Run dnsperf through this (``taskset -c CPUS``) when the benchmark pins processes.
CPU_PREFIX: list[str] = []


def run(
    binary: str,
    port: int,
    queries: Path,
    options: Options,
    *,
    seconds: float,
    max_passes: int | None = None,
    rate: float | None = None,
    latencies_to: Path | None = None,
    extra: Sequence[str] = (),
) -> Result:
    """One dnsperf run against 127.0.0.1:`port`.

    Args:
        binary: the dnsperf executable.
        port: the server's UDP port.
        queries: the query file (``name A`` per line); dnsperf loops over it.
        options: clients, outstanding queries and timeout.
        seconds: ``-l``, how long to send.
        max_passes: ``-n``, stop after this many passes over the file.
        rate: ``-Q``, queries per second at most.
        latencies_to: run with ``-v`` and write its per-query lines here.
        extra: more dnsperf flags, e.g. ``["-m", "dot"]`` for DNS over TLS.

    Raises:
        DnsperfError: dnsperf exited non-zero, hung, or printed no statistics.
    """
    cmd = [
        *CPU_PREFIX,
        binary,
        "-s",
        LOOPBACK,
        "-p",
        str(port),
        "-d",
        str(queries),
        "-l",
        f"{seconds:g}",
    ]
    cmd += options.args()
    cmd += extra
    if max_passes is not None:
        cmd += ["-n", str(max_passes)]
    if rate is not None:
        cmd += ["-Q", str(max(1, round(rate)))]
    limit = seconds + options.timeout_s + SLACK_S
    try:
        if latencies_to is None:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
            text, err = done.stdout, done.stderr
        else:
            with latencies_to.open("w") as out:
                done = subprocess.run(
                    [*cmd, "-v"],
                    stdout=out,
                    stderr=subprocess.PIPE,
                    text=True,
                    timeout=limit,
                    check=False,
                )
            text, err = _statistics(latencies_to), done.stderr
    except subprocess.TimeoutExpired:
        raise DnsperfError(f"dnsperf did not finish within {limit:g} s: {' '.join(cmd)}") from None
    if done.returncode != 0:
        raise DnsperfError(f"dnsperf exited with {done.returncode}: {' '.join(cmd)}\n{err[-2000:]}")
    return Result.from_text(text)


def _statistics(path: Path) -> str:
    """The part of a ``-v`` output after the per-query lines."""
    with path.open() as lines:
        return "".join(line for line in lines if not line.startswith("> "))


def read_latencies(path: Path, timeout_s: float) -> list[float]:
    """Per-query latencies (seconds) from a ``-v`` output; a timed-out query counts as `timeout_s`.

    Only NOERROR answers and timeouts are kept: an error reply is not a latency of the
    answer being measured (the run's `Result.noerror` shows whether there were any).
    """
    out: list[float] = []
    with path.open() as lines:
        for line in lines:
            if not line.startswith("> "):
                continue
            fields = line.split()
            if fields[1] == "T":
                out.append(timeout_s)
            elif fields[1] == "NOERROR" and len(fields) >= 5:
                out.append(float(fields[-1]))
    return out


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile of `values` (nearest rank), e.g. 0.99 for p99.

    Raises:
        ValueError: no values.
    """
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(len(ordered) * fraction)))
    return ordered[rank - 1]
