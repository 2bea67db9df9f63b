"""The genesis loader: the shipped files load, and every mistake names its key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chain.errors import ConfigError
from chain.genesis import Genesis, make_single_validator_genesis
from tools.devchain import dev_key
from tools.make_dev_genesis import FILES

GENESIS_DIR = Path(__file__).resolve().parents[2] / "genesis"


@pytest.mark.parametrize("name", sorted(FILES))
def test_shipped_files_load_and_are_current(name: str) -> None:
    text = (GENESIS_DIR / name).read_text()
    genesis = Genesis.from_json(text)
    assert genesis.to_json() == text == FILES[name]().to_json()


def test_json_round_trip_and_hash_ignores_formatting() -> None:
    genesis = Genesis.from_json((GENESIS_DIR / "localnet-4.json").read_text())
    compact = json.dumps(json.loads(genesis.to_json()))
    assert Genesis.from_json(compact).hash() == genesis.hash()
    assert genesis.params.validators.n == 4 and genesis.domains[0].domain == "ledgerdns.p2p"


def test_single_validator_genesis_for_a_key() -> None:
    key = dev_key("validator", 9).public_key
    genesis = make_single_validator_genesis(key, genesis_time_ms=123)
    assert genesis.params.validators.keys == (key,)
    assert Genesis.from_json(genesis.to_json()) == genesis
    assert make_single_validator_genesis(key, genesis_time_ms=124).hash() != genesis.hash()


def _doc() -> dict[str, Any]:
    return json.loads((GENESIS_DIR / "localnet-4.json").read_text())  # type: ignore[no-any-return]


def _set(path: str, value: Any) -> dict[str, Any]:
    doc = _doc()
    node: Any = doc
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is KeyError:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


BAD = [
    ("format", 2, "format"),
    ("chain_id", "", "chain_id"),
    ("chain_id", KeyError, "chain_id: missing"),
    ("genesis_time_ms", -5, "genesis_time_ms"),
    ("tlds", [], "tlds"),
    ("tlds", ["P2P"], "tlds[0]"),
    ("tlds", ["p2p", "p2p"], "tlds"),
    ("validators", [], "validators"),
    ("validators.1.public_key", "zz", "validators[1].public_key"),
    ("validators.1.public_key", "02" + "ff" * 32, "validators[1].public_key"),
    ("validators.1.public_key", "02d5d4405f5d65dcae50e8b255c8ed449652317754468c226aa564ada1f002d217", "validators"),
    ("consensus.timeout_propose_ms", 0, "consensus"),
    ("consensus.max_block_txs", "many", "consensus.max_block_txs"),
    ("consensus.bogus", 1, "consensus.bogus"),
    ("names.max_records", -1, "names.max_records"),
    ("domains.0.domain", "a.b.p2p", "domains[0]"),
    ("domains.0.records", ["www 300 A 999.1.1.1"], "domains[0]"),
    ("domains.0.owner", "00", "domains[0].owner"),
]


@pytest.mark.parametrize(("path", "value", "key"), BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
def test_bad_genesis_names_the_key(path: str, value: Any, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        Genesis.from_json(json.dumps(_set(path, value)))
    assert key in str(info.value)


@pytest.mark.parametrize("text", ["", "[]", "{", "null", "\"x\""])
def test_not_an_object(text: str) -> None:
    with pytest.raises(ConfigError):
        Genesis.from_json(text)
