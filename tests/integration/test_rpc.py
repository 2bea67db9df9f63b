"""The RPC end to end: a real Hypercorn server on 127.0.0.1:0 over an InstantNode,
called through the wallet's `RpcClient` (in a worker thread) and raw HTTP."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import trio

from chain.consensus_messages import Evidence
from chain.genesis import Genesis, InitialDomain, make_single_validator_genesis
from chain.ledger import genesis_anchor
from chain.quorum import Vote, VoteType
from chain.records import Record
from chain.tx import Op, Transaction
from ledgerdns.api import (
    NodeNotStarted,
    NodeUnreachable,
    RpcClient,
    RpcError,
    TokenError,
    load_or_create_token,
    read_token,
)
from ledgerdns.rpc.openapi import openapi_spec
from ledgerdns.rpc.server import make_app, serve_rpc
from tests.support.instant_node import VALIDATOR_KEY, InstantNode, now_ms
from tools.devchain import dev_key, next_tx, register_tx, soon

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALICE = dev_key("owner", 0)
BOB = dev_key("owner", 1)
T = TypeVar("T")


def www(domain: str, address: str = "10.0.0.1") -> tuple[Record, ...]:
    return (Record.from_text(f"www 300 IN A {address}", origin=domain),)


def make_genesis() -> Genesis:
    base = make_single_validator_genesis(
        VALIDATOR_KEY.public_key, genesis_time_ms=now_ms() - 1000, chain_id="instant-test"
    )
    seed = InitialDomain(domain="seed.p2p", owner=ALICE.public_key, records=www("seed.p2p"))
    return dataclasses.replace(base, domains=(seed,))


@dataclasses.dataclass
class Rpc:
    node: InstantNode
    client: RpcClient
    url: str
    token: str

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking client method in a thread, as the wallet would from its own."""
        return await trio.to_thread.run_sync(partial(fn, *args, **kwargs))

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, trust_env=False)

    def register(self, domain: str, owner: Any = ALICE) -> Transaction:
        ledger = self.node.ledger
        return register_tx(self.node.genesis, owner, domain, www(domain), valid_until=soon(ledger))


@pytest.fixture
async def rpc(tmp_path: Path) -> AsyncIterator[Rpc]:
    node = InstantNode(tmp_path, genesis=make_genesis())
    token = load_or_create_token(tmp_path)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(serve_rpc, node.rpc_model(), token, "127.0.0.1", 0)
        url = f"http://{host}:{port}"
        with RpcClient(url, token) as client:
            yield Rpc(node, client, url, token)
        nursery.cancel_scope.cancel()
    node.close()


# -- the token file --


def test_token_is_created_private_and_reused(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path / "data")
    path = tmp_path / "data" / "rpc.token"
    assert len(token) == 64 and int(token, 16) >= 0
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_token(tmp_path / "data") == token == read_token(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_token_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    load_or_create_token(tmp_path)
    os.chmod(tmp_path / "rpc.token", mode)
    with pytest.raises(TokenError, match="chmod 600"):
        read_token(tmp_path / "rpc.token")
    with pytest.raises(TokenError):
        load_or_create_token(tmp_path)


def test_token_missing_or_garbage(tmp_path: Path) -> None:
    with pytest.raises(TokenError, match="has a node run"):
        read_token(tmp_path / "rpc.token")
    (tmp_path / "rpc.token").write_text("hunter2\n")
    os.chmod(tmp_path / "rpc.token", 0o600)
    with pytest.raises(TokenError, match="does not hold an RPC token"):
        read_token(tmp_path / "rpc.token")


# -- authentication --


@pytest.mark.trio
async def test_every_endpoint_needs_the_token(rpc: Rpc) -> None:
    paths = ["/v1/status", "/v1/blocks/0", "/v1/domains/seed.p2p", "/v1/openapi.json", "/nope"]
    async with rpc.http(token="0" * 64) as wrong, httpx.AsyncClient(
        base_url=rpc.url, trust_env=False
    ) as anonymous:
        for path in paths:
            for response in (await wrong.get(path), await anonymous.get(path)):
                assert response.status_code == 401
                assert response.json()["error"] == "unauthorized"
                assert response.headers["www-authenticate"] == "Bearer"
        response = await anonymous.post("/v1/txs", json={"tx": "00"})
        assert response.status_code == 401
        response = await anonymous.get("/v1/status", headers={"Authorization": rpc.token})
        assert response.status_code == 401
        ok = await anonymous.get(
            "/v1/status", headers={"Authorization": f"bearer {rpc.token}"}
        )
        assert ok.status_code == 200
    bad = RpcClient(rpc.url, "f" * 64)
    with pytest.raises(RpcError) as err:
        await rpc.call(bad.status)
    bad.close()
    assert (err.value.status, err.value.code) == (401, "unauthorized")


# -- node, blocks, transactions --


@pytest.mark.trio
async def test_status_peers_validators(rpc: Rpc) -> None:
    status = await rpc.call(rpc.client.status)
    assert status["chain_id"] == "instant-test" and status["height"] == 0
    assert status["genesis_hash"] == rpc.node.genesis.hash().hex()
    assert status["head_hash"] == rpc.node.ledger.head.hash.hex()
    assert status["tlds"] == ["p2p"] and status["validator"] == "validator-0"
    assert await rpc.call(rpc.client.peers) == []
    (validator,) = await rpc.call(rpc.client.validators)
    assert validator["name"] == "validator-0" and validator["online"] is True
    assert validator["public_key"] == bytes(VALIDATOR_KEY.public_key).hex()


@pytest.mark.trio
async def test_submit_wait_then_block_and_tx(rpc: Rpc) -> None:
    tx = rpc.register("alice.p2p")
    result = await rpc.call(rpc.client.submit, tx, wait=5)
    assert result == {"txid": tx.txid.hex(), "status": "finalized", "height": 1, "index": 0}

    found = await rpc.call(rpc.client.tx, tx.txid.hex())
    assert found["status"] == "finalized" and (found["height"], found["index"]) == (1, 0)
    view = found["tx"]
    assert view["wire"] == tx.to_bytes().hex() and view["op"] == "register"
    assert view["records"] == ["www 300 IN A 10.0.0.1"] and view["domain"] == "alice.p2p"
    assert view["owner"] == bytes(ALICE.public_key).hex() and view["size"] == tx.size

    block = await rpc.call(rpc.client.block, 1)
    assert block["hash"] == rpc.node.ledger.head.hash.hex()
    assert [t["txid"] for t in block["txs"]] == [tx.txid.hex()]
    assert block["certificate"]["signers"] == ["validator-0"]
    assert block["certificate"]["block_hash"] == block["hash"]
    assert block["proposer"] == "validator-0"
    genesis_block = await rpc.call(rpc.client.block, 0)
    assert genesis_block["certificate"] is None and genesis_block["txs"] == []

    listed = await rpc.call(rpc.client.blocks)
    assert [(b["height"], b["txs"]) for b in listed] == [(1, 1), (0, 0)]
    assert listed[0]["size"] == block["size"] == len(rpc.node.ledger.get_block_bytes(1))
    assert [b["height"] for b in await rpc.call(rpc.client.blocks, before=1)] == [0]
    async with rpc.http() as http:
        page = (await http.get("/v1/blocks", params={"limit": 1})).json()
        assert [b["height"] for b in page["blocks"]] == [1] and page["next_before"] == 1

    # Sending the same bytes again (a retry) reports where it landed.
    again = await rpc.call(rpc.client.submit, tx)
    assert again["status"] == "finalized" and again["height"] == 1


@pytest.mark.trio
async def test_pending_then_finalized_while_waiting(rpc: Rpc) -> None:
    rpc.node.hold = True
    tx = rpc.register("alice.p2p")
    assert await rpc.call(rpc.client.submit, tx) == {"txid": tx.txid.hex(), "status": "pending"}
    found = await rpc.call(rpc.client.tx, tx.txid.hex())
    assert found["status"] == "pending" and "height" not in found
    assert found["tx"]["txid"] == tx.txid.hex()
    pool = await rpc.call(rpc.client.mempool)
    assert pool["count"] == 1 and pool["bytes"] == tx.size
    assert [t["txid"] for t in pool["txs"]] == [tx.txid.hex()]

    async def finalize_soon() -> None:
        await trio.sleep(0.2)
        rpc.node.finalize_pending()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(finalize_soon)
        found = await rpc.call(rpc.client.tx, tx.txid.hex(), wait=10)
    assert found["status"] == "finalized" and found["height"] == 1

    update = next_tx(rpc.node.genesis, rpc.node.ledger, ALICE, "alice.p2p",
                     www("alice.p2p", "10.9.9.9"), valid_until=soon(rpc.node.ledger))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(finalize_soon)
            result = await rpc.call(rpc.client.submit, update, wait=10)
    assert result["status"] == "finalized" and result["height"] == 2

    # A short wait that runs out: still pending (202), then 404 for an unknown txid.
    third = next_tx(rpc.node.genesis, rpc.node.ledger, ALICE, "alice.p2p", (), op=Op.UPDATE,
                    valid_until=soon(rpc.node.ledger))
    assert (await rpc.call(rpc.client.submit, third, wait=0.1))["status"] == "pending"
    with pytest.raises(RpcError) as err:
        await rpc.call(rpc.client.tx, "ab" * 32, wait=0.1)
    assert (err.value.status, err.value.code) == (404, "not-found")


@pytest.mark.trio
async def test_refused_transactions_say_why(rpc: Rpc) -> None:
    tx = rpc.register("alice.p2p")
    forged = Transaction(body=tx.body, body_bytes=tx.body_bytes, signature=bytes(64))
    with pytest.raises(RpcError) as err:
        await rpc.call(rpc.client.submit, forged)
    assert (err.value.status, err.value.code) == (400, "bad-signature")

    await rpc.call(rpc.client.submit, tx)
    taken = rpc.register("alice.p2p", owner=BOB)
    with pytest.raises(RpcError) as err:
        await rpc.call(rpc.client.submit, taken)
    assert (err.value.status, err.value.code) == (409, "bad-sequence")
    assert "alice.p2p" in err.value.message

    wrong_chain = dataclasses.replace(tx.body, chain_id="other", domain="carol.p2p")
    with pytest.raises(RpcError) as err:
        await rpc.call(
            rpc.client.submit, Transaction.sign(wrong_chain, ALICE, rpc.node.genesis.hash())
        )
    assert (err.value.status, err.value.code) == (400, "wrong-chain")

    cases = [
        ({"tx": "zz"}, 400, "malformed"),
        ({"tx": "0"}, 400, "malformed"),
        ({"tx": "a1b2"}, 400, "malformed"),
        ({"tx": tx.to_bytes()[:-1].hex()}, 400, "malformed"),
        ({"tx": (tx.to_bytes() + b"\x00").hex()}, 400, "non-canonical"),
        ({"tx": 7}, 400, "bad-request"),
        ({}, 400, "bad-request"),
        ([], 400, "bad-request"),
    ]
    async with rpc.http() as http:
        for body, status, code in cases:
            response = await http.post("/v1/txs", json=body)
            assert (response.status_code, response.json()["error"]) == (status, code), body
            assert response.json()["message"]
        response = await http.post("/v1/txs", content=b"{not json")
        assert (response.status_code, response.json()["error"]) == (400, "bad-request")
        response = await http.post("/v1/txs", params={"wait": "61"}, json={"tx": "00"})
        assert (response.status_code, response.json()["error"]) == (400, "bad-request")


@pytest.mark.trio
async def test_body_over_one_mib_is_refused(rpc: Rpc) -> None:
    async with rpc.http() as http:
        huge = json.dumps({"tx": "00" * (1 << 19)}).encode()  # just over 1 MiB
        response = await http.post("/v1/txs", content=huge)
        assert (response.status_code, response.json()["error"]) == (413, "too-large")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(20):
                yield b" " * 65536

        response = await http.post("/v1/txs", content=chunks())
        assert (response.status_code, response.json()["error"]) == (413, "too-large")
        assert (await http.get("/v1/status")).status_code == 200


@pytest.mark.trio
async def test_bad_requests_and_unknown_things(rpc: Rpc) -> None:
    async with rpc.http() as http:
        cases = [
            ("/v1/blocks/abc", 400, "bad-request"),
            ("/v1/blocks/-1", 400, "bad-request"),
            ("/v1/blocks/99", 404, "not-found"),
            ("/v1/blocks?limit=101", 400, "bad-request"),
            ("/v1/blocks?before=x", 400, "bad-request"),
            ("/v1/txs/1234", 400, "bad-request"),
            ("/v1/txs/" + "ab" * 32, 404, "not-found"),
            ("/v1/txs/" + "ab" * 32 + "?wait=nan", 400, "bad-request"),
            ("/v1/domains/nosuchtld", 400, "bad-name"),
            ("/v1/domains/a.b.p2p", 400, "bad-name"),
            ("/v1/domains/-x-.p2p/history", 400, "bad-name"),
            ("/v1/domains/nobody.p2p/history", 404, "not-found"),
            ("/v1/domains/nobody.p2p/proof", 404, "not-found"),  # genesis only: no certificate
            ("/v1/mempool?limit=x", 400, "bad-request"),
            ("/v2/status", 404, "not-found"),
        ]
        for path, status, code in cases:
            response = await http.get(path)
            assert (response.status_code, response.json()["error"]) == (status, code), path
        response = await http.delete("/v1/status")
        assert (response.status_code, response.json()["error"]) == (405, "method-not-allowed")


@pytest.mark.trio
async def test_deeply_nested_json_is_a_bad_request(rpc: Rpc) -> None:
    """json.loads raises RecursionError past ~1000 levels: a 400, not a 500 (found by fuzzing)."""
    deep = b"[" * 100_000 + b"]" * 100_000
    async with rpc.http() as http:
        for path, body in [("/v1/txs", b'{"tx": ' + deep + b"}"), ("/v1/txs/batch", deep)]:
            response = await http.post(path, content=body)
            assert (response.status_code, response.json()["error"]) == (400, "bad-request"), path


# -- domains --


@pytest.mark.trio
async def test_domain_views_with_pending(rpc: Rpc) -> None:
    await rpc.call(rpc.client.submit, rpc.register("alice.p2p"))
    alice = await rpc.call(rpc.client.domain, "Alice.P2P.")
    assert alice is not None
    state = rpc.node.ledger.get_domain("alice.p2p")
    assert state is not None
    assert alice == {
        "domain": "alice.p2p", "owner": bytes(ALICE.public_key).hex(), "seq": 0,
        "head": state.head.hex(), "records": ["www 300 IN A 10.0.0.1"], "expires_at": 0,
        "status": "active", "pending": [], "provisional_until": None,  # no commit-reveal here
    }
    assert await rpc.call(rpc.client.domain, "nobody.p2p") is None

    rpc.node.hold = True
    update = next_tx(rpc.node.genesis, rpc.node.ledger, ALICE, "alice.p2p", (), op=Op.RELEASE,
                     valid_until=soon(rpc.node.ledger))
    bob = rpc.register("bob.p2p", owner=BOB)
    await rpc.call(rpc.client.submit, update)
    await rpc.call(rpc.client.submit, bob)
    alice = await rpc.call(rpc.client.domain, "alice.p2p")
    assert alice is not None and [t["op"] for t in alice["pending"]] == ["release"]

    # Never registered but a registration is pending: 404 carrying it; the client shows it.
    async with rpc.http() as http:
        response = await http.get("/v1/domains/bob.p2p")
    assert response.status_code == 404
    assert [t["txid"] for t in response.json()["pending"]] == [bob.txid.hex()]
    pending_bob = await rpc.call(rpc.client.domain, "bob.p2p")
    assert pending_bob is not None and pending_bob["status"] == "unregistered"
    assert pending_bob["owner"] is None and len(pending_bob["pending"]) == 1

    rpc.node.finalize_pending()
    alice = await rpc.call(rpc.client.domain, "alice.p2p")
    assert alice is not None and alice["status"] == "released" and alice["records"] == []

    listed = await rpc.call(rpc.client.domains)
    assert [d["domain"] for d in listed] == ["alice.p2p", "bob.p2p", "seed.p2p"]
    assert [d["domain"] for d in await rpc.call(rpc.client.domains, start="bob")] == [
        "bob.p2p", "seed.p2p"
    ]
    async with rpc.http() as http:
        page = (await http.get("/v1/domains", params={"limit": 2})).json()
    assert [d["domain"] for d in page["domains"]] == ["alice.p2p", "bob.p2p"]
    assert page["next"] == "seed.p2p"


@pytest.mark.trio
async def test_history_with_genesis_anchor(rpc: Rpc) -> None:
    ledger, genesis = rpc.node.ledger, rpc.node.genesis
    first = next_tx(genesis, ledger, ALICE, "seed.p2p", www("seed.p2p", "10.1.1.1"),
                    valid_until=soon(ledger))
    await rpc.call(rpc.client.submit, first)
    second = next_tx(genesis, ledger, ALICE, "seed.p2p", (), op=Op.TRANSFER,
                     new_owner=BOB.public_key, valid_until=soon(ledger))
    await rpc.call(rpc.client.submit, second)
    history = await rpc.call(rpc.client.history, "seed.p2p")
    assert [(h["seq"], h["genesis"], h["height"]) for h in history] == [
        (0, True, 0), (1, False, 1), (2, False, 2)
    ]
    assert history[0]["txid"] == genesis_anchor("instant-test", "seed.p2p").hex()
    assert history[0]["tx"] is None
    assert [h["tx"]["op"] for h in history[1:]] == ["update", "transfer"]
    assert history[2]["tx"]["owner"] == bytes(BOB.public_key).hex()
    assert await rpc.call(rpc.client.history, "nobody.p2p") == []
    async with rpc.http() as http:
        page = (await http.get("/v1/domains/seed.p2p/history", params={
            "from_seq": 1, "limit": 1})).json()
    assert [h["seq"] for h in page["history"]] == [1] and page["next_seq"] == 2


@pytest.mark.trio
async def test_proofs_verify_with_the_light_client(rpc: Rpc) -> None:
    await rpc.call(rpc.client.submit, rpc.register("alice.p2p"))
    genesis = rpc.node.genesis
    state = await rpc.call(rpc.client.verified_domain, "alice.p2p", genesis)
    assert state == rpc.node.ledger.get_domain("alice.p2p")
    assert await rpc.call(rpc.client.verified_domain, "nobody.p2p", genesis) is None

    doc = await rpc.call(rpc.client.proof, "alice.p2p")
    assert doc["height"] == 1 and doc["block_hash"] == rpc.node.ledger.head.hash.hex()
    assert doc["state"]["records"] == ["www 300 IN A 10.0.0.1"]
    assert doc["header"] == rpc.node.ledger.head.to_bytes().hex()

    # The proof is checked against the genesis the wallet trusts, not the node's word.
    other = make_single_validator_genesis(
        dev_key("validator", 9).public_key, genesis_time_ms=0, chain_id="instant-test"
    )
    with pytest.raises(Exception, match="bad-validators"):
        await rpc.call(rpc.client.verified_domain, "alice.p2p", other)


@pytest.mark.trio
async def test_evidence_listing(rpc: Rpc) -> None:
    assert await rpc.call(rpc.client.evidence) == []
    votes = [
        Vote.create(VALIDATOR_KEY, chain_id="instant-test", genesis_hash=rpc.node.genesis.hash(),
                    vtype=VoteType.PREVOTE, height=3, round_=1, block_hash=bytes([i]) * 32)
        for i in (1, 2)
    ]
    evidence = Evidence.of(*votes)
    rpc.node._evidence.append(evidence)
    (item,) = await rpc.call(rpc.client.evidence)
    assert item["validator"] == "validator-0" and item["type"] == "prevote"
    assert (item["height"], item["round"]) == (3, 1)
    assert item["first"]["block_hash"] == "01" * 32 and item["hex"] == evidence.to_bytes().hex()


# -- reaching the node --


@pytest.mark.trio
async def test_unreachable_node_names_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with RpcClient(url, "a" * 64) as client:
        with pytest.raises(NodeUnreachable, match=url):
            await trio.to_thread.run_sync(client.status)

    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        with RpcClient(f"http://127.0.0.1:{port}", "a" * 64, timeout=0.2) as client:
            with pytest.raises(NodeUnreachable, match="did not answer within 0.2s"):
                await trio.to_thread.run_sync(client.status)
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_busy_port_is_a_plain_oserror(rpc: Rpc) -> None:
    port = int(rpc.url.rpartition(":")[2])
    with pytest.raises(OSError):
        await serve_rpc(rpc.node.rpc_model(), rpc.token, "127.0.0.1", port)
    assert (await rpc.call(rpc.client.status))["height"] == 0  # the first server is unharmed


@pytest.mark.trio
async def test_client_for_node_reads_node_json_and_token(rpc: Rpc, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NodeNotStarted, match="no node has run in"):
        RpcClient.for_node(empty)
    info = {"rpc": rpc.url, "dns": "127.0.0.1:5353", "peer_id": "x", "p2p": []}
    (tmp_path / "node.json").write_text(json.dumps(info))
    with RpcClient.for_node(tmp_path) as client:  # tmp_path holds the fixture's rpc.token
        assert (await rpc.call(client.status))["height"] == 0
    os.chmod(tmp_path / "rpc.token", 0o644)
    with pytest.raises(TokenError):
        RpcClient.for_node(tmp_path)


# -- memory (issue 21) --


@pytest.mark.trio
async def test_reading_finalized_blocks_keeps_nothing_in_the_decode_memo(rpc: Rpc) -> None:
    """A block reader (the soak's, an explorer) must not fill `Transaction.from_bytes`'s memo."""
    from chain.tx import decoded_cached

    txs = [rpc.register(f"memo{i}.p2p") for i in range(3)]
    for tx in txs:
        await rpc.call(rpc.client.submit, tx, wait=5)
    before = decoded_cached()
    for height in (1, 2, 3):
        await rpc.call(rpc.client.block, height)
    await rpc.call(rpc.client.blocks)
    for tx in txs:
        found = await rpc.call(rpc.client.tx, tx.txid.hex())
        assert found["status"] == "finalized"
    history = await rpc.call(rpc.client.history, "memo0.p2p")
    assert [entry["txid"] for entry in history][-1] == txs[0].txid.hex()
    # resends of final transactions (a wallet retrying, the soak's load) are decoded, not kept
    assert (await rpc.call(rpc.client.submit, txs[1]))["status"] == "finalized"
    results = await rpc.call(rpc.client.submit_batch, txs)
    assert [r["status"] for r in results] == ["finalized"] * 3
    assert decoded_cached()[0] <= before[0]


@pytest.mark.trio
async def test_admin_flush_empties_the_write_buffer(rpc: Rpc) -> None:
    await rpc.call(rpc.client.submit, rpc.register("flush.p2p"), wait=5)
    chain_dir = Path(rpc.node.store.path)

    def wal_bytes() -> int:
        logs = sorted(chain_dir.glob("*.log"), key=lambda p: int(p.stem))
        return logs[-1].stat().st_size

    assert wal_bytes() > 0
    async with rpc.http() as http:
        done = await http.post("/v1/admin/flush")
        assert done.status_code == 200, done.text
        assert done.json()["flushed"] is True and done.json()["leveldb_memory_bytes"] > 0
        assert wal_bytes() == 0  # a new, empty write-ahead log: the memtable is on disk
        assert (await http.get("/v1/admin/flush")).status_code == 405
    async with httpx.AsyncClient(base_url=rpc.url, trust_env=False) as anonymous:
        assert (await anonymous.post("/v1/admin/flush")).status_code == 401


@pytest.mark.trio
async def test_admin_flush_is_404_without_admin_operations(rpc: Rpc) -> None:
    model = dataclasses.replace(rpc.node.rpc_model(), admin=None)
    transport = httpx.ASGITransport(app=make_app(model, rpc.token))
    headers = {"Authorization": f"Bearer {rpc.token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as http:
        response = await http.post("/v1/admin/flush")
    assert response.status_code == 404 and response.json()["error"] == "not-found"


# -- the OpenAPI document --


@pytest.mark.trio
async def test_openapi_describes_every_route_and_matches_docs(rpc: Rpc) -> None:
    spec = openapi_spec()
    app = make_app(rpc.node.rpc_model(), rpc.token)
    for route in app.routes:
        methods = {m.lower() for m in getattr(route, "methods", ())} - {"head"}
        path = getattr(route, "path", "")
        assert path in spec["paths"], path
        assert methods <= set(spec["paths"][path]), path
    async with rpc.http() as http:
        served = (await http.get("/v1/openapi.json")).json()
    assert served == spec == json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert spec["openapi"].startswith("3.1")


@pytest.mark.trio
async def test_batch_submit_reports_each_transaction(rpc: Rpc) -> None:
    rpc.node.hold = True
    good = [rpc.register(f"batch{i}.p2p") for i in range(3)]
    other = rpc.register("batch9.p2p")
    bad_sig = Transaction(body=other.body, body_bytes=other.body_bytes, signature=bytes(64))
    results = await rpc.call(rpc.client.submit_batch, [*good, bad_sig])
    assert [r["status"] for r in results] == ["pending"] * 3 + ["refused"]
    assert results[3]["error"] == "bad-signature"
    assert {r["txid"] for r in results[:3]} == {tx.txid.hex() for tx in good}
    async with rpc.http() as http:
        reply = await http.post("/v1/txs/batch", json={"txs": ["zz", good[0].to_bytes().hex()]})
    assert reply.status_code == 200
    first, second = reply.json()["results"]
    assert (first["status"], first["error"]) == ("refused", "malformed")
    assert second["status"] == "pending"  # already pending: accepted again, not an error
    height = rpc.node.finalize_pending()
    assert all(rpc.node.ledger.get_tx(tx.txid)[1] == height for tx in good)
    async with rpc.http() as http:
        too_many = await http.post("/v1/txs/batch", json={"txs": ["00"] * 513})
        not_a_list = await http.post("/v1/txs/batch", json={"txs": "00"})
    assert too_many.status_code == not_a_list.status_code == 400


@pytest.mark.trio
async def test_a_late_gossip_copy_of_a_final_transaction_keeps_nothing_in_the_decode_memo(
    rpc: Rpc, tmp_path: Path
) -> None:
    """Validators get blocks before late gossip copies of their transactions: refusing such
    a copy as final (`TxGossip.admit`, over this node's real ledger and mempool) must not
    decode its block into the memo (it filled the memo in about an hour)."""
    from chain.errors import InvalidUpdate
    from chain.tx import decoded_cached, forget_decoded
    from ledgerdns.clock import SystemClock
    from ledgerdns.p2p import P2PConfig, P2PService
    from ledgerdns.protocol.txgossip import TxGossip

    async def nothing() -> None:
        pass

    gossip = TxGossip(
        genesis=rpc.node.genesis, ledger=rpc.node.ledger, mempool=rpc.node.mempool,
        p2p=P2PService(P2PConfig(key_path=tmp_path / "p2p.key", listen=[], bootstrap=[], topics=[])),
        topic="txs",
        txs_available=nothing, clock=SystemClock(),
    )  # fmt: skip
    txs = [rpc.register(f"late{i}.p2p") for i in range(3)]
    for tx in txs:
        await rpc.call(rpc.client.submit, tx, wait=5)
    forget_decoded(txs)  # as the node does once they are final
    before = decoded_cached()
    for tx in txs:
        with pytest.raises(InvalidUpdate, match="already final"):
            gossip.admit(tx)
    assert decoded_cached()[0] <= before[0]
