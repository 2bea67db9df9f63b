"""Proofs over DNS against a real `ledgerdns node` process (issue 16).

One validator with a heartbeat (so the head stays fresh while idle), a name
registered by the wallet CLI, then real DNS packets on loopback: the client
helper over UDP (truncated) and again over TCP, `dig +ednsopt`, a malformed
option. Every answer is verified against the genesis file alone, as the light
resolver does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest
import trio

from chain.dns_proof import PROOF_OPTION_CODE, ProofAnswer, ProofRequest, verify_answer
from chain.genesis import Genesis
from chain.lightclient import default_max_age_ms
from chain.params import ConsensusParams
from ledgerdns.cli import main
from ledgerdns.dns.proof_query import ProofReply, fetch_proof, fetch_proof_sync
from tools.localnet import Cluster

pytestmark = [pytest.mark.integration]

CONSENSUS = ConsensusParams(
    timeout_propose_ms=1000, timeout_prevote_ms=500, timeout_precommit_ms=500,
    timeout_delta_ms=250, heartbeat_ms=1000,
)  # fmt: skip


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Genesis]]:
    base = tmp_path_factory.mktemp("proofnet")
    with Cluster(base / "net", validators=1, followers=0, consensus=CONSENSUS) as net:
        net.start()
        data = net.nodes[0].data_dir
        wallet = ["wallet", "--wallet-dir", str(base / "wallet"), "--node", str(data), "--json"]
        assert main([*wallet, "new", "--insecure-no-passphrase"]) == 0
        code = main([
            *wallet, "register", "alice.p2p", "--record", "@ A 192.0.2.1",
            "--record", "www A 192.0.2.2",
        ])  # fmt: skip
        assert code == 0
        yield net, Genesis.from_json(net.genesis_path.read_text(encoding="utf-8"))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def verified(genesis: Genesis, reply: ProofReply, qname: str) -> Any:
    assert reply.proof is not None, "the reply carries no proof"
    return verify_answer(
        reply.proof, params=genesis.params, known=None, qname=qname, now_ms=now_ms(),
        max_age_ms=default_max_age_ms(genesis.params),
    )  # fmt: skip


def test_udp_truncates_then_tcp_brings_the_answer_and_its_proof(
    node: tuple[Cluster, Genesis], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    net, genesis = node
    host, port = net.nodes[0].dns
    reply = fetch_proof_sync(host, port, "www.alice.p2p", "A", ProofRequest(), payload=512)
    assert reply.tcp, "a proof does not fit 512 bytes: the UDP reply must be truncated"
    assert [str(rr.rdata) for rr in reply.record.rr] == ["192.0.2.2"]
    result = verified(genesis, reply, "www.alice.p2p")
    assert result.domain == "alice.p2p" and result.state is not None
    assert [r.name for r in result.state.records] == ["@", "www"]
    # A client that takes large datagrams gets it all over UDP.
    whole = fetch_proof_sync(host, port, "alice.p2p", "A", ProofRequest(), payload=4096)
    assert not whole.tcp and verified(genesis, whole, "alice.p2p").state == result.state


def test_a_name_that_does_not_exist_verifies_as_absent(node: tuple[Cluster, Genesis]) -> None:
    net, genesis = node
    host, port = net.nodes[0].dns
    reply = fetch_proof_sync(host, port, "www.nobody.p2p", "A", ProofRequest(), payload=512)
    assert reply.record.header.rcode == dns.rcode.NXDOMAIN
    result = verified(genesis, reply, "www.nobody.p2p")
    assert result.domain == "nobody.p2p" and result.state is None


def test_the_trio_client_gets_the_same_proof(node: tuple[Cluster, Genesis]) -> None:
    net, genesis = node
    host, port = net.nodes[0].dns

    async def ask() -> ProofReply:
        return await fetch_proof(host, port, "alice.p2p", "A", ProofRequest(), payload=512)

    reply = trio.run(ask)
    assert reply.tcp and verified(genesis, reply, "alice.p2p").state is not None


def test_a_proof_of_old_state_is_refused_as_stale(node: tuple[Cluster, Genesis]) -> None:
    net, genesis = node
    host, port = net.nodes[0].dns
    reply = fetch_proof_sync(host, port, "alice.p2p", "A", ProofRequest(), tcp_only=True)
    assert reply.proof is not None
    bound = default_max_age_ms(genesis.params)
    assert bound is not None
    later = reply.proof.header.time_ms + bound + 1  # the same answer, read later
    with pytest.raises(Exception) as info:
        verify_answer(
            reply.proof, params=genesis.params, known=None, qname="alice.p2p", now_ms=later,
            max_age_ms=bound,
        )  # fmt: skip
    assert "stale-proof" in str(info.value)


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed")
def test_dig_asks_with_the_option(node: tuple[Cluster, Genesis]) -> None:
    net, genesis = node
    host, port = net.nodes[0].dns
    out = subprocess.run(
        ["dig", f"@{host}", "-p", str(port), "+tcp", "+norec", f"+ednsopt={PROOF_OPTION_CODE}",
         "+time=3", "+tries=1", "alice.p2p", "A"],
        capture_output=True, text=True, timeout=15, check=True,
    ).stdout  # fmt: skip
    assert "192.0.2.1" in out, out
    line = next(x for x in out.splitlines() if f"OPT={PROOF_OPTION_CODE}:" in x)
    hex_text = line.split(":", 1)[1].split("(")[0].replace(" ", "").strip()
    answer = ProofAnswer.from_bytes(bytes.fromhex(hex_text))
    result = verify_answer(
        answer, params=genesis.params, known=None, qname="alice.p2p", now_ms=now_ms(),
        max_age_ms=default_max_age_ms(genesis.params),
    )  # fmt: skip
    assert result.state is not None


def test_a_malformed_option_gets_formerr_with_an_extended_error(
    node: tuple[Cluster, Genesis],
) -> None:
    net, _ = node
    host, port = net.nodes[0].dns
    option = dns.edns.GenericOption(
        dns.edns.OptionType.make(PROOF_OPTION_CODE), b"\x83\x18\x2a\x01"
    )
    query = dns.message.make_query("alice.p2p", "A", use_edns=0, options=[option])
    for reply in (
        dns.query.udp(query, host, port=port, timeout=3),
        dns.query.tcp(query, host, port=port, timeout=3),
    ):
        assert reply.rcode() == dns.rcode.FORMERR
        (ede,) = [o for o in reply.options if o.otype == dns.edns.OptionType.EDE]
        assert isinstance(ede, dns.edns.EDEOption) and "65353" in (ede.text or "")


def test_plain_queries_still_answer_from_the_workers(node: tuple[Cluster, Genesis]) -> None:
    net, _ = node
    host, port = net.nodes[0].dns
    query = dns.message.make_query("alice.p2p", "A")
    for _ in range(3):  # the second and third come from a worker's reply table
        reply = dns.query.udp(query, host, port=port, timeout=3)
        assert [item.to_text() for rrset in reply.answer for item in rrset] == ["192.0.2.1"]
        assert not [o for o in reply.options if o.otype == PROOF_OPTION_CODE]
    status = json.loads(json.dumps(net.status(0)))
    assert status["height"] >= 1
