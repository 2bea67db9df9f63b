"""The RPC's endpoints: each reads a request, asks the node's read model (`RpcModel`), answers JSON.

Handlers raise `ApiError` (or let `InvalidUpdate` out of the chain) and the
application in `ledgerdns.rpc.server` turns either into an error body. They
only read the chain and the mempool; the one write is `model.writer.submit`.
See docs/rpc.md for the contract.
"""

from __future__ import annotations

import json
import logging
from contextlib import aclosing
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chain.block import Block
from chain.errors import InvalidUpdate, NotFound, RejectReason
from chain.names import normalize_name, validate_domain
from chain.tx import Transaction, forget_decoded
from ledgerdns.api import codec
from ledgerdns.rpc.errors import TOO_LARGE, ApiError
from ledgerdns.rpc.model import RpcModel
from ledgerdns.rpc.openapi import MAX_BATCH, openapi_spec
from ledgerdns.rpc.validators import ValidatorEndpoints

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
DRAIN_BYTES = 16 << 20
MAX_WAIT_S = 60.0
MAX_BLOCKS = 100
DEFAULT_BLOCKS = 20
MAX_LIST = 1000
DEFAULT_LIST = 100
MAX_HEIGHT = 2**63 - 1


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise ApiError.bad_request(f"{name} must be a whole number, not {text[:20]!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise ApiError.bad_request(f"{name} must be between {lo} and {hi}")
    return value


def _wait_param(request: Request) -> float | None:
    try:
        return codec.parse_wait(request.query_params.get("wait"), maximum=MAX_WAIT_S)
    except ValueError as exc:
        raise ApiError.bad_request(str(exc)) from None


def _txid_param(request: Request) -> bytes:
    try:
        return codec.parse_hex(request.path_params["txid"], "txid", size=32)
    except ValueError as exc:
        raise ApiError.bad_request(str(exc)) from None


async def _read_body(request: Request) -> bytes:
    """The request body, refused with 413 past `MAX_BODY_BYTES` (declared or sent).

    An oversized body is still read (and dropped) up to `DRAIN_BYTES`, so the
    client has finished sending when the 413 arrives: answering mid-upload and
    closing would reset the connection and the client might never see why.
    """
    declared = request.headers.get("content-length", "")
    too_large = ApiError(413, TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes")
    if declared.isdigit() and int(declared) > DRAIN_BYTES:
        raise too_large
    chunks: list[bytes] = []
    total = 0
    async with aclosing(request.stream()) as stream:
        async for chunk in stream:
            total += len(chunk)
            if total > DRAIN_BYTES:
                break
            if total <= MAX_BODY_BYTES:
                chunks.append(chunk)
    if total > MAX_BODY_BYTES:
        raise too_large
    return b"".join(chunks)


def _tx_from_body(body: bytes) -> Transaction:
    """Decode ``{"tx": hex}`` strictly; hex or tx errors carry a `RejectReason`."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # Recursion: "[[[[..."
        raise ApiError.bad_request('the body must be JSON: {"tx": "<hex>"}') from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tx"), str):
        raise ApiError.bad_request('the body must be a JSON object {"tx": "<hex>"}')
    try:
        raw = codec.parse_hex(doc["tx"], "tx")
    except ValueError as exc:
        raise ApiError.rejected(InvalidUpdate(RejectReason.MALFORMED, str(exc))) from None
    return Transaction.from_bytes(raw)  # InvalidUpdate -> 400 with its reason


class Endpoints:
    """The handlers, bound to one node's read model."""

    def __init__(self, model: RpcModel) -> None:
        self.model = model

    def routes(self) -> list[Route]:
        """Every route the RPC serves (all under ``/v1``)."""
        get = ["GET"]
        return [
            Route("/v1/status", self.status, methods=get),
            Route("/v1/blocks", self.blocks, methods=get),
            Route("/v1/blocks/{height}", self.block, methods=get),
            Route("/v1/txs", self.submit, methods=["POST"]),
            Route("/v1/txs/batch", self.submit_batch, methods=["POST"]),
            Route("/v1/txs/{txid}", self.tx, methods=get),
            Route("/v1/domains", self.domains, methods=get),
            Route("/v1/domains/{name}", self.domain, methods=get),
            Route("/v1/domains/{name}/history", self.history, methods=get),
            Route("/v1/domains/{name}/proof", self.proof, methods=get),
            Route("/v1/mempool", self.mempool, methods=get),
            Route("/v1/peers", self.peers, methods=get),
            *ValidatorEndpoints(self.model).routes(),
            Route("/v1/evidence", self.evidence, methods=get),
            Route("/v1/openapi.json", self.openapi, methods=get),
            Route("/v1/admin/flush", self.flush, methods=["POST"]),
        ]

    # -- helpers --

    def _now_s(self) -> int:
        """Block time of the head: what expiry is judged against."""
        return self.model.chain.head.time_ms // 1000

    def _domain_param(self, request: Request) -> str:
        try:
            name = normalize_name(request.path_params["name"])
            return validate_domain(name, self.model.genesis.params.tlds)
        except InvalidUpdate as exc:
            raise ApiError.rejected(exc) from None

    def _finalized_at(self, txid: bytes) -> tuple[int, int] | None:
        try:
            return self.model.chain.get_tx_location(txid)  # no block decoded
        except NotFound:
            return None

    def _block(self, height: int) -> tuple[Block, int]:
        """A stored block, decoded; its transactions are not kept in the decode memo.

        `Transaction.from_bytes` remembers what it decodes (for gossip, then the
        proposal); a finalized block's transactions will never be gossiped again,
        so every block read here would push one more block's worth of dead entries
        into the memo, up to its 16 MiB bound: on the node a block reader polls
        (the soak's follower, an explorer's node) that was most of its Python heap
        (issue 21).
        """
        raw = self.model.chain.get_block_bytes(height)
        block = Block.from_bytes(raw)
        forget_decoded(block.txs)
        return block, len(raw)

    def _final_tx(self, txid: bytes) -> tuple[Transaction, int, int]:
        """A finalized transaction with its height and index (decoded as `_block`).

        Raises:
            NotFound: no such finalized transaction.
        """
        height, index = self.model.chain.get_tx_location(txid)
        return self._block(height)[0].txs[index], height, index

    # -- node --

    async def status(self, request: Request) -> Response:
        """``GET /v1/status``."""
        model = self.model
        return JSONResponse(codec.status_json(model.node.status(), model.genesis))

    async def peers(self, request: Request) -> Response:
        """``GET /v1/peers``."""
        return JSONResponse({"peers": codec.plain_json(self.model.node.peers())})

    async def evidence(self, request: Request) -> Response:
        """``GET /v1/evidence``: equivocations and invalid proposals, oldest first."""
        roster_at = self.model.chain.roster_at  # who signed is named by the set of that height
        items = [
            codec.evidence_json(e, roster_at(e.first.height)) for e in self.model.node.evidence()
        ]
        invalid = self.model.node.invalid_proposals()
        return JSONResponse({
            "evidence": items,
            "invalid_proposals": [
                codec.invalid_proposal_json(r, roster_at(r.proposal.height)) for r in invalid
            ],
        })  # fmt: skip

    async def openapi(self, request: Request) -> Response:
        """``GET /v1/openapi.json``."""
        return JSONResponse(openapi_spec())

    # -- blocks --

    async def blocks(self, request: Request) -> Response:
        """``GET /v1/blocks?before=H&limit=N``: newest first."""
        head = self.model.chain.height
        before = _int_param(request, "before", head + 1, 0, MAX_HEIGHT)
        limit = _int_param(request, "limit", DEFAULT_BLOCKS, 1, MAX_BLOCKS)
        top = min(before - 1, head)
        # A node that prunes or joined by state sync holds no blocks below its base.
        base = self.model.chain.base_height
        lowest = 0 if base <= 1 else base
        heights = range(top, max(top - limit, lowest - 1), -1)
        roster_at = self.model.chain.roster_at
        out = [codec.block_summary_json(*self._block(h), roster_at(h)) for h in heights]
        last = heights[-1] if heights else 0
        more = last > lowest
        return JSONResponse({"blocks": out, "next_before": last if more else None})

    async def block(self, request: Request) -> Response:
        """``GET /v1/blocks/{height}``."""
        text = request.path_params["height"]
        if not text.isascii() or not text.isdigit() or len(text) > 19:
            raise ApiError.bad_request(f"a block height is a whole number, not {text[:20]!r}")
        height = int(text)
        chain = self.model.chain
        if height > chain.height:
            raise ApiError.not_found(f"no block at height {height} (head is {chain.height})")
        block, size = self._block(height)
        cert = chain.get_certificate(height) if height > 0 else None
        return JSONResponse(codec.block_json(block, size, cert, chain.roster_at(height)))

    # -- transactions --

    async def submit(self, request: Request) -> Response:
        """``POST /v1/txs[?wait=S]``: admit a transaction, optionally wait for it."""
        wait = _wait_param(request)
        tx = _tx_from_body(await _read_body(request))
        model = self.model
        location = self._finalized_at(tx.txid)
        if location is not None:
            forget_decoded((tx,))  # decoded from the body just now; final, so never again
        # Submitting the same bytes again (a wallet retrying) is not an error.
        if location is None and tx.txid not in model.pool:
            try:
                await model.writer.submit(tx)
            except InvalidUpdate as exc:
                log.debug("rpc refused tx txid=%s reason=%s", tx.txid.hex()[:16], exc.reason)
                raise ApiError.rejected(exc) from None
            log.debug("rpc accepted tx txid=%s domain=%s", tx.txid.hex()[:16], tx.body.domain)
        if location is None and wait:
            location = await model.writer.wait_finalized(tx.txid, wait)
        if location is None:
            return JSONResponse({"txid": tx.txid.hex(), "status": "pending"}, status_code=202)
        height, index = location
        doc = {"txid": tx.txid.hex(), "status": "finalized", "height": height, "index": index}
        return JSONResponse(doc)

    async def submit_batch(self, request: Request) -> Response:
        """``POST /v1/txs/batch``: admit up to `MAX_BATCH` transactions; one result each."""
        try:
            doc = json.loads(await _read_body(request))
        except (ValueError, UnicodeDecodeError, RecursionError):  # Recursion: "[[[[..."
            raise ApiError.bad_request('the body must be JSON: {"txs": ["<hex>", ...]}') from None
        items = doc.get("txs") if isinstance(doc, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ApiError.bad_request('the body must be a JSON object {"txs": ["<hex>", ...]}')
        if len(items) > MAX_BATCH:
            raise ApiError.bad_request(f"at most {MAX_BATCH} transactions per batch")
        results: list[dict[str, Any]] = []
        for item in items:
            txid = None
            try:
                tx = Transaction.from_bytes(codec.parse_hex(item, "tx"))
                txid = tx.txid.hex()
                if self._finalized_at(tx.txid) is not None:
                    forget_decoded((tx,))  # a resend of a final transaction: nothing to keep
                    results.append({"txid": txid, "status": "finalized"})
                    continue
                if tx.txid not in self.model.pool:
                    await self.model.writer.submit(tx)
                results.append({"txid": txid, "status": "pending"})
            except ValueError as exc:
                results.append({"txid": None, "status": "refused", "error": "malformed",
                                "message": str(exc)})
            except InvalidUpdate as exc:
                results.append({"txid": txid, "status": "refused", "error": exc.reason.value,
                                "message": str(exc)})
        return JSONResponse({"results": results})

    async def tx(self, request: Request) -> Response:
        """``GET /v1/txs/{txid}[?wait=S]``."""
        txid = _txid_param(request)
        wait = _wait_param(request)
        if wait and self._finalized_at(txid) is None:
            await self.model.writer.wait_finalized(txid, wait)
        try:
            tx, height, index = self._final_tx(txid)
        except NotFound:
            pending = self.model.pool.get(txid)
            if pending is None:
                raise ApiError.not_found(f"no transaction {txid.hex()}") from None
            return JSONResponse({"status": "pending", "tx": codec.tx_json(pending)})
        doc = {"status": "finalized", "height": height, "index": index, "tx": codec.tx_json(tx)}
        return JSONResponse(doc)

    async def mempool(self, request: Request) -> Response:
        """``GET /v1/mempool?limit=N``: pending transactions in arrival order."""
        limit = _int_param(request, "limit", DEFAULT_LIST, 0, MAX_LIST)
        pool = self.model.pool
        txs = [codec.tx_json(tx) for tx in pool.snapshot()[:limit]]
        return JSONResponse({"count": len(pool), "bytes": pool.size_bytes, "txs": txs})

    # -- domains --

    async def domains(self, request: Request) -> Response:
        """``GET /v1/domains?start=NAME&limit=N``: in name order; ``next`` pages on."""
        start = request.query_params.get("start", "").lower()
        if not start.isascii() or len(start) > 253:
            raise ApiError.bad_request("start must be an ASCII name (use the xn-- form)")
        limit = _int_param(request, "limit", DEFAULT_LIST, 1, MAX_LIST)
        states = self.model.chain.domains(start=start, limit=limit + 1)
        now_s, pool = self._now_s(), self.model.pool
        out = [codec.domain_json(s, pool.pending_for(s.domain), now_s) for s in states[:limit]]
        nxt = states[limit].domain if len(states) > limit else None
        return JSONResponse({"domains": out, "next": nxt})

    async def domain(self, request: Request) -> Response:
        """``GET /v1/domains/{name}``; 404 (with ``pending``) if never registered."""
        name = self._domain_param(request)
        pending = self.model.pool.pending_for(name)
        state = self.model.chain.get_domain(name)
        if state is None:
            extra: dict[str, Any] = {
                "domain": name,
                "pending": [codec.tx_json(tx) for tx in pending],
            }
            raise ApiError.not_found(f"{name} was never registered", extra=extra)
        out = codec.domain_json(state, pending, self._now_s())
        # Commit-reveal (issue 15): while an earlier commit may still reveal, the name is
        # provisional: its holder cannot change it, and it may go to that commit's owner.
        claim = self.model.chain.get_claim(name)
        live = claim is not None and claim.is_live(self.model.chain.height + 1)
        out["provisional_until"] = claim.until if live and claim is not None else None
        return JSONResponse(out)

    async def history(self, request: Request) -> Response:
        """``GET /v1/domains/{name}/history?from_seq=S&limit=N``: oldest first."""
        name = self._domain_param(request)
        from_seq = _int_param(request, "from_seq", 0, 0, MAX_HEIGHT)
        limit = _int_param(request, "limit", MAX_LIST, 1, MAX_LIST)
        chain = self.model.chain
        steps = chain.history(name)
        if not steps:
            raise ApiError.not_found(f"{name} was never registered")
        chosen = [(seq, txid) for seq, txid in steps if seq >= from_seq]
        entries = []
        for seq, txid in chosen[:limit]:
            try:
                found: tuple[Transaction, int, int] | None = self._final_tx(txid)
            except NotFound:
                found = None  # the genesis anchor: not a transaction
            entries.append(codec.history_entry_json(name, seq, txid, found, chain.params.chain_id))
        nxt = chosen[limit][0] if len(chosen) > limit else None
        return JSONResponse({"domain": name, "history": entries, "next_seq": nxt})

    async def proof(self, request: Request) -> Response:
        """``GET /v1/domains/{name}/proof``: a light-client proof at the head."""
        name = self._domain_param(request)
        try:
            proof = self.model.chain.prove_domain(name)
        except NotFound:
            raise ApiError.not_found(
                "no certified block yet: proofs start at height 1"
            ) from None
        return JSONResponse(codec.domain_proof_json(proof, proof.header.time_ms // 1000))

    # -- admin --

    async def flush(self, request: Request) -> Response:
        """``POST /v1/admin/flush``: write the store's memtable out now (soak sampling).

        Memory samples taken right after a flush are all at the same point of
        LevelDB's write-buffer cycle (docs/benchmarks.md, "Soak"). The request
        carries the same bearer token as every other.
        """
        admin = self.model.admin
        if admin is None:
            raise ApiError.not_found("this node has no admin operations")
        usage = await trio.to_thread.run_sync(admin.flush_store)
        return JSONResponse({"flushed": True, "leveldb_memory_bytes": usage})
