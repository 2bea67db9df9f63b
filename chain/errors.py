"""The ledger's exception tree and the reason codes every rejection carries.

One root, `LedgerError`; families under it. `InvalidUpdate` is bad input from
outside (a peer, a wallet, a file) and carries a machine-readable `reason` and a
`penalty` that only the network edge turns into peer scoring.
"""

from __future__ import annotations

from enum import StrEnum


class RejectReason(StrEnum):
    """Why a piece of outside input was refused. Stable strings: they go over RPC."""

    # -- bytes and encoding --
    MALFORMED = "malformed"
    NON_CANONICAL = "non-canonical"
    UNKNOWN_VERSION = "unknown-version"
    OVERSIZE = "oversize"
    # -- names and records --
    BAD_NAME = "bad-name"
    BAD_RECORD = "bad-record"
    CNAME_CONFLICT = "cname-conflict"
    TOO_MANY_RECORDS = "too-many-records"
    RECORDS_TOO_LARGE = "records-too-large"
    # -- crypto --
    BAD_KEY = "bad-key"
    BAD_SIGNATURE = "bad-signature"
    # -- transaction rules --
    WRONG_CHAIN = "wrong-chain"
    TX_EXPIRED = "tx-expired"
    TX_TOO_FAR = "tx-too-far"
    BAD_SEQUENCE = "bad-sequence"
    BAD_PREV = "bad-prev"
    NOT_OWNER = "not-owner"
    NAME_TAKEN = "name-taken"
    NAME_NOT_ACTIVE = "name-not-active"
    BAD_OP = "bad-op"
    DUPLICATE = "duplicate"
    # -- naming policy (issue 15, docs/naming.md) --
    COMMIT_REQUIRED = "commit-required"
    COMMIT_REVEAL_OFF = "commit-reveal-off"
    BAD_STAMP = "bad-stamp"
    STAMP_TOO_WEAK = "stamp-too-weak"
    COMMIT_NOT_FOUND = "commit-not-found"
    REVEAL_TOO_EARLY = "reveal-too-early"
    REVEAL_TOO_LATE = "reveal-too-late"
    NAME_PROVISIONAL = "name-provisional"
    TOO_MANY_REGISTRATIONS = "too-many-registrations"
    # -- blocks and certificates --
    BAD_HEIGHT = "bad-height"
    BAD_PREV_BLOCK = "bad-prev-block"
    BAD_TIME = "bad-time"
    BAD_PROPOSER = "bad-proposer"
    BAD_TX_ROOT = "bad-tx-root"
    BAD_STATE_ROOT = "bad-state-root"
    BAD_VALIDATORS = "bad-validators"
    BLOCK_TOO_LARGE = "block-too-large"
    BAD_VOTE = "bad-vote"
    UNKNOWN_VALIDATOR = "unknown-validator"
    NO_QUORUM = "no-quorum"
    BAD_PROOF = "bad-proof"
    STALE_PROOF = "stale-proof"
    # -- validator-set changes (chain/validators.py) --
    BAD_VALIDATOR_CHANGE = "bad-validator-change"
    NOT_VALIDATOR = "not-validator"
    PROPOSAL_NOT_FOUND = "proposal-not-found"
    # -- mempool admission --
    MEMPOOL_FULL = "mempool-full"
    DOMAIN_QUEUE_FULL = "domain-queue-full"


# Penalties are a hint for peer scoring: 0 means "honest peers can send this"
# (races, full queues), higher means "only a broken or hostile peer sends this".
# A transaction's rejection is 0 exactly when it depends on state or the clock,
# where an honest peer ahead of or behind us may differ (`apply_tx`, the mempool);
# what `check_tx_static` refuses carries the default (issue 13).
_PENALTY: dict[RejectReason, int] = {
    RejectReason.TX_EXPIRED: 0,
    RejectReason.TX_TOO_FAR: 0,
    RejectReason.BAD_SEQUENCE: 0,
    RejectReason.BAD_PREV: 0,
    RejectReason.NAME_TAKEN: 0,
    RejectReason.NAME_NOT_ACTIVE: 0,
    RejectReason.NOT_OWNER: 0,
    RejectReason.DUPLICATE: 0,
    RejectReason.STAMP_TOO_WEAK: 0,
    RejectReason.COMMIT_NOT_FOUND: 0,
    RejectReason.REVEAL_TOO_EARLY: 0,
    RejectReason.REVEAL_TOO_LATE: 0,
    RejectReason.NAME_PROVISIONAL: 0,
    RejectReason.MEMPOOL_FULL: 0,
    RejectReason.DOMAIN_QUEUE_FULL: 0,
    RejectReason.BAD_VALIDATOR_CHANGE: 0,  # a change that applied may no longer (set changed)
    RejectReason.NOT_VALIDATOR: 0,  # a validator removed since it signed
    RejectReason.PROPOSAL_NOT_FOUND: 0,  # approved, lapsed or not yet final here
    RejectReason.STALE_PROOF: 0,  # an honest node that is behind serves an old head
}
DEFAULT_PENALTY = 50


class LedgerError(Exception):
    """A ledger error.

    The one root of every error ledgerdns raises on purpose, in the core and in
    the node (as dnspython's `DNSException` and hsd's errors are theirs). Its
    families: `InvalidUpdate` (bad input from outside), `NotFound` (data not held
    here), `StorageError`, `ConfigError` (a usage, file or configuration
    mistake: exit code 2), and `NetworkError` (another node or peer did not do
    what was needed). The command line turns any of them into one line (or one
    JSON object) and an exit code in one place, `ledgerdns.cli.main`, reading
    `code` and `exit_code`.
    """

    #: what ``--json`` output says in ``"error"`` (a stable, machine-readable word)
    code: str = "error"
    #: the process exit status the command line ends with
    exit_code: int = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (type(self).__doc__ or type(self).__name__).strip())


class InvalidUpdate(LedgerError):
    """Input from outside was refused."""

    def __init__(
        self, reason: RejectReason, message: str | None = None, *, penalty: int | None = None
    ) -> None:
        super().__init__(message or reason.value)
        self.reason = reason
        self.code = reason.value
        self.penalty = _PENALTY.get(reason, DEFAULT_PENALTY) if penalty is None else penalty

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.args[0]}"


class NotFound(LedgerError):
    """The requested data is not held locally."""


class StorageError(LedgerError):
    """The storage back-end failed."""


class ConfigError(LedgerError):
    """A configuration or genesis file is invalid."""

    code = "usage"
    exit_code = 2

    def __init__(self, message: str | None = None, *, key: str | None = None) -> None:
        text = message or "invalid configuration"
        super().__init__(f"{key}: {text}" if key else text)
        self.key = key


class NetworkError(LedgerError):
    """Another node or peer did not do what was needed (unreachable, refused, timed out)."""
