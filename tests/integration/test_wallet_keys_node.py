"""Keys people can keep, against a real node process (`python -m ledgerdns node`, the devnet):
words written by one wallet restore another on a fresh directory, whose updates the node
finalizes and answers over DNS; that wallet then rotates the domain's key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.integration.test_node import ROOT, Running

pytestmark = pytest.mark.integration

DOMAIN = "keep.p2p"


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Running]:
    node = Running(tmp_path / "node")
    try:
        yield node
    finally:
        node.close()


def wallet(node: Running, wallet_dir: Path, *argv: str, passphrase: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "ledgerdns", "wallet", "--wallet-dir", str(wallet_dir),
         "--node", str(node.data_dir), "--json", *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LEDGERDNS_PASSPHRASE": passphrase},
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)


def answers(node: Running, name: str) -> set[str]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), node.dns[0], port=node.dns[1], timeout=2)
    return {item.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for item in rrset}


def test_restored_wallet_signs_and_rotates_on_a_real_node(devnet: Running, tmp_path: Path) -> None:
    first = tmp_path / "first"
    wallet(devnet, first, "new", passphrase="first passphrase")
    registered = wallet(devnet, first, "register", DOMAIN, "--record", "@ A 10.0.0.7",
                        passphrase="first passphrase")  # fmt: skip
    assert registered["status"] == "finalized"
    words = wallet(devnet, first, "backup", passphrase="first passphrase")["mnemonic"]

    # A fresh directory, another passphrase: the words alone bring the key back.
    restored_dir = tmp_path / "restored"
    (tmp_path / "words.txt").write_text(words)
    restored = wallet(devnet, restored_dir, "restore", "--words-file", str(tmp_path / "words.txt"),
                      passphrase="second passphrase")  # fmt: skip
    assert restored["keys"][0]["public_key"] == registered["owner"]
    updated = wallet(devnet, restored_dir, "add", DOMAIN, "--record", "www A 10.0.0.8",
                     passphrase="second passphrase")  # fmt: skip
    assert updated["status"] == "finalized" and updated["key"] == "default"
    assert answers(devnet, f"www.{DOMAIN}") == {"10.0.0.8"}

    rotated = wallet(devnet, restored_dir, "rotate", DOMAIN, passphrase="second passphrase")
    assert rotated["action"] == "rotated" and rotated["status"] == "finalized"
    assert rotated["old_public_key"] == registered["owner"] != rotated["new_public_key"]
    shown = wallet(devnet, restored_dir, "show", DOMAIN, passphrase="second passphrase")
    assert shown["owner"] == rotated["new_public_key"] and shown["key"] == rotated["new_key"]
    moved = wallet(devnet, restored_dir, "set", DOMAIN, "--record", "@ A 10.0.0.9",
                   passphrase="second passphrase")  # fmt: skip
    assert moved["status"] == "finalized" and moved["key"] == rotated["new_key"]
    assert answers(devnet, DOMAIN) == {"10.0.0.9"}
    # The old key is kept: the first wallet still holds it, but it no longer owns the name.
    refused = subprocess.run(
        [sys.executable, "-m", "ledgerdns", "wallet", "--wallet-dir", str(first), "--node",
         str(devnet.data_dir), "--json", "add", DOMAIN, "--record", "x A 10.0.0.1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LEDGERDNS_PASSPHRASE": "first passphrase"},
    )  # fmt: skip
    assert refused.returncode == 1 and json.loads(refused.stdout)["error"] == "not-owner"
