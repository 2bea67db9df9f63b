"""Refusing a p2p listen port that another process already listens on.

The libp2p TCP transport binds its listeners with ``SO_REUSEPORT`` (for hole
punching), so a second node given the same port binds it too, without an
error, and the kernel then splits incoming connections between two unrelated
nodes. `check_ports_free` binds each configured port once *without*
``SO_REUSEPORT`` before libp2p starts: that bind fails while anyone listens
on the port, whatever their socket options. ``SO_REUSEADDR`` is kept, so the
connections a node left in TIME_WAIT do not stop it from restarting.
"""

from __future__ import annotations

import errno
import socket

import multiaddr

from ledgerdns.p2p.errors import P2PError

_FAMILIES = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}


def check_ports_free(addrs: list[multiaddr.Multiaddr]) -> None:
    """Raise if a TCP port in `addrs` is already listened on (port 0 and non-IP addresses pass).

    Raises:
        P2PError: the port is in use, or the address cannot be bound at all; the
            message names the multiaddr.
    """
    for addr in addrs:
        target = _tcp_target(addr)
        if target is None:
            continue
        family, host, port = target
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise P2PError(
                        f"cannot listen on {addr}: port {port} is in use "
                        "(another ledgerdns node? give each node its own --p2p port)"
                    ) from None
                raise P2PError(f"cannot listen on {addr}: {exc.strerror or exc}") from None


def _tcp_target(addr: multiaddr.Multiaddr) -> tuple[socket.AddressFamily, str, int] | None:
    """(family, host, port) of an ``/ip4|ip6/HOST/tcp/PORT`` address with a port other than 0."""
    parts = str(addr).strip("/").split("/")
    if len(parts) < 4 or parts[0] not in _FAMILIES or parts[2] != "tcp":
        return None
    port = int(parts[3])
    return (_FAMILIES[parts[0]], parts[1], port) if port else None
