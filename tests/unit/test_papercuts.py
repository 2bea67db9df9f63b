"""Issue 18 §3: the papercuts a new user hit, each said plainly (messages, parsing, --version)."""

from __future__ import annotations

import argparse
import importlib.metadata

import pytest

from chain.errors import InvalidUpdate
from chain.names import normalize_name, normalize_relative_name
from chain.records import Record
from ledgerdns.cli import build_parser, main
from ledgerdns.wallet.errors import BadInput
from ledgerdns.wallet.zonefile import read_zone

DOMAIN = "alice.p2p"


def _balanced(message: str) -> bool:
    return message.count("'") % 2 == 0


# -- a label over 63 characters --


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a" * 64 + ".p2p", "label too long (64 > 63)"),
        ("a" * 80 + ".b.p2p", "label too long (80 > 63)"),  # the name is shortened in the message
        ("ü" * 64 + ".p2p", "too long (70 > 63 bytes as an A-label)"),
    ],
)
def test_a_long_label_is_said_too_long_with_its_length(name: str, expected: str) -> None:
    with pytest.raises(InvalidUpdate) as caught:
        normalize_name(name)
    message = str(caught.value.args[0])
    assert expected in message and "IDNA" not in message
    assert _balanced(message), message


def test_a_long_owner_label_says_its_length_with_balanced_quotes() -> None:
    with pytest.raises(InvalidUpdate) as caught:
        normalize_relative_name("_" + "a" * 70)
    message = str(caught.value.args[0])
    assert "too long (71 > 63)" in message and _balanced(message), message


# -- a TTL that is not one --


@pytest.mark.parametrize("ttl", ["-5", "+5", "5y", "1.5"])
def test_a_bad_ttl_is_said_to_be_the_ttl(ttl: str) -> None:
    with pytest.raises(InvalidUpdate) as caught:
        Record.from_text(f"x {ttl} A 10.1.1.1", origin=DOMAIN)
    assert str(caught.value.args[0]).startswith(f"x: TTL '{ttl}' is not valid")


def test_a_bad_type_after_a_ttl_is_still_the_type() -> None:
    with pytest.raises(InvalidUpdate, match="unsupported record type '-5'"):
        Record.from_text("x 5 -5 A 10.1.1.1", origin=DOMAIN)
    with pytest.raises(InvalidUpdate, match="unsupported record type 'HINFO'"):
        Record.from_text("x HINFO a b", origin=DOMAIN)


# -- zone-file errors name the line's owner --


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("www -5 A 1.2.3.4\n", "line 1: 'www -5 A 1.2.3.4': www: TTL '-5' is not valid"),
        ("www A 1.2.3.4\n     A 10.0.0.300\n", "line 2: 'A 10.0.0.300': www: A address"),
        ("$ORIGIN sub.alice.p2p.\nmail MX x y\n", "line 2: 'mail MX x y': mail.sub: MX preference"),
        ("@ MX x y\n", "line 1: '@ MX x y': @: MX preference"),
    ],
)
def test_zone_file_errors_name_the_owner_of_the_line(zone: str, expected: str) -> None:
    with pytest.raises(BadInput) as caught:
        read_zone(zone, DOMAIN)
    assert str(caught.value).startswith(expected), str(caught.value)


# -- the command line --


def test_version_comes_from_the_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"ledgerdns {importlib.metadata.version('ledgerdns')}"


@pytest.mark.parametrize(
    ("argv", "usage", "unknown"),
    [
        (["wallet", "renew", "alice.p2p", "--key", "cold"], "wallet renew", "--key cold"),
        (["wallet", "show", "alice.p2p", "--bogus"], "wallet show", "--bogus"),
        (["validator", "list", "--bogus"], "validator list", "--bogus"),
        (["genesis", "check", "g.json", "--bogus"], "genesis check", "--bogus"),
    ],
)
def test_an_unknown_option_is_refused_with_the_subcommands_usage(
    argv: list[str], usage: str, unknown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert err.startswith(f"usage: ledgerdns {usage} "), err
    assert f"ledgerdns {usage}: error: unrecognized arguments: {unknown}" in err


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _value_for(action: argparse.Action) -> list[str]:
    if action.nargs == 0:
        return []
    if action.choices:
        return [str(next(iter(action.choices)))]
    return ["7"] if action.type in (int, float) else ["x.p2p"]


WALLET_COMMANDS = _commands(_commands(build_parser())["wallet"])


@pytest.mark.parametrize("command", sorted(WALLET_COMMANDS))
def test_every_wallet_option_parses_after_the_positional_arguments(command: str) -> None:
    parser = WALLET_COMMANDS[command]
    positionals = [a for a in parser._actions if not a.option_strings]
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    argv = ["wallet", command, *("x.p2p" for _ in positionals)]
    for action in options:
        argv += [action.option_strings[-1], *_value_for(action)]
    args = build_parser().parse_args(argv)  # exits 2 (failing the test) on any refusal
    for action in options:
        assert getattr(args, action.dest) not in (None, False), (command, action.dest)
    for action in positionals:
        assert getattr(args, action.dest) == "x.p2p"
