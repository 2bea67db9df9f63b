"""`ledgerdns wallet` end to end: the real command against a real RPC server on
127.0.0.1:0 over an InstantNode, run in a worker thread as a user's process would."""

from __future__ import annotations

import argparse
import io
import json
import socket
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from rich.console import Console

from chain.errors import LedgerError
from chain.genesis import make_single_validator_genesis
from chain.records import Record
from chain.tx import Op
from ledgerdns.api import load_or_create_token
from ledgerdns.cli import report_error
from ledgerdns.console import make_console
from ledgerdns.rpc.server import serve_rpc
from ledgerdns.wallet import writes
from ledgerdns.wallet.cli import open_wallet, register
from ledgerdns.wallet.errors import NodeError
from tests.support.instant_node import VALIDATOR_KEY, InstantNode

pytestmark = [pytest.mark.integration, pytest.mark.trio]

PASSPHRASE = "correct horse battery staple"


def wallet_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledgerdns")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        lines = self.out.strip().splitlines()
        assert len(lines) == 1, f"one JSON object expected, got: {self.out!r}"
        return json.loads(lines[0])


@dataclass
class Env:
    node: InstantNode
    data_dir: Path
    wallet_dir: Path
    capsys: pytest.CaptureFixture[str]

    def _run(self, argv: list[str]) -> Result:
        args = wallet_parser().parse_args(argv)
        buffer = io.StringIO()
        out = Console(file=buffer, width=200)
        try:
            code = args.run(args, out)
        except (LedgerError, OSError) as exc:  # as `ledgerdns.cli.main` does
            code = report_error(exc, out, make_console(stderr=True), as_json=args.json)
        return Result(code, buffer.getvalue(), self.capsys.readouterr().err)

    async def run(self, *argv: str, node: Path | None = None, rpc: str | None = None) -> Result:
        """``ledgerdns wallet --wallet-dir W --node D ARGV...`` in a worker thread."""
        full = ["wallet", "--wallet-dir", str(self.wallet_dir)]
        if rpc is None:
            full += ["--node", str(node or self.data_dir)]
        else:
            full += ["--rpc", rpc, "--token-file", str(self.data_dir / "rpc.token")]
        return await trio.to_thread.run_sync(partial(self._run, [*full, *argv]))

    async def json(self, *argv: str) -> Any:
        result = await self.run("--json", *argv)
        assert result.code == 0, result
        return result.json()


@pytest.fixture
async def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> AsyncIterator[Env]:
    monkeypatch.setenv("LEDGERDNS_PASSPHRASE", PASSPHRASE)
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    node = InstantNode(data_dir)
    (data_dir / "genesis.json").write_text(node.genesis.to_json())  # what `show` checks against
    token = load_or_create_token(data_dir)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(serve_rpc, node.rpc_model(), token, "127.0.0.1", 0)
        (data_dir / "node.json").write_text(json.dumps({"rpc": f"http://{host}:{port}"}))
        yield Env(node, data_dir, tmp_path / "wallet", capsys)
        nursery.cancel_scope.cancel()
    node.close()


async def test_encrypted_key_signs(env: Env) -> None:
    new = await env.run("new")
    assert new.code == 0 and "created key 'default'" in new.out
    key_file = env.wallet_dir / "keys" / "default.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert PASSPHRASE not in key_file.read_text()
    assert (await env.json("list"))["keys"][0]["encrypted"] is True
    registered = await env.json("register", "secret.p2p")
    assert registered["status"] == "finalized" and registered["key"] == "default"


async def test_a_domain_lifetime(env: Env) -> None:
    # Unencrypted keys here only to keep the test fast (scrypt costs ~0.1 s an unlock).
    new = await env.run("new", "--insecure-no-passphrase")
    assert new.code == 0 and "stored without a passphrase" in new.out

    reg = await env.run("register", "alice.p2p", "--record", "www 300 A 10.0.0.1")
    assert reg.code == 0, reg
    height = env.node.ledger.height
    assert f"registered alice.p2p in block {height}" in reg.out

    shown = await env.json("show", "alice.p2p")
    assert shown["status"] == "active" and shown["key"] == "default" and shown["seq"] == 0
    assert shown["records"] == ["www 300 IN A 10.0.0.1"]
    table = await env.run("show", "alice.p2p")
    assert "10.0.0.1" in table.out and "default" in table.out

    added = await env.json("add", "alice.p2p", "--record", "@ 600 MX 10 mail",
                           "--record", 'txt TXT "hello world"')  # fmt: skip
    assert added["action"] == "updated" and added["status"] == "finalized"
    assert added["height"] == env.node.ledger.height
    state = env.node.ledger.get_domain("alice.p2p")
    assert state is not None and state.seq == 1 and len(state.records) == 3

    removed = await env.json("remove", "alice.p2p", "--record", "www A 10.0.0.1")
    assert "www 300 IN A 10.0.0.1" not in removed["records"] and len(removed["records"]) == 2
    removed = await env.json("remove", "alice.p2p", "--name", "txt", "--type", "TXT")
    assert removed["records"] == ["@ 600 IN MX 10 mail.alice.p2p."]

    replaced = await env.json("set", "alice.p2p", "--record", "@ A 192.0.2.7")
    assert replaced["records"] == ["@ 300 IN A 192.0.2.7"]
    unchanged = await env.json("set", "alice.p2p", "--record", "@ A 192.0.2.7")
    assert unchanged["action"] == "unchanged"

    await env.json("new", "--name", "second")  # encrypted, but only receives
    moved = await env.json("transfer", "alice.p2p", "--to", "second")
    assert moved["action"] == "transferred" and moved["key"] == "default"
    assert (await env.json("show", "alice.p2p"))["key"] == "second"

    history = await env.json("history", "alice.p2p")
    assert history["verified"] is True and history["height"] == env.node.ledger.height
    ops = [step["op"] for step in history["history"]]
    assert ops == ["register", "update", "update", "update", "update", "transfer"]
    assert [step["seq"] for step in history["history"]] == list(range(6))

    listed = await env.json("list")
    assert {k["name"] for k in listed["keys"]} == {"default", "second"}
    assert listed["refreshed"] and listed["domains"][0]["key"] == "second"

    released = await env.run("release", "alice.p2p", "--yes")
    assert released.code == 0 and "released alice.p2p in block" in released.out
    assert (await env.json("show", "alice.p2p"))["status"] == "released"
    again = await env.json("register", "alice.p2p", "--key", "default")
    assert again["seq"] == 7 and again["status"] == "finalized"


async def test_zone_export_and_import(env: Env, tmp_path: Path) -> None:
    await env.run("new", "--insecure-no-passphrase")
    await env.json("register", "zone.p2p", "--record", "www A 10.0.0.1")
    zone = tmp_path / "zone.txt"
    zone.write_text(
        "$ORIGIN zone.p2p.\n$TTL 1h\n"
        "@ IN SOA ns1 hostmaster ( 1 3600 600 86400 300 ) ; made by the node\n"
        "www A 10.0.0.2\n    A 10.0.0.3\n"
        "mail.zone.p2p. MX ( 10\n  mx )\n"
    )
    imported = await env.json("import-zone", "zone.p2p", str(zone))
    assert imported["records"] == [
        "mail 3600 IN MX 10 mx.zone.p2p.",
        "www 3600 IN A 10.0.0.2",
        "www 3600 IN A 10.0.0.3",
    ]
    assert imported["skipped"] and "SOA" in imported["skipped"][0]
    out = tmp_path / "out.zone"
    exported = await env.json("export-zone", "zone.p2p", "--out", str(out))
    assert exported["records"] == 3
    printed = await env.run("export-zone", "zone.p2p")
    assert printed.out.split("\n", 1)[1] == out.read_text().split("\n", 1)[1]
    again = await env.json("import-zone", "zone.p2p", str(out))
    assert again["action"] == "unchanged"


async def test_name_taken_and_not_owner(env: Env, tmp_path: Path) -> None:
    await env.run("new", "--insecure-no-passphrase")
    await env.json("register", "taken.p2p")
    other = Env(env.node, env.data_dir, tmp_path / "other-wallet", env.capsys)
    await other.run("new", "--insecure-no-passphrase")

    taken = await other.run("register", "taken.p2p")
    assert taken.code == 1 and "already registered" in taken.err
    assert (await other.run("--json", "register", "taken.p2p")).json()["error"] == "name-taken"

    not_owner = await other.run("add", "taken.p2p", "--record", "www A 10.0.0.9")
    assert not_owner.code == 1 and "not a key in this wallet" in not_owner.err
    assert "Traceback" not in not_owner.err
    assert (await other.run("--json", "release", "taken.p2p", "--yes")).json()["error"] == "not-owner"


async def test_bad_input_is_a_usage_error(env: Env) -> None:
    await env.run("new", "--insecure-no-passphrase")
    bad = await env.run("register", "bad.p2p", "--record", "www A 10.0.0.300")
    assert bad.code == 2 and "'www A 10.0.0.300'" in bad.err and "IPv4" in bad.err
    cname = await env.run("--json", "register", "bad.p2p", "--record", "@ CNAME other.p2p.")
    assert cname.code == 2 and "CNAME" in cname.json()["message"]
    unknown = await env.run("--json", "register", "bad.p2p", "--key", "nobody")
    assert unknown.code == 2 and unknown.json()["error"] == "unknown-key"
    wrong_tld = await env.run("register", "bad.example")
    assert wrong_tld.code == 2 and "p2p" in wrong_tld.err
    assert env.node.ledger.get_domain("bad.p2p") is None


async def test_wrong_passphrase(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    await env.run("new")
    monkeypatch.setenv("LEDGERDNS_PASSPHRASE", "not it")
    wrong = await env.run("--json", "register", "locked.p2p")
    assert wrong.code == 1 and wrong.json()["error"] == "wrong-passphrase"
    assert env.node.ledger.get_domain("locked.p2p") is None


async def test_pending_updates_chain_and_no_wait(env: Env) -> None:
    await env.run("new", "--insecure-no-passphrase")
    env.node.hold = True  # blocks only when the test says
    sent = await env.json("register", "slow.p2p", "--record", "@ A 10.0.0.1", "--no-wait")
    assert sent["status"] == "pending" and sent["height"] is None
    chained = await env.json("add", "slow.p2p", "--record", "www A 10.0.0.2", "--no-wait")
    assert chained["seq"] == 1
    shown = await env.json("show", "slow.p2p")
    assert shown["pending"] == 2 and len(shown["records"]) == 2
    env.node.finalize_pending()
    state = env.node.ledger.get_domain("slow.p2p")
    assert state is not None and state.seq == 1


async def test_stale_head_says_retry(env: Env) -> None:
    await env.run("new", "--insecure-no-passphrase")
    await env.json("register", "race.p2p")
    args = wallet_parser().parse_args(
        ["wallet", "--wallet-dir", str(env.wallet_dir), "--node", str(env.data_dir), "list"]
    )
    wallet = open_wallet(args)
    try:
        # This wallet reads the head, then another update lands before it sends.
        before = await trio.to_thread.run_sync(writes.load_target, wallet, "race.p2p")
        await env.json("add", "race.p2p", "--record", "first A 10.0.0.1")
        records = (Record.from_text("second A 10.0.0.2", origin="race.p2p"),)
        send = partial(writes.send, wallet, before, Op.UPDATE, "default", wait=5.0, records=records)
        with pytest.raises(NodeError) as caught:
            await trio.to_thread.run_sync(send)
    finally:
        wallet.close()
    assert caught.value.code == "bad-sequence"
    assert "got there first" in str(caught.value) and "run the command again" in str(caught.value)


async def test_rpc_url_and_token_file(env: Env) -> None:
    url = json.loads((env.data_dir / "node.json").read_text())["rpc"]
    await env.run("new", "--insecure-no-passphrase")
    registered = await env.run("--json", "register", "url.p2p", rpc=url)
    assert registered.code == 0 and registered.json()["status"] == "finalized"
    shown = await env.run("show", "url.p2p", "--json", rpc=url)  # options after the command too
    assert shown.json()["key"] == "default"
    bad = await env.run("show", "url.p2p", rpc="ftp://127.0.0.1:1")
    assert bad.code == 2 and "not an RPC URL" in bad.err


async def test_node_unreachable(env: Env, tmp_path: Path) -> None:
    await env.run("new", "--insecure-no-passphrase")
    nowhere = tmp_path / "no-node"
    nowhere.mkdir()
    missing = await env.run("show", "alice.p2p", node=nowhere)
    assert missing.code == 1 and "ledgerdns node --data-dir" in missing.err

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (nowhere / "node.json").write_text(json.dumps({"rpc": f"http://127.0.0.1:{port}"}))
    load_or_create_token(nowhere)
    down = await env.run("--json", "register", "alice.p2p", node=nowhere)
    assert down.code == 1 and down.json()["error"] == "node-unreachable"
    assert "start one" in down.json()["message"].lower()
    listed = await env.run("--json", "list", node=nowhere)
    assert listed.code == 0 and listed.json()["keys"][0]["name"] == "default"


async def test_show_verify_checks_the_proof_and_refuses_stale_state(env: Env, tmp_path: Path) -> None:
    # Issue 13, freshness: a genuine proof of an old head is refused past --max-staleness.
    trusted = tmp_path / "genesis.json"
    trusted.write_text(env.node.genesis.to_json())
    verify = ("--verify", "--genesis", str(trusted))
    await env.run("new", "--insecure-no-passphrase")
    assert (await env.run("register", "alice.p2p", "--record", "www 300 A 10.0.0.1")).code == 0
    height = env.node.ledger.height

    shown = await env.json("show", "alice.p2p", *verify, "--max-staleness", "30")
    assert shown["verified"] is True and shown["height"] == height
    assert 0 <= shown["age_s"] < 30 and shown["max_staleness_s"] == 30
    assert shown["records"] == ["www 300 IN A 10.0.0.1"] and shown["key"] == "default"
    text = await env.run("show", "alice.p2p", *verify)  # this genesis has no heartbeat: no bound
    assert text.code == 0 and f"verified: certified height {height}" in text.out
    assert "not bounded" in text.out
    absent = await env.json("show", "nobody.p2p", *verify)  # a proof of absence verifies too
    assert absent["status"] == "free" and absent["verified"] is True

    await trio.sleep(2.5)  # nothing is written: the head ages
    stale = await env.run("show", "alice.p2p", *verify, "--max-staleness", "1")
    assert stale.code == 1 and stale.out == "", stale
    lines = stale.err.strip().splitlines()
    assert len(lines) == 1, stale.err
    assert "NOT verified: stale-proof" in lines[0] and "over the 1 s bound" in lines[0]
    as_json = (await env.run("--json", "show", "alice.p2p", *verify, "--max-staleness", "1")).json()
    assert as_json["ok"] is False and as_json["error"] == "stale-proof"
    assert as_json["verified"] is False and as_json["height"] == height and as_json["age_s"] >= 2.5

    # Another network with the same chain_id and validator: the node's proof is not for it.
    foreign = tmp_path / "foreign.json"
    foreign.write_text(make_single_validator_genesis(
        VALIDATOR_KEY.public_key, genesis_time_ms=env.node.genesis.genesis_time_ms + 1,
        chain_id=env.node.genesis.chain_id,
    ).to_json())  # fmt: skip
    refused = await env.run("show", "alice.p2p", "--verify", "--genesis", str(foreign))
    assert refused.code == 1 and len(refused.err.strip().splitlines()) == 1
    assert "NOT verified: bad-signature" in refused.err

    usage = await env.run("show", "alice.p2p", "--no-verify", "--max-staleness", "1")
    assert usage.code == 2 and "--no-verify" in usage.err


async def test_show_and_history_verify_by_default(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 16: no flag needed; the local node's genesis is the trusted one.
    await env.run("new", "--insecure-no-passphrase")
    before = await env.json("show", "alice.p2p")  # no certified block yet: nothing to prove
    assert before["verified"] is False and "no certified block" in before["not_verified"]
    strict = await env.run("--json", "show", "alice.p2p", "--verify")
    assert strict.code == 1 and strict.json()["error"] == "not-found"

    assert (await env.run("register", "alice.p2p", "--record", "www 300 A 10.0.0.1")).code == 0
    await env.json("set", "alice.p2p", "--record", "www 300 A 10.0.0.2")
    shown = await env.run("show", "alice.p2p")
    assert shown.code == 0 and "verified: certified height" in shown.out
    history = await env.run("history", "alice.p2p")
    assert history.code == 0 and "verified: certified height" in history.out
    skipped = await env.json("history", "alice.p2p", "--no-verify")
    assert skipped["verified"] is False and skipped["not_verified"] == "--no-verify"
    url = json.loads((env.data_dir / "node.json").read_text())["rpc"]
    remote = await env.run("--json", "show", "alice.p2p", rpc=url)  # no genesis to trust
    assert remote.code == 0 and "--genesis" in remote.json()["not_verified"]

    # A node that drops the newest step, or swaps two, is caught by the hash links.
    ledger = env.node.ledger
    steps = ledger.history("alice.p2p")
    monkeypatch.setattr(ledger, "history", lambda domain: steps[:-1])
    dropped = await env.run("--json", "history", "alice.p2p")
    assert dropped.code == 1 and dropped.json()["error"] == "bad-proof"
    assert "proven head is seq 1" in dropped.json()["message"]
    swapped = [(0, steps[1][1]), (1, steps[0][1])]
    monkeypatch.setattr(ledger, "history", lambda domain: swapped)
    lied = await env.run("history", "alice.p2p")
    assert lied.code == 1 and "NOT verified: bad-proof" in lied.err and "step 1" in lied.err
    assert (await env.json("history", "alice.p2p", "--no-verify"))["history"][0]["seq"] == 0
