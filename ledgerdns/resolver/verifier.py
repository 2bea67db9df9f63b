"""Verified answers from untrusted upstreams: ask each in turn until one proves its answer.

For a question under a ledger TLD the resolver asks its upstreams in order for
the proof (`ledgerdns.resolver.upstream`), and checks it with
`chain.dns_proof.verify_answer` against the trusted genesis, the validator-set
history followed so far and the wall clock (``--max-staleness``). The first
answer that verifies wins. Every refusal is logged at warning, naming the
upstream and what was wrong: a forged record or proof (``bad-proof``), another
network (``wrong-chain``, ``bad-signature``), an old state (``stale-proof``),
garbage (``malformed``), silence (``timeout``).

The validator-set history is kept in memory and only grows: each verified
answer may carry changes the resolver had not followed (`follow_validator_set`
checks each against the set before it); a node that has more than fit in one
answer says so, and is asked again from the new height (`IncompleteHistory`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio

from chain.dns_proof import (
    IncompleteHistory,
    ProofAnswer,
    ProofRequest,
    VerifiedAnswer,
    verify_answer,
)
from chain.errors import InvalidUpdate
from chain.params import ChainParams
from chain.quorum import ValidatorSet
from ledgerdns.dns.result import Labels
from ledgerdns.resolver.answers import Failure
from ledgerdns.resolver.config import Address, format_address
from ledgerdns.resolver.upstream import UpstreamError, ask

log = logging.getLogger(__name__)

# A node far behind on the set history gets this many questions in a row (each
# answer carries at most `chain.dns_proof.MAX_CHANGES` changes).
MAX_HISTORY_ROUNDS = 16
# After a truncated UDP reply, an upstream is asked over TCP directly for this long
# (proofs grow with the validator set: one that did not fit will not fit next time).
TCP_FIRST_S = 300.0


@dataclass(frozen=True, slots=True)
class Refusals:
    """Every upstream failed: why, one entry per upstream."""

    failures: list[Failure]


class _Flight:
    """A question being asked upstream now, which identical questions wait for."""

    __slots__ = ("done", "result")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: VerifiedAnswer | Refusals | None = None  # None when set: cancelled


class Verifier:
    """Asks upstreams for proven answers and checks them.

    Args:
        params: the trusted genesis's parameters.
        upstreams: ledger nodes, asked in this order.
        max_age_ms: the oldest certified header accepted.
        timeout_s: how long each upstream has for one question.
        now_ms: the wall clock (unix ms).

    Attributes:
        accepted, refused: counters of verified answers and refused upstream replies.
        coalesced: questions that waited for the same name's fetch in flight.
    """

    def __init__(
        self,
        params: ChainParams,
        upstreams: tuple[Address, ...],
        *,
        max_age_ms: int,
        timeout_s: float,
        now_ms: Callable[[], int],
    ) -> None:
        self._params = params
        self._upstreams = upstreams
        self._max_age_ms = max_age_ms
        self._timeout = timeout_s
        self._now_ms = now_ms
        self._followed: list[tuple[int, ValidatorSet]] = [(1, params.validators)]
        self._flights: dict[Labels, _Flight] = {}
        self._tcp_until: dict[Address, float] = {}  # trio clock: ask over TCP first until then
        self.accepted = 0
        self.refused = 0
        self.coalesced = 0

    @property
    def followed(self) -> list[tuple[int, ValidatorSet]]:
        """The validator-set history followed so far, ``(from_height, set)`` oldest first."""
        return list(self._followed)

    async def fetch(self, qname: Labels, qtype: int) -> VerifiedAnswer | Refusals:
        """The first upstream answer for `qname` that verifies, or why none did.

        The proof depends on the name only (its domain), not on the type: questions
        for a name already being fetched wait for that fetch and share its result.
        """
        flight = self._flights.get(qname)
        if flight is not None:
            await flight.done.wait()
            if flight.result is not None:
                self.coalesced += 1
                return flight.result
        flight = self._flights[qname] = _Flight()
        try:
            flight.result = await self._fetch(qname, qtype)
        finally:
            if self._flights.get(qname) is flight:
                del self._flights[qname]
            flight.done.set()
        return flight.result

    async def _fetch(self, qname: Labels, qtype: int) -> VerifiedAnswer | Refusals:
        failures = []
        for address in self._upstreams:
            result = await self._from(address, qname, qtype)
            if isinstance(result, Failure):
                failures.append(result)
                self.refused += 1
                continue
            self.accepted += 1
            return result
        return Refusals(failures)

    async def _from(self, address: Address, qname: Labels, qtype: int) -> VerifiedAnswer | Failure:
        name = format_address(address)
        for _ in range(MAX_HISTORY_ROUNDS):
            request = ProofRequest.following(self._followed).to_bytes()
            data: bytes | None = None
            tcp_first = trio.current_time() < self._tcp_until.get(address, 0.0)
            with trio.move_on_after(self._timeout):
                try:
                    data, truncated = await ask(address, qname, qtype, request, tcp_first=tcp_first)
                except UpstreamError as exc:
                    return self._refuse(name, qname, exc.reason, str(exc), exc.unreachable)
                if truncated:  # its proofs do not fit UDP: save the round trip for a while
                    self._tcp_until[address] = trio.current_time() + TCP_FIRST_S
            if data is None:
                return self._refuse(
                    name, qname, "timeout", f"no reply in {self._timeout:g} s", True
                )
            try:
                verified = verify_answer(
                    ProofAnswer.from_bytes(data),
                    params=self._params,
                    known=self._followed,
                    qname=qname,
                    now_ms=self._now_ms(),
                    max_age_ms=self._max_age_ms,
                )
            except IncompleteHistory as exc:
                self._learn(exc.followed, name)
                continue  # verified so far: ask the same node for the rest
            except InvalidUpdate as exc:
                return self._refuse(name, qname, exc.reason.value, str(exc), False)
            except Exception as exc:
                # A decoder or check that should have said InvalidUpdate: a bug, logged loudly,
                # but one hostile upstream must not keep the others from being asked.
                log.error("proof check failed upstream=%s", name, exc_info=True)
                return self._refuse(name, qname, "malformed", repr(exc), False)
            self._learn(verified.followed, name)
            return verified
        return self._refuse(
            name, qname, "bad-validators", f"set history still incomplete after "
            f"{MAX_HISTORY_ROUNDS} answers", False,
        )  # fmt: skip

    def _learn(self, followed: list[tuple[int, ValidatorSet]], upstream: str) -> None:
        """Keep a longer verified history (two concurrent answers may race: keep the newest)."""
        if followed[-1][0] > self._followed[-1][0]:
            log.info(
                "validator set followed from_height=%d sets=%d upstream=%s",
                followed[-1][0], len(followed), upstream,
            )  # fmt: skip
            self._followed = list(followed)

    def _refuse(
        self, upstream: str, qname: Labels, reason: str, detail: str, unreachable: bool
    ) -> Failure:
        shown = b".".join(qname).decode("ascii", "replace")
        if unreachable:
            log.warning("upstream unreachable upstream=%s name=%s reason=%s detail=%s",
                        upstream, shown, reason, detail)  # fmt: skip
        else:
            log.warning("upstream answer refused upstream=%s name=%s reason=%s detail=%s",
                        upstream, shown, reason, detail)  # fmt: skip
        return Failure(upstream, reason, detail, unreachable)
