"""The node's DNS server, put together from its settings file and command line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ledgerdns.clock import SYSTEM_CLOCK, Clock
from ledgerdns.dns.faces import BlockFeed, Writer
from ledgerdns.dns.forward import Forwarder
from ledgerdns.dns.notify import Notifier
from ledgerdns.dns.proofs import ProofSource
from ledgerdns.dns.server import DnsServer
from ledgerdns.dns.settings import DnsSettings, load_dns_settings
from ledgerdns.dns.signing_times import SigningTimes
from ledgerdns.dns.update import Updater
from ledgerdns.dns.xfr import Transfers, TransferSource
from ledgerdns.dns.zone import ZoneConfig
from ledgerdns.keyfiles import load_signers
from ledgerdns.node.config import NodeConfig

TSIG_TIMES_FILE = "tsig-times.json"  # the UPDATE replay memory (docs/dns.md)


class ServedChain(TransferSource, ProofSource, Protocol):
    """The finalized chain as the DNS server reads it: zones, transfers, proofs (a `Ledger`)."""


@dataclass(frozen=True, slots=True)
class Faces:
    """The DNS server's optional faces, as one settings file turns them on."""

    forwarder: Forwarder | None
    updater: Updater | None
    transfers: Transfers | None
    notifier: Notifier | None


class DnsFaces:
    """Builds the faces from the settings: at start, and again on each reload (SIGHUP).

    Every `Updater` it builds shares one UPDATE replay memory
    (``DATA_DIR/tsig-times.json``), so a reload never forgets a signature seen.
    """

    def __init__(
        self, config: NodeConfig, *, chain: ServedChain, writer: Writer, clock: Clock
    ) -> None:
        self._config = config
        self._chain = chain
        self._writer = writer
        self._clock = clock
        self._times: SigningTimes | None = None
        self.zone = ZoneConfig(server_name=config.dns_name) if config.dns_name else ZoneConfig()

    def build(self, settings: DnsSettings) -> Faces:
        """The faces `settings` ask for.

        Raises:
            ConfigError: a key file ``[dns.update] keys`` names cannot be used, or
                the TSIG replay memory cannot be read.
        """
        chain, zone, now_s = self._chain, self.zone, self._clock.now_s
        forwarder = Forwarder(settings.forward) if settings.forward.upstreams else None
        updater = None
        if settings.update.keys:
            signers = load_signers(settings.update.keys)
            if self._times is None:
                self._times = SigningTimes(self._config.data_dir / TSIG_TIMES_FILE)
            updater = Updater(
                settings, chain, self._writer, signers=signers, zone=zone,
                signing_times=self._times, now_s=now_s,
            )  # fmt: skip
        transfer = settings.transfer
        transfers = Transfers(settings, chain, zone, now_s=now_s) if transfer.allow else None
        notifier = Notifier(settings, chain, zone) if transfer.notify else None
        return Faces(forwarder, updater, transfers, notifier)


def build_dns_server(
    config: NodeConfig,
    *,
    chain: ServedChain,
    blocks: BlockFeed,
    writer: Writer,
    clock: Clock = SYSTEM_CLOCK,
    settings: DnsSettings | None = None,
    faces: DnsFaces | None = None,
) -> DnsServer:
    """The DNS server for a node, with the faces its settings turn on.

    It reads the finalized `chain`, follows it block by block (`blocks`), and
    turns UPDATEs into transactions through `writer`; UPDATE and transfers
    read TSIG times and transaction deadlines from `clock`.

    Args:
        settings: the ``[dns]`` settings (default: read from the settings file).
        faces: the builder of its faces, kept to rebuild them on reload.

    Raises:
        ConfigError: a bad settings file or a key file it names (the error names
            the setting, ``dns.update.keys."NAME"``), or an unreadable
            TSIG replay memory (``DATA_DIR/tsig-times.json``).
    """
    if settings is None:
        path = config.settings_path
        settings = load_dns_settings(path) if path is not None else DnsSettings()
    faces = faces or DnsFaces(config, chain=chain, writer=writer, clock=clock)
    built = faces.build(settings)
    host, port = config.dns
    return DnsServer(
        chain,
        host,
        port,
        blocks=blocks,
        config=faces.zone,
        settings=settings,
        forwarder=built.forwarder,
        updater=built.updater,
        transfers=built.transfers,
        notifier=built.notifier,
        proofs=chain,
        now_s=clock.now_s,
    )
