"""The wallet's link to a node's RPC: the client, with its failures said in the user's terms.

Every RPC error becomes a `NodeError` whose message says what happened and what
to do (start a node, retry after a race, register first), and whose ``code`` is
the node's reason (``name-taken``, ``bad-sequence``...) for ``--json`` output.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chain.crypto import PublicKey
from chain.errors import InvalidUpdate, RejectReason
from chain.lightclient import DomainProof, SetChange
from chain.records import Record
from chain.tx import Op, Transaction
from chain.txbuilder import DomainView
from ledgerdns.api.client import NodeNotStarted, NodeUnreachable, RpcClient, RpcError
from ledgerdns.api.codec import domain_proof_from_json
from ledgerdns.api.token import read_token
from ledgerdns.wallet.errors import NodeError, UsageError

Json = dict[str, Any]

# The update was built on a head that is no longer the head.
_STALE = {RejectReason.BAD_SEQUENCE.value, RejectReason.BAD_PREV.value}
_RECORDS = {
    RejectReason.BAD_RECORD.value,
    RejectReason.CNAME_CONFLICT.value,
    RejectReason.TOO_MANY_RECORDS.value,
    RejectReason.RECORDS_TOO_LARGE.value,
    RejectReason.NON_CANONICAL.value,
}


def view_from_json(domain: str, doc: Mapping[str, Any] | None) -> DomainView:
    """The view from ``RpcClient.domain(name)`` (None for a free name).

    Raises:
        NodeError: the reply does not have the documented shape.
    """
    if doc is None:
        return DomainView.free(domain)
    try:
        pending = list(doc.get("pending") or [])
        latest = pending[-1] if pending else doc
        status = str(doc["status"])
        if pending:
            status = "released" if _op(latest["op"]) is Op.RELEASE else "active"
        return DomainView(
            domain=domain,
            status=status,
            owner=PublicKey(bytes.fromhex(latest["owner"])),
            seq=int(latest["seq"]),
            head=bytes.fromhex(latest["txid"] if pending else latest["head"]),
            records=tuple(Record.from_text(line, origin=domain) for line in latest["records"]),
            expires_at=int(doc.get("expires_at") or 0),
            pending=len(pending),
        )
    except (KeyError, TypeError, ValueError, InvalidUpdate) as exc:
        raise NodeError(
            f"the node's reply about {domain} is not understood: {exc}", code="bad-reply"
        ) from None


def _op(value: object) -> Op:
    if isinstance(value, str):
        return Op[value.upper()]
    if isinstance(value, int):
        return Op(value)
    raise ValueError(f"unknown op {value!r}")


def _refusal(error: RpcError, domain: str | None) -> NodeError:
    code, text = str(error.code), str(error.message)
    subject = domain or "the domain"
    if code in _STALE:
        message = (
            f"another update of {subject} got there first (stale head: {text}); "
            "run the command again to build on the new head"
        )
    elif code == RejectReason.NAME_TAKEN.value:
        message = f"{subject} is already registered by someone else ({text})"
    elif code == RejectReason.NOT_OWNER.value:
        message = f"the node says this wallet's key does not own {subject} ({text})"
    elif code == RejectReason.NAME_NOT_ACTIVE.value:
        message = f"{subject} is not registered (free, expired or released): register it first"
    elif code in _RECORDS:
        message = f"the node refused the records of {subject}: {text}"
    elif code in (RejectReason.TX_EXPIRED.value, RejectReason.TX_TOO_FAR.value):
        message = f"the node refused the deadline ({text}); check this computer's clock"
    elif code in (RejectReason.MEMPOOL_FULL.value, RejectReason.DOMAIN_QUEUE_FULL.value):
        message = f"the node is busy ({text}); try again after the next block"
    elif code == "unauthorized":
        message = f"the node refused the RPC token: {text}"
    else:
        message = f"the node refused the request: {code}: {text}"
    return NodeError(message, code=code)


class RpcLink:
    """One node, reached through `RpcClient`.

    Args:
        client: the RPC client.
        where: how to name the node in messages (its data directory or URL).
    """

    def __init__(self, client: RpcClient, where: str) -> None:
        self._client = client
        self.where = where

    @contextmanager
    def _calls(self, domain: str | None = None) -> Iterator[None]:
        try:
            yield
        except NodeUnreachable as exc:
            raise NodeError(
                f"no node answers for {self.where}: {exc}. Is it running? Start one with "
                "`ledgerdns node --data-dir DIR` and pass --node DIR (or --rpc URL --token-file FILE)",
                code="node-unreachable",
            ) from None
        except RpcError as exc:
            raise _refusal(exc, domain) from None

    def close(self) -> None:
        """Close the connection."""
        self._client.close()

    def status(self) -> Json:
        """``GET /v1/status``: chain_id, height, head_time_ms, tlds..."""
        with self._calls():
            return self._client.status()

    def domain(self, name: str) -> Json | None:
        """The domain's state and pending updates; None if it was never registered."""
        with self._calls(name):
            return self._client.domain(name)

    def history(self, name: str) -> list[Json]:
        """The domain's finalized chain, oldest first ([] if never registered)."""
        with self._calls(name):
            return self._client.history(name)

    def proof(self, name: str) -> DomainProof:
        """The domain's light-client proof bundle, decoded but NOT verified.

        Raises:
            InvalidUpdate: the node's document is not a proof (BAD_PROOF, MALFORMED...).
            NodeError: no node answers, or it has no proof to give (before block 1).
        """
        with self._calls(name):
            return domain_proof_from_json(self._client.proof(name))

    def validator_set(self) -> Json:
        """``GET /v1/validators``: the set in force, pending changes, the history."""
        with self._calls():
            return self._client.validator_set()

    def set_changes(self) -> list[SetChange]:
        """The validator set's changes, decoded but NOT verified (`follow_validator_set` does).

        Raises:
            InvalidUpdate: the node's document is malformed (MALFORMED).
            NodeError: no node answers.
        """
        with self._calls():
            return self._client.set_changes()

    def submit(self, tx: Transaction, wait: float | None) -> Json:
        """Send `tx`; with `wait`, wait up to that many seconds for a block."""
        with self._calls(tx.body.domain):
            return self._client.submit(tx, wait=wait)


def connect(node_dir: Path | None, url: str | None, token_file: Path | None) -> RpcLink:
    """A link to the node given by ``--node DIR`` or ``--rpc URL --token-file FILE``.

    Raises:
        UsageError: the options do not name a node.
        TokenError: the token file is missing or unsafe (a `ConfigError`).
        NodeError: no node has run in `node_dir`.
    """
    if url is not None:
        if token_file is None:
            raise UsageError("--rpc needs --token-file (the node's DATA_DIR/rpc.token)")
        try:
            return RpcLink(RpcClient(url, read_token(token_file)), url)
        except ValueError as exc:
            raise UsageError(f"--rpc: {exc}") from None
    if node_dir is None:
        raise UsageError("pass --node DATA_DIR, or --rpc URL --token-file FILE")
    try:
        return RpcLink(RpcClient.for_node(node_dir), str(node_dir))
    except NodeNotStarted as exc:
        raise NodeError(str(exc), code="node-unreachable") from None
