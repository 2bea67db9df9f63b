"""``wallet backup``, ``restore`` and ``rotate`` end to end, as test_wallet.py runs the wallet:
the real command against a real RPC server on 127.0.0.1:0 over an InstantNode (real LevelDB)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain.crypto import PrivateKey
from ledgerdns.wallet.keystore import Keystore
from tests.integration.test_wallet import Env, env  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.trio]

BACKUP_PASSPHRASE = "a different passphrase for the export"


def other(env: Env, tmp_path: Path, name: str) -> Env:  # noqa: F811
    """A second wallet directory talking to the same node."""
    return Env(env.node, env.data_dir, tmp_path / name, env.capsys)


def words_file(tmp_path: Path, words: str) -> str:
    path = tmp_path / "words.txt"
    path.write_text(words + "\n")
    return str(path)


async def test_words_restore_a_wallet_that_signs(env: Env, tmp_path: Path) -> None:  # noqa: F811
    made = await env.json("new")  # encrypted: the seed shares its passphrase
    assert made["seed_created"] and made["index"] == 0
    assert (await env.run("new")).code == 1  # the name is taken
    await env.json("new", "--name", "cold")
    assert (await env.json("register", "alice.p2p", "--record", "@ A 10.0.0.1"))["key"] == "default"
    await env.json("transfer", "alice.p2p", "--to", "cold")

    backup = await env.json("backup")
    words = backup["mnemonic"]
    assert len(words.split()) == 12 and backup["keys_to_restore"] == 2
    assert [k["name"] for k in backup["covered"]] == ["default", "cold"] and not backup["not_covered"]
    assert backup["restore"] == "ledgerdns wallet restore --keys 2"
    shown = await env.run("backup")
    assert shown.code == 0 and words.split()[11] in shown.out and "NOT" not in shown.out
    assert "restore --keys 2" in shown.out

    fresh = other(env, tmp_path, "restored")
    restored = await fresh.json("restore", "--words-file", words_file(tmp_path, words), "--keys", "2")
    assert restored["from"] == "mnemonic" and restored["seed"] == backup["seed"]
    assert [(k["name"], k["index"], k["status"]) for k in restored["keys"]] == [
        ("default", 0, "restored"), ("key-1", 1, "restored"),
    ]  # fmt: skip
    assert {k["public_key"] for k in restored["keys"]} == {k["public_key"] for k in backup["covered"]}

    # The restored wallet signs an update the node accepts, with the key that owns the name now.
    updated = await fresh.json("add", "alice.p2p", "--record", "www A 10.0.0.2")
    assert updated["status"] == "finalized" and updated["key"] == "key-1"
    state = env.node.ledger.get_domain("alice.p2p")
    assert state is not None and len(state.records) == 2
    # It keeps deriving where the old wallet would: its next key is #2, not a reuse.
    assert (await fresh.json("new", "--name", "next"))["index"] == 2
    # The same words again into the same wallet: refused, then --force adds nothing twice.
    again = await fresh.run("--json", "restore", "--words-file", words_file(tmp_path, words))
    assert again.code == 1 and again.json()["error"] == "wallet-exists"
    forced = await fresh.json("restore", "--words-file", words_file(tmp_path, words), "--keys", "3",
                              "--force")  # fmt: skip
    assert [k["status"] for k in forced["keys"]] == ["present", "present", "present"]


async def test_export_file_keeps_keys_the_words_cannot(env: Env, tmp_path: Path,  # noqa: F811
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # An older wallet: a random key made before seeds, owning a domain.
    Keystore(env.wallet_dir).create("legacy", PrivateKey.generate(b"made before seeds"), None)
    no_seed = await env.run("--json", "backup")
    assert no_seed.code == 1 and no_seed.json()["error"] == "no-seed"
    assert "backup --out FILE" in no_seed.json()["message"]
    await env.json("register", "old.p2p", "--key", "legacy")
    await env.json("new", "--insecure-no-passphrase")  # now the wallet gets a seed
    words = await env.json("backup")
    assert [k["name"] for k in words["not_covered"]] == ["legacy"]
    text = await env.run("backup")
    assert "NOT restored by these words: legacy" in text.out and "backup --out FILE" in text.out

    monkeypatch.setenv("LEDGERDNS_BACKUP_PASSPHRASE", BACKUP_PASSPHRASE)
    out = tmp_path / "wallet.backup"
    written = await env.json("backup", "--out", str(out))
    assert written["keys"] == 2 and written["seed"] == words["seed"]
    assert (out.stat().st_mode & 0o777) == 0o600
    assert "legacy" not in out.read_text() and words["mnemonic"].split()[0] not in out.read_text()
    refused = await env.run("--json", "backup", "--out", str(out))
    assert refused.code == 2 and "--force" in refused.json()["message"]

    fresh = other(env, tmp_path, "from-file")
    monkeypatch.setenv("LEDGERDNS_BACKUP_PASSPHRASE", "wrong")
    wrong = await fresh.run("--json", "restore", "--from", str(out))
    assert wrong.code == 1 and wrong.json()["error"] == "wrong-passphrase"
    assert not (fresh.wallet_dir / "keys").exists()  # nothing written
    monkeypatch.setenv("LEDGERDNS_BACKUP_PASSPHRASE", BACKUP_PASSPHRASE)
    restored = await fresh.json("restore", "--from", str(out))
    assert {k["name"] for k in restored["keys"]} == {"legacy", "default"}
    assert "domains.json" in restored["metadata"]
    assert (await fresh.json("list"))["domains"][0]["domain"] == "old.p2p"
    updated = await fresh.json("set", "old.p2p", "--record", "@ A 192.0.2.1")
    assert updated["status"] == "finalized" and updated["key"] == "legacy"
    # The restored seed derives on from where the original was.
    assert (await fresh.json("new", "--name", "more"))["index"] == 1

    not_export = await other(env, tmp_path, "none").run("restore", "--from", str(tmp_path / "missing"))
    assert not_export.code == 2 and "Traceback" not in not_export.err
    (tmp_path / "junk.json").write_text(json.dumps({"hello": 1}))
    junk = await other(env, tmp_path, "junk").run("--json", "restore", "--from", str(tmp_path / "junk.json"))
    assert junk.code == 1 and junk.json()["error"] == "bad-export-file"


async def test_bad_words_and_usage_are_clear(env: Env, tmp_path: Path) -> None:  # noqa: F811
    fresh = other(env, tmp_path, "fresh")
    words = "abandon " * 11 + "about"
    typo = await fresh.run("restore", "--words-file", words_file(tmp_path, words.replace("about", "abuot")))
    assert typo.code == 2 and "word 12, 'abuot'" in typo.err and "Traceback" not in typo.err
    checksum = await fresh.run("--json", "restore", "--words-file",
                               words_file(tmp_path, words.replace("about", "zoo")))  # fmt: skip
    assert checksum.code == 2 and checksum.json()["error"] == "bad-checksum"
    assert not fresh.wallet_dir.exists()  # nothing made before the words are right
    both = await fresh.run("restore", "--from", "x", "--keys", "2")
    assert both.code == 2 and "--from restores everything" in both.err
    nothing = await fresh.run("--json", "backup")
    assert nothing.code == 1 and nothing.json()["error"] == "no-wallet"
    bad_wait = await env.run("rotate", "alice.p2p", "--wait", "-1")
    assert bad_wait.code == 2


async def test_rotate_waits_for_finality_and_keeps_the_old_key(env: Env) -> None:  # noqa: F811
    await env.json("new")
    await env.json("register", "rot.p2p", "--record", "@ A 10.0.0.1")
    old_public = (await env.json("list"))["keys"][0]["public_key"]

    # The transfer cannot be final while the node holds its blocks: nothing is retired.
    env.node.hold = True
    stuck = await env.run("--json", "rotate", "rot.p2p", "--wait", "0.5")
    assert stuck.code == 1, stuck
    pending = stuck.json()
    assert pending["error"] == "not-final" and pending["new_key"] == "rot.p2p-1"
    assert "rotate rot.p2p" in pending["message"]
    assert not (env.wallet_dir / "retired.json").exists()
    state = env.node.ledger.get_domain("rot.p2p")
    assert state is not None and bytes(state.owner).hex() == old_public
    # Still owned by the old key until final: a write now is signed by it and chains on the transfer.
    assert (await env.json("show", "rot.p2p"))["pending"] == 1

    env.node.finalize_pending()
    env.node.hold = False
    done = await env.json("rotate", "rot.p2p")  # resumes: no second new key
    assert done["action"] == "rotated" and done["new_key"] == "rot.p2p-1"
    assert done["old_key"] == "default" and done["old_public_key"] == old_public
    assert done["txid"] == pending["txid"] and isinstance(done["height"], int)
    listed = {k["name"]: k for k in (await env.json("list"))["keys"]}
    assert sorted(listed) == ["default", "rot.p2p-1"]
    assert listed["default"]["retired_from"] == ["rot.p2p"] and listed["rot.p2p-1"]["retired_from"] == []
    retired = json.loads((env.wallet_dir / "retired.json").read_text())["keys"]
    assert retired["default"][0]["domain"] == "rot.p2p"
    assert not json.loads((env.wallet_dir / "rotations.json").read_text())["pending"]

    updated = await env.json("add", "rot.p2p", "--record", "www A 10.0.0.2")
    assert updated["key"] == "rot.p2p-1" and updated["status"] == "finalized"
    ops = [step["op"] for step in (await env.json("history", "rot.p2p"))["history"]]
    assert ops == ["register", "transfer", "update"]

    # Straight through when blocks come; the new key is derived, so the words restore it.
    second = await env.json("rotate", "rot.p2p", "--new-key", "rot-two")
    assert second["old_key"] == "rot.p2p-1" and second["new_key"] == "rot-two"
    assert {k["name"] for k in (await env.json("backup"))["covered"]} == {"default", "rot.p2p-1", "rot-two"}
    not_mine = await env.run("--json", "rotate", "nobody.p2p")
    assert not_mine.code == 1 and not_mine.json()["error"] == "name-not-active"
