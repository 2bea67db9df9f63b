"""The composition root: one running node wired from its parts.

`Node` opens the ledger, builds the network protocol (`ledgerdns.protocol`:
the three gossip topics, sync, offences) on a libp2p host, the consensus
driver (`ledgerdns.consensus`), and the DNS and RPC faces; `Node.run()`
starts them in one nursery. Once every listener is bound it writes
``node.json`` and prints the ``READY {...}`` line. Each face gets only what it
needs: DNS the finalized chain, a block feed and a writer; RPC a read model
(`ledgerdns.rpc.model.RpcModel`). The node itself is the feed, the writer and
the `NodeInfo`, by delegation to its parts. One wall clock
(`ledgerdns.clock.Clock`) is handed to every part that dates something.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Awaitable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import trio
from prometheus_client import CollectorRegistry

from chain.block import Block
from chain.consensus_messages import Evidence, InvalidProposal, Proposal
from chain.encoding import Kind
from chain.errors import ConfigError
from chain.evidence_store import list_evidence, list_invalid_proposals
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.quorum import CommitCertificate, Vote
from chain.snapshot_restore import is_partial
from chain.tx import Transaction
from chain.wire import message_kind, sync_protocol, topic
from ledgerdns.api.token import load_or_create_token
from ledgerdns.clock import SYSTEM_CLOCK, Clock
from ledgerdns.consensus.driver import ConsensusDriver
from ledgerdns.consensus.guardfile import GuardFile
from ledgerdns.dns.server import DnsServer
from ledgerdns.node.config import NodeConfig, Prepared
from ledgerdns.node.dns import DnsFaces, TlsFace, build_dns_server, build_tls_faces
from ledgerdns.node.heap import dump_snapshot
from ledgerdns.node.metrics import CommitTimes, serve_metrics, topic_name
from ledgerdns.node.reload import Reloader
from ledgerdns.node.settings_file import load_node_settings
from ledgerdns.p2p import P2PConfig, P2PService
from ledgerdns.p2p.host import DEFAULT_MESH, FOLLOWER_MESH
from ledgerdns.protocol.consensus_gossip import ConsensusGossip, describe
from ledgerdns.protocol.notices import BlockListener, CommitNotices, Commits
from ledgerdns.protocol.offences import Offences
from ledgerdns.protocol.pruner import Pruner
from ledgerdns.protocol.snapshots import Snapshots, SnapshotStore, snapshot_protocol
from ledgerdns.protocol.statesync import StateSync
from ledgerdns.protocol.sync import Syncer, SyncServer
from ledgerdns.protocol.txgossip import TxGossip
from ledgerdns.protocol.validator_links import ValidatorLinks
from ledgerdns.protocol.views import list_peers, list_validators
from ledgerdns.rpc.model import RpcModel
from ledgerdns.rpc.server import serve_rpc
from ledgerdns.services import NodeStatus, PeerInfo, ValidatorInfo
from ledgerdns.storage.leveldb import LevelDBStore

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("ledgerdns.node")
T = TypeVar("T")


def _version() -> str:
    try:
        return version("ledgerdns")
    except PackageNotFoundError:
        return "dev"


class Node:
    """A ledgerdns node: validator (its key is in genesis) or follower."""

    def __init__(
        self, config: NodeConfig, prepared: Prepared, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.config = config
        self.clock = clock
        self._genesis = genesis = prepared.genesis
        self.key = prepared.key
        self.store = _open_store(config.data_dir / "chain")
        self._ledger = ledger = Ledger(self.store, genesis)
        ledger.initialize()
        self._mempool = mempool = Mempool(genesis.params, chain=ledger)
        self.topics = {name: topic(genesis.chain_id, name) for name in ("txs", "consensus", "blocks")}
        self.p2p = p2p = P2PService(
            P2PConfig(
                key_path=config.data_dir / "node.key",
                listen=list(config.p2p),
                bootstrap=list(config.bootstrap),
                topics=list(self.topics.values()),
                mdns=config.mdns,
                mesh=DEFAULT_MESH if prepared.key is not None else FOLLOWER_MESH,
            ),
            clock,
        )
        self.offences = Offences(genesis, p2p)
        self.offences.names = ledger.validator_name  # validators added on chain by name too
        self.links = ValidatorLinks(
            genesis=genesis, ledger=ledger, p2p=p2p, key=self.key, clock=clock,
            consensus_topic=self.topics["consensus"], blocks_topic=self.topics["blocks"],
        )  # fmt: skip
        self.driver = driver = ConsensusDriver(
            genesis=genesis,
            ledger=ledger,
            mempool=mempool,
            key=self.key,
            guard_file=GuardFile(config.data_dir / "guard") if self.key else None,
            broadcast=self._broadcast,
            committed=self._committed,
            clock=clock,
            offence=self.offences.on_offence,
        )
        self.sync_server = SyncServer(genesis, ledger)
        self.syncer = Syncer(genesis=genesis, ledger=ledger, driver=driver, p2p=p2p, progress=config.progress)
        self.txs = TxGossip(
            genesis=genesis, ledger=ledger, mempool=mempool, p2p=p2p, topic=self.topics["txs"],
            txs_available=driver.txs_available, clock=clock,
        )  # fmt: skip
        self.consensus = ConsensusGossip(
            genesis=genesis, ledger=ledger, p2p=p2p, topic=self.topics["consensus"], driver=driver,
            syncer=self.syncer, offences=self.offences, resend_pending=self.txs.resend_pending,
            clock=clock, resend=self.links.resend,
        )  # fmt: skip
        self.notices = CommitNotices(
            genesis=genesis, ledger=ledger, p2p=p2p, topic=self.topics["blocks"], driver=driver,
            syncer=self.syncer,
        )  # fmt: skip
        self.commits = Commits(ledger=ledger, mempool=mempool, notices=self.notices)
        self.snapshots = Snapshots(
            ledger=ledger, store=SnapshotStore(config.data_dir / "snapshots"),
            interval=config.snapshot_interval,
        )  # fmt: skip
        self.commits.on_block_applied(self.snapshots.on_block)
        self.pruner = Pruner(ledger=ledger, retain=config.retain_blocks)
        self.commits.on_block_applied(self.pruner.on_block)
        self.state_sync: StateSync | None = None
        if config.state_sync and ledger.height == 0:
            self.state_sync = StateSync(
                genesis=genesis, ledger=ledger, p2p=p2p,
                protocol=snapshot_protocol(genesis.chain_id), wait_s=config.state_sync_wait_s,
            )  # fmt: skip
        self.links.attach(self.consensus)
        self.ready: dict[str, Any] = {}
        self.dns: DnsServer | None = None  # built by `run` (a bad settings file fails there)
        self.tls_faces: list[TlsFace] = []  # DoT and DoH, when asked for: built by `run` too
        self.registry = CollectorRegistry(auto_describe=False)  # served by --metrics
        self.commit_times = CommitTimes(self.registry)
        self.reloader: Reloader | None = None  # the settings file's, once DNS is built

    # -- running --

    @property
    def validator_name(self) -> str | None:
        """Our name in the validator set of the height being decided (None: we follow)."""
        if self.key is None:
            return None
        return self._ledger.roster_at(self._ledger.height + 1).name_of(self.key.public_key)

    async def run(self, *, task_status: TaskStatus[dict[str, Any]] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; `task_status.started(ready_info)` once every listener is bound."""
        p2p = self.p2p
        for name, face in (("txs", self.txs), ("consensus", self.consensus)):
            p2p.set_validator(self.topics[name], face.validate)
            p2p.set_handler(self.topics[name], face.on_message)
        p2p.set_validator(self.topics["blocks"], self._validate_blocks_topic)
        p2p.set_handler(self.topics["blocks"], self._on_blocks_topic)
        self.links.register()
        p2p.set_request_handler(sync_protocol(self._genesis.chain_id), self.sync_server.handle)
        p2p.set_request_handler(snapshot_protocol(self._genesis.chain_id), self.snapshots.handle)
        token = load_or_create_token(self.config.data_dir)
        try:
            async with trio.open_nursery() as nursery:
                # a bad settings file fails here, first
                settings = load_node_settings(self.config.settings_path)
                faces = DnsFaces(self.config, chain=self._ledger, writer=self, clock=self.clock)
                dns = self.dns = build_dns_server(
                    self.config, chain=self._ledger, blocks=self, writer=self, clock=self.clock,
                    settings=settings.dns, faces=faces,
                )  # fmt: skip
                tls_faces = self.tls_faces = build_tls_faces(
                    self.config, dns, self._genesis, clock=self.clock
                )
                self.reloader = Reloader(self.config, settings, dns, faces, self.clock)
                self.reloader.start()
                await nursery.start(p2p.run)
                if self.state_sync is not None and await self.state_sync.join():
                    self.driver.restart_at_head()
                dns_addr = await _listen("DNS (--dns)", self.config.dns, nursery.start(dns.run))
                tls_addrs = {
                    face.name: _host_port(await _listen(
                        face.option, face.address,
                        nursery.start(face.front.run, *face.address),
                    ))
                    for face in tls_faces
                }  # fmt: skip
                model = RpcModel(
                    genesis=self._genesis, chain=self._ledger, pool=self._mempool, node=self,
                    writer=self, admin=self,
                )  # fmt: skip
                rpc_addr = await _listen(
                    "RPC (--rpc)", self.config.rpc, nursery.start(serve_rpc, model, token, *self.config.rpc)
                )
                metrics = self.config.metrics
                if metrics is not None:
                    metrics = await _listen(
                        "metrics (--metrics)", metrics, nursery.start(serve_metrics, self, *metrics)
                    )
                await nursery.start(self.notices.run)
                await nursery.start(self.links.run)
                await nursery.start(self.consensus.run)
                await nursery.start(self.driver.run)
                nursery.start_soon(self.syncer.run)
                await nursery.start(self.snapshots.run)
                await nursery.start(self.pruner.run)
                await nursery.start(self.syncer.foreign.run)  # peers of another network
                nursery.start_soon(self.txs.run_outbox)
                nursery.start_soon(self.txs.sweep_expired)
                self.ready = {
                    "peer_id": p2p.peer_id,
                    "dns": _host_port(dns_addr),
                    "rpc": f"http://{_host_port(rpc_addr)}",
                    "p2p": list(p2p.listen_addrs),
                    "chain_id": self._genesis.chain_id,
                    "validator": self.validator_name,
                    "height": self._ledger.height,
                    **tls_addrs,
                }
                if metrics is not None:
                    self.ready["metrics"] = f"http://{_host_port(metrics)}"
                _write_private(self.config.data_dir / "node.json", json.dumps(self.ready, indent=2))
                task_status.started(self.ready)
                await trio.sleep_forever()
        finally:
            if self.reloader is not None:
                self.reloader.close()
            (self.config.data_dir / "node.json").unlink(missing_ok=True)

    def close(self) -> None:
        """Release the store (after `run` returned)."""
        self.store.close()

    async def _broadcast(self, message: Proposal | Vote) -> None:
        log.debug("send %s h=%d r=%d", describe(message), message.height, message.round)
        await self.links.broadcast(message)

    def _validate_blocks_topic(self, peer: str, data: bytes) -> bool:
        """The ``blocks`` topic carries commit notices and validator hellos."""
        if message_kind(data) == Kind.VALIDATOR_HELLO:
            return self.links.validate_hello(peer, data)
        return self.notices.validate(peer, data)

    async def _on_blocks_topic(self, peer: str, data: bytes) -> None:
        if message_kind(data) != Kind.VALIDATOR_HELLO:  # a hello was learnt by the filter
            await self.notices.on_message(peer, data)

    async def _committed(self, block: Block, certificate: CommitCertificate, mine: bool) -> None:
        self.commit_times.committed(certificate, syncing=self.syncer.syncing)
        await self.commits.committed(block, certificate, mine)

    # -- what the faces see: NodeInfo, the writer, the block feed --

    @property
    def genesis(self) -> Genesis:
        return self._genesis

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    @property
    def mempool(self) -> Mempool:
        return self._mempool

    def status(self) -> NodeStatus:
        head = self._ledger.head
        machine = self.driver.machine
        return NodeStatus(
            chain_id=self._genesis.chain_id,
            genesis_hash=self._genesis.hash(),
            peer_id=self.p2p.peer_id,
            validator=self.validator_name,
            height=head.height,
            head_hash=head.hash,
            head_time_ms=head.time_ms,
            syncing=self.syncer.syncing,
            sync_target=max(self.syncer.target, head.height),
            mempool_txs=len(self._mempool),
            peers=len(self.p2p.connected_peers()),
            consensus_height=machine.height,
            consensus_round=machine.round,
            consensus_step=machine.step.name.lower(),
            version=_version(),
            blocks_via_sync=self.syncer.blocks_via_sync,
            validators_linked=self.links.linked_validators(),
            validators_known=len(self.links.directory),
            votes_to_proposer=self.links.votes_to_proposer,
            votes_relayed=self.links.relay.votes_relayed,
            gossip_received={topic_name(t): n for t, n in self.p2p.received.items()},
            gossip_mesh={topic_name(t): n for t, n in self.p2p.mesh_sizes().items()},
        )

    async def submit(self, tx: Transaction) -> None:
        await self.txs.submit(tx)

    def pending_for(self, domain: str) -> list[Transaction]:
        return self._mempool.pending_for(domain)

    async def wait_finalized(self, txid: bytes, timeout_s: float) -> tuple[int, int] | None:
        return await self.commits.wait_finalized(txid, timeout_s)

    def peers(self) -> list[PeerInfo]:
        named = self._ledger.validator_name
        by_hello = {peer: name for peer, key in self.links.validator_peers().items()
                    if (name := named(key)) is not None}  # fmt: skip
        return list_peers(self.p2p, {**by_hello, **self.consensus.peer_validator})

    def validators(self) -> list[ValidatorInfo]:
        return list_validators(
            self._genesis, self.driver, self.key, self.clock.now_ms(),
            connected=self.links.connected_validators(),
        )  # fmt: skip

    def evidence(self) -> list[Evidence]:
        return list(reversed(list_evidence(self.store)))

    def invalid_proposals(self) -> list[InvalidProposal]:
        return list(reversed(list_invalid_proposals(self.store)))

    def on_block_applied(self, callback: BlockListener) -> None:
        self.commits.on_block_applied(callback)

    # -- maintenance (``/v1/admin/...``) --

    def flush_store(self) -> int:
        """Write LevelDB's memtable out now; LevelDB's memory estimate afterwards (bytes)."""
        self.store.flush()
        return self.store.memory_usage()


async def _listen(what: str, addr: tuple[str, int], starting: Awaitable[T]) -> T:
    """Await a listener's start; a bind failure becomes a ConfigError naming the option."""
    try:
        return await starting
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"{what}: cannot listen on {_host_port(addr)}: {reason}") from None


def _host_port(addr: tuple[str, int]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _open_store(path: Path) -> LevelDBStore:
    """The chain store; one a state sync left unfinished is emptied first (it starts over)."""
    store = LevelDBStore.open(path)
    if is_partial(store):
        log.warning("state sync: %s holds an unfinished state sync; starting over", path)
        store.close()
        shutil.rmtree(path)
        store = LevelDBStore.open(path)
    return store


async def run_node(config: NodeConfig, prepared: Prepared, clock: Clock = SYSTEM_CLOCK) -> None:
    """Run a node until SIGTERM or SIGINT; print the READY line once listening.

    SIGHUP reads the settings file again (`ledgerdns.node.reload`). SIGUSR1
    writes a heap snapshot to the data directory when tracemalloc is on
    (`ledgerdns.node.heap`).
    """
    node = Node(config, prepared, clock)
    try:
        async with trio.open_nursery() as nursery:
            ready = await nursery.start(node.run)
            stops = (signal.SIGTERM, signal.SIGINT)
            # The handlers are in place before READY: a signal sent right after it is ours.
            with trio.open_signal_receiver(*stops, signal.SIGUSR1, signal.SIGHUP) as signals:
                keys = ("peer_id", "dns", "rpc", "p2p", "metrics", "dot", "doh")
                line = {k: ready[k] for k in keys if k in ready}
                print("READY " + json.dumps(line), flush=True)
                log.info(
                    "%s %s on %s at height %d: DNS %s, RPC %s",
                    "validator" if node.validator_name else "follower",
                    node.validator_name or node.p2p.peer_id,
                    node.genesis.chain_id, node.ledger.height, ready["dns"], ready["rpc"],
                )  # fmt: skip
                async for signum in signals:
                    if signum == signal.SIGUSR1:  # a heap snapshot (ledgerdns.node.heap)
                        dump_snapshot(config.data_dir, clock.now_ms())
                        continue
                    if signum == signal.SIGHUP:  # the settings file again (node/reload.py)
                        if node.reloader is not None:
                            node.reloader.reload()
                        continue
                    log.info("%s: shutting down", signal.Signals(signum).name)
                    break
            nursery.cancel_scope.cancel()
    finally:
        node.close()
    sys.stdout.flush()
