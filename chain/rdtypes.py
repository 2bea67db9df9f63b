"""The record types read and written through dnspython: PTR, NAPTR, DS, SSHFP, TLSA, SVCB, HTTPS.

dnslib (`chain.rdata`) carries the older types; for these it has no SVCB at
all, and its HTTPS, DS, SSHFP, TLSA and NAPTR classes pack and parse without
checking anything (HTTPS keys out of order or repeated, the draft name
``echconfig`` for RFC 9460's ``ech``, digests of any length). dnspython, a
dependency already (UPDATE, transfers, TSIG), implements all seven from their
RFCs, in presentation and wire form, with those checks. So text is parsed and
shown, and wire rdata checked, by dnspython here; the node still writes them
into replies as opaque rdata.

Canonical rdata as the ledger stores it: what dnspython packs, names
uncompressed, lower-case and absolute, each name checked as `chain.names`
checks record targets.
"""

from __future__ import annotations

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.NAPTR

from chain.errors import InvalidUpdate, RejectReason
from chain.names import validate_absolute_name

__all__ = [
    "DNSPYTHON_TYPES",
    "USAGE",
    "check_wire",
    "from_text",
    "to_text",
]

PTR = int(dns.rdatatype.PTR)
NAPTR = int(dns.rdatatype.NAPTR)
DS = int(dns.rdatatype.DS)
SSHFP = int(dns.rdatatype.SSHFP)
TLSA = int(dns.rdatatype.TLSA)
SVCB = int(dns.rdatatype.SVCB)
HTTPS = int(dns.rdatatype.HTTPS)

DNSPYTHON_TYPES = frozenset({PTR, NAPTR, DS, SSHFP, TLSA, SVCB, HTTPS})

# The name field of each type, whether it may be the root ".", whether its
# labels may hold underscores (DNS-SD PTR targets, NAPTR's _sip._udp).
_NAME_FIELD: dict[int, tuple[str, bool, bool]] = {
    PTR: ("target", False, True),
    NAPTR: ("replacement", True, True),
    SVCB: ("target", True, False),
    HTTPS: ("target", True, False),
}

USAGE = {
    PTR: "one target name (www)",
    NAPTR: 'order, preference, flags, services, regexp and replacement (100 10 "S" "SIP+D2U" "" _sip._udp)',
    DS: "key tag, algorithm, digest type and digest in hex (12345 13 2 ab12...)",
    SSHFP: "algorithm, fingerprint type and fingerprint in hex (4 2 ab12...)",
    TLSA: "usage, selector, matching type and data in hex (3 1 1 ab12...)",
    SVCB: "priority, target and parameters (1 svc alpn=h2 port=8443)",
    HTTPS: "priority, target and parameters (1 . alpn=h2,h3)",
}

_ERRORS = (dns.exception.DNSException, ValueError, TypeError, UnicodeError)


def _bad(message: str) -> InvalidUpdate:
    return InvalidUpdate(RejectReason.BAD_RECORD, message)


def _dotless(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True) if name != dns.name.root else ""


def _check_names(rtype: int, rd: dns.rdata.Rdata, what: str, *, lower: bool) -> dns.rdata.Rdata:
    """Check the name field of `rd`; with `lower`, return it with the name lower-cased."""
    field = _NAME_FIELD.get(rtype)
    if field is None:
        return rd
    attr, root_ok, underscore = field
    name: dns.name.Name = getattr(rd, attr)
    text = _dotless(name)
    if not text:
        if not root_ok:
            raise _bad(f"{what}: the target cannot be the root '.'")
        return rd
    if lower:
        text = text.lower()
    try:
        validate_absolute_name(text, allow_underscore=underscore)
    except InvalidUpdate as exc:
        raise _bad(f"{what}: {attr} {exc.args[0]}") from None
    if isinstance(rd, dns.rdtypes.IN.NAPTR.NAPTR) and rd.regexp and text:  # RFC 3403 4.1
        raise _bad(f"{what}: a NAPTR has a regexp or a replacement, not both")
    return rd.replace(**{attr: dns.name.from_text(text + ".")}) if lower else rd


# The data field that must not be empty (dnspython accepts an empty one).
_DATA_FIELD = {
    DS: ("digest", "digest"),
    SSHFP: ("fingerprint", "fingerprint"),
    TLSA: ("cert", "certificate data"),
}


def _check_fields(rtype: int, rd: dns.rdata.Rdata, what: str) -> None:
    field = _DATA_FIELD.get(rtype)
    if field is not None and not getattr(rd, field[0]):
        raise _bad(f"{what}: the {field[1]} is empty")


def _wire(rd: dns.rdata.Rdata) -> bytes:
    wire = rd.to_wire()
    assert wire is not None  # no file given: the bytes are returned
    return wire


def from_text(rtype: int, text: str, *, origin: str, what: str) -> bytes:
    """Canonical wire rdata from its presentation form (names relative to `origin`).

    Args:
        rtype: one of `DNSPYTHON_TYPES`.
        text: the rdata as typed (quotes, escapes, a trailing comment allowed).
        origin: the canonical absolute name relative names are under.
        what: the owner and type, for messages (``"www: TLSA"``).

    Raises:
        InvalidUpdate: `BAD_RECORD`, with what the type takes.
    """
    if not text.strip():
        raise _bad(f"{what} takes {USAGE[rtype]}, got nothing")
    try:
        rd = dns.rdata.from_text(
            dns.rdataclass.IN,
            dns.rdatatype.RdataType.make(rtype),
            text,
            origin=dns.name.from_text(origin + "."),
            relativize=False,
        )
    except _ERRORS as exc:
        raise _bad(f"{what}: {_message(exc)} (it takes {USAGE[rtype]})") from None
    rd = _check_names(rtype, rd, what, lower=True)
    _check_fields(rtype, rd, what)
    return _wire(rd)


def _message(exc: BaseException) -> str:
    """dnspython's message, in the words a zone-file user knows."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    if text.startswith("expecting ") and "identifier" in text:
        return "a value is missing"
    if text.startswith("expected EOL or EOF, got "):
        return f"unexpected extra value {text.removeprefix('expected EOL or EOF, got ')[2:]}"
    return text


def _parse_wire(rtype: int, rdata: bytes, what: str) -> dns.rdata.Rdata:
    try:
        rd = dns.rdata.from_wire(
            dns.rdataclass.IN, dns.rdatatype.RdataType.make(rtype), rdata, 0, len(rdata)
        )
        repacked = _wire(rd)
    except _ERRORS as exc:
        raise _bad(f"{what} does not parse: {_message(exc)}") from None
    if repacked != rdata:
        raise _bad(f"{what} is not in canonical form (names must be uncompressed)")
    return rd


def check_wire(rtype: int, rdata: bytes, *, what: str) -> None:
    """Check that `rdata` is valid, canonical wire rdata of `rtype`.

    A name in it must be lower-case: `validate_absolute_name` takes no capitals.

    Raises:
        InvalidUpdate: `BAD_RECORD`.
    """
    rd = _check_names(rtype, _parse_wire(rtype, rdata, what), what, lower=False)
    _check_fields(rtype, rd, what)


def to_text(rtype: int, rdata: bytes, *, what: str) -> str:
    """The presentation form of checked rdata; names absolute with a trailing dot.

    Raises:
        InvalidUpdate: `BAD_RECORD` if the rdata does not parse.
    """
    return str(_parse_wire(rtype, rdata, what).to_text())
