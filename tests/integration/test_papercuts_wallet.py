"""Issue 18 §3, the wallet's papercuts end to end: the real command against a real RPC server over
an InstantNode (tests/integration/test_wallet.py's `env`)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from tests.integration.test_wallet import Env, env  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.integration, pytest.mark.trio]

RECORDS = ("www A 10.0.0.1", "@ MX 10 mail", "mail A 10.0.0.2")


async def _registered(env: Env, domain: str) -> None:  # noqa: F811
    await env.run("new", "--insecure-no-passphrase")
    argv = ["register", domain]
    for line in RECORDS:
        argv += ["--record", line]
    assert (await env.run(*argv)).code == 0


def _record_count(env: Env, domain: str) -> int:  # noqa: F811
    state = env.node.ledger.get_domain(domain)
    assert state is not None
    return len(state.records)


async def test_an_empty_zone_file_removes_nothing_without_yes(
    env: Env,  # noqa: F811
    tmp_path: Path,
) -> None:
    await _registered(env, "zone.p2p")
    empty = tmp_path / "empty.zone"
    empty.write_text("; nothing here\n")

    refused = await env.run("import-zone", "zone.p2p", str(empty))
    assert refused.code == 2, refused
    assert "removes all 3 records of zone.p2p" in refused.err and "--yes" in refused.err
    assert _record_count(env, "zone.p2p") == 3

    as_json = (await env.run("--json", "import-zone", "zone.p2p", str(empty))).json()
    assert as_json["ok"] is False and as_json["error"] == "usage"

    done = await env.json("import-zone", "zone.p2p", str(empty), "--yes")
    assert done["action"] == "updated" and done["records"] == []
    assert _record_count(env, "zone.p2p") == 0
    again = await env.json("import-zone", "zone.p2p", str(empty))  # nothing left to remove
    assert again["action"] == "unchanged"


async def test_nothing_on_stdin_removes_nothing_without_yes(
    env: Env,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _registered(env, "stdin.p2p")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    refused = await env.run("import-zone", "stdin.p2p", "-")
    assert refused.code == 2 and "stdin holds no records" in refused.err, refused
    assert _record_count(env, "stdin.p2p") == 3


async def test_a_zone_file_with_records_needs_no_yes(env: Env, tmp_path: Path) -> None:  # noqa: F811
    await _registered(env, "some.p2p")
    zone = tmp_path / "some.zone"
    zone.write_text("www A 10.0.0.9\n")
    done = await env.json("import-zone", "some.p2p", str(zone))
    assert done["records"] == ["www 300 IN A 10.0.0.9"]


async def test_the_only_key_needs_no_key_option(env: Env) -> None:  # noqa: F811
    assert (await env.run("new", "--name", "cold", "--insecure-no-passphrase")).code == 0
    registered = await env.json("register", "solo.p2p")
    assert registered["key"] == "cold" and registered["status"] == "finalized"


async def test_several_keys_without_a_default_ask_for_key(env: Env) -> None:  # noqa: F811
    for name in ("cold", "warm"):
        assert (await env.run("new", "--name", name, "--insecure-no-passphrase")).code == 0
    refused = await env.run("register", "two.p2p")
    assert refused.code == 2 and "2 keys (cold, warm)" in refused.err and "--key" in refused.err
    chosen = await env.json("register", "two.p2p", "--key", "warm")
    assert chosen["key"] == "warm"
    assert (await env.run("new", "--insecure-no-passphrase")).code == 0  # "default" now exists
    assert (await env.json("register", "three.p2p"))["key"] == "default"
