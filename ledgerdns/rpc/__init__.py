"""The node's local RPC server: HTTP/JSON on loopback.

The server (`serve_rpc`) lives in `ledgerdns.rpc.server` and reads the node
through `ledgerdns.rpc.model.RpcModel`. What it shares with its clients (the
JSON codec, the token file, the HTTP client) is `ledgerdns.api`.
"""
