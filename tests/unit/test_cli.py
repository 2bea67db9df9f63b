"""The `ledgerdns` command line: keys, genesis files and node argument errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from chain.genesis import Genesis
from ledgerdns.cli import main


def test_key_new_and_show_print_the_same_public_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
    code = main(["genesis", "new", "--key-file", str(tmp_path / "mine.pem"), "--name", "alpha",
                 "--validator", f"beta={other_key}", "--out", str(out), "--chain-id", "testnet",
                 "--tld", "mesh"])
    assert code == 0
    genesis = Genesis.from_json(out.read_text())
    assert genesis.validator_names == ("alpha", "beta")
    assert bytes(genesis.params.validators.keys[1]).hex() == other_key
    assert (genesis.chain_id, genesis.params.tlds) == ("testnet", ("mesh",))
    assert main(["genesis", "check", str(out)]) == 0


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


def test_node_refuses_a_key_readable_by_others(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d"
    data.mkdir()
    key = data / "validator.pem"
    main(["key", "new", str(key)])
    key.chmod(0o644)
    assert main(["node", "--data-dir", str(data), "--dns", "127.0.0.1:0", "--rpc", "127.0.0.1:0",
                 "--p2p", "/ip4/127.0.0.1/tcp/0"]) == 2
    assert "chmod 600" in capsys.readouterr().err
