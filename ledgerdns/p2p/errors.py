"""The one exception the p2p layer raises to its callers."""

from __future__ import annotations

# The one exception root (`chain.errors.LedgerError`) is the only thing p2p takes from the
# chain: the import-linter contract that keeps p2p chain-agnostic names this exception.
from chain.errors import NetworkError


class P2PError(NetworkError):
    """A network operation failed: the request timed out, the peer is unknown or it refused."""
