"""The node's persistent libp2p identity: an ed25519 key kept in one 0600 file."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.identity_utils import load_identity, save_identity
from libp2p.peer.id import ID

from ledgerdns.p2p.errors import P2PError

log = logging.getLogger(__name__)


def load_or_create_identity(path: Path) -> KeyPair:
    """Load the node key from `path`, creating it (mode 0600) on first start.

    The file holds the private key in libp2p's protobuf encoding, so the peer id
    is the same on every start.

    Raises:
        P2PError: the file exists but cannot be read, is readable by group or
            others (whoever reads it can pose as this node), or is not a libp2p
            private key.
    """
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise P2PError(
                f"node key {path} is readable by other users (mode {mode:o}); run: chmod 600 {path}"
            )
        try:
            return load_identity(path)
        except (OSError, ValueError) as exc:
            raise P2PError(f"cannot load node key {path}: {exc}") from exc
    key_pair = create_new_key_pair()
    try:
        save_identity(key_pair, path)
    except OSError as exc:
        raise P2PError(f"cannot write node key {path}: {exc}") from exc
    log.info("created node key path=%s peer=%s", path, ID.from_pubkey(key_pair.public_key))
    return key_pair


def peer_id_of(key_pair: KeyPair) -> str:
    """The base58 peer id (`12D3KooW…`) that `key_pair` gives a node."""
    return ID.from_pubkey(key_pair.public_key).to_base58()
