"""The explorer's model: the node's RPC, polled, with reconnects. No UI here.

`NodeData` owns one `RpcClient` at a time. The client is synchronous (httpx),
so every call runs in a worker thread (`asyncio.to_thread`) and the UI loop
never blocks. A call that finds no node (refused, reset, slower than the
timeout, node.json gone while the node restarts) drops the client and marks
the link down; `poll_forever` then retries with exponential backoff, making a
fresh client each time, so a node restarted on a new port is found again
through its data directory's node.json.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chain.errors import ConfigError, InvalidUpdate, NetworkError
from chain.genesis import Genesis
from chain.lightclient import SetChange, validators_for
from chain.names import normalize_name
from ledgerdns.api.client import NodeUnreachable, RpcClient, RpcError
from ledgerdns.api.codec import domain_proof_from_json
from ledgerdns.explorer.history import Step, steps_from_history

log = logging.getLogger(__name__)

Json = dict[str, Any]
Connector = Callable[[], RpcClient]
T = TypeVar("T")

RECENT_BLOCKS = 20


class Disconnected(NetworkError):
    """No node answered; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """Whether the node answers."""

    connected: bool
    where: str
    message: str = ""
    retry_s: float = 0.0  # the wait before the next attempt, when down


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Everything the dashboard shows, fetched in one poll."""

    status: Json
    validators: list[Json]
    peers: list[Json]
    evidence: list[Json]
    recent: list[Json]  # block summaries, newest first
    mempool_count: int
    mempool_bytes: int
    fetched_ms: int
    # ``GET /v1/validators`` whole: ``pending`` proposals, ``scheduled`` and ``history`` rosters
    validator_set: Json = field(default_factory=dict)

    @property
    def height(self) -> int:
        """The finalized height."""
        return int(self.status["height"])

    def age_s(self, now_ms: int) -> float:
        """Seconds since the finalized head's block time."""
        return max(0.0, (now_ms - int(self.status["head_time_ms"])) / 1000)

    def rates(self, now_ms: int) -> tuple[float, float]:
        """Blocks and transactions per second, from the oldest recent block until now.

        Measured up to now rather than to the newest block, so an idle network's
        rates fall towards zero instead of freezing at their last value.
        """
        blocks = [b for b in self.recent if int(b["height"]) > 0]
        if len(blocks) < 2:
            return 0.0, 0.0
        newest = max(int(blocks[0]["time_ms"]), now_ms)
        span_s = (newest - int(blocks[-1]["time_ms"])) / 1000
        if span_s <= 0:
            return 0.0, 0.0
        txs = sum(int(b["txs"]) for b in blocks[:-1])
        return (len(blocks) - 1) / span_s, txs / span_s


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofCheck:
    """The light-client verdict on a domain's proof."""

    verified: bool
    height: int | None
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainView:
    """A domain's state, chain and proof verdict."""

    domain: str
    state: Json | None
    steps: list[Step]
    proof: ProofCheck


@dataclass(frozen=True, slots=True, kw_only=True)
class TxView:
    """One transaction with its place in its domain's chain."""

    tx: Json
    status: str
    height: int | None
    index: int | None
    step: Step | None  # None while pending
    steps: list[Step] = field(default_factory=list)


def check_proof(
    doc: Json, genesis: Genesis | None, name: str, *,
    now_ms: int | None = None, max_age_ms: int | None = None,
    changes: Callable[[], Sequence[SetChange]] | None = None,
) -> ProofCheck:  # fmt: skip
    """Verify a ``/proof`` document against the trusted genesis's validators.

    When the header names another set than genesis's, `changes` (the node's set
    history, decoded) lets it be followed there from genesis.

    With `now_ms` (the wall clock) the header's age is shown and a header dated
    over a minute ahead refused; with `max_age_ms` too, a header older than that
    is NOT verified (``stale-proof``): the node is behind or hiding blocks.
    """
    height = doc.get("height")
    if genesis is None:
        return ProofCheck(verified=False, height=height, detail="no trusted genesis (--genesis)")
    try:
        proof = domain_proof_from_json(doc)
        if proof.domain != normalize_name(name):
            return ProofCheck(verified=False, height=height, detail=f"proof is for {proof.domain}")
        validators = validators_for(genesis.params, proof.header, changes or list)
        state = proof.verify(genesis.params, now_ms=now_ms, max_age_ms=max_age_ms, validators=validators)
    except (InvalidUpdate, ValueError, KeyError) as exc:
        return ProofCheck(verified=False, height=height, detail=str(exc))
    what = "absent" if state is None else f"seq {state.seq}, head {state.head.hex()[:16]}"
    signers = len(proof.certificate.signatures)
    need = validators.quorum
    age = ""
    if now_ms is not None:
        bound = "no bound" if max_age_ms is None else f"bound {max_age_ms / 1000:g} s"
        age = f", {(now_ms - proof.header.time_ms) / 1000:.1f} s old ({bound})"
    return ProofCheck(
        verified=True, height=proof.header.height,
        detail=f"certified header {proof.header.hash.hex()[:16]} at height "
        f"{proof.header.height}{age} ({signers} signatures, quorum {need}): {what}",
    )  # fmt: skip


class NodeData:
    """The node as the explorer sees it.

    Args:
        connect: makes a fresh client (re-reading node.json for ``--node``);
            raises `NodeUnreachable` when no node can be named.
        where: how to name the node to the user.
        genesis: the trusted genesis that proofs are checked against.
        now_ms: the wall clock, unix milliseconds.
        max_age_ms: proofs whose certified header is older are NOT verified (None: any age).
        poll_s: seconds between dashboard polls.
        max_backoff_s: the longest wait between reconnect attempts.
    """

    def __init__(
        self, connect: Connector, *, where: str, genesis: Genesis | None,
        now_ms: Callable[[], int], max_age_ms: int | None = None, poll_s: float = 1.0,
        max_backoff_s: float = 4.0,
    ) -> None:  # fmt: skip
        self._connect = connect
        self.where = where
        self.genesis = genesis
        self.now_ms = now_ms
        self.max_age_ms = max_age_ms
        self.poll_s = poll_s
        self.max_backoff_s = max_backoff_s
        self._client: RpcClient | None = None
        self._lock = threading.Lock()  # one request at a time on the shared client
        self.link = Link(connected=False, where=where, message="connecting…")

    # -- calls --

    def _run(self, fn: Callable[[RpcClient], T]) -> T:
        with self._lock:
            try:
                if self._client is None:
                    self._client = self._connect()
                return fn(self._client)
            except (NodeUnreachable, ConfigError) as exc:
                self._drop()
                raise Disconnected(str(exc)) from None
            except RpcError as exc:
                if exc.status == 401:
                    self._drop()  # the token may have changed with a new node
                    raise Disconnected(f"the node refused the RPC token: {exc.message}") from None
                raise

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def call(self, fn: Callable[[RpcClient], T]) -> T:
        """Run ``fn(client)`` in a worker thread.

        Raises:
            Disconnected: no node answered (the link is marked down).
            RpcError: the node answered with an error.
        """
        try:
            result = await asyncio.to_thread(self._run, fn)
        except Disconnected as exc:
            if self.link.connected:
                log.info("node unreachable where=%s reason=%s", self.where, exc)
            self.link = Link(connected=False, where=self.where, message=str(exc))
            raise
        if not self.link.connected:
            log.info("node reachable where=%s", self.where)
            self.link = Link(connected=True, where=self.where)
        return result

    def close(self) -> None:
        """Close the client."""
        with self._lock:
            self._drop()

    # -- what the screens ask for --

    def _snapshot(self, client: RpcClient) -> Snapshot:
        mempool = client.mempool(limit=0)
        validator_set = client.validator_set()
        return Snapshot(
            status=client.status(), validators=list(validator_set["validators"]),
            peers=client.peers(), evidence=client.evidence(),
            recent=client.blocks(limit=RECENT_BLOCKS), mempool_count=int(mempool["count"]),
            mempool_bytes=int(mempool["bytes"]), fetched_ms=self.now_ms(),
            validator_set=validator_set,
        )  # fmt: skip

    async def snapshot(self) -> Snapshot:
        """Status, the validator set, peers, evidence, recent blocks and mempool size."""
        return await self.call(self._snapshot)

    async def blocks(self, before: int | None = None, limit: int = 50) -> list[Json]:
        """Block summaries, newest first."""
        return await self.call(lambda c: c.blocks(before=before, limit=limit))

    async def block(self, height: int) -> Json:
        """One block with its certificate and transactions."""
        return await self.call(lambda c: c.block(height))

    async def peers(self) -> list[Json]:
        """Known peers."""
        return await self.call(lambda c: c.peers())

    def _tx(self, client: RpcClient, txid: str) -> TxView:
        doc = client.tx(txid)
        tx = doc["tx"]
        steps = steps_from_history(tx["domain"], client.history(tx["domain"]), self.genesis)
        step = next((s for s in steps if s.txid == tx["txid"]), None)
        return TxView(
            tx=tx, status=str(doc["status"]), height=doc.get("height"), index=doc.get("index"),
            step=step, steps=steps,
        )  # fmt: skip

    async def tx(self, txid: str) -> TxView:
        """A transaction, with its records before and after from its domain's history."""
        return await self.call(lambda c: self._tx(c, txid))

    def _domain(self, client: RpcClient, name: str) -> DomainView:
        domain = normalize_name(name)
        state = client.domain(domain)
        steps = steps_from_history(domain, client.history(domain), self.genesis)
        try:
            proof = check_proof(
                client.proof(domain), self.genesis, domain,
                now_ms=self.now_ms(), max_age_ms=self.max_age_ms, changes=client.set_changes,
            )  # fmt: skip
        except RpcError as exc:
            proof = ProofCheck(verified=False, height=None, detail=f"no proof: {exc.message}")
        return DomainView(domain=domain, state=state, steps=steps, proof=proof)

    async def domain(self, name: str) -> DomainView:
        """A domain's state, its whole chain and its proof checked against the genesis.

        Raises:
            InvalidUpdate: `name` is not a domain name.
        """
        return await self.call(lambda c: self._domain(c, name))

    # -- polling --

    async def poll_forever(self, publish: Callable[[Link, Snapshot | None], None]) -> None:
        """Poll the dashboard until cancelled; reconnect with backoff when the node is gone."""
        backoff = self.poll_s / 4
        while True:
            try:
                snap = await self.snapshot()
            except Disconnected:
                backoff = min(self.max_backoff_s, backoff * 2)
                self.link = Link(
                    connected=False, where=self.where, message=self.link.message, retry_s=backoff
                )
                publish(self.link, None)
                await asyncio.sleep(backoff)
                continue
            except RpcError as exc:
                log.warning("poll failed where=%s error=%s", self.where, exc)
                publish(Link(connected=True, where=self.where, message=str(exc)), None)
                await asyncio.sleep(self.poll_s)
                continue
            backoff = self.poll_s / 4
            publish(self.link, snap)
            await asyncio.sleep(self.poll_s)
