"""``ledgerdns explorer``: a live terminal view of one node, over its RPC.

`data` is the model (polling, reconnects, proof checks; no UI), `history` the
pure per-domain diff, and one module per screen. The textual app itself is
`ledgerdns.explorer.app.ExplorerApp` (imported on demand: textual is heavy).
"""

from ledgerdns.explorer.data import Disconnected, Link, NodeData, ProofCheck, Snapshot

__all__ = ["Disconnected", "Link", "NodeData", "ProofCheck", "Snapshot"]
