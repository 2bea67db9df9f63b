"""The settings file as a whole: [log], every problem listed (--check-config), the log line."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from chain.errors import ConfigError
from ledgerdns.node.settings_file import (
    LogSettings,
    describe,
    load_node_settings,
    parse_node_settings,
    settings_problems,
)

SECRET = "c2VjcmV0c2VjcmV0c2VjcmV0"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_no_file_is_the_defaults() -> None:
    settings = load_node_settings(None)
    assert settings.path is None and settings.log == LogSettings()
    assert describe(settings).startswith("no settings file (defaults): no forwarding")


def test_the_log_table(tmp_path: Path) -> None:
    path = write(tmp_path, '[log]\nlevel = "debug"\nqueries = "q.jsonl"\n')
    settings = load_node_settings(path)
    assert settings.log == LogSettings(level="debug", queries=tmp_path / "q.jsonl")
    assert "log level debug" in describe(settings)
    assert f"query log {tmp_path / 'q.jsonl'}" in describe(settings)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[dsn]\nworkers = 1\n", "dsn"),
        ('[log]\nlevel = "loud"\n', "log.level"),
        ("[log]\nqueries = 3\n", "log.queries"),
        ("[log]\nfile = 'x'\n", "log"),
        ("log = 1\n", "log"),
    ],
)
def test_bad_values_name_their_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_node_settings(tomllib.loads(text))
    assert caught.value.key == key


def test_every_problem_is_listed_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[dsn]
x = 1
[log]
level = "loud"
[dns]
workers = 99
[dns.forward]
upstreams = ["nope"]
[[dns.tsig]]
name = "good."
secret = "{SECRET}"
[[dns.tsig]]
name = "k."
algorithm = "md5"
secret = "{SECRET}"
[dns.update]
keys = {{ "other." = "x.key" }}
""",
    )
    problems = settings_problems(path)
    assert problems == [
        "dsn: unknown table (known: dns, log)",
        "dns.tsig[1].algorithm: unsupported algorithm 'md5'",
        "dns.update.keys: no [[dns.tsig]] key named other.",
        "dns.workers: must be an integer in 0..16, not 99",
        "dns.forward.upstreams: not an IP address: 'nope'",
        "log.level: expected one of debug, info, warning, error, not 'loud'",
    ]


def test_key_files_are_opened(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[[dns.tsig]]
name = "upd."
secret = "{SECRET}"
[dns.update]
keys = {{ "upd." = "missing.pem" }}
""",
    )
    assert settings_problems(path) == [
        f'dns.update.keys."upd.": {tmp_path / "missing.pem"}: no such key file'
    ]


def test_a_good_file_has_no_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[dns.forward]
upstreams = ["127.0.0.1:5300"]
[[dns.tsig]]
name = "xfr."
secret = "{SECRET}"
[dns.transfer]
allow = ["127.0.0.1/32"]
tsig = ["xfr."]
""",
    )
    assert settings_problems(path) == []
    line = describe(load_node_settings(path))
    assert "forwarding to 127.0.0.1:5300 for loopback and private networks" in line
    assert "transfers to 127.0.0.1/32 signed with xfr." in line


@pytest.mark.parametrize("text", ["x = [", "\xff"])
def test_unreadable_toml_is_one_problem(tmp_path: Path, text: str) -> None:
    path = tmp_path / "node.toml"
    path.write_bytes(text.encode("latin-1"))
    (problem,) = settings_problems(path)
    assert problem.startswith(f"{path} is not valid TOML")
