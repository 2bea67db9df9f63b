"""NOTIFY (RFC 1996): tell the configured secondaries when a zone's serial moved.

After each applied block, every zone the block changed (a domain with a
transaction in it that is still active) is queued for every address in
``[dns.transfer] notify``. A NOTIFY carries the zone's current SOA in its
answer section (RFC 1996 3.7), goes over UDP, and is retransmitted until the
secondary answers: after 1, 2, 4, 8 and 16 seconds (about half a minute in
all), then given up with a warning, since the secondary still polls on the
SOA refresh timer. It is TSIG-signed with the first ``transfer.tsig`` key when
that is set, and the reply must then verify.

One zone has at most one NOTIFY in flight per secondary: a zone that changes
again meanwhile is notified once more afterwards, with the serial of that
moment. A TLD is never notified: its records do not change (only its serial,
the head height, does), so a secondary loses nothing by polling it.
"""

from __future__ import annotations

import logging
import socket as stdlib_socket
from typing import TYPE_CHECKING

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import trio

from ledgerdns.dns.resolve import Resolver, ZoneSource
from ledgerdns.dns.result import labels_of
from ledgerdns.dns.settings import DnsSettings
from ledgerdns.dns.tsig import make_keyring
from ledgerdns.dns.xfr import to_rrset
from ledgerdns.dns.zone import ZoneConfig

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger(__name__)

ATTEMPTS = 5
FIRST_WAIT_S = 1.0  # doubled after every unanswered attempt
MAX_IN_FLIGHT = 64  # NOTIFYs waiting for their answer at once
_RECEIVE = 65535

Address = tuple[str, int]


class Notifier:
    """Sends NOTIFY for changed zones to the configured secondaries.

    Args:
        settings: the ``[dns]`` settings (``transfer.notify``, ``transfer.tsig``, the keys).
        source: the finalized chain (`TransferSource`; the node's ledger).
        config: what the synthesized SOA says (the resolver's).
    """

    def __init__(self, settings: DnsSettings, source: ZoneSource, config: ZoneConfig) -> None:
        self._resolver = Resolver(source, config)
        self._targets = settings.transfer.notify
        self._keyring: dict[dns.name.Name, dns.tsig.Key] | None = None
        self._keyname: dns.name.Name | None = None
        if settings.transfer.tsig:
            self._keyring = make_keyring(settings.tsig)
            self._keyname = dns.name.from_text(settings.transfer.tsig[0])
        # Bounds (issue 21): each holds a zone at most once (per target), so at most the
        # zones changed since the secondaries last answered: ≤ domains x targets, and
        # nothing at all without `[dns.transfer] notify`. `_queued` is emptied by `run`.
        self._queued: dict[str, None] = {}  # insertion-ordered set of zone names
        self._wake = trio.Event()
        self._in_flight: set[tuple[str, Address]] = set()  # one task each
        self._again: set[tuple[str, Address]] = set()  # ⊆ _in_flight
        self._limiter = trio.CapacityLimiter(MAX_IN_FLIGHT)
        self.acknowledged = 0
        self.failed = 0

    # -- public API --

    def block_applied(self, height: int, changed: frozenset[str]) -> None:
        """Queue NOTIFY for every zone in `changed` (the ledger hook; never blocks)."""
        if not self._targets or not changed:
            return
        for domain in sorted(changed):
            self._queued[domain] = None
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send queued NOTIFYs until cancelled."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                zones, self._queued = list(self._queued), {}
                for zone in zones:
                    for target in self._targets:
                        key = (zone, target)
                        if key in self._in_flight:
                            self._again.add(key)
                        else:
                            self._in_flight.add(key)
                            nursery.start_soon(self._notify_until_done, zone, target)

    # -- sending --

    async def _notify_until_done(self, zone: str, target: Address) -> None:
        key = (zone, target)
        try:
            while True:
                async with self._limiter:
                    await self._notify(zone, target)
                if key not in self._again:
                    return
                self._again.discard(key)
        finally:
            self._in_flight.discard(key)

    def _message(self, zone: str) -> dns.message.Message | None:
        """The NOTIFY for `zone` at its current serial, or None if it is not a zone now."""
        found = self._resolver.zone_at(labels_of(zone))
        if found is None:
            return None  # released or expired: nothing to transfer
        message = dns.message.make_query(f"{zone}.", dns.rdatatype.SOA, use_edns=False)
        message.set_opcode(dns.opcode.NOTIFY)
        message.flags = (message.flags & ~dns.flags.RD) | dns.flags.AA  # RFC 1996 3.7
        message.answer.append(to_rrset(found.rrs()[0]))
        if self._keyring is not None:
            message.use_tsig(self._keyring, self._keyname)
        return message

    async def _notify(self, zone: str, target: Address) -> None:
        message = self._message(zone)
        if message is None:
            return
        serial = message.answer[0][0].serial
        family = stdlib_socket.AF_INET6 if ":" in target[0] else stdlib_socket.AF_INET
        with trio.socket.socket(family, stdlib_socket.SOCK_DGRAM) as sock:
            await sock.connect(target)  # replies from anyone else are not delivered
            wait = FIRST_WAIT_S
            for attempt in range(1, ATTEMPTS + 1):
                wire = message.to_wire()  # signed afresh each time (the TSIG time moves)
                try:
                    await sock.send(wire)
                except OSError as exc:
                    log.debug("notify send failed zone=%s target=%s error=%s", zone, target, exc)
                rcode = None
                with trio.move_on_after(wait):
                    rcode = await self._reply(sock, message)
                if rcode == dns.rcode.NOERROR:
                    self.acknowledged += 1
                    log.debug(
                        "notify acknowledged zone=%s serial=%d target=%s:%d attempt=%d",
                        zone,
                        serial,
                        *target,
                        attempt,
                    )
                    return
                if rcode is not None:
                    self.failed += 1
                    log.warning(
                        "notify rejected zone=%s target=%s:%d rcode=%s",
                        zone,
                        *target,
                        dns.rcode.to_text(rcode),
                    )
                    return
                wait *= 2
        self.failed += 1
        log.warning("notify unanswered zone=%s serial=%d target=%s:%d", zone, serial, *target)

    async def _reply(
        self, sock: trio.socket.SocketType, message: dns.message.Message
    ) -> dns.rcode.Rcode:
        """The rcode of the first datagram that answers `message` (others are skipped)."""
        while True:
            try:
                data = await sock.recv(_RECEIVE)
            except OSError:  # ICMP unreachable on a connected socket: wait out the timeout
                await trio.sleep_forever()
            try:
                reply = dns.message.from_wire(data, keyring=self._keyring, request_mac=message.mac)
            except dns.exception.DNSException as exc:
                log.debug("notify reply unreadable error=%s", exc)
                continue
            if message.is_response(reply):
                return reply.rcode()
