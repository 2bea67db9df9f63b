"""``ledgerdns resolver`` and unbound as real processes on loopback, for tests and benchmarks.

`ResolverProcess` starts ``python -m ledgerdns resolver`` in its own session
(process group) and waits for its READY line; its stderr (where it names lying
upstreams) is kept in a file. `UnboundProcess` runs unbound in the foreground
from its own config in a temporary directory: no daemon, no chroot, no
remote control, listening on a free 127.0.0.1 port, forwarding given zones.
Both are stopped as a group (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import dns.exception
import dns.message
import dns.query

from tools.dnsservers import free_port
from tools.localnet import READY_PREFIX

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
START_S = 20.0
STOP_S = 10.0
POLL_S = 0.02
UNBOUND = shutil.which("unbound") or shutil.which("unbound", path="/usr/sbin:/sbin")
Address = tuple[str, int]


class ProcessError(RuntimeError):
    """A process did not start, or exited early."""


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=STOP_S)
            return
        except subprocess.TimeoutExpired:
            continue


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def addr(address: Address) -> str:
    """``HOST:PORT``."""
    return f"{address[0]}:{address[1]}"


class ResolverProcess:
    """One ``ledgerdns resolver`` process.

    Args:
        run_dir: where its stdout and stderr files go (created).
        genesis: the trusted genesis file.
        upstreams: ledger nodes' DNS addresses, in order.
        forwards: resolvers for other names.
        max_staleness: ``--max-staleness`` (None: the genesis default).
        listen: the address to bind (port 0: any).
        extra: more arguments.
        launcher: the ``ledgerdns`` command (default ``python -m ledgerdns``).
    """

    def __init__(
        self,
        run_dir: Path,
        genesis: Path,
        upstreams: Sequence[Address],
        *,
        forwards: Sequence[Address] = (),
        max_staleness: float | None = None,
        listen: Address = (LOOPBACK, 0),
        extra: Sequence[str] = (),
        name: str = "resolver",
        launcher: Sequence[str] = (sys.executable, "-m", "ledgerdns"),
    ) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.stdout = run_dir / f"{name}.out"
        self.stderr = run_dir / f"{name}.err"
        self.command = [
            *launcher, "resolver", "--genesis", str(genesis),
            "--listen", addr(listen), "--log-level", "info",
        ]  # fmt: skip
        for upstream in upstreams:
            self.command += ["--upstream", addr(upstream)]
        for forward in forwards:
            self.command += ["--forward", addr(forward)]
        if max_staleness is not None:
            self.command += ["--max-staleness", f"{max_staleness:g}"]
        self.command += list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.started_at = 0.0

    def __enter__(self) -> ResolverProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> Address:
        """The bound (host, port), from the READY line."""
        host, _, port = str(self.ready["listen"]).rpartition(":")
        return host.strip("[]"), int(port)

    def log(self) -> str:
        """Everything it wrote to stderr so far."""
        return _text(self.stderr)

    def start(self) -> ResolverProcess:
        """Spawn it and wait for READY.

        Raises:
            ProcessError: it exited or printed no READY line within `START_S`.
        """
        self.started_at = time.monotonic()
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                self.command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_S
        while True:
            for line in _text(self.stdout).splitlines():
                if line.startswith(READY_PREFIX):
                    self.ready = json.loads(line[len(READY_PREFIX) :])
                    return self
            if self.proc.poll() is not None:
                raise ProcessError(
                    f"resolver exited ({self.proc.returncode}) before READY:\n{self.log()[-3000:]}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ProcessError(f"resolver: no READY in {START_S:g} s:\n{self.log()[-3000:]}")
            time.sleep(POLL_S)

    def stop(self) -> None:
        """SIGTERM its group, then SIGKILL what is left."""
        if self.proc is not None and self.proc.poll() is None:
            _stop_group(self.proc)


def _answering(address: Address, name: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            dns.query.udp(
                dns.message.make_query(name, "SOA"), address[0], port=address[1], timeout=0.3
            )
            return True
        except dns.exception.Timeout:
            continue
        except OSError:
            time.sleep(0.05)
    return False


class UnboundProcess:
    """unbound in the foreground, forwarding each of `zones` to its address.

    Args:
        run_dir: its config, pid file and log go here.
        zones: zone name -> the addresses to forward it to.
        probe: a name to ask while waiting for it to answer.
    """

    def __init__(self, run_dir: Path, zones: dict[str, list[Address]], *, probe: str) -> None:
        if UNBOUND is None:
            raise ProcessError("unbound is not installed (Debian: apt-get install unbound)")
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir
        self.zones = zones
        self.probe = probe
        self.config = run_dir / "unbound.conf"
        self.stderr = run_dir / "unbound.err"
        self.proc: subprocess.Popen[bytes] | None = None
        self.address: Address = (LOOPBACK, 0)

    def __enter__(self) -> UnboundProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log(self) -> str:
        """What it wrote to stderr."""
        return _text(self.stderr)

    def write_config(self, port: int) -> None:
        """The config: loopback only, no DNSSEC validation, the forward zones."""
        lines = [
            "server:",
            f"  interface: {LOOPBACK}",
            f"  port: {port}",
            "  do-ip6: no",
            "  do-daemonize: no",
            '  chroot: ""',
            '  username: ""',
            f'  directory: "{self.run_dir}"',
            f'  pidfile: "{self.run_dir / "unbound.pid"}"',
            "  use-syslog: no",
            '  logfile: ""',
            "  verbosity: 1",
            "  access-control: 127.0.0.0/8 allow",
            # The resolver is on loopback: unbound refuses to send there unless told.
            "  do-not-query-localhost: no",
            '  module-config: "iterator"',
            "  num-threads: 1",
            "remote-control:",
            "  control-enable: no",
        ]
        for zone, addresses in self.zones.items():
            lines += ["forward-zone:", f'  name: "{zone}"']
            lines += [f"  forward-addr: {host}@{port_}" for host, port_ in addresses]
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> UnboundProcess:
        """Start on a free port and wait until it answers `probe`.

        Raises:
            ProcessError: it exited or did not answer in time.
        """
        assert UNBOUND is not None
        for _ in range(5):  # a port found free may be taken before unbound binds it
            port = free_port()
            self.write_config(port)
            with self.stderr.open("wb") as err:
                self.proc = subprocess.Popen(
                    [UNBOUND, "-d", "-c", str(self.config)], cwd=self.run_dir,
                    stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True,
                )  # fmt: skip
            self.address = (LOOPBACK, port)
            if _answering(self.address, self.probe, self.proc, START_S):
                return self
            self.stop()
        raise ProcessError(f"unbound did not start answering:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM its group, then SIGKILL what is left."""
        if self.proc is not None and self.proc.poll() is None:
            _stop_group(self.proc)
