"""A local ledgerdns network on 127.0.0.1: N validators and M followers, as real processes.

The library behind ``tools/cluster.py`` (its command line) and what the
integration tests and benchmarks use::

    with Cluster(tmp_path, validators=4, followers=1) as cluster:
        cluster.start()                      # keys, genesis, every node READY
        cluster.wait_height(1)
        host, port = cluster.nodes[0].dns
        cluster.nodes[0].rpc.status()
        cluster.kill(2)                      # SIGKILL; cluster.restart(2) brings it back

Layout of the base directory: ``genesis.json``; ``node-<i>/`` per node (its data
directory, with ``stdout.log`` and ``stderr.log``); ``cluster.json`` (CLI only:
pids and addresses). Every listener is on 127.0.0.1 with an OS-chosen port; a
restarted node asks for the ports it had, so peers' addresses stay valid.
Each node runs in its own session (process group) and is killed as a group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from chain.crypto import PrivateKey
from chain.genesis import Genesis, make_single_validator_genesis
from chain.params import ConsensusParams
from chain.quorum import ValidatorSet
from ledgerdns.api.client import NodeUnreachable, RpcClient, RpcError

ROOT = Path(__file__).resolve().parents[1]
READY_PREFIX = "READY "
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_S = 0.05
TAIL_LINES = 40
LOOPBACK = "127.0.0.1"


class ClusterError(RuntimeError):
    """A node did not start, or the network did not reach the state asked for in time."""


@dataclass(slots=True)
class ClusterNode:
    """One node of the cluster: its data directory, process and bound addresses."""

    index: int
    data_dir: Path
    validator: bool
    proc: subprocess.Popen[bytes] | None = None
    pid: int | None = None
    ready: dict[str, Any] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)  # appended to its `ledgerdns node` command
    log_from: int = 0  # where the latest start's lines begin in stderr.log (it is appended to)
    _rpc: RpcClient | None = None

    @property
    def running(self) -> bool:
        """Whether the process is alive (as far as this launcher knows)."""
        if self.proc is not None:
            return self.proc.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    @property
    def peer_id(self) -> str:
        """The libp2p peer id (stable across restarts: ``node.key``)."""
        return str(self.ready["peer_id"])

    @property
    def dns(self) -> tuple[str, int]:
        """The DNS server's (host, port), UDP and TCP."""
        host, _, port = str(self.ready["dns"]).rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def rpc_url(self) -> str:
        """The RPC base URL, ``http://127.0.0.1:PORT``."""
        return str(self.ready["rpc"])

    @property
    def p2p(self) -> list[str]:
        """The p2p multiaddrs, each ending in ``/p2p/<peer id>``."""
        return [str(a) for a in self.ready["p2p"]]

    @property
    def rpc(self) -> RpcClient:
        """An `RpcClient` for this node (made again after a restart: the port may change)."""
        if self._rpc is None:
            self._rpc = RpcClient.for_node(self.data_dir)
        return self._rpc

    def drop_rpc(self) -> None:
        """Close the cached client (the next `rpc` reads ``node.json`` again)."""
        if self._rpc is not None:
            self._rpc.close()
            self._rpc = None

    def stderr_tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines of the node's log (stderr) since its latest start (not an earlier run's)."""
        return _tail(self.data_dir / "stderr.log", lines, start=self.log_from)

    def to_json(self) -> dict[str, Any]:
        """The ``cluster.json`` entry."""
        return {
            "index": self.index,
            "validator": self.validator,
            "data_dir": str(self.data_dir),
            "pid": self.pid,
            **{k: self.ready.get(k) for k in ("peer_id", "dns", "rpc", "p2p")},
        }


class Cluster:
    """Validators and followers of one fresh network under `base_dir`.

    Args:
        base_dir: where the genesis and the node directories go (created).
        validators: how many validators (each gets a fresh key in its data dir).
        followers: how many followers (no key).
        consensus: consensus parameters for the genesis (default: 1 s propose
            timeout, no heartbeat: an idle network grows no blocks).
        log_level: the nodes' ``--log-level``.
        start_timeout: seconds to wait for each node's READY line.
        python: the interpreter that runs ``-m ledgerdns node``.
        host_of: the address node ``i`` binds its DNS, RPC and p2p listeners to
            (default 127.0.0.1 for all; a network-namespace harness gives each
            node its own).
        wrap: rewrites a node's command line before it is started, e.g. to run it
            inside a network namespace (``ip netns exec NS ...``) or through a
            test launcher. Called with the node and the usual command.
        nameservers: the network's public nameserver set for the genesis
            (default none: each node names itself in NS and SOA).
    """

    def __init__(
        self,
        base_dir: Path | str,
        validators: int = 4,
        followers: int = 1,
        *,
        consensus: ConsensusParams | None = None,
        log_level: str = "info",
        start_timeout: float = START_TIMEOUT_S,
        python: str = sys.executable,
        host_of: Callable[[int], str] | None = None,
        wrap: Callable[[ClusterNode, list[str]], list[str]] | None = None,
        nameservers: tuple[str, ...] = (),
    ) -> None:
        if validators < 1 or followers < 0:
            raise ValueError("a cluster needs at least one validator and no negative followers")
        self.base_dir = Path(base_dir)
        self.consensus = consensus or ConsensusParams(heartbeat_ms=0)
        self.log_level = log_level
        self.start_timeout = start_timeout
        self.python = python
        self.host_of = host_of or (lambda _i: LOOPBACK)
        self.wrap = wrap
        self.nameservers = nameservers
        self.genesis_path = self.base_dir / "genesis.json"
        self.nodes = [
            ClusterNode(index=i, data_dir=self.base_dir / f"node-{i}", validator=i < validators)
            for i in range(validators + followers)
        ]
        self.genesis: Genesis | None = None

    # -- lifecycle --

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, *, detach: bool = False) -> None:
        """Write keys and genesis, start node 0, then every other node bootstrapping from it.

        Raises:
            ClusterError: a node exited or printed no READY line in time (with its log tail).
        """
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.genesis = self._write_genesis()
        try:
            self.start_node(0, detach=detach)
            rest = self.nodes[1:]
            for node in rest:
                self._spawn(node, detach=detach)
            for node in rest:
                self._await_ready(node)
        except BaseException:
            self.stop()
            raise

    def stop(self, indexes: Iterable[int] | None = None) -> None:
        """SIGTERM the nodes (all by default), wait, then SIGKILL their process groups."""
        chosen = [self.nodes[i] for i in indexes] if indexes is not None else self.nodes
        for node in chosen:
            if node.pid is not None and node.running:
                _signal_group(node.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for node in chosen:
            if node.pid is None:
                node.drop_rpc()  # a client made after an earlier stop must not leak its socket
                continue
            while node.running and time.monotonic() < deadline:
                time.sleep(POLL_S)
            _signal_group(node.pid, signal.SIGKILL)  # stragglers and any children
            if node.proc is not None:
                node.proc.wait()
            node.pid = None  # reaped: the number may belong to another process soon
            node.drop_rpc()

    def kill(self, i: int, sig: signal.Signals = signal.SIGKILL, *, wait: bool = True) -> int | None:
        """Send `sig` to node `i`'s process group; with `wait`, return its exit code."""
        node = self.nodes[i]
        if node.pid is None:
            raise ClusterError(f"node {i} is not running")
        _signal_group(node.pid, sig)
        if not wait or node.proc is None:
            return None
        try:
            code = node.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ClusterError(f"node {i} still runs {STOP_TIMEOUT_S} s after {sig.name}") from None
        _signal_group(node.pid, signal.SIGKILL)  # anything left in its group
        node.pid = None
        node.drop_rpc()
        return code

    def restart(self, i: int) -> ClusterNode:
        """Stop node `i` if it runs and start it again on its data directory and old ports."""
        if self.nodes[i].running:
            self.stop([i])
        return self.start_node(i)

    def start_node(self, i: int, *, detach: bool = False) -> ClusterNode:
        """Start node `i` (bootstrapping from the running nodes) and wait for READY."""
        node = self.nodes[i]
        if node.running:
            raise ClusterError(f"node {i} is already running")
        self._spawn(node, detach=detach)
        try:
            return self._await_ready(node)
        except ClusterError:
            if not node.ready:
                raise
            # The old ports may be taken by now: try once more with fresh ones.
            node.ready = {}
            self._spawn(node, detach=detach)
            return self._await_ready(node)

    def add_follower(self) -> ClusterNode:
        """A new follower node (empty data dir), started and READY."""
        node = ClusterNode(
            index=len(self.nodes), data_dir=self.base_dir / f"node-{len(self.nodes)}", validator=False
        )
        self.nodes.append(node)
        return self.start_node(node.index)

    def add_node(self, key: PrivateKey, *, start: bool = True) -> ClusterNode:
        """A new node with a validator key that genesis does not list (empty data dir).

        It runs with ``--validator-key``: it follows until the key enters the
        validator set on chain, then votes (chain/validators.py).
        """
        index = len(self.nodes)
        node = ClusterNode(index=index, data_dir=self.base_dir / f"node-{index}", validator=True)
        node.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.nodes.append(node)
        self.use_key(index, key)
        return self.start_node(index) if start else node

    def use_key(self, i: int, key: PrivateKey) -> Path:
        """Give node `i` this validator key from its next start (a rotation): the key file's path."""
        node = self.nodes[i]
        path = node.data_dir / f"validator-{bytes(key.public_key).hex()[:8]}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.to_pem())
        node.extra_args = ["--validator-key", str(path)]
        return path

    # -- waiting --

    def running_nodes(self) -> list[ClusterNode]:
        """The nodes whose process is alive."""
        return [n for n in self.nodes if n.running]

    def wait_height(
        self, height: int, nodes: Sequence[int] | None = None, timeout: float = 30.0
    ) -> dict[int, int]:
        """Wait until every chosen node (default: the running ones) is at `height` or past it.

        Returns:
            Each node's height when the wait ended.

        Raises:
            ClusterError: naming the nodes that lag, with their heights.
        """
        chosen = list(nodes) if nodes is not None else [n.index for n in self.running_nodes()]
        return self._wait(lambda s: int(s["height"]) >= height, chosen, timeout, f"height {height}")

    def wait_peers(
        self, minimum: int = 1, nodes: Sequence[int] | None = None, timeout: float = 30.0
    ) -> dict[int, int]:
        """Wait until every chosen node has at least `minimum` connected peers."""
        chosen = list(nodes) if nodes is not None else [n.index for n in self.running_nodes()]
        return self._wait(lambda s: int(s["peers"]) >= minimum, chosen, timeout, f"{minimum} peers")

    def status(self, i: int) -> dict[str, Any]:
        """Node `i`'s RPC status as a dict."""
        return as_dict(self.nodes[i].rpc.status())

    # -- internals --

    def _wait(self, done: Any, chosen: list[int], timeout: float, what: str) -> dict[int, int]:
        deadline = time.monotonic() + timeout
        seen: dict[int, Any] = {}
        while True:
            pending = []
            for i in chosen:
                try:
                    status = self.status(i)
                except (NodeUnreachable, RpcError) as exc:  # not up (yet): keep waiting
                    seen[i] = f"unreachable ({type(exc).__name__})"
                    pending.append(i)
                    continue
                seen[i] = status.get("height")
                if not done(status):
                    pending.append(i)
            if not pending:
                return {i: int(seen[i]) for i in chosen}
            if time.monotonic() > deadline:
                lag = ", ".join(f"node {i}: {seen[i]}" for i in pending)
                raise ClusterError(f"not at {what} after {timeout:g} s ({lag})")
            time.sleep(0.1)

    def _write_genesis(self) -> Genesis:
        keys = []
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(node.data_dir, 0o700)
            if not node.validator:
                continue
            key_path = node.data_dir / "validator.pem"
            if key_path.exists():
                keys.append(PrivateKey.from_pem(key_path.read_bytes()))
                continue
            key = PrivateKey.generate(os.urandom(32))
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(key.to_pem())
            keys.append(key)
        if self.genesis_path.exists():
            return Genesis.from_json(self.genesis_path.read_text())
        base = make_single_validator_genesis(
            keys[0].public_key, genesis_time_ms=time.time_ns() // 1_000_000, chain_id="ledgerdns-cluster"
        )
        genesis = replace(
            base,
            params=replace(
                base.params,
                validators=ValidatorSet(tuple(k.public_key for k in keys)),
                consensus=self.consensus,
                nameservers=self.nameservers,
            ),
            validator_names=tuple(f"validator-{i}" for i in range(len(keys))),
        )
        self.genesis_path.write_text(genesis.to_json())
        return genesis

    def _command(self, node: ClusterNode) -> list[str]:
        old = node.ready
        if old:  # a restart: ask for the same ports so peers' addresses stay valid
            dns, rpc = str(old["dns"]), str(old["rpc"]).removeprefix("http://")
            p2p = [_strip_peer(a) for a in old["p2p"]]
        else:
            host = self.host_of(node.index)
            dns, rpc, p2p = f"{host}:0", f"{host}:0", [f"/ip4/{host}/tcp/0"]
        cmd = [
            self.python, "-m", "ledgerdns", "node",
            "--data-dir", str(node.data_dir),
            "--genesis", str(self.genesis_path),
            "--dns", dns, "--rpc", rpc,
            "--no-progress", "--log-level", self.log_level,
        ]  # fmt: skip
        for addr in p2p:
            cmd += ["--p2p", addr]
        for peer in self._bootstrap_for(node):
            cmd += ["--bootstrap", peer]
        cmd += node.extra_args
        return self.wrap(node, cmd) if self.wrap is not None else cmd

    def _bootstrap_for(self, node: ClusterNode) -> list[str]:
        """Up to three running, READY peers' first p2p addresses."""
        peers = [n for n in self.nodes if n is not node and n.ready and n.running]
        return [n.p2p[0] for n in peers[:3]]

    def _spawn(self, node: ClusterNode, *, detach: bool) -> None:
        cmd = self._command(node)
        node.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        out = node.data_dir / "stdout.log"
        out.write_bytes(b"")
        with open(out, "ab") as stdout, open(node.data_dir / "stderr.log", "ab") as stderr:
            node.log_from = stderr.tell()
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        node.proc = None if detach else proc
        node.pid = proc.pid
        node.drop_rpc()

    def _await_ready(self, node: ClusterNode) -> ClusterNode:
        assert node.pid is not None
        deadline = time.monotonic() + self.start_timeout
        out = node.data_dir / "stdout.log"
        while True:
            for line in out.read_text(errors="replace").splitlines():
                if line.startswith(READY_PREFIX):
                    node.ready = json.loads(line[len(READY_PREFIX):])
                    node.drop_rpc()
                    return node
            if not node.running:
                code = f" (code {node.proc.returncode})" if node.proc is not None else ""
                raise ClusterError(
                    f"node {node.index} exited{code} before READY; stderr:\n" + node.stderr_tail()
                )
            if time.monotonic() > deadline:
                _signal_group(node.pid, signal.SIGKILL)
                if node.proc is not None:
                    node.proc.wait()
                raise ClusterError(
                    f"node {node.index} not READY after {self.start_timeout:g} s; stderr:\n"
                    + node.stderr_tail()
                )
            time.sleep(POLL_S)


# -- helpers --


def _strip_peer(addr: str) -> str:
    return addr.split("/p2p/")[0]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie of a detached node (its parent is gone or not reaping) counts as dead
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path, lines: int, *, start: int = 0) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            text = handle.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(nothing logged)"


def as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if hasattr(value, "__dataclass_fields__"):
        return {name: getattr(value, name) for name in value.__dataclass_fields__}
    return dict(vars(value))
