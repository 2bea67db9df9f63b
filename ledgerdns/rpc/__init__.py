"""The node's local RPC: HTTP/JSON on loopback, and the client the wallet uses.

The server (`serve_rpc`) lives in `ledgerdns.rpc.server`; it is not re-exported
here so that importing the client does not load the web stack.
"""

from ledgerdns.rpc.client import (
    NodeNotStarted,
    NodeUnreachable,
    RpcClient,
    RpcClientError,
    RpcError,
)
from ledgerdns.rpc.token import TokenError, load_or_create_token, read_token

__all__ = [
    "NodeNotStarted",
    "NodeUnreachable",
    "RpcClient",
    "RpcClientError",
    "RpcError",
    "TokenError",
    "load_or_create_token",
    "read_token",
]
