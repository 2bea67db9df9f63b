"""The DNS face of the node: authoritative answers from the finalized ledger.

`resolve` looks questions up (pure), `answer` writes replies, `cache` is the
hot path with encoded replies cached, `server` serves UDP and TCP with trio.
See docs/dns.md for what is served and why.
"""

from ledgerdns.dns.answer import EDNS_PAYLOAD, AnswerBuilder, Reply
from ledgerdns.dns.cache import AnswerCache
from ledgerdns.dns.resolve import Resolver, ZoneSource
from ledgerdns.dns.result import Outcome, Resolution
from ledgerdns.dns.server import DnsServer
from ledgerdns.dns.zone import ZoneConfig

__all__ = [
    "EDNS_PAYLOAD",
    "AnswerBuilder",
    "AnswerCache",
    "DnsServer",
    "Outcome",
    "Reply",
    "Resolution",
    "Resolver",
    "ZoneConfig",
    "ZoneSource",
]
