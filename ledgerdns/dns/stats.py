"""What the node's DNS server answered: counts by transport, response code and query type.

`QueryCounts.note` is called once per message the node itself answers (TCP,
UDP served in the node, and the UDP queries a worker passes up because it had
no reply for them); the replies a UDP worker sends from its own tables never
reach the node and are not counted here. It costs one dictionary update and
a walk over the question name, nothing per label kept. The labels are
bounded: a query type outside `_NAMED_TYPES` counts as 0 ("other"), so a
client making up types cannot grow the table.
"""

from __future__ import annotations

import dns.rcode
import dns.rdatatype

from ledgerdns.dns.wire import HEADER_SIZE

NO_REPLY = -1  # the rcode recorded when no reply went out (a bad message, a lost forward)
OTHER_TYPE = 0

# The types an operator would chart; every other number is folded into OTHER_TYPE.
_NAMED_TYPES = frozenset(
    int(t)
    for t in (
        dns.rdatatype.A, dns.rdatatype.NS, dns.rdatatype.CNAME, dns.rdatatype.SOA,
        dns.rdatatype.PTR, dns.rdatatype.MX, dns.rdatatype.TXT, dns.rdatatype.AAAA,
        dns.rdatatype.SRV, dns.rdatatype.NAPTR, dns.rdatatype.DS, dns.rdatatype.SSHFP,
        dns.rdatatype.DNSKEY, dns.rdatatype.TLSA, dns.rdatatype.SVCB, dns.rdatatype.HTTPS,
        dns.rdatatype.IXFR, dns.rdatatype.AXFR, dns.rdatatype.ANY, dns.rdatatype.CAA,
    )
)  # fmt: skip

Key = tuple[str, int, int]  # transport, rcode (or NO_REPLY), query type (or OTHER_TYPE)


class QueryCounts:
    """Messages answered by the node, keyed by (transport, rcode, qtype); read at scrape time."""

    def __init__(self) -> None:
        self.counts: dict[Key, int] = {}

    def note(self, transport: str, query: bytes, reply: bytes | None) -> None:
        """Count one message: its question's type, and the rcode of `reply` (None: no reply)."""
        rcode = reply[3] & 0x0F if reply is not None and len(reply) >= HEADER_SIZE else NO_REPLY
        key = (transport, rcode, question_type(query))
        self.counts[key] = self.counts.get(key, 0) + 1

    def total(self, transport: str | None = None) -> int:
        """Messages counted, over one transport or all."""
        return sum(n for (t, _, _), n in self.counts.items() if transport in (None, t))


def question_type(message: bytes) -> int:
    """The first question's type, folded to the named ones (`OTHER_TYPE` if none or malformed)."""
    at = HEADER_SIZE
    end = len(message)
    while at < end:
        length = message[at]
        if length == 0:
            break
        if length >= 0xC0:  # a pointer: not in a question, but it ends the name
            at += 1
            break
        at += length + 1
    else:
        return OTHER_TYPE
    if at + 3 > end:
        return OTHER_TYPE
    qtype = (message[at + 1] << 8) | message[at + 2]
    return qtype if qtype in _NAMED_TYPES else OTHER_TYPE


def type_label(qtype: int) -> str:
    """``A``, ``AAAA``, … or ``other``."""
    return (
        "other"
        if qtype == OTHER_TYPE
        else dns.rdatatype.to_text(dns.rdatatype.RdataType.make(qtype))
    )


def rcode_label(rcode: int) -> str:
    """``NOERROR``, ``NXDOMAIN``, … or ``none`` for no reply."""
    return "none" if rcode == NO_REPLY else dns.rcode.to_text(dns.rcode.Rcode.make(rcode))
