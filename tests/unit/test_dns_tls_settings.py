"""The ``[dns.tls]`` table of node.toml (DoT and DoH)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chain.errors import ConfigError
from ledgerdns.dns.settings import parse_dns_settings
from ledgerdns.dns.tls_settings import TlsSettings


def tls(table: dict[str, Any], base: Path | None = Path("/etc/ledgerdns")) -> TlsSettings:
    return parse_dns_settings({"dns": {"tls": table}}, base=base).tls


def test_defaults_turn_nothing_on() -> None:
    assert parse_dns_settings({}).tls == TlsSettings()
    assert TlsSettings().dot is None and TlsSettings().doh is None


def test_a_full_table() -> None:
    got = tls({
        "cert": "tls/cert.pem", "key": "/keys/key.pem", "dot": "0.0.0.0:853",
        "doh": "[::1]:8443", "idle_timeout_s": 30, "max_connections": 500,
    })  # fmt: skip
    assert got == TlsSettings(
        cert=Path("/etc/ledgerdns/tls/cert.pem"), key=Path("/keys/key.pem"),
        dot=("0.0.0.0", 853), doh=("::1", 8443), idle_timeout_s=30.0, max_connections=500,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("table", "key", "says"),
    [
        ({"cert": "c.pem"}, "dns.tls", "go together"),
        ({"key": "k.pem"}, "dns.tls", "go together"),
        ({"cert": 5, "key": "k"}, "dns.tls.cert", "file path"),
        ({"dot": "853"}, "dns.tls.dot", "HOST:PORT"),
        ({"dot": "127.0.0.1:99999"}, "dns.tls.dot", "HOST:PORT"),
        ({"doh": 443}, "dns.tls.doh", "HOST:PORT"),
        ({"idle_timeout_s": 0}, "dns.tls.idle_timeout_s", "seconds"),
        ({"idle_timeout_s": "5"}, "dns.tls.idle_timeout_s", "seconds"),
        ({"max_connections": 0}, "dns.tls.max_connections", "1..100000"),
        ({"max_connections": True}, "dns.tls.max_connections", "1..100000"),
        ({"port": 853}, "dns.tls", "unknown key 'port'"),
    ],
)
def test_bad_values_name_their_key(table: dict[str, Any], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        tls(table)
    assert caught.value.key == key
    assert says in str(caught.value)
