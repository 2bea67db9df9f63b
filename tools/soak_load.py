"""The soak's load: chained registrations and updates at a steady rate, with a ledger of every one.

`Ledger` knows every transaction the load signed: which name and sequence it
is, the address it sets, and when (if ever) a block was seen holding it. The
`Load` thread submits batches over RPC to the validators in turn (``rate``
transactions a second, ``new_share`` of them registrations while
``registering``), and reads every new block from one node to learn which were
accepted. A name gets its next update only once its last one is in a block, so
every update chains on the name's last accepted transaction. A transaction not
in a block `RESEND_S` after it was sent is sent again (same bytes).

Addresses say which version of a name they are: name ``soak<k>.p2p`` at
sequence ``s`` is ``10.<k mod 256>.<s div 256>.<s mod 256>``; the DNS prober
(`tools/soak_dns.py`) uses that to tell a stale answer from a wrong one.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from chain.crypto import PrivateKey, sha256
from chain.genesis import Genesis
from chain.records import Record
from chain.tx import ZERO_HASH, Op, Transaction, TxBody, TxHash, tx_signing_digest
from ledgerdns.api.client import NodeUnreachable, RpcClient, RpcError
from tools.chaos_load import Finalized
from tools.localnet import Cluster

TICK_S = 0.2  # one batch per tick: rate 50/s is 10 transactions every 200 ms
RESEND_S = 10.0  # a transaction no block holds after this long is sent again (same bytes)
RPC_TIMEOUT_S = 10.0
LIFETIME_S = 3000  # valid_until ahead of signing (under the genesis' max_tx_lifetime_s)
MAX_BLOCKS_PER_TICK = 50  # bounded catch-up of the block reader per tick


def address(k: int, seq: int) -> str:
    """The A record of name `k` at sequence `seq` (distinct for every seq below 65,536)."""
    return f"10.{k % 256}.{seq // 256 % 256}.{seq % 256}"


def seq_of(addr: str) -> int:
    """The sequence an `address` stands for."""
    parts = addr.split(".")
    return int(parts[2]) * 256 + int(parts[3])


@dataclass(slots=True)
class Name:
    """One name as the load knows it: its accepted head and what is in flight."""

    k: int
    domain: str
    seq: int = -1  # last accepted sequence (-1: registration not accepted yet)
    head: bytes = ZERO_HASH
    pending: Transaction | None = None
    sent_at: float = 0.0
    accepted_at: list[tuple[int, float]] = field(default_factory=list)  # (seq, monotonic)


class Ledger:
    """Every transaction the load submitted and every one seen in a block (thread-safe reads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.names: list[Name] = []
        self.by_domain: dict[str, Name] = {}
        self.submitted: dict[str, Name] = {}  # txid hex -> its name
        self.accepted: list[Finalized] = []
        self.live: list[Name] = []  # names whose registration is accepted (for the prober)

    def new_name(self) -> Name:
        with self.lock:
            k = len(self.names)
            name = Name(k=k, domain=f"soak{k}.p2p")
            self.names.append(name)
            self.by_domain[name.domain] = name
            return name

    def on_block(self, height: int, txs: list[dict[str, object]], now: float) -> int:
        """Record the block's transactions that the load submitted; how many there were."""
        found = 0
        with self.lock:
            for doc in txs:
                txid = str(doc["txid"])
                name = self.submitted.get(txid)
                if name is None or name.pending is None or name.pending.txid.hex() != txid:
                    continue
                tx = name.pending
                self.accepted.append(Finalized(
                    txid=txid, domain=name.domain, seq=tx.body.seq, height=height,
                    records=tuple(r.to_text(origin=name.domain) for r in tx.body.records),
                ))  # fmt: skip
                if name.seq < 0:
                    self.live.append(name)
                name.seq, name.head, name.pending = tx.body.seq, tx.txid, None
                name.accepted_at.append((tx.body.seq, now))
                found += 1
        return found

    def floor_seq(self, name: Name, before: float) -> int:
        """The newest sequence of `name` accepted at or before `before` (-1: none)."""
        best = -1
        for seq, at in reversed(name.accepted_at):
            if at <= before:
                best = seq
                break
        return best

    def open_count(self) -> int:
        with self.lock:
            return sum(1 for n in self.names if n.pending is not None)


class Load:
    """Submits the load in a thread; `registering` and `fixed` steer the mix between phases.

    Args:
        cluster: the network (the load makes its own RPC clients from the data dirs).
        genesis: chain id and genesis hash for signing.
        ledger: where every transaction is recorded.
        rate: transactions per second.
        new_share: the share of registrations while `registering`.
        rng: choices of names and nothing else.
    """

    def __init__(self, cluster: Cluster, genesis: Genesis, ledger: Ledger, *, rate: float,
                 new_share: float, rng: random.Random) -> None:  # fmt: skip
        self.cluster, self.genesis, self.ledger = cluster, genesis, ledger
        self.rate, self.new_share, self.rng = rate, new_share, rng
        self.owner = PrivateKey.generate(b"ledgerdns soak owner")
        self.registering = True
        self.fixed: list[Name] | None = None  # phase 2: updates only, to these names
        self.stats: Counter[str] = Counter()
        self.errors: list[str] = []
        self.validators = [n.index for n in cluster.nodes if n.validator]
        self.reader = cluster.nodes[-1].index  # blocks are read from the follower
        self._clients: dict[int, RpcClient] = {}
        self._next_height = 1
        self._turn = 0
        self._credit = 0.0
        self._stop = threading.Event()
        self._submitting = threading.Event()
        self._submitting.set()
        self._thread = threading.Thread(target=self._run, name="soak-load", daemon=True)

    # -- thread --

    def start(self) -> None:
        self._thread.start()

    def stop_submitting(self) -> None:
        """New transactions stop; resends and the block reader go on (see `drain`)."""
        self._submitting.clear()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for client in self._clients.values():
            client.close()

    def drain(self, timeout: float) -> int:
        """After `stop_submitting`: wait until every transaction is in a block; how many are not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.ledger.open_count():
            time.sleep(0.5)
        return self.ledger.open_count()

    def wait_read(self, height: int, timeout: float) -> bool:
        """Wait until the block reader has read every block up to `height`."""
        deadline = time.monotonic() + timeout
        while self._next_height <= height and time.monotonic() < deadline:
            time.sleep(0.2)
        return self._next_height > height

    def _run(self) -> None:
        next_tick = time.monotonic()
        try:
            while not self._stop.is_set():
                self._tick()
                next_tick += TICK_S
                self._stop.wait(max(0.0, next_tick - time.monotonic()))
                next_tick = max(next_tick, time.monotonic() - 1.0)  # no burst after a stall
        except Exception as exc:  # reported in the result, not lost in the thread
            self.errors.append(f"load crashed: {exc!r}")

    def _tick(self) -> None:
        batch = self._resends()
        if self._submitting.is_set():
            self._credit += self.rate * TICK_S
            while self._credit >= 1 and len(batch) < 500:
                tx = self._next()
                if tx is None:
                    break
                batch.append(tx)
                self._credit -= 1
            self._credit = min(self._credit, self.rate)  # a shortfall is not made up later
        if batch:
            self._submit(batch)
        self._read_blocks()

    # -- transactions --

    def _next(self) -> Transaction | None:
        """The next transaction: a registration, or an update of a name with nothing in flight."""
        ledger = self.ledger
        if (
            self.fixed is None
            and self.registering
            and (self.rng.random() < self.new_share or len(ledger.live) < 10)
        ):
            return self._sign(ledger.new_name())
        pool = self.fixed if self.fixed is not None else ledger.live
        for _ in range(20):  # a few tries: most names are idle at any moment
            with ledger.lock:
                if not pool:
                    return None
                name = pool[self.rng.randrange(len(pool))]
                idle = name.pending is None and name.seq >= 0
            if idle:
                return self._sign(name)
        self.stats["no_idle_name"] += 1
        return None

    def _sign(self, name: Name) -> Transaction:
        seq = name.seq + 1
        body = TxBody(
            chain_id=self.genesis.chain_id, domain=name.domain, seq=seq, prev=name.head,
            op=Op.REGISTER if seq == 0 else Op.UPDATE,
            records=(Record.from_text(f"@ 300 A {address(name.k, seq)}", origin=name.domain),),
            owner=self.owner.public_key, valid_until=int(time.time()) + LIFETIME_S,
        )  # fmt: skip
        body_bytes = body.to_bytes()
        digest = tx_signing_digest(self.genesis.hash(), TxHash(sha256(body_bytes)))
        tx = Transaction(
            body=body, body_bytes=body_bytes, signature=self.owner.sign_digest_native(digest)
        )
        with self.ledger.lock:
            name.pending, name.sent_at = tx, time.monotonic()
            self.ledger.submitted[tx.txid.hex()] = name
        self.stats["registrations" if seq == 0 else "updates"] += 1
        return tx

    def _resends(self) -> list[Transaction]:
        now = time.monotonic()
        out: list[Transaction] = []
        with self.ledger.lock:
            for name in self.ledger.names:
                if name.pending is not None and now - name.sent_at > RESEND_S and len(out) < 500:
                    name.sent_at = now
                    out.append(name.pending)
        self.stats["resent"] += len(out)
        return out

    def _submit(self, batch: list[Transaction]) -> None:
        index = self.validators[self._turn % len(self.validators)]
        self._turn += 1
        try:
            results = self._client(index).submit_batch(batch)
        except NodeUnreachable as exc:
            self.stats["unreachable"] += 1
            self.errors.append(f"submit to node {index}: {exc}")
            return
        except RpcError as exc:  # the whole batch refused (too large, busy): resent later
            self.stats[f"batch_refused:{exc.code}"] += 1
            return
        for result in results:
            if result.get("error"):  # already known or final is fine; anything else is resent
                self.stats[f"refused:{result['error']}"] += 1

    def _read_blocks(self) -> None:
        client = self._client(self.reader)
        try:
            top = int(client.status()["height"])
            last = min(top, self._next_height + MAX_BLOCKS_PER_TICK - 1)
            for height in range(self._next_height, last + 1):
                block = client.block(height)
                self.ledger.on_block(height, list(block["txs"]), time.monotonic())
                self._next_height = height + 1
        except (NodeUnreachable, RpcError) as exc:
            self.stats["read_failed"] += 1
            if len(self.errors) < 20:
                self.errors.append(f"reading blocks from node {self.reader}: {exc}")

    def _client(self, index: int) -> RpcClient:
        client = self._clients.get(index)
        if client is None:
            client = RpcClient.for_node(self.cluster.nodes[index].data_dir, timeout=RPC_TIMEOUT_S)
            self._clients[index] = client
        return client
