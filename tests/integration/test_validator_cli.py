"""`ledgerdns validator` against a real single-validator devnet node (issue 15 §1).

One node per module, in order: the errors first (nothing changes), then `propose add v1` (a
network of one approves at once: scheduled at H+2), the listing, the light-client history once
the block before the change is final, `status --json` and the explorer's validator-set screen.
The new validator never runs here, so the chain stops at the change's height: the 4+1 cluster
test of issue 15 is where a new validator votes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chain.crypto import PrivateKey
from chain.genesis import Genesis
from chain.lightclient import follow_validator_set
from ledgerdns.api import RpcClient, codec
from ledgerdns.explorer.app import ExplorerApp
from ledgerdns.explorer.validators import ValidatorsScreen
from tests.integration.test_explorer import model, on_screen, until
from tests.integration.test_node import ROOT, Running, _register
from tools.devchain import dev_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NEW = dev_key("new-validator", 1)


@dataclass
class Devnet:
    data_dir: Path
    node: Running
    key: Path  # the node's own validator key
    wallet: Path


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    base = tmp_path_factory.mktemp("validators")
    data = base / "devnet"
    net = Devnet(data, Running(data), data / "validator.pem", base / "wallet")
    try:
        yield net
    finally:
        net.node.close()


def validator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledgerdns", "validator", *args], cwd=ROOT, capture_output=True,
        text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def as_json(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    doc = json.loads(lines[0])
    assert isinstance(doc, dict)
    return doc


def dev_key_of(devnet: Devnet) -> bytes:
    """The devnet validator's public key."""
    return bytes(PrivateKey.from_pem(devnet.key.read_bytes()).public_key)


def key_file(path: Path, key: PrivateKey) -> Path:
    path.write_bytes(key.to_pem())
    path.chmod(0o600)
    return path


def test_errors_are_one_line_with_the_right_exit_code(devnet: Devnet, tmp_path: Path) -> None:
    node = ["--node", str(devnet.data_dir)]
    mine = ["--validator-key", str(devnet.key)]
    outsider = ["--validator-key", str(key_file(tmp_path / "outsider.pem", dev_key("outsider", 0)))]
    cases = [
        (["approve", "ab" * 32, *mine], 1, "proposal-not-found", "not a pending proposal"),
        (["approve", "xyz", *mine], 2, "bad-input", "not hex"),
        (["propose", "add", "v1", "02abc", *mine], 2, "bad-input", "66 hex digits"),
        (["propose", "remove", "nobody", *mine], 1, "bad-validator-change", "no validator is called"),
        (["propose", "add", "v1", bytes(NEW.public_key).hex(), *outsider], 1, "not-validator",
         "is not a validator"),
        (["propose", "add", "validator-0", bytes(NEW.public_key).hex(), *mine], 1,
         "bad-validator-change", "already called validator-0"),
    ]  # fmt: skip
    for args, code, error, says in cases:
        done = validator(*args, *node, "--json")
        doc = as_json(done)
        assert (done.returncode, doc["ok"], doc["error"]) == (code, False, error), (args, doc)
        assert says in str(doc["message"]), (args, doc)
    for args, code, _, _ in cases[::3]:  # without --json: one line on stderr
        plain = validator(*args, *node)
        assert plain.returncode == code and plain.stdout == ""
        assert plain.stderr.startswith("error: ") and "Traceback" not in plain.stderr
    done = validator("list", "--node", str(tmp_path / "no-node"), "--json")
    assert done.returncode == 1 and as_json(done)["error"] == "node-unreachable"
    nothing = as_json(validator("list", *node, "--json"))
    assert nothing["pending"] == [] and [len(r["validators"]) for r in nothing["history"]] == [1]


def test_propose_add_on_a_network_of_one_schedules_the_change_at_once(devnet: Devnet) -> None:
    node = ["--node", str(devnet.data_dir)]
    new_key = bytes(NEW.public_key).hex()
    done = validator("propose", "add", "v1", new_key, "--validator-key", str(devnet.key), *node)
    assert done.returncode == 0, done.stderr
    assert "waiting up to 30 s for the block" in done.stderr  # the progress line
    assert "scheduled, the new set decides from height" in done.stdout
    proposal = done.stdout.split()[1]
    listed = as_json(validator("list", *node, "--json"))
    assert listed["ok"] is True and [v["name"] for v in listed["validators"]] == ["validator-0"]
    assert all(v["public_key"] for v in listed["validators"]) and listed["pending"] == []
    [scheduled] = listed["scheduled"]
    assert [(v["name"], v["public_key"]) for v in scheduled["validators"]][-1] == ("v1", new_key)
    assert listed["history"][-1] == scheduled and scheduled["state"] == "scheduled"
    start = int(scheduled["from_height"])
    with RpcClient.for_node(devnet.data_dir) as client:
        block = client.block(start - 2)  # the proposal's block: its approval (the proposer's) was
        assert [tx["txid"] for tx in block["txs"]] == [proposal]  # a quorum of one
        assert block["txs"][0]["op"] == "validator_propose"
        assert block["txs"][0]["change"] == f"add v1 {new_key}"
        assert client.validator_history()["changes"] == []  # block start - 1 is not final yet
    # Block start - 1 is still the old set's: a registration makes it, and the change is final.
    assert _register(devnet.data_dir, devnet.wallet, "new").returncode == 0
    done = _register(devnet.data_dir, devnet.wallet, "register", "alice.p2p", "--record",
                     "@ 300 A 10.0.0.1")  # fmt: skip
    assert done.returncode == 0 and json.loads(done.stdout)["height"] == start - 1, done.stdout
    genesis = Genesis.from_json((devnet.data_dir / "genesis.json").read_text())
    with RpcClient.for_node(devnet.data_dir) as client:
        changes = client.validator_history()["changes"]
        followed = follow_validator_set(
            genesis.params, [codec.set_change_from_json(c) for c in changes]
        )
        assert [(h, v.n) for h, v in followed] == [(1, 1), (start, 2)]
        status = client.status()
    assert status["height"] == start - 1
    doc = as_json(subprocess.run(
        [sys.executable, "-m", "ledgerdns", "status", *node, "--json"], cwd=ROOT,
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
    ))  # fmt: skip
    validators = doc["validators"]  # the set deciding the next height, `start`: the new one
    assert isinstance(validators, dict) and validators["scheduled_changes"] == []
    assert [(v["name"], v["public_key"], v["online"]) for v in validators["list"]] == [
        ("validator-0", bytes(dev_key_of(devnet)).hex(), True), ("v1", new_key, False),
    ]  # fmt: skip
    assert (validators["total"], validators["quorum"]) == (2, 2)
    # Approving the change now: it is no longer pending (scheduled), a clean error.
    done = validator("approve", proposal, "--validator-key", str(devnet.key), *node, "--json")
    assert done.returncode == 1 and as_json(done)["error"] == "proposal-not-found"


def test_the_explorer_shows_the_set_history(devnet: Devnet) -> None:
    async def drive() -> None:
        app = ExplorerApp(model(devnet.data_dir))
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, on_screen(app, "● connected", "Validators (quorum 2)", "v1"),
                        "dashboard")  # fmt: skip
            await pilot.press("v")
            await until(pilot, lambda: isinstance(app.screen, ValidatorsScreen), "validators")
            await until(pilot, on_screen(app, "current", "validator-0, v1", "past", "2 (quorum 2)"),
                        "the set's history")  # fmt: skip

    asyncio.run(drive())
