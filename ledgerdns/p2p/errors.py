"""The one exception the p2p layer raises to its callers."""

from __future__ import annotations


class P2PError(Exception):
    """A network operation failed: the request timed out, the peer is unknown or it refused."""
