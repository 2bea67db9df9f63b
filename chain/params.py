"""Network parameters fixed by the genesis file."""

from __future__ import annotations

from dataclasses import dataclass, field

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
        naming: commit-reveal, stamp and per-block registration limits.
        genesis_hash: `Genesis.hash()` of the genesis these came from, set by
            `Genesis` itself (empty only in params no genesis holds). Every
            signature covers it, so another network with the same `chain_id`
            (a second devnet) cannot replay its transactions or votes here.
        validator_names: the genesis validators' names, set by `Genesis` (labels:
            the genesis roster of `chain.validators`).
        nameservers: the network's public nameserver host names (canonical,
            first is the SOA MNAME): the NS RRset every node synthesizes at each
            TLD and domain apex. Empty: each node names itself (``--dns-name``).
    """

    chain_id: str
    tlds: tuple[str, ...]
    validators: ValidatorSet
    name_lifetime_s: int
    max_tx_lifetime_s: int
    record_limits: RecordLimits
    consensus: ConsensusParams
    genesis_hash: bytes = b""
    validator_names: tuple[str, ...] = ()
    naming: NamingParams = field(default_factory=lambda: NamingParams())
    nameservers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NamingParams:
    """How names are claimed: commit-reveal, the proof-of-work stamp, per-block limits.

    The defaults are the first format's behaviour: direct registration, no
    stamp, no limits (what dev and test networks use). docs/naming.md argues
    the values of the public example genesis.

    Attributes:
        reveal_delay: N. A reveal is accepted from N heights after its commit's
            block. 0 turns commit-reveal off: names are registered directly
            (dev networks and benchmarks only: nothing stops front-running).
        reveal_window: M. A reveal is refused after M heights past its commit's
            block, when the commit leaves the state.
        stamp_work: expected Argon2id evaluations per sub-stamp for a name of
            ordinary length (0: no stamp).
        stamp_count: k, sub-stamps per stamp (the cost's spread is 1/sqrt(k)).
        stamp_memory_kib: Argon2id memory per evaluation.
        stamp_passes: Argon2id passes over the memory.
        stamp_short_factors: the work multiplier for a label of 1, 2, ...
            characters (longer labels: 1).
        max_block_commits: commits per block (0: no limit but the block's).
        max_block_registrations: registrations per block (0: no limit).
    """

    reveal_delay: int = 0
    reveal_window: int = 0
    stamp_work: int = 0
    stamp_count: int = 16
    stamp_memory_kib: int = 256
    stamp_passes: int = 1
    stamp_short_factors: tuple[int, ...] = ()
    max_block_commits: int = 0
    max_block_registrations: int = 0

    @property
    def commit_reveal(self) -> bool:
        """Whether registrations go through a commit and a later reveal."""
        return self.reveal_delay > 0

    def required_work(self, domain: str) -> int:
        """The stamp work a registration of `domain` needs (by its first label's length)."""
        length = len(domain.partition(".")[0])
        factors = self.stamp_short_factors
        factor = factors[length - 1] if 0 < length <= len(factors) else 1
        return self.stamp_work * factor


# The naming rules of a public network, measured in docs/naming.md (tools/bench_stamp.py):
# ~9 CPU-seconds of stamp a name (16 sub-stamps of 256 KiB Argon2id, 4,608 evaluations
# each on average), ~2 ms to verify; labels of 1 to 5 characters cost 64, 32, 16, 4, 2
# times that. `ledgerdns genesis new` starts from these; genesis/example-public.json has them.
PUBLIC_NAMING = NamingParams(
    reveal_delay=1,
    reveal_window=64,
    stamp_work=4608,
    stamp_count=16,
    stamp_memory_kib=256,
    stamp_passes=1,
    stamp_short_factors=(64, 32, 16, 4, 2),
    max_block_commits=64,
    max_block_registrations=64,
)
PUBLIC_NAME_LIFETIME_S = 365 * 86400
