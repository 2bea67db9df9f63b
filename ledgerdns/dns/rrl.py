"""UDP response rate limiting per client prefix (in the spirit of BIND's and Knot's RRL).

Each client address is grouped into its prefix (/24 for IPv4, /56 for IPv6 by
default). A prefix may receive `rate` responses per one-second window; beyond
that, every `slip`-th response goes out as a bare truncated reply (TC=1, so a
real client behind a spoofed flood retries over TCP, where spoofing is not
possible) and the others are dropped. Exempt networks (loopback and private
ranges by default) are never limited. Stdlib only: the UDP worker imports it.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable

ALLOW = 0
DROP = 1
SLIP = 2

_MAX_TRACKED = 65_536  # addresses remembered (their prefix or exemption)


class RateLimiter:
    """Decides, per response, whether it goes out (`ALLOW`), is dropped or slips.

    Args:
        rate: responses per second per prefix; 0 turns limiting off.
        slip: every `slip`-th limited response slips out truncated; 0 drops all.
        ipv4_prefix, ipv6_prefix: prefix lengths that group clients.
        exempt: networks (as text or objects) never limited.
        clock: seconds, monotonic (injectable for tests).
    """

    __slots__ = (
        "_clock",
        "_counts",
        "_exempt",
        "_prefix_of",
        "_rate",
        "_slip",
        "_v4",
        "_v6",
        "_window",
        "limited",
    )

    def __init__(
        self,
        rate: int,
        slip: int = 2,
        *,
        ipv4_prefix: int = 24,
        ipv6_prefix: int = 56,
        exempt: Iterable[str | ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._slip = slip
        self._v4 = ipv4_prefix
        self._v6 = ipv6_prefix
        self._exempt = tuple(ipaddress.ip_network(n, strict=False) for n in exempt)
        self._clock = clock
        self._prefix_of: dict[str | bytes, str] = {}  # address -> prefix ("" = exempt)
        self._counts: dict[str, int] = {}
        self._window = -1
        self.limited = 0

    @property
    def enabled(self) -> bool:
        """Whether any limiting happens at all."""
        return self._rate > 0

    def check(self, host: str | bytes) -> int:
        """`ALLOW`, `DROP` or `SLIP` for one response to `host`.

        Args:
            host: the client's address as text, or packed (4 or 16 bytes).
        """
        if self._rate <= 0:
            return ALLOW
        prefix = self._prefix_of.get(host)
        if prefix is None:
            prefix = self._classify(host)
        if not prefix:
            return ALLOW
        window = int(self._clock())
        if window != self._window:
            self._window = window
            self._counts.clear()
        count = self._counts.get(prefix, 0) + 1
        self._counts[prefix] = count
        if count <= self._rate:
            return ALLOW
        self.limited += 1
        if self._slip and (count - self._rate) % self._slip == 0:
            return SLIP
        return DROP

    def _classify(self, host: str | bytes) -> str:
        if len(self._prefix_of) >= _MAX_TRACKED:
            self._prefix_of.clear()
        try:
            address = ipaddress.ip_address(
                host if isinstance(host, bytes) else host.split("%", 1)[0]
            )
        except ValueError:
            prefix = ""  # not an IP address (a test double): nothing to group by
        else:
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            if any(address in net for net in self._exempt):
                prefix = ""
            else:
                bits = self._v4 if address.version == 4 else self._v6
                prefix = str(ipaddress.ip_network(f"{address}/{bits}", strict=False))
        self._prefix_of[host] = prefix
        return prefix


def slip_reply(query: bytes) -> bytes | None:
    """A bare truncated reply to `query`: its header with QR and TC set, its question, nothing else.

    None if the question cannot be found (then the response is simply dropped).
    """
    if len(query) < 12 or query[2] & 0x80:
        return None
    pos = 12
    while pos < len(query):
        length = query[pos]
        if length == 0:
            break
        if length > 63:
            return None
        pos += 1 + length
    end = pos + 5
    if query[4:6] != b"\x00\x01" or end > len(query) or end - 12 > 259:
        return None
    flags = bytes(((query[2] & 0x79) | 0x82, 0))  # QR, opcode and RD kept, TC set; rcode 0
    return query[:2] + flags + b"\x00\x01\x00\x00\x00\x00\x00\x00" + query[12:end]
