"""Commit-reveal registration and expiry on a real `ledgerdns node` (issue 15, docs/naming.md).

One validator process on 127.0.0.1 with a genesis that turns commit-reveal on
(a reveal 2 heights after the commit, a heartbeat so heights pass while idle),
a real but cheap stamp and a 20 s name lifetime. `wallet register` commits,
waits and reveals; an interrupted registration resumes from the wallet; the
name is then answered over DNS, cannot change while provisional, and is
answered NXDOMAIN once it expires.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest

from chain.crypto import PrivateKey
from chain.genesis import make_single_validator_genesis
from chain.params import ConsensusParams, NamingParams
from ledgerdns.cli import main
from tests.integration.conftest import dns_a, eventually
from tools.localnet import Cluster

pytestmark = [pytest.mark.integration]

LIFETIME_S = 20  # long enough for a loaded machine to register and look before it lapses
NAMING = NamingParams(
    reveal_delay=2, reveal_window=6, stamp_work=16, stamp_count=4, stamp_memory_kib=64,
    max_block_commits=8, max_block_registrations=8,
)  # fmt: skip
CONSENSUS = ConsensusParams(
    timeout_propose_ms=1000, timeout_prevote_ms=500, timeout_precommit_ms=500,
    timeout_delta_ms=250, heartbeat_ms=400,
)  # fmt: skip


def _prepare(base: Path) -> None:
    """The validator's key and a commit-reveal genesis where `Cluster` looks for them."""
    node_dir = base / "node-0"
    node_dir.mkdir(parents=True)
    os.chmod(node_dir, 0o700)
    key = PrivateKey.generate(os.urandom(32))
    fd = os.open(node_dir / "validator.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.to_pem())
    base_genesis = make_single_validator_genesis(
        key.public_key, genesis_time_ms=time.time_ns() // 1_000_000, chain_id="naming-node-test"
    )
    params = dataclasses.replace(
        base_genesis.params, consensus=CONSENSUS, naming=NAMING, name_lifetime_s=LIFETIME_S
    )
    (base / "genesis.json").write_text(dataclasses.replace(base_genesis, params=params).to_json())


def _wallet(capsys: pytest.CaptureFixture[str], wallet: Path, node: Path, *argv: str) -> tuple[int, Any]:
    code = main(["wallet", "--wallet-dir", str(wallet), "--node", str(node), "--json", *argv])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"one JSON object expected, got {out!r}"
    return code, json.loads(lines[0])


def test_register_by_commit_and_reveal_then_dns_answers_until_expiry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "net"
    _prepare(base)
    wallet = tmp_path / "wallet"
    with Cluster(base, validators=1, followers=0, consensus=CONSENSUS, start_timeout=90) as net:
        net.start()
        node = net.nodes[0]
        assert net.genesis is not None and net.genesis.params.naming == NAMING
        assert _wallet(capsys, wallet, node.data_dir, "new", "--insecure-no-passphrase")[0] == 0

        # A registration interrupted after its commit went out (--no-wait: nothing waited)...
        code, sent = _wallet(capsys, wallet, node.data_dir, "register", "alice.p2p",
                             "--record", "@ 300 A 192.0.2.1", "--no-wait")  # fmt: skip
        assert code == 0 and sent["action"] == "committed" and sent["status"] == "pending", sent
        pending = list((wallet / "pending").glob("*-alice.p2p.json"))
        assert len(pending) == 1 and json.loads(pending[0].read_text())["salt"]
        code, listed = _wallet(capsys, wallet, node.data_dir, "list")
        assert [p["domain"] for p in listed["registrations_under_way"]] == ["alice.p2p"]
        # ...the commit names nothing: the node has never heard of alice.p2p
        assert dns_a(node, "alice.p2p") == set()

        # ...resumes: the same salt and commit, the wait of two heights, the reveal.
        code, done = _wallet(capsys, wallet, node.data_dir, "register", "alice.p2p")
        assert code == 0 and done["action"] == "registered" and done["status"] == "finalized", done
        assert done["height"] >= done["commit_height"] + NAMING.reveal_delay
        assert done["records"] == ["@ 300 IN A 192.0.2.1"]
        assert not list((wallet / "pending").glob("*.json"))
        assert dns_a(node, "alice.p2p") == {"192.0.2.1"}

        code, shown = _wallet(capsys, wallet, node.data_dir, "show", "alice.p2p")
        assert code == 0 and shown["status"] == "active" and shown["expires_at"] > 0, shown
        assert 0 < shown["expires_in_s"] <= LIFETIME_S

        # While an earlier commit could still take the name (its claim), the holder cannot
        # change it (a stamped renewal after the claim: tests/integration/test_naming_wallet.py).
        code, early = _wallet(capsys, wallet, node.data_dir, "renew", "alice.p2p")
        assert code == 1 and early["error"] == "name-provisional", early

        code, listed = _wallet(capsys, wallet, node.data_dir, "list")
        assert code == 0 and listed["domains"][0]["expires_at"] == shown["expires_at"]
        assert listed["registrations_under_way"] == []

        # Expiry: the node answers NXDOMAIN once the lease ends (real DNS packets).
        time.sleep(max(0.0, shown["expires_at"] - time.time()) + 0.5)
        host, port = node.dns
        reply = eventually(
            lambda: dns.query.udp(dns.message.make_query("alice.p2p", "A"), host, port=port, timeout=2),
            5, "a reply",
        )
        assert reply.rcode() == dns.rcode.NXDOMAIN, dns.rcode.to_text(reply.rcode())
        code, expired = _wallet(capsys, wallet, node.data_dir, "show", "alice.p2p")
        assert code == 0 and expired["status"] == "expired", expired
