"""Shared Hypothesis strategies.

Add strategies for new types in their own section. Records are built here
from independently written wire encoders (not through `chain.records`), so the
property tests check the implementation against a second reading of the RFCs.
"""

from __future__ import annotations

import struct

from hypothesis import strategies as st

from chain.records import Record, RType

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
}

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
    return delegated + _repair(glue)


_SET_NAMES = ("@", "www", "mail", "*", "_sip._tcp", "a.b", "*.b")


@st.composite
def record_sets(draw: st.DrawFn, max_records: int = 8) -> tuple[Record, ...]:
    """Valid canonical record sets of at most `max_records` records.

    Some delegate a sub-name (NS at a cut, glue below it) or the whole domain
    (NS at ``@``, only glue elsewhere).
    """
    no_ns = tuple(t for t in RType if t is not RType.NS)
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
