"""Reading the settings file again while running (SIGHUP), and what it starts.

`Reloader.start` applies the settings file at start: the log level, the JSON
query log, and one log line saying which file was read and what it turned on.
`Reloader.reload` (SIGHUP) reads it again and, if it is good, hands the DNS
server its new forwarding, TSIG keys, UPDATE and transfer faces (queries in
flight finish with the old ones: none is dropped), sets the log level, and
reopens the query log (so logrotate can move it). A bad file changes nothing
and is logged in one line. Some settings only take effect at a restart
(`DnsServer.reconfigure` says which): each is logged as such.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from chain.errors import ConfigError
from ledgerdns.clock import Clock
from ledgerdns.dns.querylog import QueryLog
from ledgerdns.dns.server import DnsServer
from ledgerdns.node.config import NodeConfig
from ledgerdns.node.dns import DnsFaces
from ledgerdns.node.settings_file import NodeSettings, describe, load_node_settings

log = logging.getLogger("ledgerdns.node")

DEFAULT_LEVEL = "info"


class Reloader:
    """Applies the node's settings file to a running node: at start and on SIGHUP.

    Args:
        config: the command line (its ``--log-level`` and ``--query-log`` win over the file).
        settings: the settings the node started with.
        server: the DNS server.
        faces: the builder of the server's faces.
        clock: the wall clock (the query log's times).
    """

    def __init__(
        self,
        config: NodeConfig,
        settings: NodeSettings,
        server: DnsServer,
        faces: DnsFaces,
        clock: Clock,
    ) -> None:
        self._config = config
        self.settings = settings
        self._server = server
        self._faces = faces
        self._clock = clock
        self._logged_from_start = False
        self.reloads = 0  # good reloads
        self.failures = 0  # bad files, kept out

    def start(self) -> None:
        """Open the query log, set the log level, and log what the settings turned on.

        Raises:
            ConfigError: the query log cannot be opened.
        """
        self._server.query_log = self._query_log(self.settings, None)
        # With it on from the start the UDP workers get no name table, so every query
        # reaches the node; turned on by a reload, they answer registered names alone
        # (unlogged) until the next restart.
        self._logged_from_start = self._server.query_log is not None
        _set_level(self._level(self.settings))
        log.info("%s", describe(self._effective(self.settings)))

    def close(self) -> None:
        """Close the query log."""
        if self._server.query_log is not None:
            self._server.query_log.close()
            self._server.query_log = None

    def reload(self) -> bool:
        """Read the settings file again and apply it; False (and one log line) if it is bad."""
        path = self._config.settings_path
        try:
            settings = load_node_settings(path)
            faces = self._faces.build(settings.dns)
            query_log = self._query_log(settings, self._server.query_log)
        except ConfigError as exc:
            self.failures += 1
            where = str(path) if path is not None else "defaults"
            text = str(exc).removeprefix(f"{where}: ")
            log.error("reload of %s failed, the running settings are kept: %s", where, text)
            return False
        later = self._server.reconfigure(
            settings.dns, forwarder=faces.forwarder, updater=faces.updater,
            transfers=faces.transfers, notifier=faces.notifier,
        )  # fmt: skip
        old_log, self._server.query_log = self._server.query_log, query_log
        if old_log is not None and old_log is not query_log:
            old_log.close()
        _set_level(self._level(settings))
        self.settings = settings
        self.reloads += 1
        log.info("reloaded %s", describe(self._effective(settings)))
        for name in later:
            log.warning("reload: %s changed; it takes effect at the next restart", name)
        if query_log is not None and not self._logged_from_start and self._server.worker_pids:
            log.warning(
                "reload: the query log is on, but until the next restart the UDP workers "
                "answer registered names from their own tables, and those queries are not logged"
            )
        return True

    # -- what the flags and the file say together --

    def _level(self, settings: NodeSettings) -> str:
        return self._config.log_level or settings.log.level or DEFAULT_LEVEL

    def _log_path(self, settings: NodeSettings) -> Path | None:
        return self._config.query_log or settings.log.queries

    def _effective(self, settings: NodeSettings) -> NodeSettings:
        log_settings = replace(
            settings.log, level=self._level(settings), queries=self._log_path(settings)
        )
        return replace(settings, log=log_settings)

    def _query_log(self, settings: NodeSettings, current: QueryLog | None) -> QueryLog | None:
        """The query log `settings` ask for: `current` reopened if the same file, else a new one.

        Raises:
            ConfigError: the file cannot be opened.
        """
        path = self._log_path(settings)
        if path is None:
            return None
        try:
            if current is not None and current.path == path:
                current.reopen()
                return current
            return QueryLog(path, self._clock.now_ms)
        except OSError as exc:
            raise ConfigError(f"cannot open {path}: {exc.strerror}", key="log.queries") from None


def _set_level(level: str) -> None:
    logging.getLogger().setLevel(getattr(logging, level.upper()))
