"""A node's settings and its data directory.

Layout of a data directory (created on first start):

- ``genesis.json``   the network this directory belongs to (copied or, for the
                     devnet, generated).
- ``validator.pem``  the validator key (devnet: generated; a network's
                     validators put theirs here or pass ``--validator-key``).
- ``node.key``       the libp2p identity (stable peer id).
- ``guard``          the signing guard (what this validator signed last).
- ``chain/``         LevelDB: blocks, certificates, state.
- ``rpc.token``      the RPC bearer token (0600).
- ``node.toml``      optional settings (``[dns]``: forwarding, RRL, TSIG,
                     UPDATE, transfers; ``[log]``; see docs/dns.md); ``--config``
                     names another; read again on SIGHUP.
- ``snapshots/``     state snapshots served to nodes joining by state sync
                     (one directory per height; docs/operations.md).
- ``tls.crt``, ``tls.key``  the devnet's self-signed DoT/DoH pair, made when
                     ``--dot``/``--doh`` is asked without a certificate.
- ``node.json``      written once ready: the bound addresses (read by the
                     wallet's ``--node`` and by tools).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from chain.crypto import PrivateKey
from chain.errors import ConfigError
from chain.genesis import Genesis, make_single_validator_genesis
from ledgerdns.clock import SYSTEM_CLOCK, Clock
from ledgerdns.keyfiles import create_key, load_key

# 8553, not 5353 (mDNS: taken wherever avahi runs) nor the other usual stand-ins for 53:
# 5335 (unbound under Pi-hole), 8053 (BIND's statistics channel), 5053 (cloudflared),
# 5300/1053 (PowerDNS and CoreDNS examples). No /etc/services entry; nmap calls it unknown.
DEFAULT_DNS = "127.0.0.1:8553"
DEFAULT_RPC = "127.0.0.1:8353"
DEFAULT_P2P = "/ip4/127.0.0.1/tcp/4747"
DEFAULT_SNAPSHOT_INTERVAL = 1000


def parse_host_port(text: str, what: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:53``) → (host, port); port 0 allowed.

    Raises:
        ConfigError: not a host and port.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"expected HOST:PORT, got {text!r}", key=what)
    host = host.removeprefix("[").removesuffix("]")
    if not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"bad port in {text!r}", key=what)
    return host, int(port)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """Everything `ledgerdns node` was told."""

    data_dir: Path
    genesis_file: Path | None = None
    validator_key_file: Path | None = None
    dns: tuple[str, int] = ("127.0.0.1", 8553)
    rpc: tuple[str, int] = ("127.0.0.1", 8353)
    p2p: tuple[str, ...] = (DEFAULT_P2P,)
    bootstrap: tuple[str, ...] = ()
    mdns: bool = False
    dns_name: str | None = None  # the public host name put in synthesized SOA/NS records
    progress: bool = True  # progress bar for sync when stderr is a terminal
    config_file: Path | None = (
        None  # the TOML settings file (default DATA_DIR/node.toml, if present)
    )
    metrics: tuple[str, int] | None = None  # --metrics: Prometheus metrics and health probes
    state_sync: bool = False  # join from a peer's snapshot when the data directory is new
    state_sync_wait_s: float = 60.0  # how long to look for a snapshot before syncing blocks
    snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL  # take a snapshot every N heights (0: none)
    retain_blocks: int = 0  # keep only the last N blocks (0: every block, an archive node)
    dot: tuple[str, int] | None = None  # DNS over TLS listen address (else [dns.tls] dot)
    doh: tuple[str, int] | None = None  # DNS over HTTPS listen address (else [dns.tls] doh)
    tls_cert: Path | None = None  # the DoT/DoH certificate and key (else [dns.tls] cert, key)
    tls_key: Path | None = None
    log_level: str | None = None  # --log-level (None: the settings file's, else info)
    query_log: Path | None = None  # --query-log (None: the settings file's [log] queries)

    @property
    def settings_path(self) -> Path | None:
        """The TOML settings file to read, if any."""
        if self.config_file is not None:
            return self.config_file
        default = self.data_dir / "node.toml"
        return default if default.exists() else None

    @property
    def key_path(self) -> Path:
        """The validator key file."""
        return self.validator_key_file or self.data_dir / "validator.pem"


def read_genesis(path: Path) -> Genesis:
    """Load a genesis file with errors naming the file.

    Raises:
        ConfigError: unreadable or invalid.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        return Genesis.from_json(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Prepared:
    """The data directory, ready to open: genesis, and the validator key if this node is one."""

    genesis: Genesis
    key: PrivateKey | None
    validator_name: str | None
    created_devnet: bool


def prepare_data_dir(config: NodeConfig, clock: Clock = SYSTEM_CLOCK) -> Prepared:
    """Create or check the data directory; decide validator or follower.

    With no ``--genesis``: reuse the directory's ``genesis.json``, or create a
    single-validator devnet (key and genesis) on first start. With one: it must
    match the directory's copy, if any. A new devnet's genesis time is `clock`'s now.

    Raises:
        ConfigError: a mismatch or bad file, with what to do about it.
    """
    data = config.data_dir
    try:
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data, 0o700)
    except OSError as exc:
        raise ConfigError(f"cannot use data directory {data}: {exc}") from None
    stored = data / "genesis.json"
    created = False
    if config.genesis_file is not None:
        genesis = read_genesis(config.genesis_file)
        if stored.exists():
            if read_genesis(stored).hash() != genesis.hash():
                raise ConfigError(
                    f"{data} belongs to another network than {config.genesis_file}; "
                    "use a fresh --data-dir for it"
                )
        else:
            stored.write_text(genesis.to_json())
    elif stored.exists():
        genesis = read_genesis(stored)
    else:
        key_path = config.key_path
        devnet_key = load_key(key_path) if key_path.exists() else create_key(key_path)
        genesis = make_single_validator_genesis(
            devnet_key.public_key, genesis_time_ms=clock.now_ms()
        )
        stored.write_text(genesis.to_json())
        created = True
    key: PrivateKey | None = None
    name = None
    if config.key_path.exists():
        # Kept even when it is no genesis validator's: the set changes on chain
        # (chain/validators.py), so the key may be in it now or join later. Until it is
        # in the set of a height the node follows; from that height on it votes.
        key = load_key(config.key_path)
        index = genesis.params.validators.index_of(key.public_key)
        if index is not None:
            name = genesis.validator_names[index]
    elif config.validator_key_file is not None:
        raise ConfigError(f"validator key {config.validator_key_file} does not exist")
    return Prepared(genesis=genesis, key=key, validator_name=name, created_devnet=created)
