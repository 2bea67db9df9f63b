"""The composition root: one running node wired from its parts.

`Node.run()` opens the ledger, joins the network (libp2p: gossip topics for
transactions, consensus messages and commit notices; Kademlia; sync), drives
consensus, and serves DNS and RPC. Once every listener is bound it writes
``node.json`` and prints the ``READY {...}`` line. It implements
`ledgerdns.services.NodeServices` for the RPC and DNS faces.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from chain.block import Block
from chain.consensus import ROUND_WINDOW
from chain.consensus_messages import Evidence, Proposal
from chain.encoding import Kind
from chain.errors import ConfigError, InvalidUpdate, NotFound, RejectReason
from chain.evidence_store import list_evidence
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.quorum import CommitCertificate, Vote
from chain.rules import check_tx_static
from chain.tx import Transaction
from chain.wire import (
    MAX_BATCH_BYTES,
    MAX_BATCH_TXS,
    CommitNotice,
    Resent,
    TxBatch,
    decode_consensus,
    message_kind,
    sync_protocol,
    topic,
    unwrap_resent,
)
from ledgerdns.consensus.guardfile import GuardFile
from ledgerdns.node.config import NodeConfig, Prepared
from ledgerdns.node.dns import build_dns_server
from ledgerdns.node.driver import ConsensusDriver, now_ms
from ledgerdns.node.offences import Offences
from ledgerdns.node.sync import Syncer, SyncServer
from ledgerdns.p2p import P2PConfig, P2PNode
from ledgerdns.rpc.server import serve_rpc
from ledgerdns.rpc.token import load_or_create_token
from ledgerdns.services import NodeStatus, PeerInfo, ValidatorInfo
from ledgerdns.storage.leveldb import LevelDBStore

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("ledgerdns.node")
T = TypeVar("T")

TX_BATCH_DELAY_S = 0.003  # a burst of submissions ends after this long without one
TX_BATCH_MAX_WAIT_S = 0.02  # never hold a submission longer than this
TX_BATCH_MAX = MAX_BATCH_TXS
TX_BATCH_BYTES = MAX_BATCH_BYTES - 64 * 1024  # room for framing
ONLINE_WINDOW_MS = 30_000
BAD_MESSAGE_PENALTY = 25
PENALIZED_LISTED = 256  # peers penalized lately, listed by peers() even once disconnected
EXPIRY_SWEEP_S = 10.0
RESEND_S = 2.0
PENDING_RESEND_S = 10.0  # a local submission still pending this long is gossiped again
DECODED_CACHE = 256
NOTICE_DELAY_S = 0.5


def _version() -> str:
    try:
        return version("ledgerdns")
    except PackageNotFoundError:
        return "dev"


class Node:
    """A ledgerdns node: validator (its key is in genesis) or follower."""

    def __init__(self, config: NodeConfig, prepared: Prepared) -> None:
        self.config = config
        self._genesis = prepared.genesis
        self.key = prepared.key
        self.validator_name = prepared.validator_name
        self.store = LevelDBStore.open(config.data_dir / "chain")
        self._ledger = Ledger(self.store, self._genesis)
        self._ledger.initialize()
        self._mempool = Mempool(self._genesis.params)
        chain_id = self._genesis.chain_id
        self.topics = {name: topic(chain_id, name) for name in ("txs", "consensus", "blocks")}
        self.p2p = P2PNode(
            P2PConfig(
                key_path=config.data_dir / "node.key",
                listen=list(config.p2p),
                bootstrap=list(config.bootstrap),
                topics=list(self.topics.values()),
                mdns=config.mdns,
            )
        )
        self._offences = Offences(self._genesis, self.p2p)
        self.driver = ConsensusDriver(
            genesis=self._genesis,
            ledger=self._ledger,
            mempool=self._mempool,
            key=self.key,
            guard_file=GuardFile(config.data_dir / "guard") if self.key else None,
            broadcast=self._broadcast,
            committed=self._on_committed,
            offence=self._offences.on_offence,
        )
        self.sync_server = SyncServer(self._genesis, self._ledger)
        self.syncer = Syncer(
            genesis=self._genesis,
            ledger=self._ledger,
            driver=self.driver,
            p2p=self.p2p,
            progress=config.progress,
        )
        self._callbacks: list[Callable[[int, frozenset[str]], None]] = []
        self._waiters: dict[bytes, trio.Event] = {}
        self._outbox: list[Transaction] = []
        # recent local submissions, for re-sending: txid -> (tx, when last gossiped)
        self._outbox_sent: dict[bytes, tuple[Transaction, float]] = {}
        self._outbox_ready = trio.Event()
        self._peer_validator: dict[str, str] = {}
        self._decoded: dict[bytes, Proposal | Vote] = {}
        self.ready: dict[str, Any] = {}
        self._nursery: trio.Nursery | None = None

    # -- running --

    async def run(self, *, task_status: TaskStatus[dict[str, Any]] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; `task_status.started(ready_info)` once every listener is bound."""
        p2p = self.p2p
        p2p.set_validator(self.topics["txs"], self._validate_txs)
        p2p.set_handler(self.topics["txs"], self._on_txs)
        p2p.set_validator(self.topics["consensus"], self._validate_consensus)
        p2p.set_handler(self.topics["consensus"], self._on_consensus)
        p2p.set_validator(self.topics["blocks"], self._validate_notice)
        p2p.set_handler(self.topics["blocks"], self._on_notice)
        p2p.set_request_handler(sync_protocol(self._genesis.chain_id), self.sync_server.handle)
        token = load_or_create_token(self.config.data_dir)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                dns = build_dns_server(self, self.config)  # a bad settings file fails here, first
                await nursery.start(p2p.run)
                dns_addr = await _listen("DNS (--dns)", self.config.dns, nursery.start(dns.run))
                rpc_addr = await _listen(
                    "RPC (--rpc)", self.config.rpc, nursery.start(serve_rpc, self, token, *self.config.rpc)
                )
                await nursery.start(self.driver.run)
                nursery.start_soon(self.syncer.run)
                nursery.start_soon(self._gossip_outbox)
                nursery.start_soon(self._sweep_expired)
                nursery.start_soon(self._resend_when_stuck)
                self.ready = {
                    "peer_id": p2p.peer_id,
                    "dns": _host_port(dns_addr),
                    "rpc": f"http://{_host_port(rpc_addr)}",
                    "p2p": list(p2p.listen_addrs),
                    "chain_id": self._genesis.chain_id,
                    "validator": self.validator_name,
                    "height": self._ledger.height,
                }
                _write_private(self.config.data_dir / "node.json", json.dumps(self.ready, indent=2))
                task_status.started(self.ready)
                await trio.sleep_forever()
        finally:
            (self.config.data_dir / "node.json").unlink(missing_ok=True)

    def close(self) -> None:
        """Release the store (after `run` returned)."""
        self.store.close()

    # -- NodeServices --

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
        )

    async def submit(self, tx: Transaction) -> None:
        self._admit(tx)
        self._outbox.append(tx)
        self._outbox_ready.set()  # the outbox gossips it and wakes consensus

    async def wait_finalized(self, txid: bytes, timeout_s: float) -> tuple[int, int] | None:
        with trio.move_on_after(timeout_s):
            while True:
                try:
                    _, height, index = self._ledger.get_tx(txid)
                    return height, index
                except NotFound:
                    pass
                event = self._waiters.setdefault(txid, trio.Event())
                await event.wait()
        return None

    def peers(self) -> list[PeerInfo]:
        """Connected peers, then peers penalized lately (a banned one is disconnected)."""
        connected = self.p2p.connected_peers()
        known = set(connected)
        recent = self.p2p.penalized_peers()[-PENALIZED_LISTED:]
        listed = connected + [p for p in recent if p not in known]
        out = []
        for peer in listed:
            penalty = self.p2p.penalty(peer)
            out.append(
                PeerInfo(
                    peer_id=peer,
                    addrs=tuple(self.p2p.peer_addrs(peer)),
                    connected=peer in known,
                    validator=self._peer_validator.get(peer),
                    penalty=penalty,
                    banned=self.p2p.is_banned(peer),
                )
            )
        return out

    def validators(self) -> list[ValidatorInfo]:
        out = []
        now = now_ms()
        p = self._genesis.params
        for name, key in zip(self._genesis.validator_names, p.validators.keys, strict=True):
            if self.key is not None and key == self.key.public_key:
                seen = (now, self.driver.machine.height, self.driver.machine.round)
            else:
                seen = self.driver.last_seen.get(bytes(key), (0, -1, -1))
            out.append(
                ValidatorInfo(
                    name=name,
                    public_key=bytes(key),
                    online=seen[0] > 0 and now - seen[0] < ONLINE_WINDOW_MS,
                    last_vote_height=seen[1],
                    last_vote_round=seen[2],
                    last_seen_ms=seen[0],
                )
            )
        return out

    def evidence(self) -> list[Evidence]:
        return list(reversed(list_evidence(self.store)))

    def on_block_applied(self, callback: Callable[[int, frozenset[str]], None]) -> None:
        self._callbacks.append(callback)

    # -- transactions --

    def _admit(self, tx: Transaction) -> None:
        """Add to the mempool (raises InvalidUpdate), refusing already finalized txids."""
        try:
            self._ledger.get_tx(tx.txid)
        except NotFound:
            pass
        else:
            raise InvalidUpdate(RejectReason.DUPLICATE, f"{tx.txid.hex()[:16]} is already final")
        self._mempool.add(tx, self._ledger.get_domain, time.time_ns() // 1_000_000_000)

    async def _gossip_outbox(self) -> None:
        """Gossip local submissions in batches, then tell consensus there is work.

        Submissions come one by one (each RPC call) or in bursts (batch calls,
        zone imports): waiting until none arrived for `TX_BATCH_DELAY_S` (at most
        `TX_BATCH_MAX_WAIT_S`) turns a burst into a few large gossip messages,
        which cost far less than many small ones.
        """
        last_flush = -1.0
        while True:
            await self._outbox_ready.wait()
            # A lone submission after a quiet spell goes out at once (latency); the
            # rest of a burst is gathered (throughput).
            if trio.current_time() - last_flush < TX_BATCH_MAX_WAIT_S:
                deadline = trio.current_time() + TX_BATCH_MAX_WAIT_S
                seen = -1
                while seen != len(self._outbox) and len(self._outbox) < TX_BATCH_MAX:
                    seen = len(self._outbox)
                    if trio.current_time() >= deadline:
                        break
                    await trio.sleep(TX_BATCH_DELAY_S)
            last_flush = trio.current_time()
            self._outbox_ready = trio.Event()
            while self._outbox:
                batch = _take_batch(self._outbox)
                await self.p2p.publish(self.topics["txs"], TxBatch(tuple(batch)).to_bytes())
                now = trio.current_time()
                for tx in batch:
                    self._outbox_sent[tx.txid] = (tx, now)
                while len(self._outbox_sent) > TX_BATCH_MAX:
                    del self._outbox_sent[next(iter(self._outbox_sent))]
            await self.driver.txs_available()

    def _validate_txs(self, peer: str, data: bytes) -> bool:
        """Admit a gossiped batch; drop and penalize one no honest peer sends.

        The batch is decoded under the genesis record limits (a record set over
        them is refused before its records are built) and every transaction
        must pass `check_tx_static` before any is admitted. One that fails can
        never be valid, whatever the state or the clock: the whole batch is
        dropped, not forwarded, and its sender pays the rejection's penalty
        (at least `BAD_MESSAGE_PENALTY`). What admission refuses after that
        (stale, duplicate, expired, a full mempool) depends on this node's
        state or clock, which an honest peer may see otherwise: penalty 0, and
        the batch goes on (issue 13).
        """
        params = self._genesis.params
        try:
            # `_resend_pending` wraps batches in `Resent`.
            batch = TxBatch.from_bytes(unwrap_resent(data), limits=params.record_limits)
            for tx in batch.txs:
                check_tx_static(tx, params)
        except InvalidUpdate as exc:
            self.p2p.penalize(peer, max(exc.penalty, BAD_MESSAGE_PENALTY), f"tx batch: {exc}")
            return False
        for tx in batch.txs:
            try:
                self._admit(tx)
            except InvalidUpdate as exc:
                if exc.penalty:  # none once `check_tx_static` passed; kept honest if one is added
                    self.p2p.penalize(peer, exc.penalty, f"gossiped tx: {exc}")
                    return False
        return True

    async def _on_txs(self, peer: str, data: bytes) -> None:
        log.debug("txs from %s, mempool %d", peer[-6:], len(self._mempool))
        if len(self._mempool):
            await self.driver.txs_available()

    async def _resend_when_stuck(self) -> None:
        """Re-send consensus messages and local transactions that gossip may have lost.

        Gossip delivers each message once, to whoever is connected then. A
        validator that restarts or heals from a partition mid-height has missed
        them; the height would wait for it forever. Every `RESEND_S` that the
        finalized height did not move (rounds may come and go meanwhile: they
        are what a stuck height looks like), each node publishes again its own
        messages of the current height and the prevotes behind its lock
        (`ConsensusDriver.stuck_messages`), which lets the late one catch up and
        the quorum form. Local submissions still pending are re-sent too
        (`_resend_pending`).
        """
        last = self._ledger.height
        while True:
            await trio.sleep(RESEND_S)
            stuck = self._ledger.height == last
            last = self._ledger.height
            if stuck:
                for message in self.driver.stuck_messages():
                    resent = Resent(nonce=time.time_ns(), payload=message.to_bytes())
                    await self.p2p.publish(self.topics["consensus"], resent.to_bytes())
            await self._resend_pending(stuck)

    async def _resend_pending(self, stuck: bool) -> None:
        """Gossip again the local submissions still in the mempool after a while.

        A write accepted on the losing side of a partition reached only that side;
        after the heal the others keep finalizing their own traffic, so the height
        is rarely stuck and this node would never tell them. Each pending one goes
        out again `RESEND_S` after its last sending while the height is stuck,
        `PENDING_RESEND_S` otherwise (a busy network's backlog is not stuck). The
        batch is wrapped in `Resent`: the same bytes again would be dropped as
        already seen, by this node's own gossip first.
        """
        now = trio.current_time()
        wait = RESEND_S if stuck else PENDING_RESEND_S
        for txid in [t for t in self._outbox_sent if t not in self._mempool]:
            del self._outbox_sent[txid]
        due = [tx for tx, sent in self._outbox_sent.values() if now - sent >= wait - 0.1]
        for tx in due:
            self._outbox_sent[tx.txid] = (tx, now)
        while due:
            batch = TxBatch(tuple(_take_batch(due))).to_bytes()
            resent = Resent(nonce=time.time_ns(), payload=batch)
            await self.p2p.publish(self.topics["txs"], resent.to_bytes())

    async def _sweep_expired(self) -> None:
        while True:
            await trio.sleep(EXPIRY_SWEEP_S)
            self._mempool.remove_expired(time.time_ns() // 1_000_000_000)

    # -- consensus --

    async def _broadcast(self, message: Proposal | Vote) -> None:
        log.debug("send %s h=%d r=%d", _describe(message), message.height, message.round)
        await self.p2p.publish(self.topics["consensus"], message.to_bytes())

    def _decode_consensus(self, data: bytes) -> Proposal | Vote:
        """Decode a consensus gossip message (the gossip filter's result is reused)."""
        known = self._decoded.pop(data, None)
        if known is not None:
            return known
        # A proposal is authenticated from its header before its body is decoded.
        return decode_consensus(data, self._genesis.params)

    def _validate_consensus(self, peer: str, data: bytes) -> bool:
        try:
            message = self._decode_consensus(data)
            if len(self._decoded) >= DECODED_CACHE:
                del self._decoded[next(iter(self._decoded))]
            self._decoded[data] = message  # for the handler, which gets the same bytes
            if message.chain_id != self._genesis.chain_id:
                raise InvalidUpdate(RejectReason.WRONG_CHAIN, "consensus message for another network")
            validators = self._genesis.params.validators
            signer = message.proposer if isinstance(message, Proposal) else message.validator
            if validators.index_of(signer) is None:
                raise InvalidUpdate(RejectReason.UNKNOWN_VALIDATOR, "signed by a non-validator")
            if not message.is_valid_signature(self._genesis.hash()):
                raise InvalidUpdate(RejectReason.BAD_SIGNATURE, "bad signature")
        except InvalidUpdate as exc:
            self.p2p.penalize(peer, BAD_MESSAGE_PENALTY, f"consensus message: {exc}")
            return False
        # Old heights are not forwarded (nobody needs them), but are not the sender's fault.
        return message.height > self._ledger.height and self._worth_forwarding(peer, message)

    def _worth_forwarding(self, peer: str, message: Proposal | Vote) -> bool:
        """Whether a valid consensus message is close enough to where we are to pass on.

        The machine keeps nothing past `ROUND_WINDOW` rounds ahead (a vote further on only
        tells the round-skip rule where its signer is) and nothing two heights ahead. A
        Byzantine validator signing votes for every round up to 2**31 would otherwise have
        every honest node forward each one to all its peers. Such a message is still shown
        to the machine (for the skip rule) and to sync, just not passed on.
        """
        machine = self.driver.machine
        if message.height == machine.height and message.round <= machine.round + ROUND_WINDOW:
            return True
        if message.height == machine.height + 1 and message.round <= ROUND_WINDOW:
            return True
        if self._nursery is not None:
            if message.height == machine.height:
                self._nursery.start_soon(self._hand_to_machine, peer, message)
            elif message.height > self._ledger.height + 1:
                self.syncer.poke(message.height - 1)
        return False

    async def _hand_to_machine(self, peer: str, message: Proposal | Vote) -> None:
        try:
            await self.driver.on_message(message)
        except InvalidUpdate as exc:
            self.p2p.penalize(peer, BAD_MESSAGE_PENALTY, f"consensus message: {exc}")

    async def _on_consensus(self, peer: str, data: bytes) -> None:
        try:
            message = self._decode_consensus(data)
        except InvalidUpdate:
            return
        log.debug("got %s h=%d r=%d from %s", _describe(message), message.height, message.round, peer[-6:])
        signer = message.proposer if isinstance(message, Proposal) else message.validator
        index = self._genesis.params.validators.index_of(signer)
        if index is not None and message_kind(data) != Kind.RESENT:
            # Published first-hand (a node re-sending relays others' votes too), and
            # noted before the machine can find the signer misbehaving.
            self._peer_validator.setdefault(peer, self._genesis.validator_names[index])
            self._offences.origins.note(bytes(signer), peer)
        if isinstance(message, Vote):
            # In any wrapping: no honest node publishes two votes of one validator for one step.
            self._offences.on_vote(peer, message, self._ledger.height + 1)
        if message.height > self._ledger.height + 1:
            self.syncer.poke(message.height - 1)
        try:
            await self.driver.on_message(message)
        except InvalidUpdate as exc:
            self.p2p.penalize(peer, BAD_MESSAGE_PENALTY, f"consensus message: {exc}")

    def _validate_notice(self, peer: str, data: bytes) -> bool:
        try:
            notice = CommitNotice.from_bytes(data)
            params = self._genesis.params
            notice.certificate.verify(
                params.validators, params.chain_id, notice.block_hash,
                genesis_hash=params.genesis_hash,
            )  # fmt: skip
        except InvalidUpdate as exc:
            self.p2p.penalize(peer, BAD_MESSAGE_PENALTY, f"commit notice: {exc}")
            return False
        return True

    async def _on_notice(self, peer: str, data: bytes) -> None:
        notice = CommitNotice.from_bytes(data)
        height = notice.height
        if height <= self._ledger.height:
            return
        block = self.driver.proposed_block(height, notice.block_hash)
        if height == self._ledger.height + 1 and block is not None:
            try:
                await self.driver.apply_finalized(block, notice.certificate)
            except InvalidUpdate as exc:
                log.error("a certified block does not apply: %s", exc)
            return
        self.syncer.poke(height)

    async def _on_committed(self, block: Block, certificate: CommitCertificate, mine: bool) -> None:
        """After a block is stored: mempool, waiters, DNS caches, and the commit notice."""
        now_s = block.header.time_ms // 1000
        for tx, error in self._mempool.block_applied(block.txs, self._ledger.get_domain, now_s):
            log.info("dropped %s from the mempool: %s", tx.txid.hex()[:16], error)
        for tx in block.txs:
            event = self._waiters.pop(tx.txid, None)
            if event is not None:
                event.set()
        changed = frozenset(tx.body.domain for tx in block.txs)
        for callback in self._callbacks:
            callback(block.height, changed)
        if block.txs:
            log.info("block %d: %d txs", block.height, len(block.txs))
        if mine and self._nursery is not None:
            notice = CommitNotice(height=block.height, block_hash=block.hash, certificate=certificate)
            self._nursery.start_soon(self._announce, notice)

    async def _announce(self, notice: CommitNotice) -> None:
        """Publish a commit notice a little later, unless a later block is final by then.

        Nodes that saw the votes decided on their own; the notice is for those
        that missed some, and half a second does not matter to them. Under
        steady traffic only the last block of a run is announced, which keeps
        notices off the path of the next heights' votes.
        """
        await trio.sleep(NOTICE_DELAY_S)
        if self._ledger.height > notice.height:
            return  # a later block is final: nodes still behind learn of it from that one or by sync
        await self.p2p.publish(self.topics["blocks"], notice.to_bytes())


async def _listen(what: str, addr: tuple[str, int], starting: Awaitable[T]) -> T:
    """Await a listener's start; a bind failure becomes a ConfigError naming the option."""
    try:
        return await starting
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"{what}: cannot listen on {_host_port(addr)}: {reason}") from None


def _describe(message: Proposal | Vote) -> str:
    return "proposal" if isinstance(message, Proposal) else message.vtype.name.lower()


def _take_batch(txs: list[Transaction]) -> list[Transaction]:
    """Remove and return the first transactions of `txs` that fit one gossip batch."""
    size = 0
    count = 0
    for tx in txs[:TX_BATCH_MAX]:
        if count and size + tx.size > TX_BATCH_BYTES:
            break
        size += tx.size
        count += 1
    batch = txs[:count]
    del txs[:count]
    return batch


def _host_port(addr: tuple[str, int]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


async def run_node(config: NodeConfig, prepared: Prepared) -> None:
    """Run a node until SIGTERM or SIGINT; print the READY line once listening."""
    node = Node(config, prepared)
    try:
        async with trio.open_nursery() as nursery:
            ready = await nursery.start(node.run)
            line = {k: ready[k] for k in ("peer_id", "dns", "rpc", "p2p")}
            print("READY " + json.dumps(line), flush=True)
            log.info(
                "%s %s on %s at height %d: DNS %s, RPC %s",
                "validator" if node.key else "follower",
                node.validator_name or node.p2p.peer_id,
                node.genesis.chain_id, node.ledger.height, ready["dns"], ready["rpc"],
            )  # fmt: skip
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.info("%s: shutting down", signal.Signals(signum).name)
                    break
            nursery.cancel_scope.cancel()
    finally:
        node.close()
    sys.stdout.flush()
