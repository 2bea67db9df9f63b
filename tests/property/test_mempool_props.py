"""Mempool state machine: whatever arrives and whatever gets finalized, the pool's
snapshot stays a valid block on top of the finalized state."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chain.crypto import PrivateKey
from chain.errors import InvalidUpdate
from chain.genesis import make_single_validator_genesis
from chain.mempool import Mempool
from chain.rules import apply_tx
from chain.state import DomainState
from chain.tx import ZERO_HASH, Op, Transaction, TxBody

NOW = 1_700_000_000
KEYS = [PrivateKey.generate(f"mempool-props-key-{i}-padding-000000".encode()) for i in range(2)]
VALIDATOR = PrivateKey.generate(b"mempool-props-validator-padding-0000")
PARAMS = make_single_validator_genesis(VALIDATOR.public_key, genesis_time_ms=0).params


def _tx(domain: str, seq: int, prev: bytes, key: PrivateKey, valid_until: int) -> Transaction:
    body = TxBody(
        chain_id=PARAMS.chain_id,
        domain=domain,
        seq=seq,
        prev=prev,
        op=Op.REGISTER if seq == 0 else Op.UPDATE,
        records=(),
        owner=key.public_key,
        valid_until=valid_until,
    )
    return Transaction.sign(body, key, PARAMS.genesis_hash)


def _universe() -> list[Transaction]:
    """Per domain, two competing registrations each with two competing seq-1 updates."""
    out = []
    for domain in ("a.p2p", "b.p2p"):
        for key in KEYS:
            reg = _tx(domain, 0, ZERO_HASH, key, NOW + 3600)
            out.append(reg)
            out += [_tx(domain, 1, reg.txid, key, NOW + 60 * (1 + i)) for i in range(2)]
    return out


UNIVERSE = _universe()


class MempoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pool = Mempool(PARAMS, max_per_domain=2, max_txs=5)
        self.final: dict[str, DomainState] = {}
        self.now = NOW

    @rule(tx=st.sampled_from(UNIVERSE))
    def add(self, tx: Transaction) -> None:
        before = self.pool.snapshot()
        try:
            self.pool.add(tx, self.final.get, self.now)
        except InvalidUpdate:
            assert self.pool.snapshot() == before
        else:
            assert self.pool.snapshot() == [*before, tx]

    def _finalize(self, block: list[Transaction]) -> None:
        for tx in block:
            self.final[tx.body.domain] = apply_tx(
                self.final.get(tx.body.domain), tx, PARAMS, self.now
            )
        dropped = self.pool.block_applied(block, self.final.get, self.now)
        for tx, _ in dropped:
            assert tx not in block and tx.txid not in self.pool

    @rule(count=st.integers(min_value=0, max_value=5))
    def finalize_own_batch(self, count: int) -> None:
        self._finalize(self.pool.batch(count, 1 << 20))

    @rule(tx=st.sampled_from(UNIVERSE))
    def finalize_foreign(self, tx: Transaction) -> None:
        try:
            apply_tx(self.final.get(tx.body.domain), tx, PARAMS, self.now)
        except InvalidUpdate:
            return
        self._finalize([tx])

    @precondition(lambda self: self.now < NOW + 200)
    @rule(seconds=st.integers(min_value=1, max_value=100))
    def tick(self, seconds: int) -> None:
        self.now += seconds
        for tx in self.pool.remove_expired(self.now):
            assert tx.txid not in self.pool

    @invariant()
    def snapshot_is_a_valid_block(self) -> None:
        states = dict(self.final)
        for tx in self.pool.snapshot():
            states[tx.body.domain] = apply_tx(states.get(tx.body.domain), tx, PARAMS, self.now)

    @invariant()
    def bookkeeping_agrees(self) -> None:
        snapshot = self.pool.snapshot()
        assert self.pool.batch(len(snapshot), 1 << 30) == snapshot
        assert self.pool.size_bytes == sum(tx.size for tx in snapshot)
        assert len(self.pool) == len(snapshot)
        assert len(snapshot) <= 5
        for domain in ("a.p2p", "b.p2p"):
            assert self.pool.pending_for(domain) == [
                tx for tx in snapshot if tx.body.domain == domain
            ]


MempoolMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=20, deadline=None)
TestMempoolMachine = MempoolMachine.TestCase
