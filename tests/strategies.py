"""Shared Hypothesis strategies.

Add strategies for new types in their own section. Records are built here
from independently written wire encoders (not through `chain.records`), so the
property tests check the implementation against a second reading of the RFCs.
"""

from __future__ import annotations

import struct

import cbor2
from hypothesis import strategies as st

from chain.block import Block, BlockHeader
from chain.crypto import PrivateKey, PublicKey, sha256
from chain.genesis import Genesis, InitialDomain
from chain.params import ChainParams, ConsensusParams
from chain.quorum import CommitCertificate, ValidatorSet, Vote, VoteType
from chain.records import Record, RecordLimits, RType
from chain.smt import EMPTY, Proof
from chain.state import DomainState, DomainStatus
from chain.tx import VALIDATOR_OPS, ZERO_HASH, Op, Transaction, TxBody
from chain.validators import NAME_PATTERN, ChangeAction, Roster, ValidatorChange

# -- names --

_LDH_END = "abcdefghijklmnopqrstuvwxyz0123456789"
_LDH_INNER = _LDH_END + "-"
_SERVICE_CHARS = _LDH_END + "_"
# Real A-labels, so IDN code paths are exercised (bücher, ß, 例え).
_IDN_LABELS = ("xn--bcher-kva", "xn--zca", "xn--r8jz45g")


@st.composite
def _ldh_label(draw: st.DrawFn, max_size: int) -> str:
    size = draw(st.integers(min_value=1, max_value=max_size))
    if size == 1:
        return draw(st.sampled_from(_LDH_END))
    first = draw(st.sampled_from(_LDH_END))
    last = draw(st.sampled_from(_LDH_END))
    middle = draw(st.text(alphabet=_LDH_INNER, min_size=size - 2, max_size=size - 2))
    label = first + middle + last
    if label[2:4] == "--":  # reserved for IDNA ("xn--"): not a plain LDH label
        label = label[:2] + "x" + label[3:]
    return label


def domain_labels(max_size: int = 63) -> st.SearchStrategy[str]:
    """Canonical LDH labels (the label of a registrable domain), IDN A-labels included."""
    return st.one_of(_ldh_label(max_size), st.sampled_from(_IDN_LABELS))


def domains(tld: str = "p2p") -> st.SearchStrategy[str]:
    """Canonical domains directly under `tld` (``alice.p2p``)."""
    return domain_labels().map(lambda label: f"{label}.{tld}")


def service_labels() -> st.SearchStrategy[str]:
    """Labels with an underscore (``_sip``, ``_tcp``, ``_dmarc``)."""
    return st.text(alphabet=_SERVICE_CHARS, min_size=0, max_size=12).map(lambda s: "_" + s)


def relative_names(max_labels: int = 3) -> st.SearchStrategy[str]:
    """Canonical record owner names: ``@``, ``www``, ``_sip._tcp``, ``*.sub``.

    Labels are short (at most 20 bytes) so that the name fits under any domain.
    """
    label = st.one_of(_ldh_label(20), service_labels(), st.sampled_from(_IDN_LABELS))
    plain = st.lists(label, min_size=1, max_size=max_labels).map(".".join)
    wildcard = st.lists(label, min_size=0, max_size=max_labels - 1).map(
        lambda labels: ".".join(["*", *labels])
    )
    return st.one_of(st.just("@"), plain, wildcard)


def host_names() -> st.SearchStrategy[str]:
    """Canonical absolute host names without trailing dot (NS, MX, SRV targets)."""
    tld = st.sampled_from(["p2p", "com", "example.org", "ledger.test"])
    labels = st.lists(_ldh_label(20), min_size=0, max_size=3)
    return st.tuples(labels, tld).map(lambda pair: ".".join([*pair[0], pair[1]]))


def alias_targets() -> st.SearchStrategy[str]:
    """CNAME targets: host names, possibly with underscore labels (``_acme-challenge.x.p2p``)."""
    prefixed = st.tuples(service_labels(), host_names()).map(".".join)
    return st.one_of(host_names(), prefixed)


# -- rdata, encoded independently of chain.records --


def wire_name(name: str) -> bytes:
    """Uncompressed wire form of an absolute name ("" is the root)."""
    labels = name.split(".") if name else []
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\0"


def _u16() -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=65535)


_RDATA: dict[RType, st.SearchStrategy[bytes]] = {
    RType.A: st.binary(min_size=4, max_size=4),
    RType.AAAA: st.binary(min_size=16, max_size=16),
    RType.NS: host_names().map(wire_name),
    RType.CNAME: alias_targets().map(wire_name),
    RType.MX: st.tuples(_u16(), st.one_of(host_names(), st.just(""))).map(
        lambda t: struct.pack("!H", t[0]) + wire_name(t[1])
    ),
    RType.SRV: st.tuples(_u16(), _u16(), _u16(), st.one_of(host_names(), st.just(""))).map(
        lambda t: struct.pack("!HHH", t[0], t[1], t[2]) + wire_name(t[3])
    ),
    RType.TXT: st.lists(st.binary(max_size=255), min_size=1, max_size=4).map(
        lambda items: b"".join(bytes([len(item)]) + item for item in items)
    ),
    RType.CAA: st.tuples(
        st.integers(min_value=0, max_value=255),
        st.sampled_from(["issue", "issuewild", "iodef", "x1"]),
        st.text(max_size=40).map(lambda s: s.encode("utf-8")),
    ).map(lambda t: bytes([t[0], len(t[1])]) + t[1].encode() + t[2]),
    RType.PTR: alias_targets().map(wire_name),
}


def _u8() -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=255)


def _sized(sizes: dict[int, int], other: int) -> st.SearchStrategy[tuple[int, bytes]]:
    """A (type, data) pair: known types with their fixed data size, `other` with any size."""
    known = st.sampled_from(sorted(sizes)).flatmap(
        lambda t: st.binary(min_size=sizes[t], max_size=sizes[t]).map(lambda d: (t, d))
    )
    unknown = st.binary(min_size=1, max_size=40).map(lambda d: (other, d))
    return st.one_of(known, unknown)


def _string(data: bytes) -> bytes:
    return bytes([len(data)]) + data


@st.composite
def _naptr(draw: st.DrawFn) -> bytes:
    head = struct.pack("!HH", draw(_u16()), draw(_u16()))
    flags = draw(st.sampled_from([b"", b"s", b"u", b"a", b"p"]))
    services = draw(st.binary(max_size=20))
    regexp = draw(st.one_of(st.just(b""), st.binary(min_size=1, max_size=40)))
    target = draw(alias_targets()) if not regexp else ""
    return head + _string(flags) + _string(services) + _string(regexp) + wire_name(target)


@st.composite
def _svcb(draw: st.DrawFn) -> bytes:
    target = draw(st.one_of(host_names(), st.just("")))
    priority = draw(st.integers(min_value=0, max_value=65535))
    if priority == 0:  # AliasMode: no parameters
        return struct.pack("!H", priority) + wire_name(target)
    params: dict[int, bytes] = {}
    alpn = draw(st.lists(st.sampled_from([b"h2", b"h3", b"http/1.1"]), max_size=3, unique=True))
    if alpn:
        params[1] = b"".join(_string(a) for a in alpn)
    if draw(st.booleans()):
        params[3] = struct.pack("!H", draw(_u16()))
    hints = draw(st.lists(st.binary(min_size=4, max_size=4), max_size=2))
    if hints:
        params[4] = b"".join(hints)
    body = b"".join(struct.pack("!HH", k, len(v)) + v for k, v in sorted(params.items()))
    return struct.pack("!H", priority) + wire_name(target) + body


_RDATA.update(
    {
        RType.NAPTR: _naptr(),
        RType.DS: st.tuples(_u16(), _u8(), _sized({1: 20, 2: 32, 4: 48}, 99)).map(
            lambda t: struct.pack("!HBB", t[0], t[1], t[2][0]) + t[2][1]
        ),
        RType.SSHFP: st.tuples(_u8(), _sized({1: 20, 2: 32}, 9)).map(
            lambda t: bytes([t[0], t[1][0]]) + t[1][1]
        ),
        RType.TLSA: st.tuples(_u8(), _u8(), _sized({1: 32, 2: 64}, 0)).map(
            lambda t: bytes([t[0], t[1], t[2][0]]) + t[2][1]
        ),
        RType.SVCB: _svcb(),
        RType.HTTPS: _svcb(),
    }
)

ttls = st.one_of(st.sampled_from([0, 60, 300, 3600]), st.integers(0, 2**31 - 1))


def rdata(rtype: RType) -> st.SearchStrategy[bytes]:
    """Canonical wire rdata of `rtype`."""
    return _RDATA[rtype]


def records(
    rtypes: tuple[RType, ...] = tuple(RType),
    names: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Record]:
    """Valid records of the given types (all types by default)."""
    owner = relative_names() if names is None else names

    def build(rtype: RType) -> st.SearchStrategy[Record]:
        return st.builds(Record, name=owner, rtype=st.just(rtype), ttl=ttls, rdata=rdata(rtype))

    return st.sampled_from(rtypes).flatmap(build)


# -- record sets --


def _sort_key(record: Record) -> tuple[str, int, bytes]:
    return (record.name, int(record.rtype), record.rdata)


def _at_or_below(name: str, cut: str) -> bool:
    return name == cut or name.endswith("." + cut)


def _repair(base: list[Record]) -> list[Record]:
    """Make records obey one TTL per (name, type) and CNAME exclusivity."""
    ttl: dict[tuple[str, RType], int] = {}
    cname: dict[str, Record] = {}
    for record in base:
        ttl.setdefault((record.name, record.rtype), record.ttl)
        if record.rtype is RType.CNAME and record.name != "@":
            cname.setdefault(record.name, record)
    out = []
    for record in base:
        if record.name in cname:
            record = cname[record.name]
        elif record.rtype is RType.CNAME:
            continue  # a CNAME at the apex
        out.append(
            Record(
                name=record.name,
                rtype=record.rtype,
                ttl=ttl[(record.name, record.rtype)],
                rdata=record.rdata,
            )
        )
    return out


@st.composite
def _delegation(draw: st.DrawFn, cut: str) -> list[Record]:
    """NS records at `cut` and optional A/AAAA glue below it."""
    ns_ttl = draw(ttls)
    ns = draw(st.lists(rdata(RType.NS), min_size=1, max_size=3, unique=True))
    glue_owner = "ns1" if cut == "@" else f"ns1.{cut}"
    glue = draw(st.lists(records((RType.A, RType.AAAA), st.just(glue_owner)), max_size=2))
    delegated = [Record(name=cut, rtype=RType.NS, ttl=ns_ttl, rdata=r) for r in ns]
    ds_ttl = draw(ttls)
    ds = draw(st.lists(rdata(RType.DS), max_size=2, unique=True))
    delegated += [Record(name=cut, rtype=RType.DS, ttl=ds_ttl, rdata=r) for r in ds]
    return delegated + _repair(glue)


_SET_NAMES = ("@", "www", "mail", "*", "_sip._tcp", "a.b", "*.b")


@st.composite
def record_sets(draw: st.DrawFn, max_records: int = 8) -> tuple[Record, ...]:
    """Valid canonical record sets of at most `max_records` records.

    Some delegate a sub-name (NS at a cut, glue below it) or the whole domain
    (NS at ``@``, only glue elsewhere).
    """
    no_ns = tuple(t for t in RType if t not in (RType.NS, RType.DS))
    # Mostly a few shared names, so TTL and CNAME interactions actually occur.
    names = st.one_of(st.sampled_from(_SET_NAMES), relative_names(max_labels=2))
    base = _repair(draw(st.lists(records(no_ns, names), max_size=max_records)))
    mode = draw(st.sampled_from(["none", "cut", "apex"]))
    if mode == "cut":
        cut = draw(_ldh_label(10))
        base = [r for r in base if not _at_or_below(r.name, cut)] + draw(_delegation(cut))
    elif mode == "apex":
        glue = [r for r in base if r.rtype in (RType.A, RType.AAAA) and r.name != "@"]
        base = glue + draw(_delegation("@"))
    unique = {_sort_key(r): r for r in _repair(base)}
    return tuple(unique[key] for key in sorted(unique))[:max_records]


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with one to four bytes changed, inserted or deleted, or cut short."""
    out = bytearray(data)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(min_value=0, max_value=len(out)))
        if op == "insert":
            out.insert(pos, draw(st.integers(0, 255)))
        elif out and op == "flip":
            out[min(pos, len(out) - 1)] = draw(st.integers(0, 255))
        elif out and op == "delete":
            del out[min(pos, len(out) - 1)]
        elif op == "truncate":
            del out[pos:]
    return bytes(out)


# -- zone-file text --

_ZONE_WORDS = (
    "@",
    "www",
    "*",
    "_sip._tcp",
    "www.alice.p2p.",
    "300",
    "1h",
    "IN",
    "CH",
    "A",
    "AAAA",
    "MX",
    "TXT",
    "CNAME",
    "NS",
    "SRV",
    "CAA",
    "PTR",
    "TLSA",
    "HTTPS",
    "SVCB",
    "NAPTR",
    "DS",
    "SSHFP",
    "alpn=h2",
    "port=80",
    "mandatory=port",
    "0a1b",
    "TYPE1",
    "10",
    "65536",
    "-1",
    "0",
    "1.2.3.4",
    "1.2.3",
    "::1",
    "fe80::1%eth0",
    "mail",
    "mail.",
    ".",
    "..",
    "@.",
    "issue",
    '"',
    '"x"',
    '"a b"',
    "\\",
    "\\256",
    "\\065",
    ";",
    "(",
    ")",
    "B\u00fccher",
    "xn--",
    "a..b",
    "-a",
    "a_b",
    "\u3002",
    "\t",
    "99999999999999999999",
)


def zone_lines() -> st.SearchStrategy[str]:
    """Zone-file-like lines: mostly plausible tokens, some arbitrary text."""
    words = st.lists(st.sampled_from(_ZONE_WORDS), max_size=8).map(" ".join)
    return st.one_of(words, st.text(max_size=60))


# -- signed and stored objects (transactions, blocks, votes, certificates, states, proofs) --
#
# Signatures here are arbitrary 64-byte strings and keys arbitrary 33-byte
# strings: the decoders check sizes, not validity, and signing is slow.
# `record_sets()` costs about 10 ms an example, so these default to a cheap
# palette of fixed records; pass `records=record_sets()` for the real thing.

hashes = st.binary(min_size=32, max_size=32)
signatures = st.binary(min_size=64, max_size=64)
key_bytes = st.tuples(st.sampled_from([b"\x02", b"\x03"]), hashes).map(lambda t: t[0] + t[1])
uint63 = st.one_of(st.integers(0, 2**16), st.integers(0, 2**63 - 1))
# At most 16 characters: never more than the 64 UTF-8 bytes a chain id may take.
chain_ids = st.one_of(st.just("ledgerdns-devnet"), st.text(max_size=16))


def _nonzero(digest: bytes) -> bytes:
    return digest if any(digest) else b"\x01" + digest[1:]


def _palette_record(name: str, rtype: RType, rdata: bytes, ttl: int = 300) -> Record:
    return Record(name=name, rtype=rtype, ttl=ttl, rdata=rdata)


# Each entry is a valid canonical record set on its own (rdata encoded here, by hand).
_PALETTE_SETS: tuple[tuple[Record, ...], ...] = tuple(
    tuple(sorted(group, key=_sort_key))
    for group in (
        [],
        [_palette_record("@", RType.A, bytes([192, 0, 2, 1]))],
        [
            _palette_record("@", RType.A, bytes([192, 0, 2, 1])),
            _palette_record("@", RType.A, bytes([192, 0, 2, 2])),
            _palette_record("@", RType.AAAA, bytes(15) + b"\x01", ttl=60),
        ],
        [
            _palette_record("@", RType.MX, struct.pack("!H", 10) + wire_name("mail.example.org")),
            _palette_record("@", RType.TXT, b"\x0bv=spf1 -all"),
            _palette_record("www", RType.CNAME, wire_name("alice.p2p")),
        ],
        [
            _palette_record("sub", RType.NS, wire_name("ns1.sub.alice.p2p")),
            _palette_record("ns1.sub", RType.A, bytes([198, 51, 100, 7])),
        ],
        [
            _palette_record("_sip._tcp", RType.SRV, struct.pack("!HHH", 0, 5, 5060) + b"\0"),
            _palette_record("@", RType.CAA, b"\x00\x05issueca.example"),
            _palette_record("*", RType.TXT, b"\x00\x03abc", ttl=0),
        ],
    )
)
_PALETTE = sorted({r for group in _PALETTE_SETS for r in group}, key=_sort_key)


def palette_record_sets() -> st.SearchStrategy[tuple[Record, ...]]:
    """A few fixed, valid canonical record sets (cheap)."""
    return st.sampled_from(_PALETTE_SETS)


def record_tuples(max_size: int = 3) -> st.SearchStrategy[tuple[Record, ...]]:
    """Sorted distinct records from the palette: valid records, not always a valid set."""
    return st.lists(st.sampled_from(_PALETTE), max_size=max_size, unique=True).map(
        lambda rs: tuple(sorted(rs, key=_sort_key))
    )


@st.composite
def tx_bodies(
    draw: st.DrawFn,
    records: st.SearchStrategy[tuple[Record, ...]] | None = None,
    forms: tuple[str, ...] = ("plain",),
) -> TxBody:
    """Transaction bodies (seq 0 exactly when prev is zero), domains mostly canonical.

    `forms` picks among plain ops, commits and reveals (issue 15; `ALL_FORMS`).
    """
    form = draw(st.sampled_from(forms))
    if form == "commit":
        return TxBody(
            chain_id=draw(chain_ids), domain="", seq=0, prev=ZERO_HASH, op=Op.COMMIT, records=(),
            owner=PublicKey(draw(key_bytes)), valid_until=draw(uint63),
            commitment=draw(hashes), stamp_work=draw(uint63),
            stamp=draw(st.binary(max_size=64).map(lambda b: b[: len(b) // 8 * 8])),
        )  # fmt: skip
    seq = draw(st.one_of(st.just(0), uint63))
    if form == "renewal":
        return TxBody(
            chain_id=draw(chain_ids), domain=draw(st.one_of(domains(), st.text(max_size=20))),
            seq=seq, prev=ZERO_HASH if seq == 0 else _nonzero(draw(hashes)), op=Op.RENEW,
            records=draw(record_tuples() if records is None else records),
            owner=PublicKey(draw(key_bytes)), valid_until=draw(uint63),
            stamp_work=draw(st.integers(min_value=1, max_value=2**63 - 1)),
            stamp=draw(st.binary(max_size=64).map(lambda b: b[: len(b) // 8 * 8])),
        )  # fmt: skip
    if form == "reveal":
        return TxBody(
            chain_id=draw(chain_ids), domain=draw(st.one_of(domains(), st.text(max_size=20))),
            seq=seq, prev=ZERO_HASH if seq == 0 else _nonzero(draw(hashes)), op=Op.REGISTER,
            records=draw(record_tuples() if records is None else records),
            owner=PublicKey(draw(key_bytes)), valid_until=draw(uint63),
            commit_height=draw(uint63), salt=draw(st.binary(min_size=16, max_size=32)),
        )  # fmt: skip
    if form == "validator":
        op = draw(st.sampled_from(VALIDATOR_OPS))
        size = (
            {"min_size": 32, "max_size": 32}
            if op == Op.VALIDATOR_APPROVE
            else {"min_size": 1, "max_size": 128}
        )
        return TxBody(
            chain_id=draw(chain_ids), domain="", seq=0, prev=ZERO_HASH, op=op, records=(),
            owner=PublicKey(draw(key_bytes)), valid_until=draw(uint63), change=draw(st.binary(**size)),
        )  # fmt: skip
    return TxBody(
        chain_id=draw(chain_ids),
        domain=draw(st.one_of(domains(), st.text(max_size=20))),
        seq=seq,
        prev=ZERO_HASH if seq == 0 else _nonzero(draw(hashes)),
        op=draw(st.sampled_from([op for op in Op if op != Op.COMMIT and op not in VALIDATOR_OPS])),
        records=draw(record_tuples() if records is None else records),
        owner=PublicKey(draw(key_bytes)),
        valid_until=draw(uint63),
    )


ALL_FORMS = ("plain", "plain", "commit", "reveal", "renewal", "validator")


def transactions(
    records: st.SearchStrategy[tuple[Record, ...]] | None = None,
    forms: tuple[str, ...] = ALL_FORMS,
) -> st.SearchStrategy[Transaction]:
    """Transactions with arbitrary (unverifiable) signatures, of every body form."""
    return st.builds(
        lambda body, sig: Transaction(body=body, body_bytes=body.to_bytes(), signature=sig),
        tx_bodies(records, forms),
        signatures,
    )


def block_headers() -> st.SearchStrategy[BlockHeader]:
    """Block headers with arbitrary hashes."""
    return st.builds(
        BlockHeader,
        chain_id=chain_ids,
        height=uint63,
        prev_block=hashes,
        time_ms=uint63,
        proposer=key_bytes.map(PublicKey),
        tx_root=hashes,
        state_root=hashes,
        validators_hash=hashes,
        next_validators_hash=hashes,
    )


def blocks(max_txs: int = 3) -> st.SearchStrategy[Block]:
    """Blocks of a few transactions (not checked against any chain)."""
    txs = st.lists(transactions(), max_size=max_txs).map(tuple)
    return st.builds(Block, header=block_headers(), txs=txs)


def votes() -> st.SearchStrategy[Vote]:
    """Prevotes and precommits, for a block or for nil."""
    return st.builds(
        Vote,
        chain_id=chain_ids,
        vtype=st.sampled_from(VoteType),
        height=uint63,
        round=st.one_of(st.integers(0, 5), st.integers(0, 2**31 - 1)),
        block_hash=st.one_of(st.just(b""), hashes),
        validator=key_bytes.map(PublicKey),
        signature=signatures,
    )


def certificates(max_signatures: int = 8) -> st.SearchStrategy[CommitCertificate]:
    """Certificates with ascending distinct validator indexes."""
    pairs = st.dictionaries(st.integers(0, 255), signatures, max_size=max_signatures).map(
        lambda d: tuple(sorted(d.items()))
    )
    return st.builds(
        CommitCertificate,
        height=uint63,
        round=st.integers(0, 2**31 - 1),
        block_hash=hashes,
        signatures=pairs,
    )


def domain_states(
    records: st.SearchStrategy[tuple[Record, ...]] | None = None,
) -> st.SearchStrategy[DomainState]:
    """Domain states as the ledger stores them."""
    return st.builds(
        DomainState,
        domain=st.one_of(domains(), st.text(max_size=20)),
        owner=key_bytes.map(PublicKey),
        seq=uint63,
        head=hashes,
        records=record_tuples() if records is None else records,
        expires_at=st.one_of(st.just(0), uint63),
        status=st.sampled_from(DomainStatus),
    )


def _siblings(depth: int, present: int, seed: bytes) -> tuple[bytes, ...]:
    """`depth` sibling hashes; bit i of `present` says whether level i is non-EMPTY."""
    return tuple(
        sha256(seed + level.to_bytes(2, "big")) if present >> level & 1 else EMPTY
        for level in range(depth)
    )


def proofs() -> st.SearchStrategy[Proof]:
    """State-tree proofs of any depth up to 256 (the largest encoding included)."""
    depth = st.one_of(st.integers(0, 24), st.integers(0, 256), st.just(256))
    present = st.one_of(st.integers(0, 2**256 - 1), st.just(2**256 - 1), st.just(0))
    found = st.one_of(st.just((b"", b"")), st.tuples(hashes, hashes))
    return st.builds(
        lambda d, p, seed, f: Proof(
            siblings=_siblings(d, p, seed), found_key=f[0], found_value_hash=f[1]
        ),
        depth,
        present,
        hashes,
        found,
    )


# -- genesis --

# Real secp256k1 points: a genesis file's keys are checked.
GENESIS_SIGNERS = tuple(
    PrivateKey.generate(f"tests.strategies genesis key {i}".encode()) for i in range(4)
)
GENESIS_KEYS = tuple(key.public_key for key in GENESIS_SIGNERS)
_GENESIS_TLDS = ("p2p", "test", "ledger.test", "xn--r8jz45g")


def _record_bytes(records: tuple[Record, ...]) -> int:
    return sum(len(cbor2.dumps(r.to_cbor(), canonical=True)) for r in records)


@st.composite
def geneses(
    draw: st.DrawFn, records: st.SearchStrategy[tuple[Record, ...]] | None = None
) -> Genesis:
    """Valid genesis objects: what `Genesis.from_json` returns for some file."""
    tlds = draw(st.lists(st.sampled_from(_GENESIS_TLDS), min_size=1, max_size=3, unique=True))
    keys = draw(st.lists(st.sampled_from(GENESIS_KEYS), min_size=1, max_size=4, unique=True))
    names = draw(st.lists(st.text(max_size=12), min_size=len(keys), max_size=len(keys)))
    by_domain: dict[str, InitialDomain] = {}
    for _ in range(draw(st.integers(0, 3))):
        domain = draw(domain_labels(max_size=30)) + "." + draw(st.sampled_from(tlds))
        by_domain[domain] = InitialDomain(
            domain=domain,
            owner=draw(st.sampled_from(GENESIS_KEYS)),
            records=draw(palette_record_sets() if records is None else records),
        )
    initial = tuple(by_domain[d] for d in sorted(by_domain))
    need_records = max((len(d.records) for d in initial), default=0)
    need_bytes = max((_record_bytes(d.records) for d in initial), default=0)
    big = st.integers(1, 2**40)
    consensus = ConsensusParams(
        timeout_propose_ms=draw(big),
        timeout_prevote_ms=draw(big),
        timeout_precommit_ms=draw(big),
        timeout_delta_ms=draw(st.integers(0, 2**40)),
        heartbeat_ms=draw(st.integers(0, 2**40)),
        max_block_txs=draw(big),
        max_block_bytes=draw(st.integers(64 * 1024, 2**40)),
    )
    params = ChainParams(
        chain_id=draw(st.text(min_size=1, max_size=16).filter(str.isprintable)),
        tlds=tuple(tlds),
        validators=ValidatorSet(tuple(keys)),
        name_lifetime_s=draw(st.integers(0, 2**32)),
        max_tx_lifetime_s=draw(st.integers(0, 2**32)),
        record_limits=RecordLimits(
            max_records=need_records + draw(st.integers(0, 100)),
            max_bytes=need_bytes + draw(st.integers(0, 10_000)),
        ),
        consensus=consensus,
    )
    return Genesis(
        params=params,
        genesis_time_ms=draw(st.integers(0, 2**48)),
        validator_names=tuple(names),
        domains=initial,
    )


# -- arbitrary CBOR, for decoder fuzzing --

cbor_atoms = st.one_of(
    st.integers(-(2**64), 2**64 - 1),
    st.binary(max_size=40),
    st.text(max_size=10),
)
cbor_values = st.recursive(cbor_atoms, lambda inner: st.lists(inner, max_size=5), max_leaves=10)


# A few real keys (a validator key must be a point on the curve).
_VALIDATOR_KEYS = [PrivateKey.generate(bytes([i + 1]) * 32).public_key for i in range(6)]
validator_names = st.from_regex(NAME_PATTERN, fullmatch=True)


@st.composite
def validator_changes(draw: st.DrawFn) -> ValidatorChange:
    """Validator-set changes (issue 15): add and rotate carry a real key, remove none."""
    action = draw(st.sampled_from(list(ChangeAction)))
    key = b"" if action == ChangeAction.REMOVE else bytes(draw(st.sampled_from(_VALIDATOR_KEYS)))
    return ValidatorChange(action=action, name=draw(validator_names), key=key)


@st.composite
def rosters(draw: st.DrawFn) -> Roster:
    """Rosters of 1 to 6 distinct real keys with distinct names."""
    keys = draw(st.lists(st.sampled_from(_VALIDATOR_KEYS), min_size=1, max_size=6, unique=True))
    names = draw(st.lists(validator_names, min_size=len(keys), max_size=len(keys), unique=True))
    return Roster(tuple(names), ValidatorSet(tuple(keys)))
