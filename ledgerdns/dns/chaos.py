"""CHAOS-class questions about the server itself: ``version.bind`` and friends (pure).

BIND, Knot and NSD answer ``TXT`` questions in class CH for ``version.bind``
and ``version.server`` (the software version) and for ``id.server`` and
``hostname.bind`` (which server instance answered, RFC 4892). We answer them
from `ChaosSettings`, as BIND does: AA set, TTL 0, the answer only. An empty
setting refuses its names, and every other CH question is refused.
"""

from __future__ import annotations

from ledgerdns.dns.result import CLASS_CH, REFUSED, RR, Labels, Outcome, QType, Resolution
from ledgerdns.dns.settings import ChaosSettings

_VERSION_NAMES = frozenset({(b"version", b"bind"), (b"version", b"server")})
_ID_NAMES = frozenset({(b"id", b"server"), (b"hostname", b"bind")})
_MAX_STRING = 255


def txt_rdata(text: str) -> bytes:
    """`text` (UTF-8) as TXT rdata: character-strings of at most 255 bytes each."""
    raw = text.encode("utf-8")
    chunks = [raw[i : i + _MAX_STRING] for i in range(0, len(raw), _MAX_STRING)] or [b""]
    return b"".join(bytes((len(chunk),)) + chunk for chunk in chunks)


def chaos_lookup(qname: Labels, qtype: int, settings: ChaosSettings) -> Resolution:
    """Answer one CH-class question.

    Args:
        qname: the question name, lower-cased.
        qtype: the question type; only TXT is answered.
        settings: what the answers say ("" refuses).
    """
    if qtype != QType.TXT:
        return REFUSED
    if qname in _VERSION_NAMES:
        text = settings.version
    elif qname in _ID_NAMES:
        text = settings.id
    else:
        return REFUSED
    if not text:
        return REFUSED
    return Resolution(
        outcome=Outcome.ANSWER,
        authoritative=True,
        answer=(RR(qname, QType.TXT, 0, txt_rdata(text), CLASS_CH),),
    )
