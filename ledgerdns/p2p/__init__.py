"""The node's networking layer: libp2p gossip, request/response, discovery and peer scoring.

It moves bytes between peers and knows nothing of blocks or transactions.
"""

from ledgerdns.p2p.config import P2PConfig
from ledgerdns.p2p.errors import P2PError
from ledgerdns.p2p.service import P2PService

__all__ = ["P2PConfig", "P2PError", "P2PService"]
