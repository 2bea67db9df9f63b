"""The DNS face of the node: authoritative answers from the finalized ledger.

`resolve` looks questions up (pure), `answer` writes replies, `cache` is the
hot path with encoded replies cached, `server` serves UDP and TCP with trio,
`udpworker` is the separate process that answers repeat UDP questions.
See docs/dns.md for what is served and why.

The names below are imported on first use, so that the UDP worker process
(``python -m ledgerdns.dns.udpworker``) starts without loading the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledgerdns.dns.answer import EDNS_PAYLOAD, AnswerBuilder, Reply
    from ledgerdns.dns.cache import AnswerCache
    from ledgerdns.dns.resolve import Resolver, ZoneSource
    from ledgerdns.dns.result import Outcome, Resolution
    from ledgerdns.dns.server import DnsServer
    from ledgerdns.dns.zone import ZoneConfig

_WHERE = {
    "EDNS_PAYLOAD": "answer",
    "AnswerBuilder": "answer",
    "Reply": "answer",
    "AnswerCache": "cache",
    "Resolver": "resolve",
    "ZoneSource": "resolve",
    "Outcome": "result",
    "Resolution": "result",
    "DnsServer": "server",
    "ZoneConfig": "zone",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"ledgerdns.dns.{module}"), name)
