"""Keys, genesis files and client transactions for the simulator (cached across runs).

The keys are the PUBLIC development keys of `tools.devchain`; `FastKey` signs
with them through libsecp256k1, producing the very bytes `PrivateKey` would
(RFC 6979 nonces, low S), about 30 times faster, which keeps thousands of
simulated runs within the test budget.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import coincurve

from chain.crypto import PrivateKey, PublicKey, Signature
from chain.genesis import Genesis
from chain.ledger import genesis_anchor
from chain.params import ConsensusParams
from chain.records import Record, canonical_record_set
from chain.tx import Op, Transaction, TxBody
from tests.simulation.scenario import Submission
from tools.devchain import dev_key, register_tx
from tools.make_dev_genesis import localnet

START_MS = 10_000  # simulated time 0 is genesis time + START_MS


class FastKey(PrivateKey):
    """A dev key signing through libsecp256k1: the same RFC 6979 low-S signatures as
    `PrivateKey.sign_digest` (checked in the tests), about 30 times faster."""

    __slots__ = ("_fast", "_public")

    def __init__(self, key: PrivateKey) -> None:
        super().__init__(key._key)
        self._fast = coincurve.PrivateKey(key.to_bytes())
        self._public = key.public_key

    @property
    def public_key(self) -> PublicKey:
        return self._public

    def sign_digest(self, digest: bytes) -> Signature:
        if len(digest) != 32:
            raise ValueError("digest must be 32 bytes")
        return Signature(self._fast.sign_recoverable(digest, hasher=None)[:64])


@cache
def fast_key(role: str, index: int) -> FastKey:
    """``dev_key(role, index)`` as a `FastKey`."""
    return FastKey(dev_key(role, index))


TIGHT = ConsensusParams(
    timeout_propose_ms=300, timeout_prevote_ms=150, timeout_precommit_ms=150, timeout_delta_ms=100
)
GENESIS_DOMAIN = "ledgerdns.p2p"  # in every localnet genesis, owned by dev_key("owner", 0)


@cache
def genesis_for(n: int, tight: bool = False, heartbeat_ms: int = 0) -> Genesis:
    """The n-validator local network (with `TIGHT` timeouts and a heartbeat if asked)."""
    genesis = localnet(n)
    consensus = TIGHT if tight else genesis.params.consensus
    if heartbeat_ms:
        consensus = replace(consensus, heartbeat_ms=heartbeat_ms)
    if consensus != genesis.params.consensus:
        genesis = replace(genesis, params=replace(genesis.params, consensus=consensus))
    return genesis


def client_tx(n: int, sub: Submission, *, tight: bool = False, heartbeat_ms: int = 0) -> Transaction:
    """The transaction a submission sends (see `Submission`) on the network `genesis_for(n, tight)`.

    The timeouts are part of the genesis, so of the genesis hash every signature covers.
    """
    return _client_tx(n, tight, heartbeat_ms, sub.name, sub.owner, sub.seq, sub.variant)


def tx_deadline(genesis: Genesis) -> int:
    """The `valid_until` of every simulated transaction: two hours after simulated time 0."""
    return (genesis.genesis_time_ms + START_MS) // 1000 + 7200


def node_key(index: int) -> FastKey:
    """The key simulated node `index` starts with (in the genesis set if index < n)."""
    return fast_key("validator", index)


def rotated_key(index: int) -> FastKey:
    """The `index`-th fresh key a validator's key is rotated to (never in a genesis set)."""
    return fast_key("rotated", index)


@cache
def _client_tx(
    n: int, tight: bool, heartbeat_ms: int, name: int, owner: int, seq: int, variant: int
) -> Transaction:
    genesis = genesis_for(n, tight, heartbeat_ms)
    valid_until = tx_deadline(genesis)
    if seq == 0:
        key = fast_key("owner", name + 1 if owner < 0 else owner)
        return register_tx(genesis, key, f"name{name}.p2p", valid_until=valid_until)
    if seq == 1:
        prev = genesis_anchor(genesis.chain_id, GENESIS_DOMAIN)
    else:
        prev = _client_tx(n, tight, heartbeat_ms, 0, -1, seq - 1, 0).txid
    text = f'@ 300 TXT "update {seq} variant {variant}"'
    body = TxBody(
        chain_id=genesis.chain_id, domain=GENESIS_DOMAIN, seq=seq, prev=prev, op=Op.UPDATE,
        records=canonical_record_set([Record.from_text(text, origin=GENESIS_DOMAIN)]),
        owner=fast_key("owner", 0).public_key, valid_until=valid_until,
    )  # fmt: skip
    return Transaction.sign(body, fast_key("owner", 0), genesis.hash())
