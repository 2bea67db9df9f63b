"""The explorer's pure parts: per-step record diffs, rates, proof verdicts (no genesis, stale)."""

from __future__ import annotations

from typing import Any

from ledgerdns.api.codec import domain_proof_json
from ledgerdns.explorer.data import Snapshot, check_proof
from ledgerdns.explorer.domain import proof_text
from ledgerdns.explorer.history import record_diff, steps_from_history
from tests.unit.test_lightclient import T1, make_ledger

OWNER, NEW_OWNER = "02" + "aa" * 32, "03" + "bb" * 32


def entry(seq: int, height: int, op: str, records: list[str], owner: str = OWNER) -> dict[str, Any]:
    txid = f"{seq:02x}" * 32
    tx = {"txid": txid, "domain": "a.p2p", "seq": seq, "op": op, "owner": owner, "records": records}
    return {"seq": seq, "txid": txid, "height": height, "index": 0, "genesis": False, "tx": tx}


def test_each_step_knows_its_records_before_and_after_and_its_signer() -> None:
    history = [
        entry(0, 1, "register", ["@ 300 IN A 10.0.0.1"]),
        entry(1, 2, "update", ["@ 300 IN A 10.0.0.2", "www 300 IN A 10.0.0.3"]),
        entry(2, 4, "transfer", ["@ 300 IN A 10.0.0.2"], owner=NEW_OWNER),
        entry(3, 5, "release", [], owner=NEW_OWNER),
    ]
    steps = steps_from_history("a.p2p", history, None)
    assert [s.records_before for s in steps] == [
        (),
        ("@ 300 IN A 10.0.0.1",),
        ("@ 300 IN A 10.0.0.2", "www 300 IN A 10.0.0.3"),
        ("@ 300 IN A 10.0.0.2",),
    ]
    assert [s.prev for s in steps] == [None, "00" * 32, "01" * 32, "02" * 32]
    # A transfer is signed by the old owner; the release after it by the new one.
    assert [s.signer for s in steps] == [OWNER, OWNER, OWNER, NEW_OWNER]


def test_genesis_anchor_without_a_genesis_has_unknown_records() -> None:
    anchor = {"seq": 0, "txid": "ee" * 32, "height": 0, "index": None, "genesis": True, "tx": None}
    steps = steps_from_history(
        "seed.p2p", [anchor, entry(1, 3, "update", ["@ 60 IN A 10.0.0.1"])], None
    )
    assert steps[0].genesis and steps[0].op == "genesis" and steps[0].signer is None
    assert steps[1].prev == "ee" * 32 and steps[1].records_before == ()


def test_record_diff_marks_removed_added_and_kept() -> None:
    assert record_diff(("a", "b"), ("b", "c")) == [("-", "a"), (" ", "b"), ("+", "c")]
    assert record_diff((), ()) == []


def test_rates_fall_while_the_network_is_idle() -> None:
    recent = [
        {"height": h, "time_ms": 10_000 + h * 1000, "txs": 2}
        for h in (5, 4, 3, 2, 1)
    ] + [{"height": 0, "time_ms": 0, "txs": 0}]  # fmt: skip
    snap = Snapshot(
        status={"height": 5, "head_time_ms": 15_000}, validators=[], peers=[], evidence=[],
        recent=recent, mempool_count=0, mempool_bytes=0, fetched_ms=15_000,
    )  # fmt: skip
    assert snap.rates(15_000) == (1.0, 2.0)  # 4 blocks, 8 txs in 4 s
    assert snap.rates(19_000) == (0.5, 1.0)
    assert snap.age_s(16_500) == 1.5


def test_no_genesis_means_not_verified() -> None:
    verdict = check_proof({"height": 3}, None, "a.p2p")
    assert not verdict.verified and "genesis" in verdict.detail


def test_a_stale_proof_is_shown_not_verified_with_the_reason() -> None:
    # A real ledger's proof at height 1 (block time T1), as the node's /proof serves it.
    ledger = make_ledger()
    doc = domain_proof_json(ledger.prove_domain("alice.p2p"), T1 // 1000)
    genesis = ledger.genesis
    fresh = check_proof(doc, genesis, "alice.p2p", now_ms=T1 + 5_000, max_age_ms=180_000)
    assert fresh.verified and fresh.height == 1 and "5.0 s old (bound 180 s)" in fresh.detail
    stale = check_proof(doc, genesis, "alice.p2p", now_ms=T1 + 600_000, max_age_ms=180_000)
    assert not stale.verified and stale.height == 1
    assert "stale-proof" in stale.detail and "600.0 s old, over the 180 s bound" in stale.detail
    assert "NOT verified" in proof_text(stale).plain
    unbounded = check_proof(doc, genesis, "alice.p2p", now_ms=T1 + 600_000)  # no heartbeat
    assert unbounded.verified and "600.0 s old (no bound)" in unbounded.detail


def test_a_commit_shows_its_name_hidden() -> None:
    """A registration commit (issue 15) names no domain: the transaction screen says so."""
    from rich.console import Console

    from ledgerdns.explorer.data import TxView
    from ledgerdns.explorer.tx import tx_table

    tx = {"txid": "ab" * 32, "domain": "", "seq": 0, "op": "commit", "prev": "00" * 32,
          "owner": "02" + "11" * 32, "valid_until": 1, "size": 300, "signature": "cd" * 64}  # fmt: skip
    console = Console(width=200, record=True)
    console.print(tx_table(TxView(tx=tx, status="finalized", height=3, index=0, step=None)))
    shown = console.export_text()
    assert "hidden: a registration commit" in shown
    tx["op"], tx["domain"] = "register", "alice.p2p"
    console.print(tx_table(TxView(tx=tx, status="finalized", height=3, index=0, step=None)))
    assert "alice.p2p" in console.export_text()
