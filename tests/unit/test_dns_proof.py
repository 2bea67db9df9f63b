"""Proofs over DNS (issue 16): the option's request and answer forms, their bounds, and verify_answer.

A real `Ledger` on a `MemoryStore` with four genesis validators; answers are
built by the node's `ProofBuilder`; every tampering a lying node could try
must be refused by `verify_answer` with the reason that names it.
"""

from __future__ import annotations

import dataclasses

import pytest

from chain.block import Block
from chain.crypto import PrivateKey
from chain.dns_proof import (
    MAX_CHANGES,
    MAX_DOMAINS,
    IncompleteHistory,
    ProofAnswer,
    ProofRequest,
    StateProof,
    domain_of,
    verify_answer,
)
from chain.encoding import CborValue, Kind, encode, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.genesis import Genesis, make_single_validator_genesis
from chain.ledger import Ledger
from chain.lightclient import SetChange, follow_validator_set
from chain.quorum import ValidatorSet
from chain.records import Record, RType
from chain.store import MemoryStore
from chain.tx import Op, Transaction
from chain.txbuilder import build_validator_tx
from chain.validators import ChangeAction, ValidatorChange
from ledgerdns.dns.proofs import ProofBuilder
from tools.devchain import certify, dev_key, register_tx, soon

KEYS = [dev_key("validator", i) for i in range(6)]
OWNER = dev_key("owner", 0)
GENESIS_MS = 1_700_000_000_000
NOW = GENESIS_MS + 10_000
BIG = 65_000


def make_genesis(chain_id: str = "ledgerdns-devnet", tlds: tuple[str, ...] = ("p2p",)) -> Genesis:
    base = make_single_validator_genesis(
        KEYS[0].public_key, genesis_time_ms=GENESIS_MS, chain_id=chain_id, tlds=tlds
    )
    params = dataclasses.replace(
        base.params, validators=ValidatorSet(tuple(k.public_key for k in KEYS[:4]))
    )
    return dataclasses.replace(
        base, params=params, validator_names=tuple(f"v{i}" for i in range(4))
    )


def keys_of(ledger: Ledger, height: int) -> list[PrivateKey]:
    members = {bytes(k) for k in ledger.validators_at(height).keys}
    return [k for k in KEYS if bytes(k.public_key) in members]


def finalize(ledger: Ledger, txs: list[Transaction]) -> Block:
    height = ledger.height + 1
    proposer = ledger.validators_at(height).proposer(height, 0)
    time_ms = max(ledger.head.time_ms, GENESIS_MS) + 1000
    block, rejected = ledger.build_block(txs, time_ms=time_ms, proposer=proposer)
    assert not rejected
    ledger.apply_block(block, certify(ledger, block.hash, block.height, keys_of(ledger, height)))
    return block


def make_ledger(genesis: Genesis | None = None) -> Ledger:
    ledger = Ledger(MemoryStore(), genesis or make_genesis())
    ledger.initialize()
    www = Record(name="www", rtype=RType.A, ttl=300, rdata=bytes([10, 0, 0, 1]))
    tx = register_tx(ledger.genesis, OWNER, "alice.p2p", (www,), valid_until=soon(ledger))
    finalize(ledger, [tx])
    return ledger


def add_validator(ledger: Ledger, name: str, key: PrivateKey) -> None:
    """Propose, approve (a quorum of the current set) and wait until the new set is in force."""
    change = ValidatorChange(action=ChangeAction.ADD, name=name, key=bytes(key.public_key))
    members = keys_of(ledger, ledger.height + 1)

    def op(kind: Op, signer: PrivateKey, payload: bytes) -> Transaction:
        return build_validator_tx(
            op=kind, change=payload, key=signer, chain_id=ledger.params.chain_id,
            genesis_hash=ledger.params.genesis_hash, deadline=soon(ledger),
        )  # fmt: skip

    proposal = op(Op.VALIDATOR_PROPOSE, members[0], change.to_bytes())
    finalize(ledger, [proposal])
    quorum = ledger.validators_at(ledger.height + 1).quorum
    finalize(ledger, [op(Op.VALIDATOR_APPROVE, k, proposal.txid) for k in members[1:quorum]])
    finalize(ledger, [])
    finalize(ledger, [])
    assert ledger.height >= ledger.rosters()[-1][0]


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return make_ledger()


def answer_for(ledger: Ledger, qname: str, known_from: int = 1, budget: int = BIG) -> ProofAnswer:
    labels = tuple(label.encode() for label in qname.split("."))
    answer = ProofBuilder(ledger).answer(ProofRequest(known_from=known_from), labels, budget=budget)
    assert answer is not None
    return ProofAnswer.from_bytes(answer.to_bytes())  # what the client decodes


def check(ledger: Ledger, answer: ProofAnswer, qname: str, **kw: object) -> InvalidUpdate:
    args: dict[str, object] = {
        "params": ledger.params, "known": None, "qname": qname, "now_ms": NOW, "max_age_ms": 60_000,
    }  # fmt: skip
    args.update(kw)
    with pytest.raises(InvalidUpdate) as info:
        verify_answer(answer, **args)  # type: ignore[arg-type]
    return info.value


def verified(ledger: Ledger, answer: ProofAnswer, qname: str, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "params": ledger.params, "known": None, "qname": qname, "now_ms": NOW, "max_age_ms": 60_000,
    }  # fmt: skip
    args.update(kw)
    return verify_answer(answer, **args)  # type: ignore[arg-type]


# -- the request --


def test_the_request_round_trips_and_empty_means_genesis_only() -> None:
    request = ProofRequest(known_from=1234)
    assert ProofRequest.from_bytes(request.to_bytes()) == request
    assert ProofRequest.from_bytes(b"") == ProofRequest(known_from=1)
    assert ProofRequest.following([(1, make_genesis().params.validators)]).known_from == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (frame(Kind.DNS_PROOF_REQUEST, 0), RejectReason.MALFORMED),  # heights start at 1
        (frame(Kind.DNS_PROOF_REQUEST, 2**63), RejectReason.OVERSIZE),
        (frame(Kind.DNS_PROOF_REQUEST, 1, 2), RejectReason.MALFORMED),  # an extra field
        (frame(Kind.DNS_PROOF_ANSWER, 1), RejectReason.MALFORMED),  # another kind
        (frame(Kind.DNS_PROOF_REQUEST, 1) + b"\x00", RejectReason.NON_CANONICAL),  # trailing
        (encode([42, 2, 1]), RejectReason.UNKNOWN_VERSION),
        (b"\xff" * 65, RejectReason.OVERSIZE),
        (b"\x01", RejectReason.MALFORMED),
    ],
)
def test_a_malformed_request_is_refused(data: bytes, reason: RejectReason) -> None:
    with pytest.raises(InvalidUpdate) as info:
        ProofRequest.from_bytes(data)
    assert info.value.reason == reason


# -- the answer: form and bounds --


def test_the_answer_round_trips(ledger: Ledger) -> None:
    answer = answer_for(ledger, "www.alice.p2p")
    assert ProofAnswer.from_bytes(answer.to_bytes()) == answer
    assert [d.domain for d in answer.domains] == ["alice.p2p"]
    assert answer.domains[0].serial == 1 and answer.header == ledger.head
    assert answer_for(ledger, "p2p").domains == ()  # a TLD: the header alone proves its answer


def test_the_answer_decoder_has_bounds(ledger: Ledger) -> None:
    answer = answer_for(ledger, "alice.p2p")
    header, cert = answer.header.to_bytes(), answer.certificate.to_bytes()
    domain = answer.domains[0].to_cbor()
    change: list[CborValue] = [header, cert, b"\x00"]
    cases = {
        "changes": frame(Kind.DNS_PROOF_ANSWER, header, cert, [change] * (MAX_CHANGES + 1), 0, []),
        "domains": frame(Kind.DNS_PROOF_ANSWER, header, cert, [], 0, [domain] * (MAX_DOMAINS + 1)),
        "more_changes": frame(Kind.DNS_PROOF_ANSWER, header, cert, [], 2, []),
        "header": frame(Kind.DNS_PROOF_ANSWER, b"\x00" * 513, cert, [], 0, []),
        "whole": frame(Kind.DNS_PROOF_ANSWER, header, b"\x00" * 66_000, [], 0, []),
    }
    for field, data in cases.items():
        with pytest.raises(InvalidUpdate) as info:
            ProofAnswer.from_bytes(data)
        assert info.value.reason in (RejectReason.OVERSIZE, RejectReason.MALFORMED), field
    with pytest.raises(InvalidUpdate):
        ProofAnswer(
            header=answer.header, certificate=answer.certificate, domains=answer.domains * 5
        )


def test_garbage_never_raises_anything_but_invalid_update(ledger: Ledger, changed: Ledger) -> None:
    for good in (answer_for(ledger, "alice.p2p").to_bytes(), answer_for(changed, "p2p").to_bytes()):
        for i in range(0, len(good), 5):  # every fifth byte flipped, and every cut there
            for data in (good[:i] + bytes([good[i] ^ 0x5A]) + good[i + 1 :], good[:i]):
                try:
                    ProofAnswer.from_bytes(data)
                except InvalidUpdate:
                    pass


# -- which domain a name needs --


@pytest.mark.parametrize(
    ("qname", "tlds", "domain"),
    [
        ("alice.p2p", ("p2p",), "alice.p2p"),
        ("WWW.Alice.P2P.", ("p2p",), "alice.p2p"),  # case-insensitive, absolute
        ("a.b.c.alice.p2p", ("p2p",), "alice.p2p"),  # any depth below a domain
        ("p2p", ("p2p",), None),  # a TLD
        ("_sip.p2p", ("p2p",), None),  # a label the ledger could not hold: NXDOMAIN by the rules
        ("x.co.p2p", ("p2p", "co.p2p"), "x.co.p2p"),  # the longest TLD wins: co.p2p is no domain
        ("co.p2p", ("p2p", "co.p2p"), None),
        ("bob.co.p2p", ("co.p2p", "p2p"), "bob.co.p2p"),
    ],
)
def test_the_domain_of_a_name_follows_the_resolvers_rules(
    qname: str, tlds: tuple[str, ...], domain: str | None
) -> None:
    assert domain_of(qname, tlds) == domain
    assert (
        domain_of(tuple(label.encode() for label in qname.rstrip(".").split(".")), tlds) == domain
    )


def test_a_name_outside_the_ledger_cannot_be_proven() -> None:
    for name in ("example.com", "p2p.example", ""):
        with pytest.raises(InvalidUpdate) as info:
            domain_of(name, ("p2p",))
        assert info.value.reason == RejectReason.BAD_NAME


# -- verify_answer: what is proven --


def test_a_registered_domain_is_proven(ledger: Ledger) -> None:
    result = verified(ledger, answer_for(ledger, "www.alice.p2p"), "www.alice.p2p")
    assert result.domain == "alice.p2p" and result.state == ledger.get_domain("alice.p2p")
    assert result.header == ledger.head and result.changes == () and len(result.followed) == 1


def test_absence_is_proven(ledger: Ledger) -> None:
    result = verified(ledger, answer_for(ledger, "nobody.p2p"), "nobody.p2p")
    assert result.domain == "nobody.p2p" and result.state is None and result.serial == 0


def test_a_tld_and_an_impossible_label_need_only_the_header(ledger: Ledger) -> None:
    for name in ("p2p", "_x.p2p"):
        result = verified(ledger, answer_for(ledger, name), name)
        assert result.domain is None and result.state is None


# -- verify_answer: what is refused --


def test_a_changed_record_is_refused(ledger: Ledger) -> None:
    answer = answer_for(ledger, "alice.p2p")
    item = answer.domains[0]
    assert item.state is not None
    evil = Record(name="www", rtype=RType.A, ttl=300, rdata=bytes([6, 6, 6, 6]))
    forged = dataclasses.replace(item, state=dataclasses.replace(item.state, records=(evil,)))
    lie = dataclasses.replace(answer, domains=(forged,))
    assert check(ledger, lie, "www.alice.p2p").reason == RejectReason.BAD_PROOF
    hidden = dataclasses.replace(answer, domains=(dataclasses.replace(item, state=None, serial=0),))
    assert check(ledger, hidden, "alice.p2p").reason == RejectReason.BAD_PROOF  # a false NXDOMAIN


def test_the_proof_of_another_domain_is_refused(ledger: Ledger) -> None:
    other = answer_for(ledger, "alice.p2p")
    error = check(ledger, other, "bob.p2p")
    assert error.reason == RejectReason.BAD_PROOF and "bob.p2p" in str(error)
    none = dataclasses.replace(other, domains=())
    assert check(ledger, none, "alice.p2p").reason == RejectReason.BAD_PROOF
    extra = answer_for(ledger, "p2p")
    assert check(ledger, other, "p2p").reason == RejectReason.BAD_PROOF  # proves one too many
    assert verified(ledger, extra, "p2p").domain is None


def test_an_impossible_serial_is_refused(ledger: Ledger) -> None:
    answer = answer_for(ledger, "alice.p2p")
    late = dataclasses.replace(answer.domains[0], serial=answer.header.height + 1)
    assert check(ledger, dataclasses.replace(answer, domains=(late,)), "alice.p2p").reason == (
        RejectReason.BAD_PROOF
    )


def test_an_answer_from_another_network_is_refused(ledger: Ledger) -> None:
    foreign = make_ledger(make_genesis(chain_id="other-net"))
    answer = answer_for(foreign, "alice.p2p")
    assert check(ledger, answer, "alice.p2p").reason == RejectReason.WRONG_CHAIN
    # Same chain_id and validators, another genesis (another time): the signatures cover its hash.
    twin_genesis = make_genesis()
    twin_genesis = dataclasses.replace(twin_genesis, params=dataclasses.replace(
        twin_genesis.params, name_lifetime_s=twin_genesis.params.name_lifetime_s + 1
    ))  # fmt: skip
    twin = make_ledger(twin_genesis)
    assert twin.params.genesis_hash != ledger.params.genesis_hash
    error = check(ledger, answer_for(twin, "alice.p2p"), "alice.p2p")
    assert error.reason in (RejectReason.BAD_SIGNATURE, RejectReason.BAD_VALIDATORS)


def test_an_old_header_is_stale_past_the_bound(ledger: Ledger) -> None:
    answer = answer_for(ledger, "alice.p2p")
    age = NOW - answer.header.time_ms
    assert verified(ledger, answer, "alice.p2p", max_age_ms=age).state is not None
    error = check(ledger, answer, "alice.p2p", max_age_ms=age - 1)
    assert error.reason == RejectReason.STALE_PROOF and error.penalty == 0
    assert verified(ledger, answer, "alice.p2p", now_ms=NOW + 10**9, max_age_ms=None)
    ahead = check(ledger, answer, "alice.p2p", now_ms=answer.header.time_ms - 61_000)
    assert ahead.reason == RejectReason.BAD_TIME


def test_a_forged_certificate_is_refused(ledger: Ledger) -> None:
    answer = answer_for(ledger, "alice.p2p")
    one_signer = certify(ledger, answer.header.hash, answer.header.height, KEYS[:1])
    too_few = dataclasses.replace(answer, certificate=one_signer)
    assert check(ledger, too_few, "alice.p2p").reason == RejectReason.NO_QUORUM
    other_block = certify(ledger, b"\x07" * 32, answer.header.height, KEYS[:3])
    assert check(ledger, dataclasses.replace(answer, certificate=other_block), "alice.p2p").reason in (
        RejectReason.BAD_VOTE, RejectReason.BAD_SIGNATURE,
    )  # fmt: skip
    swapped = [
        (index, answer.certificate.signatures[(i + 1) % 3][1])
        for i, (index, _) in enumerate(answer.certificate.signatures[:3])
    ]
    bad_sigs = dataclasses.replace(answer.certificate, signatures=tuple(swapped))
    error = check(ledger, dataclasses.replace(answer, certificate=bad_sigs), "alice.p2p")
    assert error.reason == RejectReason.BAD_SIGNATURE
    moved = dataclasses.replace(answer.header, time_ms=answer.header.time_ms + 1)  # a fresher date
    assert check(ledger, dataclasses.replace(answer, header=moved), "alice.p2p").reason in (
        RejectReason.BAD_VOTE, RejectReason.BAD_SIGNATURE,
    )  # fmt: skip


# -- the validator set's history --


@pytest.fixture(scope="module")
def changed() -> Ledger:
    """A ledger whose set changed twice (4 -> 5 -> 6 validators) after alice.p2p."""
    led = make_ledger()
    add_validator(led, "v4", KEYS[4])
    add_validator(led, "v5", KEYS[5])
    assert len(led.rosters()) == 3
    return led


def test_the_changes_the_client_lacks_are_sent_and_followed(changed: Ledger) -> None:
    answer = answer_for(changed, "alice.p2p")
    assert len(answer.changes) == 2 and not answer.more_changes
    now = changed.head.time_ms + 1000
    result = verified(changed, answer, "alice.p2p", now_ms=now)
    assert [v.n for _, v in result.followed] == [4, 5, 6] and result.changes == answer.changes
    # The next request says so, and gets none again.
    again = answer_for(
        changed, "alice.p2p", known_from=ProofRequest.following(result.followed).known_from
    )
    assert again.changes == ()
    assert (
        verified(changed, again, "alice.p2p", known=result.followed, now_ms=now).state is not None
    )
    # A client that knows the first change gets only the second.
    first = follow_validator_set(changed.params, answer.changes[:1])
    partial = answer_for(changed, "alice.p2p", known_from=first[-1][0])
    assert partial.changes == answer.changes[1:]
    assert (
        verified(changed, partial, "alice.p2p", known=first, now_ms=now).changes == partial.changes
    )


def test_a_missing_set_change_is_refused(changed: Ledger) -> None:
    answer = answer_for(changed, "alice.p2p")
    now = changed.head.time_ms + 1000
    for kept in ((), answer.changes[:1], answer.changes[1:]):
        lie = dataclasses.replace(answer, changes=kept)
        assert check(changed, lie, "alice.p2p", now_ms=now).reason == RejectReason.BAD_VALIDATORS
    forged_roster = dataclasses.replace(answer.changes[0], roster=answer.changes[1].roster)
    lie = dataclasses.replace(answer, changes=(forged_roster, answer.changes[1]))
    assert check(changed, lie, "alice.p2p", now_ms=now).reason == RejectReason.BAD_VALIDATORS


def test_an_answer_too_large_for_all_changes_says_more_and_the_client_continues(
    changed: Ledger,
) -> None:
    full = answer_for(changed, "alice.p2p")
    budget = len(full.to_bytes()) - 1
    first = answer_for(changed, "alice.p2p", budget=budget)
    assert first.more_changes and first.changes == full.changes[:1]
    now = changed.head.time_ms + 1000
    with pytest.raises(IncompleteHistory) as info:
        verified(changed, first, "alice.p2p", now_ms=now)
    assert info.value.penalty == 0 and [v.n for _, v in info.value.followed] == [4, 5]
    second = answer_for(changed, "alice.p2p", known_from=info.value.followed[-1][0])
    result = verified(changed, second, "alice.p2p", known=info.value.followed, now_ms=now)
    assert [v.n for _, v in result.followed] == [4, 5, 6]
    assert ProofBuilder(changed).answer(ProofRequest(), (b"alice", b"p2p"), budget=100) is None


def test_an_old_header_is_checked_with_the_set_of_its_height(changed: Ledger) -> None:
    """A lagging node's header (before the changes) verifies against a client that knows them."""
    old = make_ledger()  # the same chain before the changes: block 1 only
    lagging = answer_for(old, "alice.p2p")
    followed = follow_validator_set(changed.params, answer_for(changed, "p2p").changes)
    result = verified(changed, lagging, "alice.p2p", known=followed, now_ms=NOW)
    assert result.header.height == 1 and len(result.followed) == 3


def test_set_changes_round_trip_exactly(changed: Ledger) -> None:
    answer = answer_for(changed, "alice.p2p")
    assert all(isinstance(c, SetChange) for c in answer.changes)
    assert ProofAnswer.from_bytes(answer.to_bytes()).changes == answer.changes


def test_state_proof_bounds() -> None:
    with pytest.raises(InvalidUpdate):
        StateProof.from_cbor(["alice.p2p", b"", b"\x00", 0])
    with pytest.raises(InvalidUpdate):
        StateProof.from_cbor(["alice.p2p", b""])
