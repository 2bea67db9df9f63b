"""A validator key rotation in the middle of the crash loop (`tools/chaos.py --rotate`, issue 15).

The rotated validator proposes its own rotation to a fresh key; two others
approve (with the proposer, a quorum of four). The node is then restarted with the
new key (`Cluster.use_key`): until the change takes effect two heights after the
approving block the new key follows and the other three keep the quorum; from
then on it votes again. Every transaction goes over RPC to a live node and is
sent again until final; every wait is bounded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from chain.crypto import PrivateKey
from chain.tx import Op, Transaction
from chain.txbuilder import build_validator_tx
from chain.validators import CHANGE_DELAY, ChangeAction, ValidatorChange
from ledgerdns.api.client import NodeUnreachable, RpcClient, RpcError
from tools.localnet import Cluster

RESEND_S = 2.0


def key_of(cluster: Cluster, i: int) -> PrivateKey:
    """The validator key node `i` runs with (its ``--validator-key`` file, else validator.pem)."""
    node = cluster.nodes[i]
    args = node.extra_args
    path = (
        args[args.index("--validator-key") + 1]
        if "--validator-key" in args
        else node.data_dir / "validator.pem"
    )
    return PrivateKey.from_pem(open(path, "rb").read())


def _final(cluster: Cluster, tx: Transaction, live: Callable[[], list[int]], timeout: float) -> int:
    """Send `tx` to live nodes until one reports it final; its height."""
    deadline = time.monotonic() + timeout
    sent = 0.0
    while time.monotonic() < deadline:
        for i in live():
            node = cluster.nodes[i]
            try:
                client = RpcClient.for_node(node.data_dir, timeout=3)
            except (NodeUnreachable, RpcError, OSError):
                continue
            try:
                if time.monotonic() - sent > RESEND_S:
                    client.submit(tx)
                    sent = time.monotonic()
                found = client.tx(tx.txid.hex())
                if found.get("status") == "finalized":
                    return int(found["height"])
            except (NodeUnreachable, RpcError, OSError):
                continue
            finally:
                client.close()
            break
        time.sleep(0.3)
    raise TimeoutError(f"transaction {tx.txid.hex()[:16]} not final within {timeout:g} s")


def rotate_key(
    cluster: Cluster,
    index: int,
    approvers: list[int],
    live: Callable[[], list[int]],
    timeout: float,
) -> dict[str, Any]:
    """Rotate validator `index`'s key, approved by `approvers`; restart it with the new key.

    Returns what happened: the name, the height the new key starts at, seconds taken.
    """
    started = time.monotonic()
    assert cluster.genesis is not None
    genesis = cluster.genesis
    name = (
        genesis.validator_names[index] if index < len(genesis.validator_names) else f"node-{index}"
    )
    old, new = key_of(cluster, index), PrivateKey.generate(os.urandom(32))
    head = int(cluster.nodes[live()[0]].rpc.status()["head_time_ms"]) // 1000

    def signed(op: Op, change: bytes, key: PrivateKey) -> Transaction:
        return build_validator_tx(
            op=op, change=change, key=key, chain_id=genesis.chain_id, genesis_hash=genesis.hash(),
            deadline=head + 3600,
        )  # fmt: skip

    change = ValidatorChange(action=ChangeAction.ROTATE, name=name, key=bytes(new.public_key))
    proposal = signed(Op.VALIDATOR_PROPOSE, change.to_bytes(), old)
    proposed_at = _final(cluster, proposal, live, timeout)
    approved_at = max(
        _final(
            cluster, signed(Op.VALIDATOR_APPROVE, proposal.txid, key_of(cluster, i)), live, timeout
        )
        for i in approvers
    )
    cluster.use_key(index, new)
    cluster.restart(index)
    return {
        "rotated": name,
        "proposed_at": proposed_at,
        "approved_at": approved_at,
        "from_height": approved_at + CHANGE_DELAY,
        "seconds": round(time.monotonic() - started, 2),
    }
