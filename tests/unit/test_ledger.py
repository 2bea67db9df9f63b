"""Blocks against the stored chain: header checks, certificates, conflicts, proofs."""

from __future__ import annotations

import dataclasses

import pytest

from chain.block import Block, BlockHeader, tx_root
from chain.crypto import PrivateKey
from chain.errors import ConfigError, InvalidUpdate, RejectReason
from chain.genesis import Genesis, InitialDomain, make_single_validator_genesis
from chain.ledger import Ledger
from chain.lightclient import DomainProof
from chain.quorum import CommitCertificate, ValidatorSet
from chain.records import Record
from chain.store import MemoryStore, WriteBatch
from tools.devchain import certify, dev_key, next_tx, register_tx, soon

VALIDATORS = [dev_key("validator", i) for i in range(4)]
OWNER = dev_key("owner", 0)
OTHER = dev_key("owner", 1)


def make_genesis(n: int = 4) -> Genesis:
    base = make_single_validator_genesis(VALIDATORS[0].public_key, genesis_time_ms=1_000_000)
    params = dataclasses.replace(
        base.params, validators=ValidatorSet(tuple(k.public_key for k in VALIDATORS[:n]))
    )
    seeded = InitialDomain(
        domain="seed.p2p", owner=OWNER.public_key,
        records=(Record.from_text("@ 300 A 192.0.2.1", origin="seed.p2p"),),
    )
    return dataclasses.replace(
        base, params=params, validator_names=tuple(f"v{i}" for i in range(n)), domains=(seeded,)
    )


@pytest.fixture
def ledger() -> Ledger:
    led = Ledger(MemoryStore(), make_genesis())
    led.initialize()
    return led


def propose(ledger: Ledger, txs: list, round_: int = 0) -> Block:  # type: ignore[type-arg]
    proposer = ledger.params.validators.proposer(ledger.height + 1, round_)
    block, rejected = ledger.build_block(txs, time_ms=ledger.head.time_ms + 1000, proposer=proposer)
    assert not rejected
    return block


def finalize(ledger: Ledger, block: Block, signers: int = 3) -> None:
    ledger.apply_block(block, certify(ledger, block.hash, block.height, VALIDATORS[:signers]))


def test_register_update_history_and_tx_index(ledger: Ledger) -> None:
    reg = register_tx(ledger.genesis, OWNER, "alice.p2p", valid_until=soon(ledger))
    finalize(ledger, propose(ledger, [reg]))
    rec = (Record.from_text("www 60 A 10.1.1.1", origin="alice.p2p"),)
    upd = next_tx(ledger.genesis, ledger, OWNER, "alice.p2p", rec, valid_until=soon(ledger))
    finalize(ledger, propose(ledger, [upd]))
    state = ledger.get_domain("alice.p2p")
    assert state is not None and state.records == rec and state.seq == 1
    assert ledger.history("alice.p2p") == [(0, reg.txid), (1, upd.txid)]
    assert ledger.get_tx(upd.txid)[1:] == (2, 0)
    assert ledger.height == 2 and ledger.tree.root() == ledger.head.state_root


def test_genesis_domain_starts_at_seq_zero_with_anchor(ledger: Ledger) -> None:
    seed = ledger.get_domain("seed.p2p")
    assert seed is not None and seed.seq == 0
    upd = next_tx(ledger.genesis, ledger, OWNER, "seed.p2p", (), valid_until=soon(ledger))
    finalize(ledger, propose(ledger, [upd]))
    assert [s for s, _ in ledger.history("seed.p2p")] == [0, 1]


def test_conflicting_updates_first_in_block_order_wins(ledger: Ledger) -> None:
    reg = register_tx(ledger.genesis, OWNER, "alice.p2p", valid_until=soon(ledger))
    finalize(ledger, propose(ledger, [reg]))
    a = next_tx(ledger.genesis, ledger, OWNER, "alice.p2p",
                (Record.from_text("@ 60 TXT a", origin="alice.p2p"),), valid_until=soon(ledger))
    b = next_tx(ledger.genesis, ledger, OWNER, "alice.p2p",
                (Record.from_text("@ 60 TXT b", origin="alice.p2p"),), valid_until=soon(ledger))
    block, rejected = ledger.build_block([b, a], time_ms=ledger.head.time_ms + 5, proposer=VALIDATORS[2].public_key)
    assert block.txs == (b,)
    assert [(r.tx, r.error.reason) for r in rejected] == [(a, RejectReason.BAD_SEQUENCE)]
    # A block that carries both is invalid as a whole, naming the loser.
    both = Block(header=dataclasses.replace(block.header, tx_root=tx_root([b, a])), txs=(b, a))
    with pytest.raises(InvalidUpdate) as info:
        ledger.check_block(both)
    assert info.value.reason == RejectReason.BAD_SEQUENCE and "tx 1" in str(info.value)


def test_two_registrations_of_one_free_name(ledger: Ledger) -> None:
    mine = register_tx(ledger.genesis, OWNER, "bob.p2p", valid_until=soon(ledger))
    theirs = register_tx(ledger.genesis, OTHER, "bob.p2p", valid_until=soon(ledger))
    block, rejected = ledger.build_block([theirs, mine], time_ms=ledger.head.time_ms + 5, proposer=VALIDATORS[1].public_key)
    assert block.txs == (theirs,) and rejected[0].error.reason == RejectReason.BAD_SEQUENCE


def _header_cases(ledger: Ledger, block: Block) -> dict[str, tuple[BlockHeader, RejectReason]]:
    h = block.header
    r = dataclasses.replace
    return {
        "chain": (r(h, chain_id="x"), RejectReason.WRONG_CHAIN),
        "height": (r(h, height=5), RejectReason.BAD_HEIGHT),
        "prev": (r(h, prev_block=b"\x01" * 32), RejectReason.BAD_PREV_BLOCK),
        "time": (r(h, time_ms=ledger.head.time_ms), RejectReason.BAD_TIME),
        "proposer": (r(h, proposer=OWNER.public_key), RejectReason.BAD_PROPOSER),
        "validators": (r(h, validators_hash=b"\x02" * 32), RejectReason.BAD_VALIDATORS),
        "tx_root": (r(h, tx_root=b"\x03" * 32), RejectReason.BAD_TX_ROOT),
        "state_root": (r(h, state_root=b"\x04" * 32), RejectReason.BAD_STATE_ROOT),
    }


@pytest.mark.parametrize("case", ["chain", "height", "prev", "time", "proposer", "validators", "tx_root", "state_root"])
def test_header_checks(ledger: Ledger, case: str) -> None:
    block = propose(ledger, [register_tx(ledger.genesis, OWNER, "alice.p2p", valid_until=soon(ledger))])
    header, reason = _header_cases(ledger, block)[case]
    with pytest.raises(InvalidUpdate) as info:
        ledger.check_block(Block(header=header, txs=block.txs))
    assert info.value.reason == reason


def test_block_limits(ledger: Ledger) -> None:
    small = dataclasses.replace(ledger.params.consensus, max_block_txs=1)
    ledger.params = dataclasses.replace(ledger.params, consensus=small)
    txs = [register_tx(ledger.genesis, OWNER, f"n{i}.p2p", valid_until=soon(ledger)) for i in range(2)]
    block, _ = ledger.build_block(txs, time_ms=ledger.head.time_ms + 1, proposer=VALIDATORS[1].public_key)
    assert len(block.txs) == 1
    forged = Block(header=dataclasses.replace(block.header, tx_root=tx_root(txs)), txs=tuple(txs))
    with pytest.raises(InvalidUpdate) as info:
        ledger.check_block(forged)
    assert info.value.reason == RejectReason.BLOCK_TOO_LARGE


@pytest.mark.parametrize(
    ("signers", "reason"),
    [(2, RejectReason.NO_QUORUM), ("forged", RejectReason.BAD_SIGNATURE), ("other-block", RejectReason.BAD_VOTE)],
)
def test_certificate_must_finalize_the_block(ledger: Ledger, signers: object, reason: RejectReason) -> None:
    block = propose(ledger, [])
    if signers == "forged":
        good = certify(ledger, block.hash, 1, VALIDATORS[:3])
        sigs = ((0, good.signatures[1][1]),) + good.signatures[1:]
        cert = dataclasses.replace(good, signatures=sigs)
    elif signers == "other-block":
        cert = certify(ledger, b"\x09" * 32, 1, VALIDATORS[:3])
    else:
        assert isinstance(signers, int)
        cert = certify(ledger, block.hash, 1, VALIDATORS[:signers])
    with pytest.raises(InvalidUpdate) as info:
        ledger.apply_block(block, cert)
    assert info.value.reason == reason
    assert ledger.height == 0  # nothing written


def test_store_of_another_network_is_refused(ledger: Ledger) -> None:
    other = make_single_validator_genesis(OWNER.public_key, genesis_time_ms=5)
    with pytest.raises(ConfigError, match="another network"):
        Ledger(ledger.store, other).initialize()
    Ledger(ledger.store, make_genesis()).initialize()  # same genesis: fine


def test_restart_reads_head_from_store(ledger: Ledger) -> None:
    finalize(ledger, propose(ledger, [register_tx(ledger.genesis, OWNER, "alice.p2p", valid_until=soon(ledger))]))
    again = Ledger(ledger.store, make_genesis())
    again.initialize()
    assert again.head == ledger.head and again.get_domain("alice.p2p") == ledger.get_domain("alice.p2p")


def test_light_client_proofs(ledger: Ledger) -> None:
    finalize(ledger, propose(ledger, [register_tx(ledger.genesis, OWNER, "alice.p2p", valid_until=soon(ledger))]))
    params = ledger.params
    present = DomainProof.from_bytes(ledger.prove_domain("alice.p2p").to_bytes())
    assert present.verify(params) == ledger.get_domain("alice.p2p")
    absent = ledger.prove_domain("nobody.p2p")
    assert absent.verify(params) is None
    assert len(present.proof.to_bytes()) < 2048
    lie = dataclasses.replace(present, state=None)  # "alice.p2p does not exist"
    with pytest.raises(InvalidUpdate) as info:
        lie.verify(params)
    assert info.value.reason == RejectReason.BAD_PROOF
    forged_state = dataclasses.replace(present, state=dataclasses.replace(present.state, seq=9))  # type: ignore[type-var]
    with pytest.raises(InvalidUpdate):
        forged_state.verify(params)
    weak = dataclasses.replace(present, certificate=CommitCertificate(
        height=1, round=0, block_hash=present.header.hash, signatures=present.certificate.signatures[:2]))
    with pytest.raises(InvalidUpdate) as info:
        weak.verify(params)
    assert info.value.reason == RejectReason.NO_QUORUM


def test_key_is_not_a_validator_unless_listed() -> None:
    assert ValidatorSet((PrivateKey.generate(b"z" * 32).public_key,)).index_of(OWNER.public_key) is None


# -- caches --


def _assert_matches_a_cold_ledger(ledger: Ledger, names: list[str]) -> None:
    cold = Ledger(ledger.store, make_genesis())
    assert ledger.tree.root() == cold.tree.root() == ledger.head.state_root
    cached: dict[bytes, bytes] = ledger.tree._cache
    assert cached  # kept in step by `commit`, not just tolerated when stale
    assert all(ledger.store.get(key) == entry[32:] for key, entry in cached.items())
    for name in names:
        assert ledger.get_domain(name) == cold.get_domain(name)


def test_proposals_and_refused_blocks_never_reach_the_caches(ledger: Ledger) -> None:
    names = ["seed.p2p", "alice.p2p", "bob.p2p"]
    for name in names:
        ledger.get_domain(name)  # cache "seed: genesis state", "alice, bob: free"
    reg = register_tx(ledger.genesis, OWNER, "alice.p2p", valid_until=soon(ledger))
    upd = next_tx(ledger.genesis, ledger, OWNER, "seed.p2p", (), valid_until=soon(ledger))
    proposer = ledger.params.validators.proposer(1, 0)
    ledger.build_update([reg, upd], time_ms=ledger.head.time_ms + 1000, proposer=proposer)
    block = propose(ledger, [reg, upd])
    forged = Block(header=dataclasses.replace(block.header, state_root=bytes(32)), txs=block.txs)
    with pytest.raises(InvalidUpdate) as info:
        ledger.check_block(forged)
    assert info.value.reason == RejectReason.BAD_STATE_ROOT
    assert ledger.get_domain("alice.p2p") is None
    seed = ledger.get_domain("seed.p2p")
    assert seed is not None and seed.seq == 0
    _assert_matches_a_cold_ledger(ledger, names)
    finalize(ledger, block)
    alice = ledger.get_domain("alice.p2p")
    assert alice is not None and alice.owner == OWNER.public_key
    _assert_matches_a_cold_ledger(ledger, names)


def test_a_failed_write_leaves_no_stale_state_cached() -> None:
    class FlakyStore(MemoryStore):
        fail = False

        def write(self, batch: WriteBatch, *, sync: bool = True) -> None:
            super().write(batch, sync=sync)
            if self.fail:  # the batch landed, but the caller is told it failed
                raise OSError("fsync failed")

    store = FlakyStore()
    ledger = Ledger(store, make_genesis())
    ledger.initialize()
    before = ledger.get_domain("seed.p2p")
    assert before is not None and before.seq == 0
    upd = next_tx(ledger.genesis, ledger, OWNER, "seed.p2p", (), valid_until=soon(ledger))
    block = propose(ledger, [upd])
    store.fail = True
    with pytest.raises(OSError, match="fsync"):
        finalize(ledger, block)
    after = ledger.get_domain("seed.p2p")
    assert after is not None and after.seq == 1  # what the store holds, not the cached seq 0


def test_many_blocks_keep_the_caches_in_step(ledger: Ledger) -> None:
    names = [f"n{i}.p2p" for i in range(12)]
    for i, name in enumerate(names):
        txs = [register_tx(ledger.genesis, OWNER, name, valid_until=soon(ledger))]
        for older in names[:i:3]:
            rec = (Record.from_text(f"@ 60 A 10.0.0.{i}", origin=older),)
            txs.append(next_tx(ledger.genesis, ledger, OWNER, older, rec, valid_until=soon(ledger)))
        finalize(ledger, propose(ledger, txs))
        _assert_matches_a_cold_ledger(ledger, names)


class CountingStore(MemoryStore):
    """A `MemoryStore` that counts reads, to see what the state cache spares."""

    reads = 0

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return super().get(key)


def test_a_flood_of_unknown_names_does_not_push_out_known_states() -> None:
    store = CountingStore()
    led = Ledger(store, make_genesis())
    led.initialize()
    finalize(led, propose(led, [register_tx(led.genesis, OWNER, "alice.p2p", valid_until=soon(led))]))
    assert led.get_domain("alice.p2p") is not None
    for i in range(20_000):  # more than the cache holds
        assert led.get_domain(f"nobody{i}.p2p") is None
    before = store.reads
    assert led.get_domain("alice.p2p") is not None
    assert store.reads == before  # still cached: the unknown names took no room
