"""`ledgerdns validator`: its arguments, its errors before any node is asked, and what it reads
back from a node's answers (which history entry a change became)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import ecdsa
import pytest

from chain.validators import ChangeAction, ValidatorChange
from ledgerdns.cli import build_parser, main
from ledgerdns.validator_args import proposal_argument, public_key_argument
from ledgerdns.validator_cli import scheduled_at
from ledgerdns.wallet.errors import BadInput
from tools.devchain import dev_key

KEYS = [dev_key("validator", i) for i in range(4)]
HEX = [bytes(k.public_key).hex() for k in KEYS]


def private_pem(tmp_path: Path, index: int = 0) -> Path:
    path = tmp_path / f"k{index}.pem"
    path.write_bytes(KEYS[index].to_pem())
    os.chmod(path, 0o600)
    return path


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out  # one JSON object, never a traceback
    return code, json.loads(out[0])


# -- arguments --


def test_a_public_key_is_hex_or_a_pem_file_public_or_private(tmp_path: Path) -> None:
    assert bytes(public_key_argument(HEX[1])) == bytes(KEYS[1].public_key)
    assert bytes(public_key_argument(HEX[1].upper())) == bytes(KEYS[1].public_key)
    assert bytes(public_key_argument(str(private_pem(tmp_path, 2)))) == bytes(KEYS[2].public_key)
    public = tmp_path / "pub.pem"
    verifying = ecdsa.VerifyingKey.from_string(bytes(KEYS[3].public_key), curve=ecdsa.SECP256k1)
    public.write_bytes(verifying.to_pem())
    assert bytes(public_key_argument(str(public))) == bytes(KEYS[3].public_key)
    printed = tmp_path / "pub.hex"  # what `ledgerdns key new` prints, saved
    printed.write_text(HEX[1] + "\n")
    assert bytes(public_key_argument(str(printed))) == bytes(KEYS[1].public_key)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("02cc66", "6 hex digits, not 66"),
        ("04" + "11" * 64, "130 hex digits, not 66"),
        ("05" + "11" * 32, "compressed"),
        ("02" + "ff" * 32, "not a point"),
        ("no-such-file.pem", "no such file"),
    ],
)
def test_a_bad_public_key_says_what_is_expected(text: str, says: str) -> None:
    with pytest.raises(BadInput) as info:
        public_key_argument(text)
    assert says in str(info.value) and "66 hex digits" in str(info.value)


def test_a_file_with_no_key_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(BadInput, match="no secp256k1 PEM key"):
        public_key_argument(str(junk))


def test_a_proposal_id_is_hex_of_8_to_64_digits() -> None:
    assert proposal_argument("AB" * 32) == "ab" * 32
    assert proposal_argument("abcdef12") == "abcdef12"
    for bad in ("zz", "abc", "ab" * 33, ""):
        with pytest.raises(BadInput):
            proposal_argument(bad)


def test_the_parser_takes_the_command_contract() -> None:
    parser = build_parser()
    args = parser.parse_args(["validator", "propose", "add", "v4", HEX[1], "--validator-key", "k.pem",
                              "--node", "dir", "--json"])  # fmt: skip
    assert (args.validator_command, args.change_action, args.name, args.pubkey) == (
        "propose", "add", "v4", HEX[1],
    )  # fmt: skip
    assert args.validator_key == "k.pem" and args.node == "dir" and args.json
    args = parser.parse_args(["validator", "propose", "remove", "v2", "--validator-key", "k.pem"])
    assert args.change_action == "remove" and not hasattr(args, "pubkey")
    args = parser.parse_args(["validator", "--node", "d", "approve", "ab" * 32, "--validator-key",
                              "k.pem", "--no-wait"])  # fmt: skip
    assert args.proposal_id == "ab" * 32 and args.node == "d" and args.no_wait
    args = parser.parse_args(["validator", "list", "--rpc", "http://x:1", "--token-file", "t"])
    assert args.rpc == "http://x:1" and args.token_file == "t"


@pytest.mark.parametrize(
    "argv",
    [
        ["validator", "propose", "add", "v4", HEX[1]],  # no --validator-key
        ["validator", "propose", "add", "v4", "--validator-key", "k.pem"],  # no PUBKEY
        ["validator", "propose", "retire", "v4", "--validator-key", "k.pem"],
        ["validator", "approve", "--validator-key", "k.pem"],  # no id
    ],
)
def test_a_wrong_command_line_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2


@pytest.mark.parametrize(
    ("extra", "error", "says"),
    [
        (["propose", "add", "v4", "02cc66"], "bad-input", "not 66"),
        (["propose", "add", "bad name", HEX[1]], "usage", "a validator name is"),
        (["approve", "nothex!!"], "bad-input", "not hex"),
        (["approve", "ab" * 32, "--wait", "99"], "usage", "--wait"),
    ],
)
def test_bad_input_fails_with_exit_2_before_any_node_is_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], error: str, says: str
) -> None:
    key = private_pem(tmp_path)
    nowhere = tmp_path / "no-node"  # no node.json: asking it would be exit 1, node-unreachable
    code, doc = run_json(["validator", *extra, "--validator-key", str(key), "--node",
                          str(nowhere)], capsys)  # fmt: skip
    assert code == 2 and doc["ok"] is False and doc["error"] == error, doc
    assert says in str(doc["message"])


def test_a_pem_that_is_not_a_key_or_is_readable_by_others_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    os.chmod(junk, 0o600)
    argv = ["validator", "approve", "ab" * 32, "--node", str(tmp_path / "none")]
    code, doc = run_json([*argv, "--validator-key", str(junk)], capsys)
    assert code == 2 and "not a usable key" in str(doc["message"])
    open_key = private_pem(tmp_path)
    os.chmod(open_key, 0o644)
    code, doc = run_json([*argv, "--validator-key", str(open_key)], capsys)
    assert code == 2 and "chmod 600" in str(doc["message"])
    code, doc = run_json([*argv, "--validator-key", str(tmp_path / "missing.pem")], capsys)
    assert code == 2 and "no such key file" in str(doc["message"])


def test_no_node_is_exit_1_and_says_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = run_json(["validator", "list", "--node", str(tmp_path / "none")], capsys)
    assert code == 1 and doc["error"] == "node-unreachable" and "ledgerdns node" in str(doc["message"])
    code, doc = run_json(["validator", "list", "--rpc", "http://127.0.0.1:1"], capsys)
    assert code == 2 and "--token-file" in str(doc["message"])
    code, doc = run_json(["validator", "list", "--node", "a", "--rpc", "http://h:1"], capsys)
    assert code == 2 and "not both" in str(doc["message"])


# -- reading the node's answers --


def entry(start: int, names: list[str], keys: list[str]) -> dict[str, object]:
    return {"from_height": start,
            "validators": [{"name": n, "public_key": k} for n, k in zip(names, keys, strict=True)]}


def test_a_change_is_found_in_the_history_from_two_heights_after_its_block() -> None:
    add = ValidatorChange(action=ChangeAction.ADD, name="v3", key=bytes(KEYS[3].public_key))
    base = entry(1, ["v0", "v1", "v2"], HEX[:3])
    added = entry(7, ["v0", "v1", "v2", "v3"], HEX[:4])
    vset = {"history": [base, added]}
    assert scheduled_at(vset, add, 5) == added
    assert scheduled_at(vset, add, 6) is None  # completed at 6: it would start at 8 or later
    removed = entry(9, ["v0", "v1", "v2"], HEX[:3])
    again = entry(12, ["v0", "v1", "v2", "v3"], HEX[:4])
    vset = {"history": [base, added, removed, again]}
    assert scheduled_at(vset, add, 9) == again  # the same change made twice: the later one
    remove = ValidatorChange(action=ChangeAction.REMOVE, name="v3")
    assert scheduled_at(vset, remove, 5) == removed
