"""`wallet register` and `renew` on a commit-reveal network, over the real RPC server
on 127.0.0.1:0 and an InstantNode (each submission finalized at once, or held)."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from rich.console import Console

from chain.errors import LedgerError
from chain.genesis import make_single_validator_genesis
from chain.params import ConsensusParams, NamingParams
from ledgerdns.api import load_or_create_token
from ledgerdns.api.client import RpcClient
from ledgerdns.cli import report_error
from ledgerdns.console import make_console
from ledgerdns.rpc.server import serve_rpc
from tests.integration.test_wallet import wallet_parser
from tests.support.instant_node import VALIDATOR_KEY, InstantNode, now_ms

pytestmark = [pytest.mark.integration, pytest.mark.trio]

NAMING = NamingParams(reveal_delay=1, reveal_window=5, stamp_work=8, stamp_count=4, stamp_memory_kib=16)


class Env:
    def __init__(self, node: InstantNode, data_dir: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.node, self.data_dir, self.root, self.capsys = node, data_dir, root, capsys

    def _run(self, argv: list[str]) -> tuple[int, Any]:
        args = wallet_parser().parse_args(argv)
        buffer = io.StringIO()
        out = Console(file=buffer, width=200)
        try:
            code = args.run(args, out)
        except (LedgerError, OSError) as exc:
            code = report_error(exc, out, make_console(stderr=True), as_json=True)
        self.capsys.readouterr()
        return code, json.loads(buffer.getvalue().strip().splitlines()[-1])

    async def run(self, wallet: str, *argv: str) -> tuple[int, Any]:
        full = ["wallet", "--wallet-dir", str(self.root / wallet), "--node", str(self.data_dir), "--json"]
        return await trio.to_thread.run_sync(partial(self._run, [*full, *argv]))


@pytest.fixture
async def env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> AsyncIterator[Env]:
    base = make_single_validator_genesis(VALIDATOR_KEY.public_key, genesis_time_ms=now_ms() - 1000,
                                         chain_id="naming-wallet-test")  # fmt: skip
    params = dataclasses.replace(
        base.params, naming=NAMING, name_lifetime_s=3600, consensus=ConsensusParams(heartbeat_ms=1000)
    )
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    node = InstantNode(data_dir, dataclasses.replace(base, params=params))
    token = load_or_create_token(data_dir)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(serve_rpc, node.rpc_model(), token, "127.0.0.1", 0)
        (data_dir / "node.json").write_text(json.dumps({"rpc": f"http://{host}:{port}"}))
        yield Env(node, data_dir, tmp_path, capsys)
        nursery.cancel_scope.cancel()
    node.close()


async def test_register_commits_then_reveals_and_a_second_claimant_is_refused(env: Env) -> None:
    for wallet in ("alice", "mallory"):
        assert (await env.run(wallet, "new", "--insecure-no-passphrase"))[0] == 0
    code, done = await env.run("alice", "register", "alice.p2p", "--record", "@ 60 A 192.0.2.9")
    assert code == 0 and done["status"] == "finalized" and done["height"] == done["commit_height"] + 1
    commit_block = env.node.ledger.get_block(done["commit_height"])
    assert b"alice" not in commit_block.to_bytes()  # the commit's block names nothing
    assert env.node.ledger.get_domain("alice.p2p") is not None
    # the RPC says the name is provisional, and until when, as the wallet did
    client = RpcClient(json.loads((env.data_dir / "node.json").read_text())["rpc"],
                       (env.data_dir / "rpc.token").read_text().strip())  # fmt: skip
    with client:
        view = await trio.to_thread.run_sync(client.domain, "alice.p2p")
    assert view is not None and view["provisional_until"] == done["provisional_until"] > done["height"], view
    code, taken = await env.run("mallory", "register", "alice.p2p")
    assert code == 1 and taken["error"] == "name-taken", taken
    code, listed = await env.run("alice", "list")
    assert listed["domains"][0]["expires_at"] > 0 and listed["registrations_under_way"] == []


async def test_an_interrupted_registration_resumes_with_its_own_records(env: Env) -> None:
    assert (await env.run("alice", "new", "--insecure-no-passphrase"))[0] == 0
    env.node.hold = True  # nothing is finalized until finalize_pending
    code, sent = await env.run("alice", "register", "bob.p2p", "--record", "@ 60 A 192.0.2.2", "--no-wait")
    assert code == 0 and sent["action"] == "committed", sent
    code, other = await env.run("alice", "register", "bob.p2p", "--record", "@ 60 A 192.0.2.3")
    assert code == 2 and "other records" in other["message"], other
    env.node.finalize_pending()
    env.node.hold = False
    code, done = await env.run("alice", "register", "bob.p2p")
    assert code == 0 and done["records"] == ["@ 60 IN A 192.0.2.2"] and done["status"] == "finalized", done
    # a renewal pays a stamp, after the claim (until commit + 5) has lapsed
    code, early = await env.run("alice", "renew", "bob.p2p")
    assert code == 1 and early["error"] == "name-provisional"
    while env.node.ledger.height <= done["commit_height"] + NAMING.reveal_window:
        env.node.finalize_pending()  # empty blocks, as a heartbeat makes
    code, renewed = await env.run("alice", "renew", "bob.p2p")
    assert code == 0 and renewed["status"] == "finalized", renewed
    tx = env.node.ledger.get_tx(bytes.fromhex(renewed["txid"]))[0]
    assert tx.body.is_stamped_renewal and tx.body.stamp_work == NAMING.stamp_work
