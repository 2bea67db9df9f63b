"""The RPC's error vocabulary: the `ApiError` a handler raises and its HTTP status.

Every error body is ``{"error": code, "message": text}``. A refused
transaction carries its `RejectReason` value as the code; the status says
what kind of refusal it was (see `reject_status`).
"""

from __future__ import annotations

from typing import Any

from chain.errors import InvalidUpdate, LedgerError, RejectReason

BAD_REQUEST = "bad-request"
NOT_FOUND = "not-found"
UNAUTHORIZED = "unauthorized"
TOO_LARGE = "too-large"
METHOD_NOT_ALLOWED = "method-not-allowed"
INTERNAL = "internal"

# The transaction is fine on its own but clashes with the chain or the
# mempool as they are now: a wallet should refresh its view and rebuild.
CONFLICT_REASONS = frozenset(
    {
        RejectReason.BAD_SEQUENCE,
        RejectReason.BAD_PREV,
        RejectReason.NAME_TAKEN,
        RejectReason.NAME_NOT_ACTIVE,
        RejectReason.DUPLICATE,
    }
)
# The node cannot hold more right now: the same bytes may succeed later.
BUSY_REASONS = frozenset({RejectReason.MEMPOOL_FULL, RejectReason.DOMAIN_QUEUE_FULL})


def reject_status(reason: RejectReason) -> int:
    """The HTTP status of a refusal: 409 conflict, 503 busy, else 400."""
    if reason in CONFLICT_REASONS:
        return 409
    if reason in BUSY_REASONS:
        return 503
    return 400


class ApiError(LedgerError):
    """A request the RPC answers with an error body instead of a result."""

    def __init__(
        self, status: int, code: str, message: str, *, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}

    @classmethod
    def rejected(cls, exc: InvalidUpdate) -> ApiError:
        """The error for a refused transaction or name."""
        return cls(reject_status(exc.reason), exc.reason.value, str(exc.args[0]))

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        """400 ``bad-request``: the request itself is malformed."""
        return cls(400, BAD_REQUEST, message)

    @classmethod
    def not_found(cls, message: str, *, extra: dict[str, Any] | None = None) -> ApiError:
        """404 ``not-found`` (`extra` fields go into the body)."""
        return cls(404, NOT_FOUND, message, extra=extra)

    def to_json(self) -> dict[str, Any]:
        """The response body."""
        return {"error": self.code, "message": self.message, **self.extra}
