"""Network parameters fixed by the genesis file."""

from __future__ import annotations

from dataclasses import dataclass

from chain.quorum import ValidatorSet
from chain.records import RecordLimits


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsensusParams:
    """Timeouts (milliseconds) and block limits for the consensus engine.

    Timeouts grow by `timeout_delta_ms` per round. `heartbeat_ms` is how long a
    proposer waits before proposing an empty block when there are no
    transactions (0: never, so an idle network grows no blocks).
    """

    timeout_propose_ms: int = 1000
    timeout_prevote_ms: int = 500
    timeout_precommit_ms: int = 500
    timeout_delta_ms: int = 500
    heartbeat_ms: int = 0
    max_block_txs: int = 2000
    max_block_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainParams:
    """What every node needs to validate transactions and blocks.

    Attributes:
        chain_id: network name; transactions and votes for another network are refused.
        tlds: the ledger's top-level names (canonical).
        validators: the validator set.
        name_lifetime_s: a name lapses this long after its last register/renew (0: never).
        max_tx_lifetime_s: how far past block time a transaction's valid_until may lie.
        record_limits: per-domain record count and size limits.
        consensus: timeouts and block limits.
        genesis_hash: `Genesis.hash()` of the genesis these came from, set by
            `Genesis` itself (empty only in params no genesis holds). Every
            signature covers it, so another network with the same `chain_id`
            (a second devnet) cannot replay its transactions or votes here.
    """

    chain_id: str
    tlds: tuple[str, ...]
    validators: ValidatorSet
    name_lifetime_s: int
    max_tx_lifetime_s: int
    record_limits: RecordLimits
    consensus: ConsensusParams
    genesis_hash: bytes = b""
