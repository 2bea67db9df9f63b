"""The node's settings file (``node.toml``) as a whole: read, checked, described, re-read.

Its tables are ``[dns]`` (`ledgerdns.dns.settings`) and ``[log]``::

    [log]
    level = "info"              # debug, info, warning or error (--log-level wins)
    queries = "queries.jsonl"   # a JSON query log, one object per query (--query-log wins;
                                # a relative path is read from this file's directory)

The node reads it at start and again on SIGHUP (`ledgerdns.node.reload`);
``ledgerdns node --check-config`` reports every problem in it, one line each
(`settings_problems`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.errors import ConfigError
from ledgerdns.dns.settings import DnsSettings, ForwardSettings, parse_dns_settings
from ledgerdns.keyfiles import load_signer

LOG_LEVELS = ("debug", "info", "warning", "error")
TABLES = ("dns", "log")
_MAX_PROBLEMS = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    """The ``[log]`` table (None: not set in the file).

    Attributes:
        level: the log level.
        queries: where the JSON query log goes (``ledgerdns.dns.querylog``).
    """

    level: str | None = None
    queries: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSettings:
    """Everything the settings file says (the defaults when there is none).

    Attributes:
        path: the file read, or None.
    """

    path: Path | None = None
    dns: DnsSettings = field(default_factory=DnsSettings)
    log: LogSettings = field(default_factory=LogSettings)


def read_document(path: Path) -> dict[str, Any]:
    """The parsed TOML of `path`.

    Raises:
        ConfigError: unreadable, or not TOML (the error names the file).
    """
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def parse_log_settings(data: Mapping[str, Any], *, base: Path | None = None) -> LogSettings:
    """The ``[log]`` table of the document `data`.

    Raises:
        ConfigError: an unknown key or a bad value.
    """
    table = data.get("log", {})
    if not isinstance(table, dict):
        raise ConfigError("expected a table", key="log")
    unknown = set(table) - {"level", "queries"}
    if unknown:
        raise ConfigError(f"unknown key {sorted(unknown)[0]!r}", key="log")
    level = table.get("level")
    if level is not None and level not in LOG_LEVELS:
        raise ConfigError(
            f"expected one of {', '.join(LOG_LEVELS)}, not {level!r}", key="log.level"
        )
    queries = table.get("queries")
    if queries is not None and (not isinstance(queries, str) or not queries):
        raise ConfigError(f"expected a file path, not {queries!r}", key="log.queries")
    path = Path(queries).expanduser() if queries else None
    if path is not None and not path.is_absolute() and base is not None:
        path = base / path
    return LogSettings(level=level, queries=path)


def parse_node_settings(data: Mapping[str, Any], *, path: Path | None = None) -> NodeSettings:
    """Settings from the whole parsed document; `path` is the file it came from.

    Raises:
        ConfigError: the first problem found (an unknown table, key or value).
    """
    for name in data:
        if name not in TABLES:
            raise ConfigError(f"unknown table (known: {', '.join(TABLES)})", key=name)
    base = path.parent if path is not None else None
    return NodeSettings(
        path=path,
        dns=parse_dns_settings(data, base=base),
        log=parse_log_settings(data, base=base),
    )


def load_node_settings(path: Path | None) -> NodeSettings:
    """The settings in `path` (the defaults for None).

    Raises:
        ConfigError: the file cannot be read or has a problem (the first one).
    """
    if path is None:
        return NodeSettings()
    return parse_node_settings(read_document(path), path=path)


def settings_problems(path: Path) -> list[str]:
    """Every problem in the settings file `path`, one line each (empty: it is fine).

    The parser stops at the first problem; each one found is taken out of the
    document (the key it names) and the rest parsed again, so one run lists
    them all. The UPDATE signing key files it names are opened too.
    """
    try:
        data = read_document(path)
    except ConfigError as exc:
        return [str(exc)]
    problems: list[str] = []
    for _ in range(_MAX_PROBLEMS):
        try:
            settings = parse_node_settings(data, path=path)
        except ConfigError as exc:
            problems.append(str(exc))
            if not _drop(data, exc.key):
                return problems
            continue
        for name, key_file in settings.dns.update.keys.items():
            try:
                load_signer(name, key_file)
            except ConfigError as exc:
                problems.append(str(exc))
        return problems
    return problems


def _drop(data: dict[str, Any], key: str | None) -> bool:
    """Remove what `key` (``dns.forward.upstreams``, ``dns.tsig[1].name``) names from `data`."""
    if not key:
        return False
    node: Any = data
    parts = key.split(".")
    for position, part in enumerate(parts):
        name, _, index_text = part.partition("[")
        last = position == len(parts) - 1
        if not isinstance(node, dict) or name not in node:
            return False
        if not index_text:
            if last:
                del node[name]
                return True
            node = node[name]
            continue
        items = node[name]
        index = int(index_text.rstrip("]")) if index_text.rstrip("]").isdigit() else -1
        if not isinstance(items, list) or not 0 <= index < len(items):
            return False
        if last:
            del items[index]
            return True
        node = items[index]
    return False


def describe(settings: NodeSettings) -> str:
    """One line for the log: which file, and what it turns on."""
    dns = settings.dns
    parts = []
    fwd = dns.forward
    if fwd.upstreams:
        upstreams = ",".join(f"{h}:{p}" for h, p in fwd.upstreams)
        parts.append(f"forwarding to {upstreams} for {_nets(fwd.allow)}")
    else:
        parts.append("no forwarding")
    parts.append(f"rrl {dns.rrl.rate}/s" if dns.rrl.rate else "rrl off")
    parts.append(f"tsig keys {','.join(sorted(dns.tsig))}" if dns.tsig else "no tsig keys")
    if dns.update.keys:
        parts.append(f"update with {','.join(sorted(dns.update.keys))}")
    if dns.transfer.allow:
        signed = f" signed with {','.join(dns.transfer.tsig)}" if dns.transfer.tsig else ""
        parts.append(f"transfers to {_nets(dns.transfer.allow)}{signed}")
    if dns.transfer.notify:
        parts.append(f"notify {','.join(f'{h}:{p}' for h, p in dns.transfer.notify)}")
    parts.append(f"workers {dns.workers}")
    if settings.log.level:
        parts.append(f"log level {settings.log.level}")
    if settings.log.queries:
        parts.append(f"query log {settings.log.queries}")
    source = f"settings {settings.path}" if settings.path else "no settings file (defaults)"
    return f"{source}: {'; '.join(parts)}"


def _nets(networks: tuple[Any, ...]) -> str:
    if networks == ForwardSettings().allow:
        return "loopback and private networks"
    return ",".join(str(n) for n in networks) or "nobody"
