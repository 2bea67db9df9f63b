"""The mempool: transactions this node accepted but has not yet seen finalized.

Per domain the pending transactions form a chain extending the finalized
state: each new one is checked with `apply_tx` against the state after the
domain's last pending one. So a second transaction for a seq already pending
is refused (first seen wins locally; consensus decides globally), and an
update signed by the new owner after a pending transfer is accepted.

When a block is finalized, `block_applied` removes its transactions and
re-checks the remaining chain of every domain it touched; the first one that
no longer applies is dropped with every later one of that domain (they build
on it). Expiry is found through a heap keyed by ``valid_until`` whose stale
entries are skipped lazily and compacted when they outnumber the live ones.

A name commit belongs to no domain: it waits on its own, once per commitment
and owner. So does a validator proposal or approval, from a member of the next
height's validator set only. With a view of the chain (`NamingView`), reveals and updates are
checked against the commits and claims of the next height; without one their
naming rules wait for the block that would carry them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chain.commits import (
    Claim,
    CommitEntry,
    NameContext,
    claim_tree_key,
    commit_tree_key,
    reveal_commit_key,
)
from chain.errors import InvalidUpdate, RejectReason
from chain.params import ChainParams
from chain.quorum import ValidatorSet
from chain.rules import apply_tx, check_tx_static
from chain.state import DomainState
from chain.tx import VALIDATOR_OPS, Op, Transaction, TxHash

Finalized = Callable[[str], DomainState | None]
"""Looks up a domain's finalized state (None if never registered)."""


class NamingView(Protocol):
    """The finalized chain as the naming rules read it (`chain.ledger.Ledger` is one)."""

    @property
    def height(self) -> int:
        """The last finalized height."""
        ...

    def get_naming_entry(self, tree_key: bytes) -> object | None:
        """A commit, claim or other state entry by state-tree key."""
        ...

    def validators_at(self, height: int) -> ValidatorSet:
        """The validator set of `height`."""
        ...

    def get_proposal(self, proposal_id: bytes) -> object | None:
        """A pending validator-set proposal by id, None if not pending."""
        ...


DEFAULT_MAX_TXS = 10_000
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_PER_DOMAIN = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class _Pending:
    """A pending transaction and the domain's state after it."""

    tx: Transaction
    after: DomainState


class Mempool:
    """Pending transactions in arrival order, chained per domain."""

    def __init__(
        self,
        params: ChainParams,
        *,
        max_txs: int = DEFAULT_MAX_TXS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_per_domain: int = DEFAULT_MAX_PER_DOMAIN,
        chain: NamingView | None = None,
    ) -> None:
        if min(max_txs, max_bytes, max_per_domain) < 1:
            raise ValueError("mempool limits must be positive")
        self.params = params
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.max_per_domain = max_per_domain
        self.chain = chain
        self._commits: dict[bytes, TxHash] = {}  # pending commits by state-tree key
        self._validator_ops: dict[TxHash, Transaction] = {}  # pending validator ops, in arrival order
        self._txs: dict[TxHash, Transaction] = {}  # insertion order is arrival order
        self._chains: dict[str, list[_Pending]] = {}
        # (valid_until, txid) heap; entries of txs already gone stay until popped, and it is
        # rebuilt from `_txs` once over 2 * len(_txs) + 64 entries (in `_expire`)
        self._expiry: list[tuple[int, TxHash]] = []
        self._bytes = 0

    # -- reading --

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, txid: object) -> bool:
        return txid in self._txs

    def get(self, txid: bytes) -> Transaction | None:
        """The pending transaction `txid`, if held."""
        return self._txs.get(TxHash(txid))

    @property
    def size_bytes(self) -> int:
        """Sum of `Transaction.size` over the pending transactions."""
        return self._bytes

    def pending_for(self, domain: str) -> list[Transaction]:
        """The domain's pending transactions in seq order."""
        return [p.tx for p in self._chains.get(domain, ())]

    def snapshot(self) -> list[Transaction]:
        """All pending transactions in arrival order."""
        return list(self._txs.values())

    def batch(self, max_txs: int, max_bytes: int) -> list[Transaction]:
        """Pending transactions in arrival order, up to the limits (not removed).

        Stops at the first one that does not fit, so no domain's chain has a gap.
        Commits and registrations past the network's per-block limits are left
        for a later block, with every later transaction of their domains.
        """
        naming = self.params.naming
        commits = registrations = 0
        waiting: set[str] = set()
        out: list[Transaction] = []
        size = 0
        for tx in self._txs.values():
            if len(out) >= max_txs or size + tx.size > max_bytes:
                break
            op, domain = tx.body.op, tx.body.domain
            if op == Op.COMMIT:
                if naming.max_block_commits and commits >= naming.max_block_commits:
                    continue
                commits += 1
            elif domain in waiting or (
                op == Op.REGISTER
                and naming.max_block_registrations
                and registrations >= naming.max_block_registrations
            ):
                waiting.add(domain)
                continue
            elif op == Op.REGISTER:
                registrations += 1
            out.append(tx)
            size += tx.size
        return out

    # -- admission --

    def add(self, tx: Transaction, finalized: Finalized, now_s: int) -> None:
        """Accept `tx` if it extends its domain's pending chain at time `now_s`.

        Raises:
            InvalidUpdate: DUPLICATE, any rule from `check_tx_static`/`apply_tx`,
                DOMAIN_QUEUE_FULL or MEMPOOL_FULL.
        """
        if tx.txid in self._txs:
            raise InvalidUpdate(RejectReason.DUPLICATE, f"{tx.txid.hex()[:16]} already pending")
        if tx.body.op == Op.COMMIT:
            self._add_commit(tx)
            return
        if tx.body.op in VALIDATOR_OPS:
            self._add_validator_op(tx)
            return
        domain = tx.body.domain
        chain = self._chains.get(domain, [])
        # The caps come before the rules: no signature check for a tx we cannot hold.
        if len(chain) >= self.max_per_domain:
            raise InvalidUpdate(
                RejectReason.DOMAIN_QUEUE_FULL,
                f"{domain}: {len(chain)} updates already pending; wait for a block",
            )
        if len(self._txs) >= self.max_txs or self._bytes + tx.size > self.max_bytes:
            raise InvalidUpdate(RejectReason.MEMPOOL_FULL, "the mempool is full")
        check_tx_static(tx, self.params)
        current = chain[-1].after if chain else finalized(domain)
        after = apply_tx(current, tx, self.params, now_s, self._context(tx))
        self._chains.setdefault(domain, chain).append(_Pending(tx=tx, after=after))
        self._hold(tx)

    def _add_commit(self, tx: Transaction) -> None:
        body = tx.body
        if len(self._txs) >= self.max_txs or self._bytes + tx.size > self.max_bytes:
            raise InvalidUpdate(RejectReason.MEMPOOL_FULL, "the mempool is full")
        key = commit_tree_key(body.commitment, body.owner)
        known = key in self._commits or (
            self.chain is not None and self.chain.get_naming_entry(key) is not None
        )
        if known:
            raise InvalidUpdate(
                RejectReason.DUPLICATE, f"commit {body.commitment.hex()[:16]} is already made"
            )
        check_tx_static(tx, self.params)  # the stamp: after the cheap checks
        self._commits[key] = tx.txid
        self._hold(tx)

    def _add_validator_op(self, tx: Transaction) -> None:
        if len(self._txs) >= self.max_txs or self._bytes + tx.size > self.max_bytes:
            raise InvalidUpdate(RejectReason.MEMPOOL_FULL, "the mempool is full")
        if self.chain is not None:
            self._check_validator_op(tx, self.chain.validators_at(self.chain.height + 1))
        check_tx_static(tx, self.params)
        self._hold(tx)

    def _hold(self, tx: Transaction) -> None:
        self._txs[tx.txid] = tx
        self._bytes += tx.size
        if tx.body.op in VALIDATOR_OPS:
            self._validator_ops[tx.txid] = tx
        heapq.heappush(self._expiry, (tx.body.valid_until, tx.txid))

    def _context(self, tx: Transaction) -> NameContext | None:
        """The naming rules' view of the next block, if this pool can see the chain."""
        if self.chain is None or not self.params.naming.commit_reveal:
            return None
        view = self.chain
        claim = view.get_naming_entry(claim_tree_key(tx.body.domain))
        commit = None
        if tx.body.is_reveal:
            found = view.get_naming_entry(reveal_commit_key(tx, self.params.genesis_hash))
            commit = found if isinstance(found, CommitEntry) else None
        return NameContext(
            height=view.height + 1,
            commit=commit,
            claim=claim if isinstance(claim, Claim) else None,
        )

    # -- removal --

    def block_applied(
        self, txs: Sequence[Transaction], finalized: Finalized, now_s: int
    ) -> list[tuple[Transaction, InvalidUpdate]]:
        """Forget a finalized block's transactions and drop what no longer applies.

        Every touched domain's remaining chain is re-checked against its new
        finalized state at block time `now_s`; then expired transactions of all
        domains are dropped.

        Returns:
            The dropped transactions (not the included ones), each with the reason.
        """
        included = {tx.txid for tx in txs}
        for tx in txs:
            if not tx.body.has_domain and tx.txid in self._txs:
                self._forget(tx)
        touched = {tx.body.domain for tx in txs if tx.body.has_domain}
        dropped: list[tuple[Transaction, InvalidUpdate]] = []
        for domain in sorted(touched):
            chain = self._chains.get(domain)
            if chain is None:
                continue
            for p in chain:
                if p.tx.txid in included:
                    self._forget(p.tx)
            chain[:] = [p for p in chain if p.tx.txid not in included]
            dropped += self._recheck(domain, finalized(domain), now_s)
        dropped += self._drop_stale_validator_ops()
        dropped += self._expire(now_s)
        return dropped

    def _drop_stale_validator_ops(self) -> list[tuple[Transaction, InvalidUpdate]]:
        """Validator ops the chain has made useless: an approval of a proposal no longer
        pending (scheduled or lapsed), any op of a key that left the set. A node that never
        proposes would otherwise hold (and gossip) them until their `valid_until`."""
        ops = list(self._validator_ops.values())  # not a scan of the whole pool each block
        if self.chain is None or not ops:
            return []
        out: list[tuple[Transaction, InvalidUpdate]] = []
        members = self.chain.validators_at(self.chain.height + 1)
        for tx in ops:
            try:
                self._check_validator_op(tx, members)
            except InvalidUpdate as exc:
                self._forget(tx)
                out.append((tx, exc))
        return out

    def _check_validator_op(self, tx: Transaction, members: ValidatorSet) -> None:
        """NOT_VALIDATOR or PROPOSAL_NOT_FOUND against the chain this pool sees."""
        assert self.chain is not None
        if members.index_of(tx.body.owner) is None:
            raise InvalidUpdate(
                RejectReason.NOT_VALIDATOR,
                f"key {bytes(tx.body.owner).hex()[:16]}… is not a validator at height {self.chain.height + 1}",
            )
        if tx.body.op == Op.VALIDATOR_APPROVE and self.chain.get_proposal(tx.body.change) is None:
            raise InvalidUpdate(
                RejectReason.PROPOSAL_NOT_FOUND,
                f"no pending proposal {tx.body.change.hex()[:16]} (approved already, lapsed, "
                "or not yet in a finalized block here)",
            )

    def remove_expired(self, now_s: int) -> list[Transaction]:
        """Drop transactions with ``valid_until < now_s`` and the later ones of their domains."""
        return [tx for tx, _ in self._expire(now_s)]

    def discard(self, txid: bytes, error: InvalidUpdate) -> list[tuple[Transaction, InvalidUpdate]]:
        """Drop `txid` for `error` (e.g. `build_block` rejected it) and its domain's later ones.

        Returns:
            The dropped transactions with reasons; empty if `txid` is not pending.
        """
        tx = self._txs.get(TxHash(txid))
        return [] if tx is None else self._drop_from(tx.body.domain, tx, error)

    # -- internals --

    def _recheck(
        self, domain: str, state: DomainState | None, now_s: int
    ) -> list[tuple[Transaction, InvalidUpdate]]:
        chain = self._chains[domain]
        for i, p in enumerate(chain):
            try:
                state = apply_tx(state, p.tx, self.params, now_s, self._context(p.tx))
            except InvalidUpdate as exc:
                return self._drop_from(domain, p.tx, exc)
            chain[i] = _Pending(tx=p.tx, after=state)
        if not chain:
            del self._chains[domain]
        return []

    def _expire(self, now_s: int) -> list[tuple[Transaction, InvalidUpdate]]:
        dropped: list[tuple[Transaction, InvalidUpdate]] = []
        heap = self._expiry
        while heap and heap[0][0] < now_s:
            valid_until, txid = heapq.heappop(heap)
            tx = self._txs.get(txid)
            if tx is None:
                continue  # already gone (or gone with an earlier entry of the domain)
            error = InvalidUpdate(
                RejectReason.TX_EXPIRED,
                f"{tx.body.domain}: transaction expired at {valid_until}, now is {now_s}",
            )
            dropped += self._drop_from(tx.body.domain, tx, error)
        if len(heap) > 2 * len(self._txs) + 64:
            self._expiry = [(tx.body.valid_until, txid) for txid, tx in self._txs.items()]
            heapq.heapify(self._expiry)
        return dropped

    def _drop_from(
        self, domain: str, first: Transaction, error: InvalidUpdate
    ) -> list[tuple[Transaction, InvalidUpdate]]:
        """Remove `first` and every later pending transaction of `domain`."""
        if not first.body.has_domain:
            self._forget(first)
            return [(first, error)]
        chain = self._chains[domain]
        start = next(i for i, p in enumerate(chain) if p.tx.txid == first.txid)
        out = [(first, error)]
        for p in chain[start + 1 :]:
            out.append(
                (
                    p.tx,
                    InvalidUpdate(
                        error.reason,
                        f"{domain}: seq {p.tx.body.seq} builds on dropped seq "
                        f"{first.body.seq} ({error.args[0]})",
                        penalty=0,
                    ),
                )
            )
        for p in chain[start:]:
            self._forget(p.tx)
        del chain[start:]
        if not chain:
            del self._chains[domain]
        return out

    def _forget(self, tx: Transaction) -> None:
        del self._txs[tx.txid]
        self._bytes -= tx.size
        if tx.body.op == Op.COMMIT:
            self._commits.pop(commit_tree_key(tx.body.commitment, tx.body.owner), None)
        self._validator_ops.pop(tx.txid, None)
