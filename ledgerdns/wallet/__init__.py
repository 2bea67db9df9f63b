"""The wallet: keys encrypted at rest, zone files, and signed updates sent to a node.

`keystore` holds the keys, `zonefile` reads and writes RFC 1035 zone files,
`edit` changes a record set, `txbuild` turns a node's view of a domain into the
next signed transaction, and `cli` is the ``ledgerdns wallet`` command.
"""
