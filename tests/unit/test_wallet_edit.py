"""Editing a record set, and building the next transaction from the node's view."""

from __future__ import annotations

import pytest

from chain.crypto import PrivateKey
from chain.records import Record
from chain.tx import ZERO_HASH, Op
from chain.txbuilder import build_tx, valid_until
from ledgerdns.wallet.edit import (
    add_records,
    check_record_set,
    parse_records,
    remove_by_name,
    remove_records,
)
from ledgerdns.wallet.errors import BadInput, NodeError, WalletError
from ledgerdns.wallet.link import view_from_json

DOMAIN = "alice.p2p"
KEY = PrivateKey.generate(b"wallet edit test")
OTHER = PrivateKey.generate(b"wallet edit other")
GH = b"\x47" * 32  # the node's genesis hash, which the wallet signs over


def recs(*lines: str) -> tuple[Record, ...]:
    return tuple(Record.from_text(line, origin=DOMAIN) for line in lines)


def texts(records: tuple[Record, ...]) -> list[str]:
    return [r.to_text(DOMAIN) for r in records]


CURRENT = check_record_set(recs("www 300 A 10.0.0.1", "www 300 A 10.0.0.2", "@ MX 10 mail"))


def test_parse_relative_lines() -> None:
    parsed = parse_records(["@ 600 A 192.0.2.1", "www CNAME @", "mail A 10.0.0.9"], DOMAIN)
    assert texts(tuple(parsed)) == [
        "@ 600 IN A 192.0.2.1", "www 300 IN CNAME alice.p2p.", "mail 300 IN A 10.0.0.9",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "why"),
    [("www A 10.0.0.256", "IPv4"), ("www FOO bar", "FOO"), ("", "empty"), ("www 300", "type")],
)
def test_bad_line_is_quoted_with_the_reason(line: str, why: str) -> None:
    with pytest.raises(BadInput, match=why) as caught:
        parse_records(["www A 10.0.0.1", line], DOMAIN)
    assert repr(line) in str(caught.value)


def test_add_sorts_and_merges() -> None:
    added = add_records(CURRENT, recs("api A 10.0.0.3", "www A 10.0.0.1"))
    assert texts(added) == [
        "@ 300 IN MX 10 mail.alice.p2p.",
        "api 300 IN A 10.0.0.3",
        "www 300 IN A 10.0.0.1",
        "www 300 IN A 10.0.0.2",
    ]


def test_add_checks_the_set_rules() -> None:
    with pytest.raises(BadInput, match="CNAME"):
        add_records(CURRENT, recs("www CNAME other.p2p."))
    with pytest.raises(BadInput, match="one TTL"):
        add_records(CURRENT, recs("www 60 A 10.0.0.3"))


def test_remove_matching_lines_ignores_ttl() -> None:
    left = remove_records(CURRENT, recs("www 999 A 10.0.0.1"))
    assert texts(left) == ["@ 300 IN MX 10 mail.alice.p2p.", "www 300 IN A 10.0.0.2"]
    with pytest.raises(WalletError, match="no record www A 10.0.0.9"):
        remove_records(CURRENT, recs("www A 10.0.0.9"))


def test_remove_by_name_and_type() -> None:
    assert texts(remove_by_name(CURRENT, "www")) == ["@ 300 IN MX 10 mail.alice.p2p."]
    assert len(remove_by_name(CURRENT, "@", "mx")) == 2
    assert len(remove_by_name(CURRENT, "WWW", "A")) == 1
    with pytest.raises(WalletError, match="no records at www MX"):
        remove_by_name(CURRENT, "www", "MX")
    with pytest.raises(BadInput, match="--type"):
        remove_by_name(CURRENT, "www", "BOGUS")


# -- the node's view and the next transaction --


def tx_json(seq: int, txid: str, op: str, records: list[str], owner: bytes) -> dict[str, object]:
    return {"txid": txid, "domain": DOMAIN, "seq": seq, "prev": "00" * 32, "op": op,
            "owner": owner.hex(), "valid_until": 0, "records": records}  # fmt: skip


def domain_json(**extra: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "domain": DOMAIN, "owner": bytes(KEY.public_key).hex(), "seq": 4, "head": "ab" * 32,
        "records": ["www 300 IN A 10.0.0.1"], "expires_at": 0, "status": "active", "pending": [],
    }  # fmt: skip
    doc.update(extra)
    return doc


def test_view_of_a_free_name() -> None:
    view = view_from_json(DOMAIN, None)
    assert view.status == "free" and view.seq == -1 and view.head == ZERO_HASH
    tx = build_tx(view, op=Op.REGISTER, key=KEY, chain_id="c", genesis_hash=GH, deadline=100)
    assert tx.body.seq == 0 and tx.body.prev == ZERO_HASH and tx.body.owner == KEY.public_key
    assert tx.is_signed_by(KEY.public_key, GH)


def test_update_builds_on_the_finalized_head() -> None:
    view = view_from_json(DOMAIN, domain_json())
    tx = build_tx(view, op=Op.UPDATE, key=KEY, chain_id="c", genesis_hash=GH, deadline=100,
                  records=recs("www A 10.0.0.2"))  # fmt: skip
    assert tx.body.seq == 5 and tx.body.prev == bytes.fromhex("ab" * 32)
    assert texts(tx.body.records) == ["www 300 IN A 10.0.0.2"]


def test_update_chains_on_the_last_pending_tx() -> None:
    owner = bytes(KEY.public_key)
    pending = [
        tx_json(5, "01" * 32, "update", ["www 300 IN A 10.0.0.5"], owner),
        tx_json(6, "02" * 32, "update", ["www 300 IN A 10.0.0.6"], owner),
    ]
    view = view_from_json(DOMAIN, domain_json(pending=pending))
    assert view.pending == 2 and view.seq == 6 and view.head == bytes.fromhex("02" * 32)
    assert texts(view.records) == ["www 300 IN A 10.0.0.6"]
    renew = build_tx(view, op=Op.RENEW, key=KEY, chain_id="c", genesis_hash=GH, deadline=100)
    assert renew.body.seq == 7 and renew.body.records == view.records


def test_pending_release_and_transfer() -> None:
    released = view_from_json(
        DOMAIN, domain_json(pending=[tx_json(5, "01" * 32, "release", [], bytes(KEY.public_key))])
    )
    assert released.status == "released" and released.records == ()
    view = view_from_json(DOMAIN, domain_json())
    moved = build_tx(view, op=Op.TRANSFER, key=KEY, chain_id="c", genesis_hash=GH, deadline=1,
                     new_owner=OTHER.public_key)  # fmt: skip
    assert moved.body.owner == OTHER.public_key and moved.is_signed_by(KEY.public_key, GH)
    gone = build_tx(view, op=Op.RELEASE, key=KEY, chain_id="c", genesis_hash=GH, deadline=1)
    assert gone.body.records == ()


def test_reregistering_a_released_name_continues_its_chain() -> None:
    view = view_from_json(DOMAIN, domain_json(status="released", records=[]))
    tx = build_tx(view, op=Op.REGISTER, key=OTHER, chain_id="c", genesis_hash=GH, deadline=1)
    assert tx.body.seq == 5 and tx.body.owner == OTHER.public_key


def test_unexpected_reply_is_a_node_error() -> None:
    with pytest.raises(NodeError, match="not understood"):
        view_from_json(DOMAIN, {"status": "active"})


def test_valid_until() -> None:
    assert valid_until(1_000_000, 900, None) == 1000 + 3600  # the node's clock is later
    assert valid_until(1_000_000, 5000, None) == 5000 + 3600  # an idle chain's old head
    assert valid_until(1_000_000, 0, 600) == 1000 + 300  # a short network limit
