"""The chain's network protocol: what each gossip topic carries, who checks it, and sync.

- `txgossip`: the ``txs`` topic: local submissions batched out, gossiped batches
  checked and admitted, pending ones re-sent.
- `consensus_gossip`: the ``consensus`` topic: proposals and votes in and out,
  what is worth forwarding, and the re-sending that un-sticks a height.
- `notices`: the ``blocks`` topic: commit notices.
- `commits`: what follows a stored block (mempool, waiters, listeners, notice).
- `sync`: the request/response protocol that fetches finalized blocks.
- `offences`: the penalties, and who to blame for a validator's offence.
- `views`: the node's peers and validators as the RPC lists them.

`ledgerdns.p2p` carries bytes and knows nothing of the chain; this package is
where the chain's meaning meets it. The composition root (`ledgerdns.node`)
builds one of each and hands them their collaborators.
"""
