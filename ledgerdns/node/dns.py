"""The node's DNS server, put together from its settings file and command line."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

from chain.errors import ConfigError
from chain.genesis import Genesis
from ledgerdns.clock import SYSTEM_CLOCK, Clock
from ledgerdns.dns.doh import DohFront
from ledgerdns.dns.faces import BlockFeed, Writer
from ledgerdns.dns.forward import Forwarder
from ledgerdns.dns.notify import Notifier
from ledgerdns.dns.proofs import ProofSource
from ledgerdns.dns.server import DnsServer
from ledgerdns.dns.settings import DnsSettings, load_dns_settings
from ledgerdns.dns.signing_times import SigningTimes
from ledgerdns.dns.tcp import CappedListener, TcpFront
from ledgerdns.dns.tls import DOH_ALPN, DOT_ALPN, server_context, write_self_signed
from ledgerdns.dns.update import Updater
from ledgerdns.dns.xfr import Transfers, TransferSource
from ledgerdns.dns.zone import DEFAULT_SERVER_NAME, ZoneConfig
from ledgerdns.keyfiles import load_signers
from ledgerdns.node.config import NodeConfig

log = logging.getLogger("ledgerdns.node")

TSIG_TIMES_FILE = "tsig-times.json"  # the UPDATE replay memory (docs/dns.md)
SELF_SIGNED = ("tls.crt", "tls.key")  # a devnet's DoT/DoH pair, in its data directory


class ServedChain(TransferSource, ProofSource, Protocol):
    """The finalized chain as the DNS server reads it: zones, transfers, proofs (a `Ledger`)."""


def zone_config(config: NodeConfig, nameservers: tuple[str, ...]) -> ZoneConfig:
    """What the synthesized SOA and NS say: the network's nameserver set from genesis
    when it has one (every node answers the same NS), else this node's ``--dns-name``."""
    zone = ZoneConfig(server_name=config.dns_name or DEFAULT_SERVER_NAME, nameservers=nameservers)
    if nameservers and config.dns_name and zone.server_name not in nameservers:
        log.warning(
            "dns name %s is not in the network's nameserver set (%s): SOA and NS name the set",
            zone.server_name, ", ".join(nameservers),
        )  # fmt: skip
    return zone


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
        self.zone = zone_config(config, chain.params.nameservers)

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


@dataclass(frozen=True, slots=True)
class TlsFace:
    """DNS over TLS or over HTTPS, ready to `front.run(*address)`."""

    name: str  # its key in the READY line: "dot" or "doh"
    option: str  # how a bind failure names it: "DoT (--dot)"
    address: tuple[str, int]
    front: CappedListener


def build_tls_faces(
    config: NodeConfig, server: DnsServer, genesis: Genesis, *, clock: Clock = SYSTEM_CLOCK
) -> list[TlsFace]:
    """DoT and DoH as the flags (first) and ``[dns.tls]`` ask; none if neither has an address.

    Both answer with the TCP answer path of `server`. Without a certificate a
    devnet (no ``--genesis``, one validator) uses, or first makes, a self-signed
    pair in its data directory; any other node must be given one.

    Raises:
        ConfigError: a bad settings file, no certificate, or one that cannot be used.
    """
    path = config.settings_path
    tls = (load_dns_settings(path) if path is not None else DnsSettings()).tls
    asked = [
        ("dot", "DoT (--dot)", config.dot or tls.dot),
        ("doh", "DoH (--doh)", config.doh or tls.doh),
    ]
    wanted = [(name, option, address) for name, option, address in asked if address is not None]
    if not wanted:
        return []
    cert, key = (config.tls_cert, config.tls_key) if config.tls_cert else (tls.cert, tls.key)
    if cert is None or key is None:
        if config.genesis_file is not None or len(genesis.params.validators.keys) != 1:
            raise ConfigError(
                "--dot/--doh need a certificate: --tls-cert FILE --tls-key FILE "
                "(or cert and key in [dns.tls] of node.toml)"
            )
        cert, key = (config.data_dir / name for name in SELF_SIGNED)
        if not (cert.exists() and key.exists()):
            _self_sign(cert, key, [address for _, _, address in wanted], config, clock)

    faces = []
    for name, option, address in wanted:
        front: CappedListener
        if name == "dot":
            front = TcpFront(
                partial(server.dispatch, tcp=True, transport="dot"),  # the TCP answer path
                idle_s=tls.idle_timeout_s,
                max_connections=tls.max_connections,
                tls=server_context(cert, key, DOT_ALPN),
            )
        else:
            front = DohFront(
                partial(server.dispatch, tcp=True, transport="doh"),
                context=server_context(cert, key, DOH_ALPN),
                idle_s=tls.idle_timeout_s,
                max_connections=tls.max_connections,
            )
        faces.append(TlsFace(name, option, address, front))
    return faces


def _self_sign(
    cert: Path, key: Path, addresses: list[tuple[str, int]], config: NodeConfig, clock: Clock
) -> None:
    names = ["localhost", "127.0.0.1", "::1"]
    for host, _ in addresses:
        if host not in (*names, "0.0.0.0", "::"):
            names.append(host)
    if config.dns_name:
        names.insert(0, config.dns_name.rstrip("."))
    now = datetime.datetime.fromtimestamp(clock.now_ms() / 1000, datetime.UTC)
    write_self_signed(cert, key, names=names, now=now)
    log.info("made a self-signed DoT/DoH certificate %s for %s", cert, ", ".join(names))
