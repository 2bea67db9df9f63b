"""The `ledgerdns` command line: keys, genesis files, node argument errors, output formats."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest
from rich.console import Console

from chain.genesis import Genesis
from ledgerdns.cli import main
from ledgerdns.status import render, summarize
from ledgerdns.wallet.cli import zone_progress


def test_key_new_and_show_print_the_same_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "v.pem"
    assert main(["key", "new", str(key)]) == 0
    created = capsys.readouterr().out.strip()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert main(["key", "show", str(key)]) == 0
    assert capsys.readouterr().out.strip() == created
    assert main(["key", "new", str(key)]) == 2  # never overwritten
    assert "never overwritten" in capsys.readouterr().err


def test_genesis_for_several_validators(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.pem"
    main(["key", "new", str(other)])
    other_key = capsys.readouterr().out.strip()
    out = tmp_path / "g.json"
    code = main(
        [
            "genesis",
            "new",
            "--key-file",
            str(tmp_path / "mine.pem"),
            "--name",
            "alpha",
            "--validator",
            f"beta={other_key}",
            "--out",
            str(out),
            "--chain-id",
            "testnet",
            "--tld",
            "mesh",
        ]
    )
    assert code == 0
    genesis = Genesis.from_json(out.read_text())
    assert genesis.validator_names == ("alpha", "beta")
    assert bytes(genesis.params.validators.keys[1]).hex() == other_key
    assert (genesis.chain_id, genesis.params.tlds) == ("testnet", ("mesh",))
    assert main(["genesis", "check", str(out)]) == 0


@pytest.mark.parametrize(
    ("args", "heartbeat_ms", "bound_s"),
    [([], 60_000, 180), (["--heartbeat-s", "5"], 5_000, 70), (["--heartbeat-s", "0"], 0, None)],
)
def test_genesis_new_sets_a_heartbeat_for_light_client_freshness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], heartbeat_ms: int,
    bound_s: int | None,
) -> None:
    # Issue 13: an idle network with a heartbeat still makes blocks, so a light
    # client can refuse an old head; new networks get one unless told otherwise.
    out = tmp_path / "g.json"
    assert main(["genesis", "new", "--key-file", str(tmp_path / "v.pem"), "--out", str(out), *args]) == 0
    assert Genesis.from_json(out.read_text()).params.consensus.heartbeat_ms == heartbeat_ms
    capsys.readouterr()
    assert main(["genesis", "check", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["heartbeat_ms"], data["default_max_staleness_s"]) == (heartbeat_ms, bound_s)
    assert main(["genesis", "check", str(out)]) == 0
    assert "heartbeat" in capsys.readouterr().out


def test_genesis_new_refuses_a_negative_heartbeat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g.json"
    assert main(["genesis", "new", "--key-file", str(tmp_path / "v.pem"), "--out", str(out),
                 "--heartbeat-s", "-1"]) == 2  # fmt: skip
    assert "--heartbeat-s" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--validator", "beta=zz"], "not a compressed"),
        (["--validator", "nokey"], "NAME=PUBLIC_KEY_HEX"),
        ([], "at least one validator"),
    ],
)
def test_genesis_new_refuses_bad_validators(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["genesis", "new", "--out", str(tmp_path / "g.json"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "g.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dns", "localhost"], "HOST:PORT"),
        (["--rpc", "127.0.0.1:99999"], "bad port"),
        (["--p2p", "127.0.0.1:4000"], "not a multiaddr"),
        (["--bootstrap", "/ip4/127.0.0.1/tcp/4000"], "peer id"),
    ],
)
def test_node_argument_errors_are_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["node", "--data-dir", str(tmp_path / "d"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_node_refuses_a_key_readable_by_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d"
    data.mkdir()
    key = data / "validator.pem"
    main(["key", "new", str(key)])
    key.chmod(0o644)
    assert (
        main(
            [
                "node",
                "--data-dir",
                str(data),
                "--dns",
                "127.0.0.1:0",
                "--rpc",
                "127.0.0.1:0",
                "--p2p",
                "/ip4/127.0.0.1/tcp/0",
            ]
        )
        == 2
    )
    assert "chmod 600" in capsys.readouterr().err


# -- output: --json, tables, colour only on a terminal (issue #6) --

ANSI = "\x1b["


def _genesis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "g.json"
    assert main(["genesis", "new", "--key-file", str(tmp_path / "v.pem"), "--out", str(out)]) == 0
    capsys.readouterr()
    return out


def test_key_show_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "v.pem"
    main(["key", "new", str(key)])
    public = capsys.readouterr().out.strip()
    assert main(["key", "show", str(key), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "ok": True,
        "file": str(key),
        "public_key": public,
    }


def test_genesis_check_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _genesis(tmp_path, capsys)
    genesis = Genesis.from_json(path.read_text())
    assert main(["genesis", "check", str(path)]) == 0
    table = capsys.readouterr().out
    for row in ("chain id", "genesis hash", "validator-0", "records per name", "genesis domains"):
        assert row in table
    assert ANSI not in table  # captured output is not a terminal
    assert main(["genesis", "check", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["chain_id"] == "ledgerdns-devnet"
    assert data["genesis_hash"] == genesis.hash().hex() and data["quorum"] == 1
    assert [v["name"] for v in data["validators"]] == ["validator-0"]


def test_json_errors_are_one_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["genesis", "check", str(tmp_path / "none.json"), "--json"]) == 2
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["ok"] is False and data["error"] == "usage" and "cannot read" in data["message"]
    assert captured.err == ""


@pytest.mark.parametrize(
    ("env", "styled"),
    [({"FORCE_COLOR": "1"}, True), ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False)],
)
def test_no_color_wins_even_on_a_forced_terminal(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    styled: bool,
) -> None:
    path = _genesis(tmp_path, capsys)
    monkeypatch.delenv("NO_COLOR", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["genesis", "check", str(path)]) == 0
    assert (ANSI in capsys.readouterr().out) is styled
    assert main(["genesis", "check", str(tmp_path / "none.json")]) == 2
    assert (ANSI in capsys.readouterr().err) is styled


def test_status_summary_and_table() -> None:
    status = {
        "chain_id": "net",
        "peer_id": "12D3KooWx",
        "validator": None,
        "height": 7,
        "head_hash": "ab" * 32,
        "head_time_ms": 1_000_000,
        "syncing": True,
        "sync_target": 9,
        "consensus_height": 8,
        "consensus_round": 1,
        "consensus_step": "prevote",
        "version": "0.1.0",
        "tlds": ["p2p"],
    }
    validators = [
        {"name": "v0", "online": True, "last_vote_height": 7},
        {"name": "v1", "online": False, "last_vote_height": -1},
    ]
    peers = [{"connected": True}, {"connected": False}]
    summary = summarize(
        status,
        validators,
        peers,
        {"count": 3, "bytes": 600},
        {"rpc": "http://127.0.0.1:1", "dns": "127.0.0.1:53", "p2p": []},
        1_090_000,
    )
    assert summary["head_age_s"] == 90 and summary["validators"]["online"] == 1
    assert summary["peers"] == {"connected": 1, "known": 2}
    assert summary["mempool"] == {"txs": 3, "bytes": 600}
    buffer = io.StringIO()
    Console(file=buffer, width=120).print(render(summary))
    text = buffer.getvalue()
    for row in (
        "follower",
        "7 (head abababab",
        "90 s ago",
        "syncing to 9",
        "1/2 online",
        "v1",
        "offline",
        "1 connected (2 known)",
        "3 txs, 600 bytes",
        "127.0.0.1:53",
    ):
        assert row in text, row


def test_status_without_a_running_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--node", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: no node is running in") and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err and captured.out == ""
    assert main(["status", "--node", str(tmp_path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "node-unreachable"
    assert main(["status", "--rpc", "http://127.0.0.1:1"]) == 2
    assert "--token-file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("lines", "terminal", "drawn"), [(10, True, False), (500, False, False), (500, True, True)]
)
def test_import_zone_progress_only_for_a_large_zone_on_a_terminal(
    lines: int, terminal: bool, drawn: bool
) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminal, width=80)
    with zone_progress(lines, console) as progress:
        progress.add_task("parsing zone", total=4)
        progress.refresh()
    assert ("parsing zone" in buffer.getvalue()) is drawn
