"""`wallet show` and `history`: the node's answer checked with a light-client proof, and its age.

The wallet trusts a genesis file, never the node. The node's proof bundle (a
certified header, its commit certificate, the domain's state and a state-tree
proof) is checked with `chain.lightclient` against that genesis and the local
clock. A genuine proof may still be old: a node that is behind, or one hiding
newer blocks, serves an earlier certified header. So a proof whose header is
older than the freshness bound is refused. On a network whose genesis sets a
heartbeat, the newest header is never much older than a heartbeat even when
nothing changes, and the bound defaults to `chain.lightclient.default_max_age_ms`;
without a heartbeat an idle network's head may be any age, so the age is only
reported unless ``--max-staleness`` is given (issue 13).

Both commands verify by default (issue 16), as the explorer does; ``--no-verify``
skips it. The default is forgiving only where nothing can be checked (no genesis
at hand with ``--rpc``, or a chain with no certified block yet): the output then
says "NOT verified" and why. An explicit ``--verify`` makes those cases errors. A
history is proven by its hash links down from the proven head
(`chain.history_proof`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.errors import ConfigError, InvalidUpdate, RejectReason
from chain.genesis import Genesis
from chain.history_proof import HistoryStep, verify_history
from chain.lightclient import DomainProof, default_max_age_ms, validators_for
from ledgerdns.api.codec import tx_from_json
from ledgerdns.wallet.errors import NodeError, UsageError, WalletError
from ledgerdns.wallet.link import RpcLink

HISTORY_ATTEMPTS = 3  # a block may land between the proof and the listing: fetch again


@dataclass(frozen=True, slots=True, kw_only=True)
class Trust:
    """What a proof is checked against.

    Attributes:
        genesis: the genesis the user trusts.
        max_age_ms: the oldest certified header accepted; None: any age (reported only).
        bound_from: where the bound comes from, for the output.
        strict: ``--verify`` was given: a chain with no certified block yet is an
            error, not an unverified answer.
    """

    genesis: Genesis
    max_age_ms: int | None
    bound_from: str
    strict: bool = False


@dataclass(frozen=True, slots=True)
class Unverified:
    """Why the node's answer is shown without a proof (``--no-verify``, no genesis...)."""

    reason: str

    def to_json(self) -> dict[str, Any]:
        """The fields ``--json`` adds."""
        return {"verified": False, "not_verified": self.reason}

    def to_text(self) -> str:
        """One line for people."""
        return f"NOT verified: {self.reason}"


def load_trust(genesis_path: Path, max_staleness_s: float | None, *, strict: bool = False) -> Trust:
    """The trusted genesis and the freshness bound (``--max-staleness`` or the genesis's default).

    Raises:
        UsageError: the genesis cannot be read or is invalid, or the bound is not positive.
    """
    try:
        genesis = Genesis.from_json(genesis_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--genesis: cannot read {genesis_path}: {exc}") from None
    except ConfigError as exc:
        raise UsageError(f"--genesis: {genesis_path}: {exc}") from None
    if max_staleness_s is not None:
        if not max_staleness_s > 0:
            raise UsageError("--max-staleness must be a positive number of seconds")
        return Trust(
            genesis=genesis, max_age_ms=int(max_staleness_s * 1000), bound_from="--max-staleness",
            strict=strict,
        )  # fmt: skip
    default = default_max_age_ms(genesis.params)
    heartbeat_s = genesis.params.consensus.heartbeat_ms / 1000
    if default is None:
        return Trust(genesis=genesis, max_age_ms=None, bound_from="none: the genesis sets no heartbeat",
                     strict=strict)  # fmt: skip
    return Trust(genesis=genesis, max_age_ms=default, bound_from=f"the genesis heartbeat of {heartbeat_s:g} s",
                 strict=strict)  # fmt: skip


class ProofRefused(WalletError):
    """The node's proof did not verify, or is older than the freshness bound.

    Attributes:
        code: the `RejectReason` value (``stale-proof``, ``bad-proof``...).
        data: what ``--json`` adds to the error object (``verified``, ``height``, ``age_s``).
    """

    def __init__(self, domain: str, error: InvalidUpdate, data: dict[str, Any]) -> None:
        super().__init__(f"the proof of {domain} is NOT verified: {error}")
        self.code = error.reason.value
        self.data = data


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """A verified proof and how old its certified header is."""

    proof: DomainProof
    age_ms: int
    trust: Trust
    quorum: int  # of the validator set that certified the header

    @property
    def height(self) -> int:
        """The certified height."""
        return self.proof.header.height

    def to_json(self) -> dict[str, Any]:
        """The fields ``show --verify --json`` adds."""
        bound = self.trust.max_age_ms
        return {
            "verified": True,
            "height": self.height,
            "block_hash": self.proof.header.hash.hex(),
            "age_s": round(self.age_ms / 1000, 3),
            "max_staleness_s": None if bound is None else bound / 1000,
        }

    def to_text(self) -> str:
        """One line for people."""
        signers = len(self.proof.certificate.signatures)
        quorum = self.quorum
        bound = self.trust.max_age_ms
        limit = (
            f"bound {bound / 1000:g} s from {self.trust.bound_from}"
            if bound is not None
            else "not bounded: the genesis sets no heartbeat (pass --max-staleness)"
        )
        return (
            f"verified: certified height {self.height} ({signers} signatures, quorum {quorum}), "
            f"header {self.age_ms / 1000:.1f} s old ({limit})"
        )


def verify_domain(node: RpcLink, domain: str, trust: Trust, now_ms: int) -> Verdict:
    """The node's proof of `domain`, checked against `trust` at the local clock `now_ms`.

    Raises:
        ProofRefused: the proof is not for `domain`, does not verify, or is too old.
        NodeError: no node answers, or it has no proof (before block 1).
    """
    try:
        proof = node.proof(domain)
    except InvalidUpdate as exc:
        raise ProofRefused(domain, exc, {"verified": False, "height": None, "age_s": None}) from None
    age_ms = now_ms - proof.header.time_ms
    # The header's height and time are the node's word until the proof verifies;
    # a STALE_PROOF is checked last, so its figures are genuine.
    data: dict[str, Any] = {
        "verified": False, "height": proof.header.height, "age_s": round(age_ms / 1000, 3),
    }  # fmt: skip
    try:
        if proof.domain != domain:
            raise InvalidUpdate(RejectReason.BAD_PROOF, f"the node proved {proof.domain}, not {domain}")
        params = trust.genesis.params
        # The set may have changed since genesis: then it is followed from genesis, each
        # step checked against the one before (chain.lightclient.follow_validator_set).
        validators = validators_for(params, proof.header, node.set_changes)
        proof.verify(params, now_ms=now_ms, max_age_ms=trust.max_age_ms, validators=validators)
    except InvalidUpdate as exc:
        raise ProofRefused(domain, exc, data) from None
    return Verdict(proof=proof, age_ms=age_ms, trust=trust, quorum=validators.quorum)


def check_domain(node: RpcLink, domain: str, trust: Trust | Unverified, now_ms: int) -> Verdict | Unverified:
    """`verify_domain` as ``show`` and ``history`` apply it by default.

    Raises:
        ProofRefused: the proof does not verify or is too old.
        NodeError: no node answers; or, with a strict `trust`, the chain has no
            certified block yet.
    """
    if isinstance(trust, Unverified):
        return trust
    try:
        return verify_domain(node, domain, trust, now_ms)
    except NodeError as exc:
        if exc.code != "not-found" or trust.strict:
            raise
        return Unverified("the chain has no certified block yet (proofs start at height 1)")


def proven_history(
    node: RpcLink, domain: str, trust: Trust | Unverified, now_ms: int
) -> tuple[list[dict[str, Any]], Verdict | Unverified]:
    """The node's listing of `domain`'s chain and, with `trust`, its proof by hash links.

    Raises:
        ProofRefused: the proof does not verify, is too old, or the listing does
            not hash down from the proven head.
        NodeError: as `check_domain`.
    """
    if isinstance(trust, Unverified):
        return node.history(domain), trust
    for _ in range(HISTORY_ATTEMPTS):
        verdict = check_domain(node, domain, trust, now_ms)
        steps = node.history(domain)
        if isinstance(verdict, Unverified):
            return steps, verdict
        state = verdict.proof.state
        if state is None or len(steps) <= state.seq + 1:
            break  # else a block landed after the proof: prove again
    data = {**verdict.to_json(), "verified": False}
    try:
        verify_history(domain, trust.genesis.params.chain_id, state, [_step(s) for s in steps])
    except InvalidUpdate as exc:
        raise ProofRefused(domain, exc, data) from None
    return steps, verdict


def _step(doc: dict[str, Any]) -> HistoryStep:
    """One listed step, decoded from its canonical bytes (InvalidUpdate: malformed)."""
    try:
        txid = bytes.fromhex(str(doc["txid"]))
        seq = int(doc["seq"])
        tx = None if doc.get("tx") is None else tx_from_json(doc["tx"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidUpdate(RejectReason.MALFORMED, f"history: a malformed step ({exc})") from None
    return HistoryStep(seq=seq, txid=txid, tx=tx)
