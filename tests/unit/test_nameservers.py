"""The network's nameserver set: in genesis (format, hash, checks) and in every NS and SOA."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import dns.message
import dns.rdatatype
import pytest
import trio

from chain.errors import ConfigError
from chain.genesis import Genesis, make_single_validator_genesis
from chain.records import Record, canonical_record_set
from ledgerdns.dns import AnswerBuilder, AnswerCache, ZoneConfig
from tests.support.instant_node import VALIDATOR_KEY, InstantNode, now_ms
from tools.devchain import dev_key, register_tx, soon

SET = ("ns1.example.net", "ns2.example.org")


def _genesis(nameservers: tuple[str, ...] = ()) -> Genesis:
    base = make_single_validator_genesis(VALIDATOR_KEY.public_key, genesis_time_ms=123)
    return dataclasses.replace(
        base, params=dataclasses.replace(base.params, nameservers=nameservers)
    )


def test_a_genesis_without_nameservers_keeps_its_format_and_hash() -> None:
    plain = _genesis()
    assert "nameservers" not in json.loads(plain.to_json())
    assert Genesis.from_json(plain.to_json()).hash() == plain.hash()


def test_nameservers_round_trip_and_are_in_the_hash() -> None:
    genesis = _genesis(SET)
    doc = json.loads(genesis.to_json())
    assert doc["nameservers"] == list(SET)
    again = Genesis.from_json(genesis.to_json())
    assert again.params.nameservers == SET and again.hash() == genesis.hash()
    assert genesis.hash() != _genesis().hash()
    assert genesis.hash() != _genesis(SET[::-1]).hash()  # the order matters: the first is MNAME


def test_nameservers_are_normalized() -> None:
    doc = json.loads(_genesis().to_json())
    doc["nameservers"] = ["NS1.Example.NET.", "ns2.example.org"]
    assert Genesis.from_json(json.dumps(doc)).params.nameservers == SET


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("ns1.example.net", "nameservers"),
        ([1], "nameservers[0]"),
        (["ns1.example.net", "bad_name.example"], "nameservers[1]"),
        (["a..b"], "nameservers[0]"),
        (["ns1.example.net", "NS1.example.net"], "nameservers[1]"),
        ([f"ns{i}.example.net" for i in range(14)], "nameservers"),
    ],
)
def test_bad_nameservers_are_refused_naming_the_key(value: object, key: str) -> None:
    doc = json.loads(_genesis().to_json())
    doc["nameservers"] = value
    with pytest.raises(ConfigError) as info:
        Genesis.from_json(json.dumps(doc))
    assert info.value.key == key


OWNER = dev_key("nameservers-owner", 0)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstantNode]:
    base = make_single_validator_genesis(
        VALIDATOR_KEY.public_key, genesis_time_ms=now_ms() - 1000, chain_id="instant-test"
    )
    genesis = dataclasses.replace(base, params=dataclasses.replace(base.params, nameservers=SET))
    instant = InstantNode(tmp_path_factory.mktemp("nameservers"), genesis)
    records = canonical_record_set([Record.from_text("@ A 192.0.2.1", origin="alice.p2p")])
    tx = register_tx(genesis, OWNER, "alice.p2p", records, valid_until=soon(instant.ledger))
    trio.run(instant.submit, tx)
    yield instant
    instant.close()


def _ask(node: InstantNode, server_name: str, name: str, rdtype: str) -> dns.message.Message:
    config = ZoneConfig(server_name=server_name, nameservers=node.genesis.params.nameservers)
    cache = AnswerCache(AnswerBuilder(node.ledger, config))
    query = dns.message.make_query(name, rdtype)
    wire = cache.answer(query.to_wire(), tcp=False)
    assert wire is not None
    return dns.message.from_wire(wire)


@pytest.mark.parametrize("name", ["p2p", "alice.p2p"])
def test_every_server_answers_the_network_set(node: InstantNode, name: str) -> None:
    for server in ("a.example.com", "b.example.com"):
        ns = _ask(node, server, name, "NS")
        assert sorted(rd.target.to_text() for rd in ns.answer[0]) == [f"{n}." for n in SET]
        soa = _ask(node, server, name, "SOA")
        assert soa.answer[0][0].mname.to_text() == f"{SET[0]}."
        nodata = _ask(node, server, name, "TXT")  # the negative SOA too
        assert nodata.authority[0].rdtype == dns.rdatatype.SOA
        assert nodata.authority[0][0].mname.to_text() == f"{SET[0]}."


def test_without_a_set_a_server_names_itself() -> None:
    config = ZoneConfig(server_name="a.example.com")
    assert config.ns_names == ("a.example.com",)
    assert ZoneConfig(server_name="a.example.com", nameservers=SET).ns_names == SET
    with pytest.raises(ConfigError) as info:
        ZoneConfig(nameservers=("ok.example", "bad_name.example"))
    assert info.value.key == "nameservers[1]"
