"""Fuzz targets: one plain function per input the node reads from outside.

The contract of every target: given any `bytes`, it returns normally, or raises
only the error its API documents for bad input (`InvalidUpdate` for the
canonical decoders, `dns.exception.DNSException` for dnspython's message
reader, `BadInput` for the zone-file importer, `ApiError`/`ValueError` for RPC
parsing; those are caught here, so a target that raises at all is a finding).
Anything else, or taking longer than `TIME_LIMIT_S`, is a finding too.

A decoder that accepts its input must also give an object that re-encodes to
exactly those bytes (one object, one encoding): targets assert it.

Used by `tests/fuzz/test_fuzz.py` (Hypothesis, short budgets, corpus replay)
and `tools/fuzz.py` (atheris, long budgets).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.update

from chain.block import Block
from chain.consensus_messages import Evidence, Proposal
from chain.encoding import Kind
from chain.errors import InvalidUpdate
from chain.names import validate_domain
from chain.quorum import CommitCertificate, Vote
from chain.tx import Transaction
from chain.txbuilder import check_record_set
from chain.wire import (
    BlocksPage,
    BlocksRequest,
    CommitNotice,
    Resent,
    Status,
    StatusRequest,
    TxBatch,
    decode_consensus,
    decode_sync_request,
    message_kind,
)
from ledgerdns.api import codec
from ledgerdns.dns import AnswerCache
from ledgerdns.dns.result import labels_of
from ledgerdns.dns.update_rules import (
    ZoneView,
    apply_updates,
    check_prerequisites,
    prescan,
    read_sections,
)
from ledgerdns.dns.wire import HEADER_SIZE, Query, Rejection, parse_query
from ledgerdns.dns.zone import ZoneConfig, make_ns, make_soa
from ledgerdns.rpc.errors import ApiError
from ledgerdns.rpc.routes import _tx_from_body
from ledgerdns.wallet.errors import BadInput
from ledgerdns.wallet.zonefile import read_zone
from tests.fuzz.world import DOMAIN, world

TIME_LIMIT_S = 1.0
CORPUS_ROOT = Path(__file__).parent / "corpus"


class Finding(AssertionError):
    """A target broke its contract in a way that is not an exception of its own."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise Finding(message)


def _canonical(data: bytes, obj: object) -> None:
    to_bytes = getattr(obj, "to_bytes")  # noqa: B009 - every decoded type has it
    _require(to_bytes() == data, f"{type(obj).__name__} decoded but re-encodes differently")


def _decoder(decode: Callable[[bytes], object]) -> Callable[[bytes], None]:
    """A target for a strict canonical decoder (`InvalidUpdate` or an exact round trip)."""

    def target(data: bytes) -> None:
        try:
            obj = decode(data)
        except InvalidUpdate:
            return
        _canonical(data, obj)

    return target


# -- DNS --


def _parsed_reply(reply: bytes) -> dns.message.Message:
    try:
        return dns.message.from_wire(reply)
    except dns.exception.DNSException as exc:
        raise Finding(f"our reply does not parse: {exc!r}") from None


def dns_answer(data: bytes) -> None:
    """`AnswerCache.answer` over UDP and TCP: never raises; a reply is a well-formed message.

    The shared cache (which may serve a patched earlier reply) must mean the
    same as a fresh, empty one: only name compression may differ.
    """
    w = world()
    fresh = AnswerCache(w.builder)
    for tcp in (False, True):
        reply = w.cache.answer(data, tcp=tcp)
        expected = fresh.answer(data, tcp=tcp)
        _require((reply is None) == (expected is None), "cache and fresh builder disagree")
        if reply is None or expected is None:
            continue
        _require(len(reply) >= HEADER_SIZE, "reply shorter than a header")
        _require(len(reply) <= 65535, "reply over 65535 bytes")
        _require(reply[:2] == data[:2], "reply ID differs from the query's")
        got, want = _parsed_reply(reply), _parsed_reply(expected)
        same = got == want and (got.edns, got.ednsflags, got.payload) == (
            want.edns,
            want.ednsflags,
            want.payload,
        )
        _require(same, "a cached reply means something else than a fresh one")


def dns_parse_query(data: bytes) -> None:
    """`parse_query`: a Query, a Rejection or None, never an exception."""
    parsed = parse_query(data)
    _require(parsed is None or isinstance(parsed, Query | Rejection), "unexpected result type")
    if isinstance(parsed, Query):
        _require(len(parsed.qname_wire) <= 255, "question name over 255 bytes")
        _require(all(len(label) <= 63 for label in parsed.qname), "label over 63 bytes")


def dns_update(data: bytes) -> None:
    """An RFC 2136 UPDATE as `ledgerdns.dns.update.Updater` reads it, minus TSIG and signing.

    Documented errors: `DNSException` from the message reader, `InvalidUpdate`
    from the record rules (answered REFUSED).
    """
    try:
        message = dns.message.from_wire(data, keyring=False, one_rr_per_rrset=True)
    except dns.exception.DNSException:
        return
    if message.opcode() != dns.opcode.UPDATE:
        return
    _require(isinstance(message, dns.update.UpdateMessage), "UPDATE not read as UpdateMessage")
    assert isinstance(message, dns.update.UpdateMessage)
    if len(message.zone) != 1:
        return
    apex, zclass = message.zone[0].name, message.zone[0].rdclass
    prerequisites, updates = read_sections(data, message.prerequisite, message.update)
    w = world()
    name = apex.canonicalize().to_text(omit_final_dot=True)
    try:
        validate_domain(name, w.genesis.params.tlds)
    except InvalidUpdate:
        return
    state = w.ledger.get_domain(name) or w.ledger.get_domain(DOMAIN)
    assert state is not None
    labels = labels_of(name)
    config = ZoneConfig(server_name="ns1.example.net")
    zone = ZoneView.of(
        apex,
        state.records,
        soa=make_soa(labels, w.ledger.head.height, config).rdata,
        ns=[rr.rdata for rr in make_ns(labels, config)],
    )
    rcode = check_prerequisites(prerequisites, zone, zclass)
    if rcode == 0:
        rcode = prescan(updates, apex, zclass)
    if rcode != 0:
        return
    try:
        applied = apply_updates(updates, state.records, apex)
        check_record_set(applied.records)
    except InvalidUpdate:
        return


# -- gossip and sync --


def consensus(data: bytes) -> None:
    """A consensus gossip message, as the node decodes it (`chain.wire.decode_consensus`).

    With the network's parameters (the gossip filter: a proposal's header is
    checked before its body is decoded) it must accept a subset of what the
    plain decoder accepts, and decode it to the same message.
    """
    checked: Proposal | Vote | None
    try:
        checked = decode_consensus(data, world().genesis.params)
    except InvalidUpdate:
        checked = None
    try:
        message = decode_consensus(data)
    except InvalidUpdate:
        _require(checked is None, "accepted with the genesis, refused without it")
        return
    _require(checked in (None, message), "decoded differently with the genesis")
    if message_kind(data) == Kind.RESENT:
        resent = Resent.from_bytes(data)
        _canonical(data, resent)
        _canonical(resent.payload, message)
    else:
        _canonical(data, message)


def sync_request(data: bytes) -> None:
    """`decode_sync_request`: a status or blocks request."""
    try:
        request = decode_sync_request(data)
    except InvalidUpdate:
        return
    _require(isinstance(request, StatusRequest | BlocksRequest), "unexpected request type")
    _canonical(data, request)


def blocks_page(data: bytes) -> None:
    """A sync page, then each block and certificate in it, as the syncing node decodes them."""
    try:
        page = BlocksPage.from_bytes(data)
    except InvalidUpdate:
        return
    _canonical(data, page)
    for item in page.blocks:
        try:
            block, cert = item.decode()
        except InvalidUpdate:
            continue
        _canonical(item.block, block)
        _canonical(item.certificate, cert)


# -- RPC --


def _rpc_doc(doc: Mapping[str, object]) -> None:
    for parse in (codec.tx_from_json, codec.domain_proof_from_json):
        try:
            parse(doc)
        except InvalidUpdate:
            pass
    for key in ("wait", "txid", "tx", "wire"):
        value = doc.get(key)
        try:
            codec.parse_hex(value, key, size=32 if key == "txid" else None)
        except ValueError:
            pass
        if isinstance(value, str):
            try:
                codec.parse_wait(value, maximum=60.0)
            except ValueError:
                pass


def rpc_body(data: bytes) -> None:
    """RPC request bodies: ``POST /v1/txs`` (`_tx_from_body`) and the `codec` readers."""
    try:
        _tx_from_body(data)
    except (ApiError, InvalidUpdate):
        pass
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return  # the server's part, checked by `_tx_from_body` above
    if isinstance(doc, dict):
        _rpc_doc(doc)


# -- wallet --


def zone_file(data: bytes) -> None:
    """`read_zone` on the text (UTF-8, undecodable bytes replaced), for `alice.p2p`."""
    text = data.decode("utf-8", "replace")
    try:
        imported = read_zone(text, DOMAIN)
    except BadInput:
        return
    for record in imported.records:
        _require(record.to_text(DOMAIN) != "", "an imported record has no text form")


# -- the registry --


@dataclass(frozen=True, slots=True)
class Target:
    """A named fuzz target."""

    name: str
    run: Callable[[bytes], None]
    doc: str


def _target(name: str, run: Callable[[bytes], None], doc: str | None = None) -> Target:
    return Target(name, run, doc or (run.__doc__ or name).strip().splitlines()[0])


TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        _target("dns_answer", dns_answer),
        _target("dns_parse_query", dns_parse_query),
        _target("dns_update", dns_update),
        _target("transaction", _decoder(Transaction.from_bytes), "Transaction.from_bytes"),
        _target("block", _decoder(Block.from_bytes), "Block.from_bytes"),
        _target("vote", _decoder(Vote.from_bytes), "Vote.from_bytes"),
        _target("proposal", _decoder(Proposal.from_bytes), "Proposal.from_bytes"),
        _target(
            "certificate", _decoder(CommitCertificate.from_bytes), "CommitCertificate.from_bytes"
        ),
        _target("evidence", _decoder(Evidence.from_bytes), "Evidence.from_bytes"),
        _target("tx_batch", _decoder(TxBatch.from_bytes), "TxBatch.from_bytes (txs gossip)"),
        _target(
            "commit_notice",
            _decoder(CommitNotice.from_bytes),
            "CommitNotice.from_bytes (blocks gossip)",
        ),
        _target("consensus", consensus),
        _target("resent", _decoder(Resent.from_bytes), "Resent.from_bytes"),
        _target("sync_request", sync_request),
        _target("status", _decoder(Status.from_bytes), "Status.from_bytes (sync)"),
        _target("blocks_page", blocks_page),
        _target("rpc_body", rpc_body),
        _target("zone_file", zone_file),
    ]
}


def corpus_dir(name: str) -> Path:
    """Where the corpus of target `name` is kept."""
    return CORPUS_ROOT / name
