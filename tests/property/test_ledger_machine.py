"""The ledger against a tiny reference model of the transaction rules.

The machine proposes blocks of random transactions (mostly valid, some broken
in one or two ways) to a real `Ledger` over a `MemoryStore`, lets time pass
(sometimes exactly to a name's expiry), and checks that `build_block` chooses
exactly the transactions the model accepts, rejects the others for a reason
the model also finds, that a block smuggling in a rejected transaction is
refused, and that every domain's state, history and the state root agree with
the model after each step.

The model is written from the rules as documented, not from `chain.rules`:

- A domain's transactions form a chain: the next one has ``seq = head.seq + 1``
  and ``prev = head`` (seq 0 and a zero prev for a name never seen; genesis
  names start at seq 0 with an anchor head). Re-registration continues it.
- A name is active while not released and block time < expires_at (0: never).
- REGISTER needs the name inactive and is signed by the new owner; it sets
  expiry to now + lifetime. Every other op needs the name active and the
  current owner's signature; TRANSFER must change the owner, the others must
  keep it; RENEW resets expiry (a permanent name stays permanent); RELEASE carries no records and frees the name.
- The block time must lie in ``[valid_until - max_tx_lifetime, valid_until]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import cbor2
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chain.block import Block, tx_root
from chain.crypto import PrivateKey, PublicKey
from chain.errors import InvalidUpdate, RejectReason
from chain.genesis import Genesis, InitialDomain, make_single_validator_genesis
from chain.ledger import Ledger
from chain.params import ConsensusParams
from chain.records import Record, RecordLimits, RType
from chain.smt import root_of
from chain.state import DomainState, DomainStatus
from chain.store import MemoryStore
from chain.tx import ZERO_HASH, Op, Transaction, TxBody
from tests.strategies import domains, palette_record_sets, record_sets
from tools.devchain import certify

R = RejectReason

T0_MS = 1_700_000_000_000
LIFETIME_S = 900
MAX_TX_LIFETIME_S = 300
MAX_RECORDS = 3
MAX_RECORD_BYTES = 300
MAX_BLOCK_TXS = 5
CHAIN_ID = "ledger-machine"

VALIDATOR = PrivateKey.generate(b"test_ledger_machine validator key")
KEYS = [PrivateKey.generate(f"test_ledger_machine owner key {i}".encode()) for i in range(4)]
PUBS = [bytes(k.public_key) for k in KEYS]
# 33 bytes with a valid prefix whose x (2**256 - 1) is not a field element: no such point.
BAD_KEY = b"\x02" + b"\xff" * 32

GENESIS_A = Record(name="@", rtype=RType.A, ttl=300, rdata=bytes([192, 0, 2, 53]))


def _genesis() -> Genesis:
    base = make_single_validator_genesis(
        VALIDATOR.public_key, genesis_time_ms=T0_MS, chain_id=CHAIN_ID
    )
    params = replace(
        base.params,
        name_lifetime_s=LIFETIME_S,
        max_tx_lifetime_s=MAX_TX_LIFETIME_S,
        record_limits=RecordLimits(max_records=MAX_RECORDS, max_bytes=MAX_RECORD_BYTES),
        consensus=replace(ConsensusParams(), max_block_txs=MAX_BLOCK_TXS),
    )
    initial = (
        InitialDomain(domain="gen.p2p", owner=KEYS[0].public_key, records=(GENESIS_A,)),
        InitialDomain(domain="root.p2p", owner=KEYS[1].public_key, records=()),
    )
    return replace(base, params=params, domains=initial)


GENESIS = _genesis()
GENESIS_OWNERS = {"gen.p2p": (0, (GENESIS_A,)), "root.p2p": (1, ())}
NAMES = ["a.p2p", "b.p2p", "xn--bcher-kva.p2p", "gen.p2p", "root.p2p"]
BAD_NAMES = ["A.p2p", "x.y.p2p", "c.example", "p2p"]
FAULTS = [
    "stale_seq",
    "skip_seq",
    "wrong_prev",
    "wrong_signer",
    "garbage_signature",
    "change_owner",
    "transfer_to_self",
    "wrong_chain",
    "expired",
    "too_far",
    "release_with_records",
    "bad_owner_key",
    "bad_name",
    "big_records",
    "replay",
]


# -- the reference model --


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _anchor(domain: str) -> bytes:
    return _sha256(b"ledgerdns-genesis\x00" + CHAIN_ID.encode() + b"\x00" + domain.encode())


def _record_bytes(records: tuple[Record, ...]) -> int:
    return sum(
        len(cbor2.dumps([r.name, int(r.rtype), r.ttl, r.rdata], canonical=True)) for r in records
    )


@dataclass(frozen=True)
class Entry:
    owner: int  # index into KEYS
    seq: int
    head: bytes
    records: tuple[Record, ...]
    expires_at: int  # 0: never
    released: bool

    def active(self, now: int) -> bool:
        return not self.released and (self.expires_at == 0 or now < self.expires_at)

    def as_state(self, domain: str) -> DomainState:
        return DomainState(
            domain=domain,
            owner=KEYS[self.owner].public_key,
            seq=self.seq,
            head=self.head,
            records=self.records,
            expires_at=self.expires_at,
            status=DomainStatus.RELEASED if self.released else DomainStatus.ACTIVE,
        )


@dataclass(frozen=True)
class Candidate:
    tx: Transaction
    signer: int | None  # index into KEYS; None: the signature is garbage
    fault: str | None = None  # how it was meant to break (only for failure reports)


def broken_rules(entry: Entry | None, c: Candidate, now: int) -> set[R]:
    """Every rule `c` breaks against `entry` at block time `now` (empty: valid)."""
    body = c.tx.body
    out = set()
    owner = PUBS.index(bytes(body.owner)) if bytes(body.owner) in PUBS else None
    if body.chain_id != CHAIN_ID:
        out.add(R.WRONG_CHAIN)
    if body.domain in BAD_NAMES:
        out.add(R.BAD_NAME)
    if owner is None:
        out.add(R.BAD_KEY)
    if len(body.records) > MAX_RECORDS:
        out.add(R.TOO_MANY_RECORDS)
    if _record_bytes(body.records) > MAX_RECORD_BYTES:
        out.add(R.RECORDS_TOO_LARGE)
    if body.op == Op.RELEASE and body.records:
        out.add(R.BAD_OP)
    if body.op not in (Op.REGISTER, Op.TRANSFER) and c.signer != owner:
        out.add(R.NOT_OWNER)  # checked without state: only a transfer changes the owner
    if now > body.valid_until:
        out.add(R.TX_EXPIRED)
    if body.valid_until > now + MAX_TX_LIFETIME_S:
        out.add(R.TX_TOO_FAR)
    if body.seq != (0 if entry is None else entry.seq + 1):
        out.add(R.BAD_SEQUENCE)
    if body.prev != (ZERO_HASH if entry is None else entry.head):
        out.add(R.BAD_PREV)
    active = entry is not None and entry.active(now)
    if body.op == Op.REGISTER:
        if active:
            out.add(R.NAME_TAKEN)
        if c.signer is None or c.signer != owner:
            out.add(R.BAD_SIGNATURE)
    elif entry is None or not active:
        out.add(R.NAME_NOT_ACTIVE)
    else:
        if (body.op == Op.TRANSFER) == (owner == entry.owner):
            out.add(R.BAD_OP)
        if c.signer != entry.owner:
            out.add(R.NOT_OWNER)
    return out


def next_entry(entry: Entry | None, c: Candidate, now: int) -> Entry:
    """The model's state after a valid transaction."""
    body = c.tx.body
    if body.op == Op.REGISTER or (body.op == Op.RENEW and entry is not None and entry.expires_at):
        expires_at = now + LIFETIME_S  # a renewal keeps a never-expiring name permanent
    else:
        assert entry is not None
        expires_at = entry.expires_at
    return Entry(
        owner=PUBS.index(bytes(body.owner)),
        seq=body.seq,
        head=_sha256(body.to_bytes()),
        records=body.records,
        expires_at=expires_at,
        released=body.op == Op.RELEASE,
    )


# -- drawing transactions --

_HASH = st.binary(min_size=32, max_size=32).map(lambda b: b[:31] + b"\x01")  # never zero
_PALETTE = palette_record_sets()
# Inclusion windows, with their edges: valid_until == now and == now + max lifetime.
_WINDOW = st.one_of(st.sampled_from([0, MAX_TX_LIFETIME_S]), st.integers(0, MAX_TX_LIFETIME_S))
_PAST_WINDOW = st.one_of(st.just(1), st.integers(1, 100))
_RICH = record_sets(max_records=MAX_RECORDS)
_OVERSIZE = st.one_of(
    record_sets(max_records=MAX_RECORDS + 2),
    st.just(  # one record too many
        tuple(Record(name="@", rtype=RType.A, ttl=60, rdata=bytes([10, 0, 0, i])) for i in range(4))
    ),
    st.just(  # too many bytes
        (Record(name="@", rtype=RType.TXT, ttl=60, rdata=(b"\xff" + b"x" * 255) * 2),)
    ),
)


def _draw_records(data: st.DataObject) -> tuple[Record, ...]:
    """Mostly the cheap palette; one time in eight the full strategy (about 10 ms a draw)."""
    rich = data.draw(st.integers(0, 7), label="rich records") == 0
    return data.draw(_RICH if rich else _PALETTE, label="records")


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryStore()
        self.ledger = Ledger(self.store, GENESIS)
        self.ledger.initialize()
        self.model: dict[str, Entry] = {
            name: Entry(owner, 0, _anchor(name), records, 0, False)
            for name, (owner, records) in GENESIS_OWNERS.items()
        }
        self.chains: dict[str, list[bytes]] = {n: [_anchor(n)] for n in GENESIS_OWNERS}
        self.clock_ms = T0_MS
        self.last_block_ms = T0_MS
        self.seen: list[Candidate] = []
        self.txs: dict[bytes, Transaction] = {}

    # -- helpers --

    def _block_time_ms(self) -> int:
        return max(self.clock_ms, self.last_block_ms + 1)

    def _draw_candidate(
        self, data: st.DataObject, work: dict[str, Entry], now: int, focus: str | None = None
    ) -> Candidate:
        """A transaction built on `work`: valid, or broken in a way named by its `fault`."""
        fault = data.draw(st.sampled_from([None] * 20 + FAULTS), label="fault")
        if fault == "replay" and self.seen:
            return replace(data.draw(st.sampled_from(self.seen), label="replayed"), fault=fault)
        if fault == "bad_name":
            domain = data.draw(st.sampled_from(BAD_NAMES), label="domain")
        elif focus is not None:
            domain = focus
        else:
            domain = data.draw(st.sampled_from([*NAMES, "fresh"]), label="domain")
            if domain == "fresh":
                domain = data.draw(domains(), label="domain")
        entry = work.get(domain)
        if entry is not None and entry.active(now):
            ops = [Op.UPDATE, Op.UPDATE, Op.TRANSFER, Op.RENEW, Op.RELEASE, Op.REGISTER]
        else:
            ops = [Op.REGISTER] * 8 + [Op.UPDATE, Op.TRANSFER, Op.RENEW, Op.RELEASE]
        op = data.draw(st.sampled_from(ops), label="op")
        keys = st.integers(0, len(KEYS) - 1)
        current = entry.owner if entry is not None else data.draw(keys)
        owner = current
        if op == Op.REGISTER:
            owner = data.draw(keys, label="owner")
        elif op == Op.TRANSFER:
            owner = data.draw(keys.filter(lambda i: i != current), label="new owner")
        signer: int | None = owner if op == Op.REGISTER else current
        seq = 0 if entry is None else entry.seq + 1
        prev = ZERO_HASH if entry is None else entry.head
        records = () if op == Op.RELEASE else _draw_records(data)
        valid_until = now + data.draw(_WINDOW, label="window")
        chain_id = CHAIN_ID
        owner_key = PUBS[owner]

        if fault == "stale_seq":
            seq, prev = (seq - 1, data.draw(_HASH)) if seq > 0 else (1, data.draw(_HASH))
        elif fault == "skip_seq":
            seq += data.draw(st.integers(1, 3))
        elif fault == "wrong_prev":
            prev = data.draw(_HASH)
        elif fault == "wrong_signer":
            signer = data.draw(keys.filter(lambda i: i != signer), label="signer")
        elif fault == "garbage_signature":
            signer = None
        elif fault == "change_owner":  # for a registration: an owner that did not sign
            keep = owner if op == Op.REGISTER else current
            owner_key = PUBS[data.draw(keys.filter(lambda i: i != keep), label="owner")]
            if op == Op.TRANSFER:
                op = Op.UPDATE
        elif fault == "transfer_to_self":
            op, owner_key, signer = Op.TRANSFER, PUBS[current], current
        elif fault == "wrong_chain":
            chain_id = "another-net"
        elif fault == "expired":
            valid_until = now - data.draw(_PAST_WINDOW, label="late by")
        elif fault == "too_far":
            valid_until = now + MAX_TX_LIFETIME_S + data.draw(_PAST_WINDOW, label="early by")
        elif fault == "release_with_records":
            op, owner_key, signer = Op.RELEASE, PUBS[current], current
            records = data.draw(_PALETTE.filter(bool))
        elif fault == "bad_owner_key":
            owner_key = BAD_KEY
        elif fault == "big_records":
            records = data.draw(_OVERSIZE, label="records")
        # seq 0 exactly when prev is zero: a TxBody invariant, not a rule under test.
        if seq == 0:
            prev = ZERO_HASH
        elif prev == ZERO_HASH:
            prev = data.draw(_HASH)
        body = TxBody(
            chain_id=chain_id,
            domain=domain,
            seq=seq,
            prev=prev,
            op=op,
            records=records,
            owner=PublicKey(owner_key),
            valid_until=valid_until,
        )
        if signer is None:
            signature = data.draw(st.binary(min_size=64, max_size=64), label="signature")
            tx = Transaction(body=body, body_bytes=body.to_bytes(), signature=signature)
        else:
            tx = Transaction.sign(body, KEYS[signer], GENESIS.hash())
        return Candidate(tx, signer, fault)

    def _run_block(self, candidates: list[Candidate]) -> Block:
        """Build a block from `candidates`, check it against the model, and apply it."""
        time_ms = self._block_time_ms()
        now = time_ms // 1000
        work = dict(self.model)
        accepted: list[Candidate] = []
        rejected: list[tuple[Candidate, set[R]]] = []
        for c in candidates:
            if len(accepted) >= MAX_BLOCK_TXS:
                break  # the block is full: the rest are neither chosen nor rejected
            broken = broken_rules(work.get(c.tx.body.domain), c, now)
            if broken:
                rejected.append((c, broken))
            else:
                work[c.tx.body.domain] = next_entry(work.get(c.tx.body.domain), c, now)
                accepted.append(c)

        block, refused = self.ledger.build_block(
            [c.tx for c in candidates], time_ms=self.clock_ms, proposer=VALIDATOR.public_key
        )
        assert block.header.time_ms == time_ms
        assert block.height == self.ledger.height + 1
        assert list(block.txs) == [c.tx for c in accepted]
        assert [r.tx for r in refused] == [c.tx for c, _ in rejected]
        for r, (_, broken) in zip(refused, rejected, strict=True):
            assert r.error.reason in broken, (r.error, broken)

        for c, _ in rejected:
            self._check_smuggled(block, c, work, now)

        self.ledger.apply_block(block, certify(self.ledger, block.hash, block.height, [VALIDATOR]))
        for c in accepted:
            self.chains.setdefault(c.tx.body.domain, []).append(c.tx.txid)
            self.txs[c.tx.txid] = c.tx
        self.model = work
        self.last_block_ms = time_ms
        self.seen = (self.seen + candidates)[-24:]
        assert self.ledger.get_block(block.height) == block
        for i, c in enumerate(accepted):
            assert self.ledger.get_tx(c.tx.txid) == (c.tx, block.height, i)
        return block

    def _check_smuggled(self, block: Block, c: Candidate, work: dict[str, Entry], now: int) -> None:
        """`block` plus rejected transaction `c` (with a matching tx_root) must be refused."""
        broken = broken_rules(work.get(c.tx.body.domain), c, now)
        if not broken:
            return  # valid after the block's own transactions: not a smuggling attempt
        txs = (*block.txs, c.tx)
        if len(txs) > MAX_BLOCK_TXS:
            broken = {R.BLOCK_TOO_LARGE}
        header = replace(block.header, tx_root=tx_root(txs))
        with pytest.raises(InvalidUpdate) as refused:
            self.ledger.check_block(Block(header=header, txs=txs))
        assert refused.value.reason in broken, (refused.value, broken)

    # -- rules --

    @rule(data=st.data(), gap_ms=st.integers(0, 5_000), count=st.integers(0, 7))
    def propose(self, data: st.DataObject, gap_ms: int, count: int) -> None:
        self.clock_ms += gap_ms
        self._propose(data, count)

    def _propose(self, data: st.DataObject, count: int, focus: str | None = None) -> None:
        now = self._block_time_ms() // 1000
        work = dict(self.model)
        candidates = []
        for i in range(count):
            c = self._draw_candidate(data, work, now, focus if i == 0 else None)
            candidates.append(c)
            if not broken_rules(work.get(c.tx.body.domain), c, now):
                # Later draws build on it, so chains of several steps per block occur.
                work[c.tx.body.domain] = next_entry(work.get(c.tx.body.domain), c, now)
        self._run_block(candidates)

    @rule(seconds=st.sampled_from([1, 60, MAX_TX_LIFETIME_S, LIFETIME_S - 1, LIFETIME_S + 1]))
    def let_time_pass(self, seconds: int) -> None:
        self.clock_ms += seconds * 1000

    def _expiring(self) -> list[str]:
        floor = self._block_time_ms() // 1000
        return sorted(d for d, e in self.model.items() if e.expires_at and e.expires_at > floor)

    @precondition(lambda self: bool(self._expiring()))
    @rule(
        data=st.data(),
        offset=st.sampled_from([-1, 0, 0, 1]),
        ms=st.sampled_from([0, 999]) | st.integers(0, 999),
        count=st.integers(1, 3),
    )
    def propose_at_expiry(self, data: st.DataObject, offset: int, ms: int, count: int) -> None:
        """A block at (or a second either side of) a name's expiry, touching that name."""
        domain = data.draw(st.sampled_from(self._expiring()), label="domain")
        target = (self.model[domain].expires_at + offset) * 1000 + ms
        self.clock_ms = max(self.clock_ms, target)
        self._propose(data, count, focus=domain)

    def _active(self) -> list[str]:
        now = self._block_time_ms() // 1000
        return sorted(d for d, e in self.model.items() if e.active(now))

    @precondition(lambda self: bool(self._active()))
    @rule(data=st.data(), first_wins=st.sampled_from([0, 1]))
    def conflicting_updates(self, data: st.DataObject, first_wins: int) -> None:
        domain = data.draw(st.sampled_from(self._active()), label="domain")
        entry = self.model[domain]
        now = self._block_time_ms() // 1000
        a_records = _draw_records(data)
        b_records = _draw_records(data)
        if b_records == a_records:
            b_records = () if a_records else (GENESIS_A,)
        pair = [
            Candidate(
                Transaction.sign(
                    TxBody(
                        chain_id=CHAIN_ID,
                        domain=domain,
                        seq=entry.seq + 1,
                        prev=entry.head,
                        op=Op.UPDATE,
                        records=records,
                        owner=KEYS[entry.owner].public_key,
                        valid_until=now + 60,
                    ),
                    KEYS[entry.owner],
                    GENESIS.hash(),
                ),
                entry.owner,
            )
            for records in (a_records, b_records)
        ]
        valid = [not broken_rules(entry, c, now) for c in pair]
        # Either order: the first valid one wins, the other loses on its sequence number.
        for first, second in (pair, pair[::-1]):
            block, refused = self.ledger.build_block(
                [first.tx, second.tx], time_ms=self.clock_ms, proposer=VALIDATOR.public_key
            )
            if all(valid):
                assert block.txs == (first.tx,)
                assert [(r.tx, r.error.reason) for r in refused] == [(second.tx, R.BAD_SEQUENCE)]
        self._run_block(pair if first_wins else pair[::-1])

    @rule()
    def reopen(self) -> None:
        """A fresh `Ledger` over the same store sees the same chain."""
        head = self.ledger.head
        self.ledger = Ledger(self.store, GENESIS)
        self.ledger.initialize()
        assert self.ledger.head == head

    # -- invariants --

    @invariant()
    def states_match_the_model(self) -> None:
        for domain in sorted({*NAMES, *self.model}):
            expected = self.model[domain].as_state(domain) if domain in self.model else None
            assert self.ledger.get_domain(domain) == expected, domain
        stored = self.ledger.domains(limit=10**6)
        assert [s.domain for s in stored] == sorted(self.model)

    @invariant()
    def state_root_matches(self) -> None:
        stored = self.ledger.domains(limit=10**6)
        items = {_sha256(s.domain.encode()): _sha256(s.to_bytes()) for s in stored}
        assert self.ledger.tree.root() == self.ledger.head.state_root == root_of(items)

    @invariant()
    def histories_are_gap_free_chains(self) -> None:
        for domain in NAMES:
            if domain not in self.chains:
                assert self.ledger.history(domain) == []
        for domain, chain in self.chains.items():
            history = self.ledger.history(domain)
            assert history == list(enumerate(chain)), domain
            assert chain[-1] == self.model[domain].head
            for seq, txid in history:
                if seq == 0 and domain in GENESIS_OWNERS:
                    assert txid == _anchor(domain)
                    continue
                tx = self.txs[txid]  # stored exactly: checked with get_tx when applied
                assert (tx.body.domain, tx.body.seq, tx.txid) == (domain, seq, txid)
                assert tx.body.prev == (ZERO_HASH if seq == 0 else history[seq - 1][1])


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_machine_genesis_is_a_loadable_genesis_file() -> None:
    assert Genesis.from_json(GENESIS.to_json()) == GENESIS
