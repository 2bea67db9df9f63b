"""The RPC's contract, shared by the server (`ledgerdns.rpc`) and its clients.

`codec` is the JSON the RPC speaks (chain objects in, JSON-ready dicts out, and
back where a client needs the real object), `token` the bearer-token file, and
`client` the synchronous HTTP client with its errors. The wallet, the explorer
and ``ledgerdns status`` use this package and never the server's.
"""

from ledgerdns.api.client import (
    NodeNotStarted,
    NodeUnreachable,
    RpcClient,
    RpcClientError,
    RpcError,
)
from ledgerdns.api.token import TokenError, load_or_create_token, read_token

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
