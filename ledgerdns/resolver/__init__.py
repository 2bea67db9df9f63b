"""`ledgerdns resolver`: a DNS resolver that trusts no ledger node (issue 16, docs/resolver.md).

`cli` (the command line, argparse only), `config` (flags checked),
`service` (the UDP/TCP server and its dispatch), `verifier` (upstreams asked
in turn, proofs checked), `upstream` (one proof query over DNS), `answers`
(replies from proven state, SERVFAIL with Extended DNS Errors), `cache`
(verified replies within TTL and freshness).

Nothing is imported here, so that ``ledgerdns --help`` loads only `cli`; the
resolver never imports libp2p or the node.
"""
