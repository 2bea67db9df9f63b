"""A small real network for the resolver's tests: names written over RPC, DNS asked with dnspython.

`start_network` starts a `tools.localnet.Cluster` and registers names through
a node's RPC, waiting for finality. `ask` sends one query (UDP or TCP) and
returns the parsed reply; `ede_texts` reads its Extended DNS Errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rdatatype

from chain.crypto import PrivateKey
from chain.params import ConsensusParams
from chain.records import Record, canonical_record_set
from chain.tx import Op, Transaction, TxBody
from ledgerdns.api.client import RpcClient
from tools.devchain import dev_key, register_tx
from tools.localnet import Cluster

Address = tuple[str, int]
FINALIZE_S = 30.0


def consensus(heartbeat_ms: int) -> ConsensusParams:
    """Short rounds (a test network on loopback), with the given heartbeat."""
    return ConsensusParams(
        timeout_propose_ms=1000, timeout_prevote_ms=500, timeout_precommit_ms=500,
        timeout_delta_ms=250, heartbeat_ms=heartbeat_ms,
    )  # fmt: skip


@dataclass(slots=True)
class Network:
    """A running cluster and the owner key of the names written to it."""

    cluster: Cluster
    owner: PrivateKey

    @property
    def genesis_path(self) -> Path:
        return self.cluster.genesis_path

    def dns(self, i: int = 0) -> Address:
        return self.cluster.nodes[i].dns

    @property
    def rpc(self) -> RpcClient:
        return self.cluster.nodes[0].rpc

    def _until(self) -> int:
        return int(self.rpc.status()["head_time_ms"]) // 1000 + 3600

    def _sign(self, body: TxBody) -> Transaction:
        genesis = self.cluster.genesis
        assert genesis is not None
        return Transaction.sign(body, self.owner, genesis.hash())

    def register(self, domain: str, lines: list[str]) -> int:
        """Register `domain` with `lines` (zone-file records); the finalized height."""
        genesis = self.cluster.genesis
        assert genesis is not None
        records = canonical_record_set(Record.from_text(line, origin=domain) for line in lines)
        tx = register_tx(genesis, self.owner, domain, records, valid_until=self._until())
        return self._submit(tx)

    def update(self, domain: str, lines: list[str]) -> int:
        """Replace `domain`'s records with `lines`; the finalized height."""
        genesis = self.cluster.genesis
        assert genesis is not None
        state = self.rpc.domain(domain)
        assert state is not None and state["seq"] is not None, f"{domain} is not registered"
        body = TxBody(
            chain_id=genesis.chain_id, domain=domain, seq=int(state["seq"]) + 1,
            prev=bytes.fromhex(state["head"]), op=Op.UPDATE,
            records=canonical_record_set(Record.from_text(line, origin=domain) for line in lines),
            owner=self.owner.public_key, valid_until=self._until(),
        )  # fmt: skip
        return self._submit(self._sign(body))

    def _submit(self, tx: Transaction) -> int:
        result = self.rpc.submit(tx, wait=FINALIZE_S)
        assert result["status"] == "finalized", result
        height = int(result["height"])
        self.cluster.wait_height(height, timeout=FINALIZE_S)
        return height


def start_network(base: Path, *, validators: int, heartbeat_ms: int) -> Network:
    """A started cluster (no followers) on loopback. The caller stops `cluster`."""
    cluster = Cluster(base, validators=validators, followers=0, consensus=consensus(heartbeat_ms))
    cluster.start()
    return Network(cluster=cluster, owner=dev_key("resolver-test-owner", validators))


def ask(
    server: Address,
    name: str,
    rdtype: str,
    *,
    tcp: bool = False,
    edns: bool = True,
    timeout: float = 5.0,
) -> dns.message.Message:
    """One query to `server` (RD=1, EDNS unless told not), the parsed reply."""
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, server[0], port=server[1], timeout=timeout)


def rrs(reply: dns.message.Message, section: str = "answer") -> list[str]:
    """The records of a section as text lines, sorted."""
    return sorted(
        line for rrset in getattr(reply, section) for line in rrset.to_text().splitlines()
    )


def addresses(reply: dns.message.Message) -> set[str]:
    """The A and AAAA addresses in the answer."""
    return {
        item.to_text()
        for rrset in reply.answer
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        for item in rrset
    }


def ede_texts(reply: dns.message.Message) -> list[str]:
    """The Extended DNS Errors (RFC 8914) of the reply, as ``code: text``."""
    return [
        f"{int(option.code)}: {option.text}"
        for option in reply.options
        if isinstance(option, dns.edns.EDEOption)
    ]


def is_authentic(reply: dns.message.Message) -> bool:
    """Whether AD is set."""
    return bool(reply.flags & dns.flags.AD)
