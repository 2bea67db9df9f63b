"""A synchronous client for the node's RPC (what the wallet and scripts use).

Every method returns the JSON the endpoint documents (docs/rpc.md), unwrapped
where the endpoint returns a single list. Failures come in two kinds:
`NodeUnreachable` (nothing answered: connection refused, timeout, no node in
that data directory) and `RpcError` (the node answered with an error body).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from chain.errors import InvalidUpdate, NetworkError, RejectReason
from chain.genesis import Genesis
from chain.lightclient import SetChange, validators_for
from chain.names import normalize_name
from chain.state import DomainState
from chain.tx import Transaction
from ledgerdns.api.codec import Json, domain_proof_from_json, set_change_from_json
from ledgerdns.api.token import TOKEN_FILE, read_token

NODE_FILE = "node.json"


class RpcClientError(NetworkError):
    """A call to the node's RPC failed."""


class NodeUnreachable(RpcClientError):
    """No node answered (not running, wrong address, or too slow)."""


class NodeNotStarted(NodeUnreachable):
    """No node has run in the given data directory (no node.json)."""


class RpcError(RpcClientError):
    """The node answered with an error.

    Attributes:
        status: the HTTP status.
        code: the error code: a `RejectReason` value for a refused transaction,
            or ``not-found``, ``bad-request``, ``unauthorized``, ``too-large``.
        message: the node's explanation.
        body: the whole error body (some carry more, e.g. ``pending``).
    """

    def __init__(self, status: int, code: str, message: str, body: Json | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body or {}


CLIENT_KEEP_ALIVE_S = 2.0  # below the server's (`ledgerdns.rpc.server.KEEP_ALIVE_S`, 5 s)
# What a reused connection that the server already closed looks like; not a timeout.
_STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def _domain_path(name: str, suffix: str = "") -> str:
    return f"/v1/domains/{quote(name, safe='')}{suffix}"


class RpcClient:
    """The RPC of one node.

    Args:
        url: the RPC base URL, e.g. ``http://127.0.0.1:8353``.
        token: the bearer token (from ``<data-dir>/rpc.token``).
        timeout: seconds for connecting and for each response (a call that
            waits for finalization gets its wait added).
    """

    def __init__(self, url: str, token: str, timeout: float = 10) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"not an RPC URL: {url!r} (expected http://HOST:PORT)")
        self.url = url.rstrip("/")
        self.timeout = timeout
        # trust_env=False: a proxy from the environment must never see the token.
        # An idle connection is dropped here before the server drops it (the RPC server
        # closes one after 5 s): reusing one the server is closing loses the call.
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            trust_env=False,
            limits=httpx.Limits(keepalive_expiry=CLIENT_KEEP_ALIVE_S),
        )

    @classmethod
    def for_node(cls, data_dir: Path, timeout: float = 10) -> RpcClient:
        """A client for the node that runs (or last ran) with `data_dir`.

        Reads ``<data_dir>/node.json`` (written by the node once it is ready)
        and ``<data_dir>/rpc.token``.

        Raises:
            NodeNotStarted: no readable node.json with an ``rpc`` URL there.
            TokenError: the token file is missing or unsafe.
        """
        path = data_dir / NODE_FILE
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NodeNotStarted(
                f"no node has run in {data_dir} ({path} is missing); "
                f"start one with `ledgerdns node --data-dir {data_dir}`"
            ) from None
        except (OSError, ValueError) as exc:
            raise NodeNotStarted(f"cannot read {path}: {exc}") from None
        url = info.get("rpc") if isinstance(info, dict) else None
        if not isinstance(url, str):
            raise NodeNotStarted(f"{path} has no RPC address (is the RPC disabled?)")
        try:
            return cls(url, read_token(data_dir / TOKEN_FILE), timeout)
        except ValueError as exc:
            raise NodeNotStarted(f"{path}: {exc}") from None

    # -- plumbing --

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Json | None = None,
        wait: float | None = None,
    ) -> tuple[int, Json]:
        """Send one request; the status and JSON body of a 2xx answer.

        Raises:
            NodeUnreachable: no answer.
            RpcError: an error answer (or one that is not JSON).
        """
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if wait is not None:
            query["wait"] = wait
        try:
            try:
                response = self._http.request(
                    method, path, params=query, json=body, timeout=self.timeout + (wait or 0)
                )
            except _STALE_CONNECTION:
                # A pooled connection the server closed while it sat idle (it answers nothing
                # and resets): every call here is idempotent (a transaction sent twice is the
                # same transaction), so send it once more on a fresh connection.
                response = self._http.request(
                    method, path, params=query, json=body, timeout=self.timeout + (wait or 0)
                )
        except httpx.TimeoutException:
            raise NodeUnreachable(
                f"the node at {self.url} did not answer within {self.timeout:g}s"
            ) from None
        except httpx.TransportError as exc:
            raise NodeUnreachable(
                f"cannot reach the node at {self.url}: {exc or type(exc).__name__}"
            ) from None
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise RpcError(response.status_code, f"http-{response.status_code}",
                           f"not a JSON object from {self.url}: {response.text[:200]!r}")
        if response.is_success:
            return response.status_code, doc
        code, message = doc.get("error"), doc.get("message")
        raise RpcError(response.status_code, str(code), str(message), doc)

    def _get(self, path: str, **params: Any) -> Json:
        return self._call("GET", path, params=params)[1]

    # -- node --

    def status(self) -> Json:
        """The node's status (`NodeStatus` fields, plus ``tlds``)."""
        return self._get("/v1/status")

    def peers(self) -> list[Json]:
        """Known peers."""
        return list(self._get("/v1/peers")["peers"])

    def validators(self) -> list[Json]:
        """The validators deciding the next block, each with when this node last heard from it."""
        return list(self._get("/v1/validators")["validators"])

    def validator_set(self) -> Json:
        """``GET /v1/validators`` whole: ``validators``, ``quorum``, ``pending`` proposals,
        ``scheduled`` rosters and the ``history`` of rosters since genesis."""
        return self._get("/v1/validators")

    def validator_history(self, from_height: int = 0) -> Json:
        """``{"height", "changes"}``: each change of the set taking effect from `from_height`
        on whose announcing block is final, oldest first.

        Decode a change with `ledgerdns.api.codec.set_change_from_json`, check them
        all with `chain.lightclient.follow_validator_set`.
        """
        return self._get("/v1/validators/history", from_height=from_height or None)

    def evidence(self) -> list[Json]:
        """Equivocation evidence the node recorded, oldest first."""
        return list(self._get("/v1/evidence")["evidence"])

    def invalid_proposals(self) -> list[Json]:
        """Signed proposals with provably invalid blocks the node recorded, oldest first.

        Empty from a node too old to record them.
        """
        return list(self._get("/v1/evidence").get("invalid_proposals", []))

    def flush_store(self) -> int:
        """Have the node write its LevelDB memtable out now; LevelDB's memory estimate after.

        For memory samples taken at the same point of the write-buffer cycle
        (``POST /v1/admin/flush``; tools/soak.py).
        """
        return int(self._call("POST", "/v1/admin/flush")[1]["leveldb_memory_bytes"])

    # -- blocks and transactions --

    def block(self, height: int) -> Json:
        """One block with its transactions and certificate (RpcError 404 past the head)."""
        return self._get(f"/v1/blocks/{int(height)}")

    def blocks(self, before: int | None = None, limit: int = 20) -> list[Json]:
        """Block summaries, newest first, below `before` (default: from the head)."""
        return list(self._get("/v1/blocks", before=before, limit=limit)["blocks"])

    def tx(self, txid_hex: str, wait: float | None = None) -> Json:
        """A transaction and whether it is finalized; waits up to `wait` s to see it final.

        Raises:
            RpcError: 404 ``not-found`` if the node does not know it.
        """
        return self._call("GET", f"/v1/txs/{quote(txid_hex, safe='')}", wait=wait)[1]

    def submit(self, tx: Transaction, wait: float | None = None) -> Json:
        """Submit a signed transaction.

        Returns:
            ``{"txid", "status": "pending"}``, or with `wait` and finalization
            in time ``{"txid", "status": "finalized", "height", "index"}``.

        Raises:
            RpcError: refused; ``code`` is the `RejectReason` value.
        """
        body = {"tx": tx.to_bytes().hex()}
        return self._call("POST", "/v1/txs", body=body, wait=wait)[1]

    def submit_batch(self, txs: list[Transaction]) -> list[Json]:
        """Submit up to 512 transactions; one ``{"txid", "status", "error"?, "message"?}`` each."""
        body = {"txs": [tx.to_bytes().hex() for tx in txs]}
        results: list[Json] = self._call("POST", "/v1/txs/batch", body=body)[1]["results"]
        return results

    def mempool(self, limit: int = 100) -> Json:
        """``{"count", "bytes", "txs"}``: the pending transactions in arrival order."""
        return self._get("/v1/mempool", limit=limit)

    # -- domains --

    def domain(self, name: str) -> Json | None:
        """A domain's state and its pending transactions.

        Returns:
            The domain view; None if the name was never registered and nothing
            is pending for it. A name never registered but with a pending
            registration comes back as ``{"status": "unregistered", "owner":
            None, "seq": None, "head": None, "expires_at": None, "records": [],
            "pending": [...]}``.
        """
        try:
            return self._get(_domain_path(name))
        except RpcError as exc:
            if exc.status != 404 or exc.code != "not-found":
                raise
            pending = exc.body.get("pending") or []
            if not pending:
                return None
            return {
                "domain": exc.body.get("domain", name), "owner": None, "seq": None,
                "head": None, "records": [], "expires_at": None, "status": "unregistered",
                "pending": pending,
            }

    def domains(self, start: str = "", limit: int = 100) -> list[Json]:
        """Domains in name order from `start` (``next`` of the page is dropped)."""
        return list(self._get("/v1/domains", start=start or None, limit=limit)["domains"])

    def history(self, name: str) -> list[Json]:
        """Every step of the domain's chain, oldest first ([] if never registered)."""
        entries: list[Json] = []
        from_seq: int | None = 0
        while from_seq is not None:
            try:
                page = self._get(_domain_path(name, "/history"), from_seq=from_seq)
            except RpcError as exc:
                if exc.status == 404 and exc.code == "not-found":
                    return []
                raise
            entries += page["history"]
            from_seq = page.get("next_seq")
        return entries

    def proof(self, name: str) -> Json:
        """The light-client proof document (see `verified_domain`)."""
        return self._get(_domain_path(name, "/proof"))

    def verified_domain(
        self,
        name: str,
        genesis: Genesis,
        *,
        now_ms: int | None = None,
        max_age_ms: int | None = None,
    ) -> DomainState | None:
        """The domain's finalized state, checked against `genesis`'s validators.

        Args:
            name: the domain.
            genesis: the genesis the caller trusts (never the node's word).
            now_ms: the caller's clock, unix ms; with it a header dated over a
                minute ahead is refused.
            max_age_ms: with `now_ms`, refuse state certified longer ago than
                this (`chain.lightclient.default_max_age_ms` gives the
                network's default).

        Returns:
            The proven state, or None if the proof shows the name unregistered.

        Raises:
            InvalidUpdate: the node's proof does not verify (BAD_PROOF, NO_QUORUM, ...)
                or is too old (STALE_PROOF).
        """
        proof = domain_proof_from_json(self.proof(name))
        if proof.domain != normalize_name(name):
            raise InvalidUpdate(
                RejectReason.BAD_PROOF, f"the node proved {proof.domain}, not {name}"
            )
        validators = validators_for(genesis.params, proof.header, self.set_changes)
        return proof.verify(genesis.params, now_ms=now_ms, max_age_ms=max_age_ms, validators=validators)

    def set_changes(self) -> list[SetChange]:
        """The validator set's changes from ``GET /v1/validators/history``, decoded, NOT verified.

        Raises:
            InvalidUpdate: the document is not a list of changes.
        """
        changes = self.validator_history().get("changes")
        if not isinstance(changes, list):
            raise InvalidUpdate(RejectReason.MALFORMED, "the node's validator history has no list of changes")
        return [set_change_from_json(item) for item in changes]
