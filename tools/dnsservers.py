"""The DNS servers a benchmark compares: a real ``ledgerdns node``, Knot and dnsmasq, on loopback.

Each runs in its own session (process group), with its output in the run
directory, and `Server.stop` ends the whole group (SIGTERM, then SIGKILL):
the node's UDP worker processes go with it. All listen on 127.0.0.1 only.
Knot (``knotd``) runs with its own configuration, database and run directory
under the run directory, in the foreground, as whoever runs the benchmark.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from tools import benchchain
from tools.localnet import READY_PREFIX

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
NODE_START_S = 120.0  # READY after opening a large ledger (seconds, at most)
DNSMASQ_START_S = 120.0  # dnsmasq answering after reading 1,000,000 hosts lines on a busy CPU
KNOT_START_S = 300.0  # Knot answering for its zone after loading 1,000,000 names
STOP_S = 10.0
POLL_S = 0.05
BIND_ATTEMPTS = 5  # a port picked free may be taken before dnsmasq binds it
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class BenchError(RuntimeError):
    """A server did not start, or answered wrongly."""


class MissingProgram(BenchError):
    """A program the benchmark needs is not installed."""


@dataclass(slots=True, kw_only=True)
class Server:
    """One running DNS server process (group)."""

    label: str
    domains: int
    port: int
    proc: subprocess.Popen[bytes]
    run_dir: Path
    log: Path

    @property
    def pgid(self) -> int:
        return self.proc.pid  # started with start_new_session: it leads its group

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the process group, wait, then SIGKILL whatever is left of it."""
        stop_all([self])

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def stop_all(servers: list[Server]) -> None:
    """SIGTERM every server's process group at once, wait (bounded), then SIGKILL the groups."""
    for server in servers:
        _signal_group(server.pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_S
    for server in servers:
        try:
            server.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        _signal_group(server.pgid, signal.SIGKILL)  # stragglers, and the node's workers
        server.proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# Start servers through this (``taskset -c CPUS``) when the benchmark pins processes.
CPU_PREFIX: list[str] = []


def _spawn(cmd: list[str], stdout: Path, stderr: Path | None = None) -> subprocess.Popen[bytes]:
    """`cmd` in a new session; stderr to `stderr`, or with stdout when None."""
    cmd = [*CPU_PREFIX, *cmd]
    with stdout.open("wb") as out:
        err = stderr.open("wb") if stderr is not None else None
        try:
            return subprocess.Popen(
                cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                stderr=err if err is not None else subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
            )  # fmt: skip
        finally:
            if err is not None:
                err.close()


def spawn_node(data_dir: Path, run_dir: Path, label: str, domains: int, extra: list[str]) -> Server:
    """Start the real node on `data_dir`, every listener on 127.0.0.1 port 0; see `await_ready`."""
    cmd = [
        sys.executable, "-m", "ledgerdns", "node", "--data-dir", str(data_dir),
        "--dns", f"{LOOPBACK}:0", "--rpc", f"{LOOPBACK}:0", "--p2p", f"/ip4/{LOOPBACK}/tcp/0",
        "--no-progress", "--log-level", "info", *extra,
    ]  # fmt: skip
    log = run_dir / f"{label}.log"
    proc = _spawn(cmd, run_dir / f"{label}.out", log)
    return Server(label=label, domains=domains, port=0, proc=proc, run_dir=run_dir, log=log)


def await_ready(server: Server) -> Server:
    """Wait for the node's READY line and take its DNS port from it.

    Raises:
        BenchError: it exited, or printed no READY line in time (with its log).
    """
    out = server.run_dir / f"{server.label}.out"
    deadline = time.monotonic() + NODE_START_S
    while True:
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                ready = json.loads(line[len(READY_PREFIX) :])
                server.port = int(str(ready["dns"]).rpartition(":")[2])
                return server
        if not server.running():
            code = server.proc.returncode
            raise BenchError(f"{server.label} exited ({code}) before READY:\n{server.log_tail()}")
        if time.monotonic() > deadline:
            raise BenchError(
                f"{server.label}: no READY in {NODE_START_S:g} s:\n{server.log_tail()}"
            )
        time.sleep(POLL_S)


def await_names(server: Server) -> float:
    """Wait until the node's UDP workers hold every registered name (`ledgerdns.dns.nametable`).

    As Knot answers only once its zone is loaded, the node answers every name at
    full speed only once its workers' name tables are filled (a log line, after
    READY). Returns the seconds waited.

    Raises:
        BenchError: it exited, or the tables were not filled in time.
    """
    started = time.monotonic()
    deadline = started + NODE_START_S + server.domains / 5_000
    while "name table filled" not in server.log.read_text(errors="replace"):
        if not server.running():
            raise BenchError(f"{server.label} exited ({server.proc.returncode}):\n{server.log_tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"{server.label}: name table not filled in time:\n{server.log_tail()}")
        time.sleep(POLL_S)
    return time.monotonic() - started


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (at the time of asking)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((LOOPBACK, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise BenchError("no free port on 127.0.0.1")


def start_dnsmasq(
    binary: str, hosts: Path, run_dir: Path, domains: int, probe: str | None = None
) -> Server:
    """dnsmasq answering the names in `hosts` (authoritative data only: no upstream, no cache misses).

    It is ready once it answers `probe` (a name in `hosts`; by default name 0).

    Raises:
        BenchError: it did not start or answer in time (with its log).
    """
    name = probe or benchchain.domain_name(0)

    def answers_probe(server: Server) -> bool:
        return bool(lookup_a(server.port, name, 0.5))

    for _ in range(BIND_ATTEMPTS):
        port = free_port()
        cmd = [
            binary, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            f"--addn-hosts={hosts}", "--bind-interfaces", f"--listen-address={LOOPBACK}",
            f"--port={port}", f"--cache-size={max(150, min(domains, 10_000))}", "--local-ttl=300",
            f"--pid-file={run_dir / 'dnsmasq.pid'}", "--log-facility=-",
        ]  # fmt: skip
        if os.geteuid() == 0:
            cmd.append("--user=root")  # as root it would switch to nobody, who cannot read run_dir
        log = run_dir / "dnsmasq.log"
        server = Server(
            label="dnsmasq",
            domains=domains,
            port=port,
            proc=_spawn(cmd, log),
            run_dir=run_dir,
            log=log,
        )
        try:
            if _await_answer(server, DNSMASQ_START_S, answers_probe):
                return server
        except BaseException:
            server.stop()
            raise
        server.stop()
        if "in use" not in server.log_tail():
            raise BenchError(f"dnsmasq did not start:\n{server.log_tail()}")
    raise BenchError(f"dnsmasq found no free port in {BIND_ATTEMPTS} attempts")


# Knot as an authoritative server for one zone: one UDP and one TCP worker (every
# server of the benchmark shares one pinned CPU, where more threads only take turns),
# nothing written back (no journal, no zone-file sync), logging notices only.
KNOT_CONF = """\
server:
    rundir: "{dir}/run"
    listen: {host}@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{dir}/db"
log:
  - target: stderr
    any: notice
template:
  - id: default
    storage: "{dir}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: {zone}
    file: "{file}"
"""


def start_knot(binary: str, zone_file: Path, zone: str, run_dir: Path, domains: int) -> Server:
    """knotd serving `zone_file` as `zone`, ready once it answers the zone's SOA authoritatively.

    Its configuration, database and run directory are made fresh under
    ``run_dir/knot`` on every start (nothing carries over from an earlier start).

    Raises:
        BenchError: it did not start or answer in time (with its log).
    """
    directory = run_dir / "knot"
    for _ in range(BIND_ATTEMPTS):
        shutil.rmtree(directory, ignore_errors=True)
        for sub in ("run", "db"):
            (directory / sub).mkdir(parents=True)
        port = free_port()
        conf = directory / "knot.conf"
        conf.write_text(
            KNOT_CONF.format(dir=directory, host=LOOPBACK, port=port, zone=zone, file=zone_file)
        )
        log = run_dir / "knot.log"
        server = Server(
            label="knot", domains=domains, port=port,
            proc=_spawn([binary, "-c", str(conf)], log), run_dir=run_dir, log=log,
        )  # fmt: skip
        try:
            if _await_answer(server, KNOT_START_S, lambda s: _has_soa(s.port, zone)):
                return server
        except BaseException:
            server.stop()
            raise
        server.stop()
        if "in use" not in server.log_tail():
            raise BenchError(
                f"knotd did not serve {zone} in {KNOT_START_S:g} s:\n{server.log_tail()}"
            )
    raise BenchError(f"knotd found no free port in {BIND_ATTEMPTS} attempts")


def _has_soa(port: int, zone: str) -> bool:
    """Whether 127.0.0.1:`port` answers `zone`'s SOA with authority (the zone is loaded)."""
    reply = dns.query.udp(dns.message.make_query(zone, "SOA"), LOOPBACK, port=port, timeout=0.5)
    return reply.rcode() == dns.rcode.NOERROR and bool(reply.flags & dns.flags.AA)


def _await_answer(server: Server, timeout: float, answered: Callable[[Server], bool]) -> bool:
    """Whether `answered(server)` comes true before `timeout` (False once it has exited).

    Stops early (False) when the server's log says its port was taken.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.running():
        try:
            if answered(server):
                return True
        except dns.exception.DNSException:
            pass
        if "in use" in server.log_tail(500):
            return False
        time.sleep(POLL_S)
    return False


def lookup_a(port: int, name: str, timeout: float) -> set[str]:
    """The A addresses 127.0.0.1:`port` answers for `name` (empty unless NOERROR)."""
    reply = dns.query.udp(dns.message.make_query(name, "A"), LOOPBACK, port=port, timeout=timeout)
    if reply.rcode() != dns.rcode.NOERROR:
        return set()
    return {
        item.to_text()
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.A
        for item in rrset
    }


def check_answers(server: Server, indexes: list[int]) -> None:
    """Ask for each name with a real client; each must map to its benchmark address.

    Raises:
        BenchError: naming the first wrong answer.
    """
    for i in indexes:
        name, want = benchchain.domain_name(i), {benchchain.address(i)}
        try:
            got = lookup_a(server.port, name, 3.0)
        except dns.exception.DNSException as exc:
            raise BenchError(f"{server.label} did not answer {name} A: {exc!r}") from None
        if got != want:
            raise BenchError(
                f"{server.label} answered {name} A with {sorted(got)}, expected {sorted(want)}"
            )


def _group_stats(pgid: int) -> Iterator[tuple[str, list[str]]]:
    """(pid, the fields of /proc/PID/stat after the command) of every live process in `pgid`."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == pgid:  # fields[2] is the process group
            yield entry.name, fields


def cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in group `pgid` (the node and its workers)."""
    ticks = sum(int(fields[11]) + int(fields[12]) for _, fields in _group_stats(pgid))
    return ticks / TICK  # fields 11 and 12: utime, stime


def rss_mib(pgid: int) -> float:
    """Resident memory of every live process in group `pgid`, summed, in MiB.

    The node's UDP workers are processes of their own (started with exec, not
    forked), so the sum counts each one's pages once, besides shared libraries.
    """
    pages = 0
    for pid, _ in _group_stats(pgid):
        try:
            pages += int(Path("/proc", pid, "statm").read_text().split()[1])  # resident
        except (OSError, IndexError, ValueError):
            continue
    return pages * PAGE / 2**20
