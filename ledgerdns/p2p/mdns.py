"""Opt-in LAN discovery over mDNS, reported to a trio task.

py-libp2p's own `MDNSDiscovery` binds zeroconf on every interface and reports
finds through a process-wide singleton; this keeps its record format (the
`PeerBroadcaster` and the TXT parsing of `PeerListener`) but owns the zeroconf
instance, so it can be limited to chosen interfaces, and hands each find to this
node only. Zeroconf calls back from its own thread; the find crosses into trio
through the run's `TrioToken`.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

import trio
from libp2p.abc import IHost
from libp2p.discovery.mdns.broadcaster import PeerBroadcaster
from libp2p.discovery.mdns.listener import PeerListener
from libp2p.peer.peerinfo import PeerInfo
from zeroconf import IPVersion, Zeroconf

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger(__name__)

SERVICE_TYPE = "_p2p._udp.local."
Found = tuple[str, list[str]]


class _Listener(PeerListener):
    """The library's TXT parsing, reporting finds to trio instead of the global singleton."""

    def __init__(
        self,
        zc: Zeroconf,
        service_name: str,
        host: IHost,
        report: trio.MemorySendChannel[Found],
        token: trio.lowlevel.TrioToken,
    ) -> None:
        self._report = report
        self._token = token
        self._own_id = host.get_id()
        super().__init__(host.get_peerstore(), zc, SERVICE_TYPE, service_name)

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._found(zc, type_, name)

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._found(zc, type_, name)

    def _found(self, zc: Zeroconf, type_: str, name: str) -> None:
        if name == self.service_name or type_ != SERVICE_TYPE:
            return
        info = self._get_service_info_with_retry(zc, type_, name)
        peer: PeerInfo | None = self._extract_peer_info(info) if info else None
        if peer is None or peer.peer_id == self._own_id:
            return
        found = (peer.peer_id.to_base58(), [str(a) for a in peer.addrs])
        try:
            self._token.run_sync_soon(self._send, found)
        except trio.RunFinishedError:
            pass  # the node stopped while zeroconf was still looking

    def _send(self, found: Found) -> None:
        try:
            self._report.send_nowait(found)
        except (trio.WouldBlock, trio.ClosedResourceError):
            log.debug("mdns find dropped peer=%s", found[0])


async def run_mdns(
    host: IHost,
    interfaces: list[str] | None,
    report: trio.MemorySendChannel[Found],
    *,
    task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Announce `host` and report peers found on the LAN to `report` until cancelled."""
    token = trio.lowlevel.current_trio_token()
    zc = await trio.to_thread.run_sync(_open_zeroconf, interfaces)
    service_name = f"{secrets.token_hex(16)}.{SERVICE_TYPE}"
    own_id = host.get_id().to_base58()
    broadcaster = PeerBroadcaster(zc, SERVICE_TYPE, service_name, own_id, port=0, host=host)
    listener: _Listener | None = None
    try:
        await trio.to_thread.run_sync(broadcaster.register)
        listener = _Listener(zc, service_name, host, report, token)
        log.info("mdns discovery on interfaces=%s", interfaces or "all")
        task_status.started()
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_close, zc, broadcaster, listener)


def _open_zeroconf(interfaces: list[str] | None) -> Zeroconf:
    if interfaces is None:
        return Zeroconf(ip_version=IPVersion.V4Only)
    return Zeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)


def _close(zc: Zeroconf, broadcaster: PeerBroadcaster, listener: _Listener | None) -> None:
    if listener is not None:
        listener.stop()
    broadcaster.unregister()
    zc.close()
