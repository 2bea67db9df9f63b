"""A small real ledger and valid encodings of everything the fuzz targets read.

Built once per process (`world()`), deterministically: fixed keys and a fixed
genesis time, so the seed corpus is the same bytes on every machine.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import dns.edns
import dns.message
import dns.opcode
import dns.rdataclass
import dns.rdatatype
import dns.update

from chain.block import Block
from chain.consensus_messages import Evidence, Proposal
from chain.crypto import PrivateKey
from chain.genesis import Genesis, make_single_validator_genesis
from chain.ledger import Ledger
from chain.quorum import CommitCertificate, Vote, VoteType
from chain.records import Record, canonical_record_set
from chain.store import MemoryStore
from chain.tx import Transaction
from chain.wire import (
    BlocksPage,
    BlocksRequest,
    CommitNotice,
    FinalizedBlock,
    Resent,
    Status,
    StatusRequest,
    TxBatch,
)
from ledgerdns.dns import AnswerBuilder, AnswerCache, ZoneConfig
from ledgerdns.wallet.zonefile import write_zone
from tools.devchain import certify, dev_key, next_tx, register_tx

DOMAIN = "alice.p2p"
GENESIS_TIME_MS = 1_700_000_000_000
VALIDATOR = dev_key("fuzz-validator", 0)
OWNER = dev_key("fuzz-owner", 0)

ALICE = (
    "@ 300 A 192.0.2.1",
    "@ 300 AAAA 2001:db8::1",
    "@ 300 MX 10 mail",
    '@ 300 TXT "v=spf1 -all"',
    '@ 300 CAA 0 issue "letsencrypt.org"',
    "mail 300 A 192.0.2.2",
    "www 120 CNAME web",
    "web 120 CNAME alice.p2p.",
    "loop1 120 CNAME loop2",
    "loop2 120 CNAME loop1",
    "_sip._tcp 300 SRV 10 5 5060 sip",
    "sip 300 A 192.0.2.3",
    '*.wild 300 TXT "wild"',
    "sub 300 NS ns1.sub",
    "ns1.sub 300 A 192.0.2.53",
)
BIG = tuple(f'@ 300 TXT "{chr(ord("a") + i) * 200}"' for i in range(8))  # over 512 bytes


@dataclass(frozen=True, slots=True)
class World:
    """The ledger and one valid object of each kind the decoders read."""

    genesis: Genesis
    ledger: Ledger
    builder: AnswerBuilder
    cache: AnswerCache
    txs: tuple[Transaction, ...]
    blocks: tuple[Block, ...]
    certificates: tuple[CommitCertificate, ...]
    votes: tuple[Vote, ...]
    proposal: Proposal
    evidence: Evidence


def _records(lines: tuple[str, ...]) -> tuple[Record, ...]:
    return canonical_record_set(Record.from_text(line, origin=DOMAIN) for line in lines)


def _commit(ledger: Ledger, tx: Transaction, signer: PrivateKey) -> CommitCertificate:
    time_ms = ledger.head.time_ms + 1000
    block, rejected = ledger.build_block([tx], time_ms=time_ms, proposer=signer.public_key)
    assert not rejected, rejected
    cert = certify(ledger, block.hash, block.height, [signer])
    ledger.apply_block(block, cert)
    return cert


@functools.cache
def world() -> World:
    """The shared world (built on first use, about a tenth of a second)."""
    genesis = make_single_validator_genesis(
        VALIDATOR.public_key, genesis_time_ms=GENESIS_TIME_MS, chain_id="fuzz-net"
    )
    ledger = Ledger(MemoryStore(), genesis)
    ledger.initialize()
    until = GENESIS_TIME_MS // 1000 + 3600
    tx1 = register_tx(genesis, OWNER, DOMAIN, _records(ALICE), valid_until=until)
    cert1 = _commit(ledger, tx1, VALIDATOR)
    tx2 = register_tx(genesis, OWNER, "big.p2p", _records(BIG), valid_until=until)
    cert2 = _commit(ledger, tx2, VALIDATOR)
    tx3 = next_tx(genesis, ledger, OWNER, DOMAIN, _records(ALICE[:6]), valid_until=until)
    block1 = ledger.get_block(1)
    block2 = ledger.get_block(2)
    votes = tuple(
        Vote.create(
            VALIDATOR,
            chain_id=genesis.chain_id,
            genesis_hash=genesis.hash(),
            vtype=VoteType.PREVOTE,
            height=3,
            round_=1,
            block_hash=block_hash,
        )
        for block_hash in (block1.hash, block2.hash)
    )
    proposal = Proposal.create(
        VALIDATOR, chain_id=genesis.chain_id, genesis_hash=genesis.hash(), round_=1, block=block2,
        pol_round=0,
    )
    builder = AnswerBuilder(ledger, ZoneConfig(server_name="ns1.example.net"))
    return World(
        genesis=genesis,
        ledger=ledger,
        builder=builder,
        cache=AnswerCache(builder, max_entries=64),
        txs=(tx1, tx2, tx3),
        blocks=(block1, block2),
        certificates=(cert1, cert2),
        votes=votes,
        proposal=proposal,
        evidence=Evidence.of(votes[0], votes[1]),
    )


# -- valid encodings, per target --


def _dns_queries() -> list[bytes]:
    out = []
    for name, rdtype, edns in [
        ("alice.p2p.", "A", True),
        ("ALICE.p2p.", "AAAA", False),
        ("www.alice.p2p.", "A", True),
        ("loop1.alice.p2p.", "A", True),
        ("x.wild.alice.p2p.", "TXT", True),
        ("ns1.sub.alice.p2p.", "A", True),
        ("deep.sub.alice.p2p.", "MX", True),
        ("big.p2p.", "TXT", False),
        ("nobody.p2p.", "A", True),
        ("p2p.", "SOA", True),
        ("example.com.", "A", False),
        ("_sip._tcp.alice.p2p.", "SRV", True),
        ("alice.p2p.", "ANY", True),
        ("alice.p2p.", "AXFR", False),
        ("sub.alice.p2p.", "NS", True),
        ("alice.p2p.", "DNSKEY", True),
    ]:
        query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
        query.id = 0x1234
        out.append(query.to_wire())
    cookie = dns.message.make_query(
        "alice.p2p.",
        "A",
        use_edns=0,
        options=[dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 8)],
    )
    out.append(cookie.to_wire())
    chaos = dns.message.make_query("version.bind.", "TXT", rdclass="CH")
    out.append(chaos.to_wire())
    notify = dns.message.make_query("alice.p2p.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    out.append(notify.to_wire())
    return [*out, *_dns_updates()]  # an UPDATE on the query path gets NOTIMP


def _dns_updates() -> list[bytes]:
    update = dns.update.UpdateMessage(DOMAIN)
    update.present("www")
    update.absent("nothere", "A")
    update.add("new", 300, "A", "192.0.2.9")
    update.add("@", 300, "MX", "20 mail")
    update.delete("loop1")
    update.delete("mail", "A", "192.0.2.2")
    update.id = 7
    bare = dns.update.UpdateMessage(DOMAIN)
    bare.replace("www", 60, "TXT", '"hi"')
    bare.id = 8
    return [update.to_wire(), bare.to_wire()]


def _rpc_bodies(w: World) -> list[bytes]:
    tx = w.txs[0]
    proof = w.ledger.prove_domain(DOMAIN)
    docs: list[object] = [
        {"tx": tx.to_bytes().hex()},
        {"wire": tx.to_bytes().hex(), "txid": tx.txid.hex()},
        {"bundle": proof.to_bytes().hex(), "domain": DOMAIN},
        {"txs": [t.to_bytes().hex() for t in w.txs]},
        {"wait": "2.5", "txid": tx.txid.hex()},
    ]
    return [json.dumps(doc).encode() for doc in docs]


def _zone_files(w: World) -> list[bytes]:
    state = w.ledger.get_domain(DOMAIN)
    assert state is not None
    written = write_zone(DOMAIN, state.records, header=["fuzz seed"])
    hand = (
        "$TTL 1h\n"
        "@ IN SOA ns1 hostmaster ( 1 7200 3600 1209600 300 )\n"
        "  IN A 192.0.2.1 ; the apex\n"
        "www 300 IN CNAME @\n"
        "$ORIGIN sub.alice.p2p.\n"
        'txt TXT ( "one"\n  "two" )\n'
        "srv 1h30m SRV 0 5 5060 target.example.org.\n"
    )
    return [written.encode(), hand.encode()]


def seeds(target: str) -> list[bytes]:
    """A few valid inputs for `target` (the first entries of its corpus)."""
    w = world()
    tx_bytes = [tx.to_bytes() for tx in w.txs]
    block_bytes = [block.to_bytes() for block in w.blocks]
    cert_bytes = [cert.to_bytes() for cert in w.certificates]
    head = w.ledger.head
    pages = BlocksPage(
        tuple(FinalizedBlock(b, c) for b, c in zip(block_bytes, cert_bytes, strict=True))
    )
    table: dict[str, list[bytes]] = {
        "dns_answer": _dns_queries(),
        "dns_parse_query": _dns_queries(),
        "dns_update": _dns_updates(),
        "transaction": tx_bytes,
        "block": block_bytes,
        "vote": [vote.to_bytes() for vote in w.votes],
        "proposal": [w.proposal.to_bytes()],
        "certificate": cert_bytes,
        "evidence": [w.evidence.to_bytes()],
        "tx_batch": [TxBatch(w.txs).to_bytes(), TxBatch(w.txs[:1]).to_bytes()],
        "commit_notice": [
            CommitNotice(height=c.height, block_hash=c.block_hash, certificate=c).to_bytes()
            for c in w.certificates
        ],
        "sync_request": [StatusRequest().to_bytes(), BlocksRequest(start=1, count=50).to_bytes()],
        "status": [
            Status(
                chain_id=w.genesis.chain_id,
                genesis_hash=w.genesis.hash(),
                height=head.height,
                head_hash=head.hash,
            ).to_bytes()
        ],
        "blocks_page": [pages.to_bytes(), BlocksPage(()).to_bytes()],
        "consensus": [
            w.proposal.to_bytes(),
            *[vote.to_bytes() for vote in w.votes],
            Resent(nonce=1, payload=w.votes[1].to_bytes()).to_bytes(),
        ],
        "resent": [
            Resent(nonce=3, payload=w.votes[0].to_bytes()).to_bytes(),
            Resent(nonce=2**40, payload=w.proposal.to_bytes()).to_bytes(),
        ],
        "rpc_body": _rpc_bodies(w),
        "zone_file": _zone_files(w),
    }
    return table[target]
