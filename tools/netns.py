"""Network namespaces for partition tests: one namespace per node, a bridge, and packet drops.

::

    ok, reason = available()
    with Lab(5) as lab:                               # bridge + 5 namespaces, 10.x.y.0/24
        cluster = Cluster(base, 4, 1, host_of=lab.host, wrap=lab.wrap)
        lab.partition([{0, 1, 2}, {3, 4}])            # silent drops between the groups
        lab.heal()
    with Lab(11, delay_ms=25, loss_pct=0.5) as lab:   # a WAN: 50 ms RTT between nodes
        lab.set_link(delay_ms=50)                     # change it while the nodes run

Layout. The root namespace gets a bridge ``<prefix>b`` with address ``.1`` of a
private /24 that overlaps no route of the machine (``ip -4 route show table
all``); node ``i`` lives in namespace ``<prefix>n<i>`` with address ``.(10+i)``
on one end of a veth pair whose other end (``<prefix>h<i>``) is a bridge port.
The root namespace reaches every node through the bridge (RPC, DNS), and every
node reaches every other node through it unless a partition is in force.

Names. ``<prefix>`` is ``ldn<pid><letter>``: the creating process's pid and a
per-process letter, so names fit the 15-character interface limit
(``ldn4194304zh12`` is 14) and two labs (or two runs) never collide. Namespaces
and links whose prefix names a dead pid were left by a run that was killed
(SIGKILL skips clean-up): each new lab removes them first, SIGKILLing any
process still inside such a namespace (only ever a node of that dead run).

Partitions. Mode ``drop`` (the default) drops packets silently, as a cut cable or
a dead switch would: each bridge port gets a ``clsact`` qdisc whose egress u32
filters redirect every IPv4 packet whose source is on the other side to a veth
that is kept down (the kernel drops what is redirected to a down device; this
needs only ``cls_u32`` and ``act_mirred``, no ``act_gact``/netfilter). Filtering
the port's egress by source address covers both directions (A→B dies at B's
port, B→A at A's) and leaves the root namespace's traffic alone, so the test
can still query both sides. TCP connections across the cut stay open and
retransmit with back-off, new dials time out. Mode ``reject`` instead adds
``prohibit`` routes inside each namespace for the other side's addresses: the
sender gets EACCES at once (dials fail fast, nothing is on the wire).

Links (a WAN). ``delay_ms`` and ``loss_pct`` put a ``netem`` qdisc on the
root of each node's own veth end (inside its namespace): every packet a node
sends waits ``delay_ms`` and is lost with probability ``loss_pct`` %. A packet
between two nodes leaves one namespace and enters the other, so it is delayed
once per direction: the RTT between two nodes is 2 x ``delay_ms``; between the
root namespace (the test, its RPC and DNS queries) and a node it is
1 x ``delay_ms`` (only the reply is delayed). The partition filters sit on
the bridge ports, so links and partitions combine. Needs the kernel's
``sch_netem`` (``CONFIG_NET_SCH_NETEM``); `netem_available` says whether it
is there, and a lab asked for delay or loss without it raises `LabError`.
"""

from __future__ import annotations

import fcntl
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Literal

from tools.localnet import pid_alive

Mode = Literal["drop", "reject"]
NAME_RE = re.compile(r"^ldn(\d+)([a-z])(b|h\d+|n\d+|s[01])$")
LOCK_PATH = "/tmp/ledgerdns-netns.lock"
SUBNET_BASE = "10.213.0.0/16"  # /24s are picked from here, skipping any that a route overlaps
FIRST_HOST = 10
_letters = itertools.cycle("abcdefghijklmnopqrstuvwxyz")


class LabError(RuntimeError):
    """A namespace, link, address or filter could not be set up."""


def _run(
    *cmd: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def available() -> tuple[bool, str]:
    """Whether this process can build a lab: (True, "") or (False, why not)."""
    if os.geteuid() != 0:
        return False, "network namespaces need root (euid is not 0)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return False, f"`{tool}` (iproute2) is not installed"
    probe = f"ldn{os.getpid()}zn99"
    try:
        added = _run("ip", "netns", "add", probe, check=False)
        if added.returncode != 0:
            return False, f"`ip netns add` fails: {added.stderr.strip()}"
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return True, ""


def netem_args(delay_ms: float = 0.0, loss_pct: float = 0.0) -> list[str]:
    """The ``tc qdisc ... netem`` arguments for a link; empty for a plain link.

    Raises:
        ValueError: a negative delay, or a loss outside 0..100 %.
    """
    if delay_ms < 0 or not 0 <= loss_pct <= 100:
        raise ValueError(f"delay must be >= 0 ms and loss 0..100 %, not {delay_ms}, {loss_pct}")
    args = []
    if delay_ms:
        args += ["delay", f"{delay_ms:g}ms"]
    if loss_pct:
        args += ["loss", f"{loss_pct:g}%"]
    return ["netem", *args] if args else []


def netem_available() -> tuple[bool, str]:
    """Whether links can get delay and loss here: (True, "") or (False, why not)."""
    ok, reason = available()
    if not ok:
        return False, reason
    probe = f"ldn{os.getpid()}zn98"
    try:
        _run("ip", "netns", "add", probe)
        _run("ip", "-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
        added = _run(
            "tc", "-n", probe, "qdisc", "add", "dev", "p0", "root", *netem_args(1.0), check=False
        )
        if added.returncode != 0:
            return False, (
                "the kernel has no netem qdisc (sch_netem, CONFIG_NET_SCH_NETEM): "
                + added.stderr.strip()
            )
    except LabError as exc:
        return False, str(exc)
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return True, ""


def _netns_names() -> list[str]:
    out = _run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _link_names() -> list[str]:
    out = _run("ip", "-o", "link", "show", check=False).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def remove_stale() -> list[str]:
    """Remove namespaces and links of earlier labs whose creating process is gone."""
    removed = []
    for name in _netns_names():
        m = NAME_RE.match(name)
        if m and not pid_alive(int(m.group(1))):
            pids = _run("ip", "netns", "pids", name, check=False).stdout.split()
            for pid in pids:  # nodes of the dead run, still inside its namespace
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _run("ip", "netns", "del", name, check=False)
            removed.append(name)
    for name in _link_names():
        m = NAME_RE.match(name)
        if m and not pid_alive(int(m.group(1))):
            _run("ip", "link", "del", name, check=False)
            removed.append(name)
    return removed


def _used_networks() -> list[ipaddress.IPv4Network]:
    nets = []
    routes = _run("ip", "-4", "route", "show", "table", "all", check=False).stdout
    addrs = _run("ip", "-4", "-o", "addr", "show", check=False).stdout
    for token in (routes + "\n" + addrs).split():
        if token == "default":
            continue  # a default route overlaps everything; it is not a collision
        try:
            nets.append(ipaddress.IPv4Network(token, strict=False))
        except ValueError:
            continue
    return nets


def pick_subnet() -> ipaddress.IPv4Network:
    """A /24 of `SUBNET_BASE` that no route or address of this machine overlaps."""
    used = _used_networks()
    for net in ipaddress.IPv4Network(SUBNET_BASE).subnets(new_prefix=24):
        if not any(net.overlaps(u) for u in used):
            return net
    raise LabError(f"no free /24 in {SUBNET_BASE}")


@contextmanager
def _lock() -> Iterator[None]:
    """Serialize set-up between labs (the subnet check and the bridge creation)."""
    with open(LOCK_PATH, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Lab:
    """`n` network namespaces on one bridge, with partitions on demand.

    Args:
        n: how many nodes (namespaces).
        mode: ``drop`` (silent packet loss, tc) or ``reject`` (prohibit routes).
        sysctls: set in every node namespace, e.g. ``{"net.ipv4.tcp_rto_max_ms": "1000"}``
            (namespaced network sysctls only; the root namespace is never touched).
        delay_ms: how long every packet a node sends waits (tc netem); the RTT
            between two nodes is twice this.
        loss_pct: the share of the packets a node sends that are lost (tc netem).
    """

    def __init__(
        self,
        n: int,
        *,
        mode: Mode = "drop",
        sysctls: dict[str, str] | None = None,
        delay_ms: float = 0.0,
        loss_pct: float = 0.0,
    ) -> None:
        if n < 1 or n > 200:
            raise ValueError("a lab has 1..200 nodes")
        if mode not in ("drop", "reject"):
            raise ValueError(f"unknown mode {mode!r}")
        self.netem = netem_args(delay_ms, loss_pct)  # validates both
        self.n = n
        self.mode: Mode = mode
        self.sysctls = dict(sysctls or {})
        self.prefix = f"ldn{os.getpid()}{next(_letters)}"
        self.bridge = f"{self.prefix}b"
        self.sink = f"{self.prefix}s0"
        self.subnet: ipaddress.IPv4Network | None = None
        self.groups: list[frozenset[int]] = []
        self._created: list[str] = []  # namespaces and root-namespace links, for close()
        self._routes: list[tuple[int, str]] = []

    # -- names and addresses --

    def netns(self, i: int) -> str:
        """Node `i`'s namespace."""
        return f"{self.prefix}n{i}"

    def inner(self, i: int) -> str:
        """Node `i`'s own veth end (inside its namespace; the netem qdisc sits on it)."""
        return f"{self.prefix}n{i}"

    def port(self, i: int) -> str:
        """Node `i`'s veth end on the bridge (root namespace)."""
        return f"{self.prefix}h{i}"

    def host(self, i: int) -> str:
        """Node `i`'s address (what it binds DNS, RPC and p2p to)."""
        if self.subnet is None:
            raise LabError("the lab is not set up")
        return str(self.subnet.network_address + FIRST_HOST + i)

    @property
    def gateway(self) -> str:
        """The bridge's address in the root namespace."""
        if self.subnet is None:
            raise LabError("the lab is not set up")
        return str(self.subnet.network_address + 1)

    def wrap(self, node: Any, cmd: list[str]) -> list[str]:
        """`cmd` run inside node's namespace (a `localnet.Cluster` ``wrap`` hook)."""
        index = node if isinstance(node, int) else int(node.index)
        return ["ip", "netns", "exec", self.netns(index), *cmd]

    # -- lifecycle --

    def __enter__(self) -> Lab:
        self.setup()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def setup(self) -> None:
        """Create the bridge, the namespaces and the veth pairs (clean-up on failure)."""
        ok, reason = netem_available() if self.netem else available()
        if not ok:
            raise LabError(reason)
        try:
            with _lock():
                remove_stale()
                self.subnet = pick_subnet()
                plen = self.subnet.prefixlen
                _run("ip", "link", "add", self.bridge, "type", "bridge")
                self._created.append(self.bridge)
                _run("ip", "addr", "add", f"{self.gateway}/{plen}", "dev", self.bridge)
                _run("ip", "link", "set", self.bridge, "up")
            # the drop target: a veth pair left down (redirects to a down device are dropped)
            _run("ip", "link", "add", self.sink, "type", "veth", "peer", "name", f"{self.prefix}s1")
            self._created.append(self.sink)
            for i in range(self.n):
                ns, port, inner = self.netns(i), self.port(i), self.inner(i)
                _run("ip", "netns", "add", ns)
                self._created.append(f"netns:{ns}")
                _run("ip", "link", "add", port, "type", "veth", "peer", "name", inner, "netns", ns)
                self._created.append(port)
                _run("ip", "link", "set", port, "master", self.bridge, "up")
                _run(
                    "ip", "-n", ns, "-batch", "-",
                    stdin=f"link set lo up\naddr add {self.host(i)}/{plen} dev {inner}\n"
                    f"link set {inner} up\n",
                )  # fmt: skip
                for key, value in self.sysctls.items():
                    _run("ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}")
                if self.netem:
                    _run("tc", "-n", ns, "qdisc", "add", "dev", inner, "root", *self.netem)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove everything this lab made (idempotent; errors ignored)."""
        for name in reversed(self._created):
            if name.startswith("netns:"):
                ns = name.removeprefix("netns:")
                for pid in _run("ip", "netns", "pids", ns, check=False).stdout.split():
                    try:  # a node its launcher failed to stop: it is ours
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
                _run("ip", "netns", "del", ns, check=False)
            else:
                _run("ip", "link", "del", name, check=False)
        self._created.clear()
        self.groups = []

    # -- links --

    def set_link(self, delay_ms: float = 0.0, loss_pct: float = 0.0) -> None:
        """Give every node's outbound link this delay and loss (0, 0: a plain link again)."""
        netem = netem_args(delay_ms, loss_pct)
        if netem and not self.netem:
            ok, reason = netem_available()
            if not ok:
                raise LabError(reason)
        for i in range(self.n):
            ns, dev = self.netns(i), self.inner(i)
            if netem:
                _run("tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", *netem)
            elif self.netem:
                _run("tc", "-n", ns, "qdisc", "del", "dev", dev, "root", check=False)
        self.netem = netem

    # -- partitions --

    def partition(self, groups: Sequence[Iterable[int]]) -> None:
        """Drop every packet between nodes of different groups (both directions).

        Nodes in no group form one more group together. Replaces any partition
        in force. The root namespace keeps reaching every node.
        """
        sets = [frozenset(g) for g in groups]
        rest = frozenset(range(self.n)) - frozenset().union(*sets)
        if rest:
            sets.append(rest)
        seen: set[int] = set()
        for g in sets:
            if g & seen or any(not 0 <= i < self.n for i in g):
                raise ValueError(f"groups must be disjoint node indexes: {groups!r}")
            seen |= g
        self.heal()
        side = {i: k for k, g in enumerate(sets) for i in g}
        if self.mode == "drop":
            lines = []
            for i in range(self.n):
                port = self.port(i)
                lines.append(f"qdisc add dev {port} clsact")
                for j in range(self.n):
                    if side[j] != side[i]:
                        lines.append(
                            f"filter add dev {port} egress protocol ip prio 1 u32 "
                            f"match ip src {self.host(j)}/32 "
                            f"action mirred egress redirect dev {self.sink}"
                        )
            _run("tc", "-batch", "-", stdin="\n".join(lines) + "\n")
        else:
            for i in range(self.n):
                cmds = [
                    f"route add prohibit {self.host(j)}/32"
                    for j in range(self.n)
                    if side[j] != side[i]
                ]
                _run("ip", "-n", self.netns(i), "-batch", "-", stdin="\n".join(cmds) + "\n")
                self._routes += [(i, self.host(j)) for j in range(self.n) if side[j] != side[i]]
        self.groups = sets

    def heal(self) -> None:
        """Lift the partition: every node reaches every other again."""
        if self.mode == "drop":
            lines = [f"qdisc del dev {self.port(i)} clsact" for i in range(self.n)]
            _run("tc", "-force", "-batch", "-", stdin="\n".join(lines) + "\n", check=False)
        else:
            for i, addr in self._routes:
                _run(
                    "ip", "-n", self.netns(i), "route", "del", "prohibit", f"{addr}/32", check=False
                )
            self._routes = []
        self.groups = []

    def dropped(self) -> int:
        """Packets the partition filters have dropped since the last `partition` (drop mode)."""
        total = 0
        for i in range(self.n):
            stats = _run("tc", "-s", "filter", "show", "dev", self.port(i), "egress", check=False)
            total += sum(
                int(m.group(1)) for m in re.finditer(r"Sent \d+ bytes (\d+) pkt", stats.stdout)
            )
        return total
