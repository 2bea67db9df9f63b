"""The node's DNS server, put together from its settings file and command line."""

from __future__ import annotations

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


def build_dns_server(
    config: NodeConfig,
    *,
    chain: ServedChain,
    blocks: BlockFeed,
    writer: Writer,
    clock: Clock = SYSTEM_CLOCK,
) -> DnsServer:
    """The DNS server for a node, with the faces its settings turn on.

    It reads the finalized `chain`, follows it block by block (`blocks`), and
    turns UPDATEs into transactions through `writer`; UPDATE and transfers
    read TSIG times and transaction deadlines from `clock`.

    Raises:
        ConfigError: a bad settings file or a key file it names (the error names
            the setting, ``dns.update.keys."NAME"``), or an unreadable
            TSIG replay memory (``DATA_DIR/tsig-times.json``).
    """
    path = config.settings_path
    settings = load_dns_settings(path) if path is not None else DnsSettings()
    zone = ZoneConfig(server_name=config.dns_name) if config.dns_name else ZoneConfig()
    host, port = config.dns
    forwarder = Forwarder(settings.forward) if settings.forward.upstreams else None
    updater = None
    if settings.update.keys:
        signers = load_signers(settings.update.keys)
        times = SigningTimes(config.data_dir / TSIG_TIMES_FILE)
        updater = Updater(
            settings, chain, writer, signers=signers, zone=zone, signing_times=times,
            now_s=clock.now_s,
        )  # fmt: skip
    transfer = settings.transfer
    transfers = Transfers(settings, chain, zone, now_s=clock.now_s) if transfer.allow else None
    notifier = Notifier(settings, chain, zone) if transfer.notify else None
    return DnsServer(
        chain,
        host,
        port,
        blocks=blocks,
        config=zone,
        settings=settings,
        forwarder=forwarder,
        updater=updater,
        transfers=transfers,
        notifier=notifier,
        proofs=chain,
    )
