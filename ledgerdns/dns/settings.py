"""The DNS face's settings: the ``[dns]`` tables of the node's TOML config file.

Everything here is optional; an empty file (or none) gives an authoritative
server for the ledger TLDs on its own, refusing other names. Example (see
docs/dns.md for every key)::

    [dns]
    workers = 1                         # UDP worker processes (0: serve UDP in the node)

    [dns.chaos]
    version = "ledgerdns"               # CHAOS TXT version.bind; "" refuses it
    id = "ns1"                          # CHAOS TXT id.server / hostname.bind; "" refuses

    [dns.forward]
    upstreams = ["127.0.0.53:53"]       # names outside the ledger go here
    allow = ["127.0.0.0/8", "::1/128"]  # who may ask for them (default: loopback, private)

    [dns.rrl]
    rate = 100                          # responses per second per client prefix; 0 = off
    exempt = ["127.0.0.0/8"]

    [[dns.tsig]]
    name = "update."
    algorithm = "hmac-sha256"
    secret = "base64..."

    [dns.update]
    keys = { "update." = "wallet/alice.key" }   # TSIG key -> the signing key it may use

    [dns.transfer]
    allow = ["127.0.0.1/32"]            # who may AXFR/IXFR
    tsig = ["xfr."]                     # if set, a transfer must also be signed with one of these
    notify = ["127.0.0.1:5300"]         # secondaries told about new serials

    [dns.tls]                           # DoT and DoH: `ledgerdns.dns.tls_settings`
    dot = "0.0.0.0:853"
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.errors import ConfigError
from ledgerdns.dns.tls_settings import KEYS as TLS_KEYS
from ledgerdns.dns.tls_settings import TlsSettings, parse_tls_settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK = ("127.0.0.0/8", "::1/128")
PRIVATE = (
    *LOOPBACK,
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
)
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")


def _networks(values: Any, key: str) -> tuple[Network, ...]:
    if not isinstance(values, list):
        raise ConfigError("expected a list of addresses or networks", key=key)
    try:
        return tuple(ipaddress.ip_network(str(v), strict=False) for v in values)
    except ValueError as exc:
        raise ConfigError(str(exc), key=key) from None


def _address(text: Any, key: str, default_port: int = 53) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT`` or ``[V6]:PORT`` (an IP address, not a name)."""
    if not isinstance(text, str):
        raise ConfigError(f"expected an address string, got {text!r}", key=key)
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ConfigError(f"bad address {text!r}", key=key)
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ConfigError(f"bad port in {text!r}", key=key)
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"not an IP address: {host!r}", key=key) from None
    if not 0 < port <= 65535:
        raise ConfigError(f"bad port in {text!r}", key=key)
    return host, port


def _absolute(name: Any, key: str) -> str:
    if not isinstance(name, str) or not name.strip("."):
        raise ConfigError(f"expected a key name, got {name!r}", key=key)
    return name.lower().rstrip(".") + "."


def in_networks(host: str, networks: tuple[Network, ...]) -> bool:
    """Whether the address `host` is inside one of `networks` (False if not an address)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in networks)


@dataclass(frozen=True, slots=True)
class TsigKey:
    """A shared secret for TSIG (RFC 8945).

    Attributes:
        name: the key name, absolute and lower case (``"update."``).
        algorithm: one of `TSIG_ALGORITHMS`.
        secret: the raw secret bytes.
    """

    name: str
    algorithm: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosSettings:
    """CHAOS-class TXT answers; an empty string refuses that question."""

    version: str = "ledgerdns"
    id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardSettings:
    """Forwarding of names outside the ledger TLDs (off when `upstreams` is empty).

    Attributes:
        upstreams: resolvers tried in order, as (ip, port).
        allow: client networks that may use forwarding; others get REFUSED.
        cache_entries: the most cached upstream answers.
        timeout_s: per-upstream time before the next one is tried.
        max_ttl: cached answers are kept at most this long.
    """

    upstreams: tuple[tuple[str, int], ...] = ()
    allow: tuple[Network, ...] = field(
        default_factory=lambda: tuple(ipaddress.ip_network(n) for n in PRIVATE)
    )
    cache_entries: int = 10_000
    timeout_s: float = 2.0
    max_ttl: int = 86_400


@dataclass(frozen=True, slots=True, kw_only=True)
class RrlSettings:
    """UDP response rate limiting per client prefix (0 = off).

    Attributes:
        rate: responses per second to one prefix before limiting starts.
        slip: while limited, every `slip`-th response goes out truncated (TC=1,
            so a real client retries over TCP); the rest are dropped. 0 drops all.
        ipv4_prefix, ipv6_prefix: how clients are grouped.
        exempt: networks never limited.
    """

    rate: int = 100
    slip: int = 2
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    exempt: tuple[Network, ...] = field(
        default_factory=lambda: tuple(ipaddress.ip_network(n) for n in PRIVATE)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateSettings:
    """RFC 2136 UPDATE: which TSIG key may sign with which wallet key.

    Attributes:
        keys: TSIG key name -> path of the signing key file that updates made
            with it are signed with (a key file, mode 0600).
        wait_s: how long an UPDATE waits for finality before SERVFAIL.
    """

    keys: Mapping[str, Path] = field(default_factory=dict)
    wait_s: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferSettings:
    """Zone transfers (AXFR/IXFR) and NOTIFY.

    Attributes:
        allow: networks that may transfer; empty refuses every transfer.
        tsig: if not empty, a transfer must also be signed with one of these keys.
        notify: secondaries (ip, port) sent NOTIFY when a zone's serial changes.
    """

    allow: tuple[Network, ...] = ()
    tsig: tuple[str, ...] = ()
    notify: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpSettings:
    """TCP limits (RFC 7766)."""

    max_connections: int = 100
    idle_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsSettings:
    """All of the ``[dns]`` configuration."""

    workers: int = 1
    chaos: ChaosSettings = field(default_factory=ChaosSettings)
    forward: ForwardSettings = field(default_factory=ForwardSettings)
    rrl: RrlSettings = field(default_factory=RrlSettings)
    tsig: Mapping[str, TsigKey] = field(default_factory=dict)
    update: UpdateSettings = field(default_factory=UpdateSettings)
    transfer: TransferSettings = field(default_factory=TransferSettings)
    tcp: TcpSettings = field(default_factory=TcpSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)


def _table(data: Mapping[str, Any], name: str, key: str, allowed: set[str]) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError("expected a table", key=key)
    unknown = set(value) - allowed
    if unknown:
        raise ConfigError(f"unknown key {sorted(unknown)[0]!r}", key=key)
    return value


def _int(value: Any, key: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ConfigError(f"must be an integer in {low}..{high}, not {value!r}", key=key)
    return value


def _seconds(value: Any, key: str) -> float:
    if type(value) not in (int, float) or not 0 < value <= 3600:
        raise ConfigError(f"must be a number of seconds in (0, 3600], not {value!r}", key=key)
    return float(value)


def _tsig_keys(values: Any) -> dict[str, TsigKey]:
    if not isinstance(values, list):
        raise ConfigError("expected an array of tables ([[dns.tsig]])", key="dns.tsig")
    keys: dict[str, TsigKey] = {}
    for i, entry in enumerate(values):
        where = f"dns.tsig[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"name", "algorithm", "secret"}:
            raise ConfigError("expected name, algorithm and secret", key=where)
        name = _absolute(entry.get("name"), f"{where}.name")
        algorithm = str(entry.get("algorithm", "hmac-sha256")).lower().rstrip(".")
        if algorithm not in TSIG_ALGORITHMS:
            raise ConfigError(f"unsupported algorithm {algorithm!r}", key=f"{where}.algorithm")
        try:
            secret = base64.b64decode(str(entry.get("secret", "")), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError("not base64", key=f"{where}.secret") from None
        if not secret:
            raise ConfigError("missing", key=f"{where}.secret")
        if name in keys:
            raise ConfigError(f"key {name} defined twice", key=where)
        keys[name] = TsigKey(name, algorithm, secret)
    return keys


def parse_dns_settings(data: Mapping[str, Any], *, base: Path | None = None) -> DnsSettings:
    """Settings from the parsed TOML document (only its ``dns`` table is read).

    Args:
        data: the whole document.
        base: relative key paths are resolved against this directory.

    Raises:
        ConfigError: an unknown key, a bad value, or a reference to an undefined TSIG key.
    """
    dns = _table(
        data,
        "dns",
        "dns",
        {"workers", "chaos", "forward", "rrl", "tsig", "update", "transfer", "tcp", "tls"},
    )
    chaos = _table(dns, "chaos", "dns.chaos", {"version", "id"})
    fwd = _table(
        dns,
        "forward",
        "dns.forward",
        {"upstreams", "allow", "cache_entries", "timeout_s", "max_ttl"},
    )
    rrl = _table(dns, "rrl", "dns.rrl", {"rate", "slip", "ipv4_prefix", "ipv6_prefix", "exempt"})
    upd = _table(dns, "update", "dns.update", {"keys", "wait_s"})
    xfr = _table(dns, "transfer", "dns.transfer", {"allow", "tsig", "notify"})
    tcp = _table(dns, "tcp", "dns.tcp", {"max_connections", "idle_timeout_s"})
    tsig = _tsig_keys(dns.get("tsig", []))
    tls = _table(dns, "tls", "dns.tls", set(TLS_KEYS))

    defaults_fwd, defaults_rrl = ForwardSettings(), RrlSettings()
    upstreams = fwd.get("upstreams", [])
    if not isinstance(upstreams, list):
        raise ConfigError("expected a list of addresses", key="dns.forward.upstreams")
    update_keys = upd.get("keys", {})
    if not isinstance(update_keys, dict):
        raise ConfigError("expected a table of key name = key file", key="dns.update.keys")
    mapped: dict[str, Path] = {}
    for name, path in update_keys.items():
        key_name = _absolute(name, "dns.update.keys")
        if key_name not in tsig:
            raise ConfigError(f"no [[dns.tsig]] key named {key_name}", key="dns.update.keys")
        if not isinstance(path, str) or not path:
            raise ConfigError(f"expected a key file path for {key_name}", key="dns.update.keys")
        file = Path(path).expanduser()
        mapped[key_name] = file if file.is_absolute() or base is None else base / file
    xfr_tsig = xfr.get("tsig", [])
    if not isinstance(xfr_tsig, list):
        raise ConfigError("expected a list of key names", key="dns.transfer.tsig")
    xfr_keys = tuple(_absolute(n, "dns.transfer.tsig") for n in xfr_tsig)
    for name in xfr_keys:
        if name not in tsig:
            raise ConfigError(f"no [[dns.tsig]] key named {name}", key="dns.transfer.tsig")
    notify = xfr.get("notify", [])
    if not isinstance(notify, list):
        raise ConfigError("expected a list of addresses", key="dns.transfer.notify")

    for text_key in ("version", "id"):
        if not isinstance(chaos.get(text_key, ""), str) or len(chaos.get(text_key, "")) > 255:
            raise ConfigError(
                "expected a string of at most 255 characters", key=f"dns.chaos.{text_key}"
            )
    return DnsSettings(
        workers=_int(dns.get("workers", 1), "dns.workers", 0, 16),
        chaos=ChaosSettings(**chaos),
        forward=ForwardSettings(
            upstreams=tuple(_address(u, "dns.forward.upstreams") for u in upstreams),
            allow=_networks(fwd["allow"], "dns.forward.allow")
            if "allow" in fwd
            else defaults_fwd.allow,
            cache_entries=_int(
                fwd.get("cache_entries", 10_000), "dns.forward.cache_entries", 0, 10**7
            ),
            timeout_s=_seconds(fwd.get("timeout_s", 2.0), "dns.forward.timeout_s"),
            max_ttl=_int(fwd.get("max_ttl", 86_400), "dns.forward.max_ttl", 0, 2**31 - 1),
        ),
        rrl=RrlSettings(
            rate=_int(rrl.get("rate", defaults_rrl.rate), "dns.rrl.rate", 0, 10**7),
            slip=_int(rrl.get("slip", defaults_rrl.slip), "dns.rrl.slip", 0, 10),
            ipv4_prefix=_int(rrl.get("ipv4_prefix", 24), "dns.rrl.ipv4_prefix", 8, 32),
            ipv6_prefix=_int(rrl.get("ipv6_prefix", 56), "dns.rrl.ipv6_prefix", 16, 128),
            exempt=_networks(rrl["exempt"], "dns.rrl.exempt")
            if "exempt" in rrl
            else defaults_rrl.exempt,
        ),
        tsig=tsig,
        update=UpdateSettings(
            keys=mapped, wait_s=_seconds(upd.get("wait_s", 30.0), "dns.update.wait_s")
        ),
        transfer=TransferSettings(
            allow=_networks(xfr.get("allow", []), "dns.transfer.allow"),
            tsig=xfr_keys,
            notify=tuple(_address(a, "dns.transfer.notify") for a in notify),
        ),
        tcp=TcpSettings(
            max_connections=_int(
                tcp.get("max_connections", 100), "dns.tcp.max_connections", 1, 100_000
            ),
            idle_timeout_s=_seconds(tcp.get("idle_timeout_s", 10.0), "dns.tcp.idle_timeout_s"),
        ),
        tls=parse_tls_settings(tls, base=base),
    )


def load_dns_settings(path: Path) -> DnsSettings:
    """Settings from the TOML file at `path`.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has a bad ``[dns]`` table.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_dns_settings(data, base=path.parent)
