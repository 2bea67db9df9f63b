"""The validator-set endpoints: the set in force, its history, pending changes (issue 15).

``GET /v1/validators`` lists the set that decides the next block (the ledger's
roster of ``height + 1``) with what the node saw of each member, the pending
proposals with their approvals, and every roster since genesis (scheduled ones
included). ``GET /v1/validators/history`` gives, per change whose announcing
block is final, what a light client checks it with (`chain.lightclient.SetChange`).
See docs/rpc.md.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chain.block import Block
from chain.tx import forget_decoded
from chain.validators import Roster
from ledgerdns.api import codec
from ledgerdns.rpc.errors import ApiError
from ledgerdns.rpc.model import RpcModel
from ledgerdns.services import ValidatorInfo

MAX_HEIGHT = 2**63 - 1

_NEVER_SEEN: dict[str, Any] = {
    "online": False, "last_vote_height": -1, "last_vote_round": -1, "last_seen_ms": 0,
}  # fmt: skip


def _from_height(request: Request) -> int:
    text = request.query_params.get("from_height", "0")
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_HEIGHT:
        raise ApiError.bad_request(f"from_height must be a whole number, not {text[:20]!r}")
    return int(text)


def members_json(roster: Roster, seen: list[ValidatorInfo]) -> list[dict[str, Any]]:
    """The roster's validators, each with what the node saw of it (matched by key).

    The node's own list may lag a change by a height, or predate it; the
    roster decides who is listed, the node only when each was last heard from.
    """
    by_key = {bytes(v.public_key): v for v in seen}
    out = []
    for name, key in zip(roster.names, roster.validators.keys, strict=True):
        info = by_key.get(bytes(key))
        heard = _NEVER_SEEN if info is None else {
            "online": info.online, "last_vote_height": info.last_vote_height,
            "last_vote_round": info.last_vote_round, "last_seen_ms": info.last_seen_ms,
        }  # fmt: skip
        out.append({"name": name, "public_key": bytes(key).hex(), **heard})
    return out


class ValidatorEndpoints:
    """``/v1/validators`` and ``/v1/validators/history`` over one node's read model."""

    def __init__(self, model: RpcModel) -> None:
        self.model = model

    def routes(self) -> list[Route]:
        """The two routes."""
        return [
            Route("/v1/validators", self.validators, methods=["GET"]),
            Route("/v1/validators/history", self.history, methods=["GET"]),
        ]

    async def validators(self, request: Request) -> Response:
        """``GET /v1/validators``: the set in force, pending changes, every roster since genesis."""
        chain = self.model.chain
        head = chain.height
        current = chain.roster_at(head + 1)
        rosters = chain.rosters()
        history = []
        for i, (start, roster) in enumerate(rosters):
            ends = rosters[i + 1][0] - 1 if i + 1 < len(rosters) else None
            state = "scheduled" if start > head + 1 else (
                "current" if ends is None or ends >= head + 1 else "past"
            )  # fmt: skip
            history.append({"from_height": start, "until_height": ends, "state": state,
                            **codec.roster_json(roster)})  # fmt: skip
        pending = [
            codec.proposal_json(p, current, chain.validator_name)
            for p in chain.pending_proposals()
        ]
        return JSONResponse({
            "height": head,
            "validators": members_json(current, self.model.node.validators()),
            "quorum": current.validators.quorum,
            "validators_hash": current.validators.hash().hex(),
            "pending": pending,
            "scheduled": [h for h in history if h["state"] == "scheduled"],
            "history": history,
        })  # fmt: skip

    async def history(self, request: Request) -> Response:
        """``GET /v1/validators/history?from_height=H``: the changes a light client follows.

        One entry per change of the set taking effect at or after `from_height`
        whose announcing block (``from_height - 1``) is final, oldest first.
        """
        chain = self.model.chain
        lowest = _from_height(request)
        head = chain.height
        changes = []
        for start, roster in chain.rosters()[1:]:  # the first is genesis's: not a change
            if start < lowest or start - 1 > head:
                continue
            raw = chain.get_block_bytes(start - 1)
            block = Block.from_bytes(raw)
            forget_decoded(block.txs)  # a final block's transactions are never gossiped again
            changes.append(codec.set_change_json(
                start, roster, block.header, chain.get_certificate(start - 1)
            ))  # fmt: skip
        return JSONResponse({"height": head, "changes": changes})
