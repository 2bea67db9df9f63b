"""Keeping py-libp2p's logging quiet and inside ours."""

from __future__ import annotations

import logging
import os

# Loggers that report routine events at ERROR: each refused TCP dial of a
# reconnect attempt, a stream to a peer that went away or lacks a protocol
# (which the caller gets as a P2PError anyway).
_ROUTINE_ERRORS = (
    "libp2p.transport.tcp.tcp",
    "libp2p.host.basic_host",
    "libp2p.protocol_muxer.multiselect_client",
)


def tame_libp2p_logging() -> None:
    """Route libp2p's records through our handlers and keep only its errors.

    At import py-libp2p sets `propagate = False` on its `libp2p` logger, so its
    warnings bypass the application's handlers and reach bare stderr, and some
    modules pin their own logger to INFO. Their WARNINGs are routine on a healthy
    network (every failed dial attempt, DHT streams closed by the other side,
    stream resets during shutdown). Unless the operator asked for libp2p's own
    output with `LIBP2P_DEBUG`, send its records up to our root handlers and keep
    only ERROR and above (CRITICAL for the few that log routine
    failures as errors).
    """
    if os.environ.get("LIBP2P_DEBUG"):
        return
    root = logging.getLogger("libp2p")
    root.propagate = True
    root.setLevel(logging.ERROR)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("libp2p.") and isinstance(logger, logging.Logger):
            if logging.NOTSET < logger.level < logging.ERROR:
                logger.setLevel(logging.NOTSET)  # inherit ERROR from "libp2p"
    for name in _ROUTINE_ERRORS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
