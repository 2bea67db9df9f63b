"""`ledgerdns node --config node.toml` as an operator runs it: one resolver for a host.

A real devnet node process with a settings file that turns on forwarding (to a
dnsmasq the test starts), a TSIG key mapped to a wallet key, and CHAOS
answers; the wallet CLI registers a name, the real `nsupdate -y` changes it,
and `dig`-style queries (dnspython) see everything through the node's UDP workers.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import pytest

from tests.integration.test_dns_forward import dnsmasq  # noqa: F401  (a fixture)
from tests.integration.test_node import PORTS, ROOT, Running

pytestmark = pytest.mark.integration

SECRET = base64.b64encode(b"node-dns-test-secret-0123456789").decode()
PASSPHRASE = "node dns test"


def wallet(wallet_dir: Path, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledgerdns", "wallet", "--wallet-dir", str(wallet_dir),
         "--node", str(data_dir), "--json", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LEDGERDNS_PASSPHRASE": PASSPHRASE},
    )  # fmt: skip


def ask(node: Running, name: str, rdtype: str = "A", rdclass: str = "IN") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, rdclass=dns.rdataclass.from_text(rdclass))
    return dns.query.udp(query, node.dns[0], port=node.dns[1], timeout=3)


def answers(reply: dns.message.Message) -> list[str]:
    return [item.to_text() for rrset in reply.answer for item in rrset]


@pytest.fixture
def node(
    tmp_path: Path, dnsmasq: tuple[str, int], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> Iterator[Running]:
    monkeypatch.setenv("LEDGERDNS_PASSPHRASE", PASSPHRASE)  # the node opens the wallet key with it
    wallet_dir, data_dir = tmp_path / "wallet", tmp_path / "node"
    made = wallet(wallet_dir, data_dir, "new", "--name", "ops")
    assert made.returncode == 0, made.stderr
    settings = tmp_path / "node.toml"
    settings.write_text(
        f"""
[dns]
workers = 1

[dns.chaos]
id = "ns-test"

[dns.forward]
upstreams = ["{dnsmasq[0]}:{dnsmasq[1]}"]

[[dns.tsig]]
name = "ops-key"
algorithm = "hmac-sha256"
secret = "{SECRET}"

[dns.update]
keys = {{ "ops-key" = "wallet/keys/ops.json" }}
"""
    )
    running = Running(data_dir, "--config", str(settings))
    try:
        yield running
    finally:
        running.close()


def test_one_node_serves_the_ledger_forwards_the_rest_and_takes_dns_updates(
    node: Running, tmp_path: Path
) -> None:
    registered = wallet(
        tmp_path / "wallet", node.data_dir, "register", "ops.p2p", "--key", "ops",
        "--record", "@ 300 A 192.0.2.1",
    )  # fmt: skip
    assert registered.returncode == 0, registered.stdout + registered.stderr
    assert answers(ask(node, "ops.p2p")) == ["192.0.2.1"]

    forwarded = ask(node, "host.lan.test")
    assert answers(forwarded) == ["192.0.2.10"] and forwarded.flags & dns.flags.RA

    version = ask(node, "id.server", "TXT", "CH")
    assert answers(version) == ['"ns-test"']

    if shutil.which("nsupdate") is None:
        pytest.skip("nsupdate is not installed (apt-get install bind9-dnsutils)")
    script = (
        f"server {node.dns[0]} {node.dns[1]}\nzone ops.p2p\n"
        "update add www.ops.p2p 120 A 192.0.2.80\nsend\n"
    )
    update = subprocess.run(
        ["nsupdate", "-y", f"hmac-sha256:ops-key:{SECRET}"],
        input=script, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert update.returncode == 0, update.stdout + update.stderr
    # Answered after finality: the new name is there at once, through the worker too.
    assert answers(ask(node, "www.ops.p2p")) == ["192.0.2.80"]
    shown = wallet(tmp_path / "wallet", node.data_dir, "show", "ops.p2p")
    assert "192.0.2.80" in shown.stdout


def test_a_bad_settings_file_is_a_clear_error(tmp_path: Path) -> None:
    settings = tmp_path / "node.toml"
    for text, expected in [
        (
            "[dns.forward]\nupstreams = ['resolver.example']\n",
            "dns.forward.upstreams: not an IP address",
        ),
        ("[dns]\nworkerz = 2\n", "dns: unknown key 'workerz'"),
        ("[dns\n", "is not valid TOML"),
        ("[dns.update]\nkeys = { 'k.' = 'x.pem' }\n", "no [[dns.tsig]] key named k."),
    ]:
        settings.write_text(text)
        run = subprocess.run(
            [sys.executable, "-m", "ledgerdns", "node", "--data-dir", str(tmp_path / "d"),
             *PORTS, "--config", str(settings)],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert run.returncode == 2, run.stderr
        assert expected in run.stderr and "Traceback" not in run.stderr, run.stderr
