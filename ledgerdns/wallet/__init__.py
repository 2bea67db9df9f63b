"""The wallet: keys encrypted at rest, zone files, and signed updates sent to a node.

`keystore` holds the keys, `seed` derives them from the words that `backup`
shows and `restore` reads (`rotate` moves a domain to a new one), `zonefile`
reads and writes RFC 1035 zone files, `edit` changes a record set (the next signed transaction is built by
`chain.txbuilder`, which DNS UPDATE shares), `link` is the link to the node's RPC,
and `cli` is the ``ledgerdns wallet`` command.
"""
