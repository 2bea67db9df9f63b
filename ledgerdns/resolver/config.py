"""What `ledgerdns resolver` is told: the trusted genesis, upstreams, listen address, bounds.

Built once from the command line (`ResolverConfig.from_flags`); every mistake is
a `ConfigError` naming the flag, so the command exits 2 with one line.

The freshness bound (``--max-staleness``) defaults to the genesis's
`chain.lightclient.default_max_age_ms`: two heartbeats plus a minute. A genesis
without a heartbeat has no such default (an idle network's newest block may be
any age, so an old header cannot be told from a node hiding newer ones): the
resolver then refuses to start unless ``--max-staleness`` is given. See
docs/resolver.md.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from chain.errors import ConfigError
from chain.genesis import Genesis
from chain.lightclient import default_max_age_ms

Address = tuple[str, int]

# A certified header older than this is never accepted, whatever the flag says: a
# light client trusting year-old state has no freshness at all.
MAX_STALENESS_LIMIT_S = 30 * 86400


def parse_address(text: str, flag: str) -> Address:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) with a literal IP address, as ``(host, port)``.

    Raises:
        ConfigError: not that shape, not an IP address, or the port out of 0..65535.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"expected HOST:PORT, got {text!r}", key=flag)
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(
            f"{host!r} is not an IP address (names are not looked up)", key=flag
        ) from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{port_text!r} is not a port (0..65535)", key=flag)
    return host, int(port_text)


def format_address(address: Address) -> str:
    """``HOST:PORT``, with brackets around an IPv6 host."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def load_genesis(path: Path) -> Genesis:
    """The trusted genesis file.

    Raises:
        ConfigError: it cannot be read or is not a valid genesis.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", key="--genesis") from None
    try:
        return Genesis.from_json(text)
    except ConfigError as exc:
        raise ConfigError(f"{path} is not a valid genesis: {exc}", key="--genesis") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolverConfig:
    """The resolver's settings, checked.

    Attributes:
        genesis: the trusted genesis.
        upstreams: ledger nodes asked for proofs, in order.
        listen: where to serve DNS (UDP and TCP); port 0 picks a free one.
        forwards: resolvers for names outside the ledger (none: REFUSED).
        max_age_ms: the oldest certified header accepted, in ms.
        bound_from: where `max_age_ms` comes from, for the READY line and logs.
        timeout_s: how long one upstream has to answer before the next is asked.
    """

    genesis: Genesis
    upstreams: tuple[Address, ...]
    listen: Address
    forwards: tuple[Address, ...] = ()
    max_age_ms: int
    bound_from: str
    timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.upstreams:
            raise ConfigError(
                "give at least one ledger node: --upstream HOST:PORT", key="--upstream"
            )
        if not 0 < self.max_age_ms <= MAX_STALENESS_LIMIT_S * 1000:
            raise ConfigError(
                f"must be more than 0 and at most {MAX_STALENESS_LIMIT_S} seconds",
                key="--max-staleness",
            )
        if not 0 < self.timeout_s <= 60:
            raise ConfigError("must be more than 0 and at most 60 seconds", key="--timeout")

    @classmethod
    def from_flags(
        cls,
        *,
        genesis: str,
        upstreams: list[str],
        listen: str,
        forwards: list[str],
        max_staleness_s: float | None,
        timeout_s: float,
    ) -> ResolverConfig:
        """Check the command line's values (see `ledgerdns resolver --help`).

        Raises:
            ConfigError: naming the flag at fault.
        """
        trusted = load_genesis(Path(genesis))
        if max_staleness_s is not None:
            max_age_ms, bound_from = round(max_staleness_s * 1000), "--max-staleness"
        else:
            default = default_max_age_ms(trusted.params)
            if default is None:
                raise ConfigError(
                    "the genesis sets no heartbeat, so an idle network's newest block may be any age "
                    "and the resolver cannot tell it from a node hiding newer blocks: say how old "
                    "a certified header may be, e.g. --max-staleness 3600",
                    key="--max-staleness",
                )
            heartbeat_s = trusted.params.consensus.heartbeat_ms / 1000
            max_age_ms, bound_from = default, f"the genesis heartbeat of {heartbeat_s:g} s"
        return cls(
            genesis=trusted,
            upstreams=tuple(parse_address(u, "--upstream") for u in upstreams),
            listen=parse_address(listen, "--listen"),
            forwards=tuple(parse_address(f, "--forward") for f in forwards),
            max_age_ms=max_age_ms,
            bound_from=bound_from,
            timeout_s=timeout_s,
        )
