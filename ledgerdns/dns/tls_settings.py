"""The ``[dns.tls]`` table: DNS over TLS and over HTTPS (docs/dns-tls.md).

::

    [dns.tls]
    cert = "tls.crt"             # PEM certificate chain (relative: to this file's directory)
    key = "tls.key"              # its PEM private key
    dot = "0.0.0.0:853"          # DNS over TLS (RFC 7858) listen address
    doh = "0.0.0.0:443"          # DNS over HTTPS (RFC 8484) listen address
    idle_timeout_s = 10          # a connection idle this long is closed (each face)
    max_connections = 100        # open connections at most (each face)

The command line (``--dot``, ``--doh``, ``--tls-cert``, ``--tls-key``) wins over the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.errors import ConfigError

KEYS = frozenset({"cert", "key", "dot", "doh", "idle_timeout_s", "max_connections"})


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSettings:
    """DoT and DoH (both off unless an address is given here or on the command line).

    Attributes:
        cert, key: the PEM certificate chain and private key files.
        dot, doh: the listen addresses, ``(host, port)``; port 0 picks a free one.
        idle_timeout_s: a connection without a query (or, for DoH, a request) this long
            is closed; also the time a TLS handshake may take.
        max_connections: connections open at once on each face; more are closed at once.
    """

    cert: Path | None = None
    key: Path | None = None
    dot: tuple[str, int] | None = None
    doh: tuple[str, int] | None = None
    idle_timeout_s: float = 10.0
    max_connections: int = 100


def parse_tls_settings(table: Mapping[str, Any], *, base: Path | None) -> TlsSettings:
    """The ``[dns.tls]`` table (already checked to hold only `KEYS`).

    Raises:
        ConfigError: a bad value, naming its key.
    """
    files: dict[str, Path | None] = {}
    for name in ("cert", "key"):
        value = table.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"expected a file path, not {value!r}", key=f"dns.tls.{name}")
        path = Path(value).expanduser() if value else None
        files[name] = base / path if path and base and not path.is_absolute() else path
    if (files["cert"] is None) != (files["key"] is None):
        raise ConfigError("cert and key go together: give both or neither", key="dns.tls")
    idle = table.get("idle_timeout_s", 10.0)
    if type(idle) not in (int, float) or not 0 < idle <= 3600:
        raise ConfigError(
            f"must be a number of seconds in (0, 3600], not {idle!r}", key="dns.tls.idle_timeout_s"
        )
    cap = table.get("max_connections", 100)
    if type(cap) is not int or not 1 <= cap <= 100_000:
        raise ConfigError(
            f"must be an integer in 1..100000, not {cap!r}", key="dns.tls.max_connections"
        )
    return TlsSettings(
        cert=files["cert"],
        key=files["key"],
        dot=_listen(table.get("dot"), "dns.tls.dot"),
        doh=_listen(table.get("doh"), "dns.tls.doh"),
        idle_timeout_s=float(idle),
        max_connections=cap,
    )


def _listen(value: Any, key: str) -> tuple[str, int] | None:
    """``HOST:PORT`` or ``[V6]:PORT`` (port 0 allowed: any free port)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f'expected "HOST:PORT", not {value!r}', key=key)
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"expected HOST:PORT, not {value!r}", key=key)
    return host, int(port)
