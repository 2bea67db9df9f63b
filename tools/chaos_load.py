"""The crash loop's load: a writer that keeps a few domains moving and records what it saw finalized."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

from rich.console import Console

from chain.crypto import PrivateKey
from chain.genesis import Genesis
from chain.records import Record
from chain.tx import ZERO_HASH, Op, Transaction, TxBody
from ledgerdns.api.client import NodeUnreachable, RpcClient, RpcError
from tools.localnet import Cluster

console = Console(stderr=True, highlight=False)
RESEND_S = 4.0  # an update nobody reports final after this long is sent again (same bytes)
# Once the load stops nothing else is coming: an update still open may have died with the
# node it was sent to (SIGKILLed before gossiping it), so it is sent again sooner.
DRAIN_RESEND_S = 1.0
RPC_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Finalized:
    """An update the writer saw finalized."""

    txid: str
    domain: str
    seq: int
    records: tuple[str, ...]
    height: int


@dataclass(slots=True)
class _Slot:
    """One domain's chain as the writer knows it (seq -1: not registered yet)."""

    name: str
    seq: int = -1
    head: bytes = ZERO_HASH
    outstanding: Transaction | None = None
    sent_at: float = 0.0
    accepted: bool = False  # a node accepted the outstanding update (its submit succeeded)


class Writer:
    """Signed updates at a bounded rate to random live nodes; remembers what it saw finalized.

    Args:
        cluster: the network (only ``nodes[i].data_dir`` is read from this thread).
        genesis: for the chain id.
        rate: RPC operations per second (a submit or a finality check).
        domains: how many domains are kept moving.
        rng: the source of node choices.
    """

    def __init__(self, cluster: Cluster, genesis: Genesis, *, rate: float, domains: int,
                 rng: random.Random) -> None:  # fmt: skip
        self.cluster, self.genesis, self.rate, self.rng = cluster, genesis, rate, rng
        self.owner = PrivateKey.generate(b"ledgerdns chaos owner")
        self.slots = [_Slot(f"chaos{i}.p2p") for i in range(domains)]
        self.down: set[int] = set()  # nodes the chaos loop has taken down
        self.lock = threading.Lock()
        self.finalized: list[Finalized] = []
        self.stats: Counter[str] = Counter()
        self.errors: list[str] = []
        # Updates a node accepted, that no live node knew later: the accepting node died
        # with them in its mempool, and only the writer's re-send saved them (issue 17).
        self.accepted_then_unknown: set[str] = set()
        self.valid_until = int(time.time()) + 7200
        self._stop = threading.Event()
        self._clients: dict[int, RpcClient] = {}
        self._thread = threading.Thread(target=self._run, name="chaos-writer", daemon=True)

    # -- thread --

    def start(self) -> None:
        """Start writing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop writing (bounded join)."""
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        n = 0
        try:
            while not self._stop.is_set():
                self.step(self.slots[n % len(self.slots)])
                n += 1
                self._stop.wait(1.0 / self.rate)
        except Exception as exc:  # reported in the summary, not lost in the thread
            self.errors.append(f"writer crashed: {exc!r}")

    # -- one operation --

    def step(self, slot: _Slot) -> None:
        """Check `slot`'s outstanding update, or send its next one."""
        if slot.outstanding is None:
            slot.outstanding = self._next_tx(slot)
            self._send(slot, "sent")
        else:
            self.check(slot)

    def check(self, slot: _Slot, resend_after: float = RESEND_S) -> bool:
        """Ask a live node whether the outstanding update is final; True once it is.

        Not final `resend_after` seconds after it was last sent: it is sent again.
        """
        tx = slot.outstanding
        assert tx is not None
        index, client = self._client()
        try:
            doc = client.tx(tx.txid.hex())
        except RpcError as exc:
            if exc.status != 404:
                self.errors.append(f"tx lookup on node {index}: {exc}")
            doc = {"status": "unknown"}
        except NodeUnreachable:
            self._drop(index)
            return False
        if doc.get("status") == "finalized":
            self._finalized(slot, tx, int(doc["height"]))
            return True
        if time.monotonic() - slot.sent_at > resend_after:
            if slot.accepted and doc.get("status") == "unknown":
                self.accepted_then_unknown.add(tx.txid.hex())
            self._send(slot, "resent")
        return False

    def _finalized(self, slot: _Slot, tx: Transaction, height: int) -> None:
        done = Finalized(
            txid=tx.txid.hex(), domain=slot.name, seq=tx.body.seq, height=height,
            records=tuple(r.to_text(origin=slot.name) for r in tx.body.records),
        )  # fmt: skip
        with self.lock:
            self.finalized.append(done)
        slot.seq, slot.head, slot.outstanding, slot.accepted = tx.body.seq, tx.txid, None, False

    def _next_tx(self, slot: _Slot) -> Transaction:
        seq = slot.seq + 1
        k = int(slot.name.removeprefix("chaos").split(".")[0])
        record = Record.from_text(
            f"@ 300 A 10.{k % 250}.{seq // 250 % 250}.{seq % 250 + 1}", origin=slot.name
        )
        body = TxBody(
            chain_id=self.genesis.chain_id, domain=slot.name, seq=seq, prev=slot.head,
            op=Op.REGISTER if seq == 0 else Op.UPDATE, records=(record,),
            owner=self.owner.public_key, valid_until=self.valid_until,
        )  # fmt: skip
        return Transaction.sign(body, self.owner, self.genesis.hash())

    def _send(self, slot: _Slot, what: str) -> None:
        tx = slot.outstanding
        assert tx is not None
        slot.sent_at = time.monotonic()
        index, client = self._client()
        self.stats[what] += 1
        try:
            client.submit(tx)
            slot.accepted = True
        except NodeUnreachable:
            self._drop(index)
            self.stats["unreachable"] += 1
        except RpcError as exc:  # busy, or already known/final: the next check tells
            self.stats[f"refused:{exc.code}"] += 1

    # -- clients (this thread's own: httpx clients are not shared between threads) --

    def live(self) -> list[int]:
        """Indexes of the nodes not taken down by the chaos loop."""
        with self.lock:
            return [n.index for n in self.cluster.nodes if n.index not in self.down]

    def _client(self) -> tuple[int, RpcClient]:
        index = self.rng.choice(self.live() or [0])
        client = self._clients.get(index)
        if client is None:
            try:
                client = RpcClient.for_node(
                    self.cluster.nodes[index].data_dir, timeout=RPC_TIMEOUT_S
                )
            except NodeUnreachable:  # node.json not there yet: any other live node
                index = self.live()[0]
                client = RpcClient.for_node(
                    self.cluster.nodes[index].data_dir, timeout=RPC_TIMEOUT_S
                )
            self._clients[index] = client
        return index, client

    def _drop(self, index: int) -> None:
        client = self._clients.pop(index, None)
        if client is not None:
            client.close()

    def drain(self, timeout: float) -> int:
        """After `stop`: check the outstanding updates until final or `timeout`; how many remain.

        Each is sent again every `DRAIN_RESEND_S` until a node reports it final.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = [s for s in self.slots if s.outstanding is not None]
            if not pending:
                return 0
            for slot in pending:
                self.check(slot, resend_after=DRAIN_RESEND_S)
            time.sleep(0.2)
        return sum(1 for s in self.slots if s.outstanding is not None)

    def close(self) -> None:
        """Close this writer's clients."""
        for index in list(self._clients):
            self._drop(index)


# -- the chaos loop --
