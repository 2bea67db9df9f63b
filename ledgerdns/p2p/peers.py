"""What the node remembers about other peers: penalty scores, bans, and where to redial them.

Both classes are plain bookkeeping (no sockets, no clock): the caller passes `now`
(trio's clock, in seconds) wherever time matters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BAN_THRESHOLD = 100
BAN_SECONDS = 600.0
# Decay (docs/security.md, "Penalty points decay"): a peer's points stay whole for a minute
# after its latest penalty, so a burst adds up exactly (two 50-point offences seconds
# apart ban, as four 25-point ones do), then halve every ten minutes. A peer that keeps
# misbehaving outgrows the decay and is banned; one bad message now and then is forgiven.
DECAY_HOLD_SECONDS = 60.0
DECAY_HALF_LIFE = 600.0
FORGET_BELOW = 1.0  # a score decayed under this is dropped (it shows as 0 anyway)


@dataclass(slots=True)
class _Score:
    points: float
    at: float  # when the latest penalty came


@dataclass(slots=True)
class PeerScores:
    """Penalty points per peer; reaching `threshold` bans the peer for `ban_seconds`.

    Points decay, computed when asked for at the caller's `now`: they stay whole for
    `hold_seconds` after the peer's latest penalty, then halve every `half_life`
    seconds. While a peer is banned its points are frozen (the ban is its own timer);
    a ban ends with a clean slate.
    """

    threshold: int = BAN_THRESHOLD
    ban_seconds: float = BAN_SECONDS
    hold_seconds: float = DECAY_HOLD_SECONDS
    half_life: float = DECAY_HALF_LIFE
    _scores: dict[str, _Score] = field(default_factory=dict)
    _banned_until: dict[str, float] = field(default_factory=dict)

    def add(self, peer_id: str, points: int, now: float) -> bool:
        """Add `points` to the peer's decayed score; True if this crossed the threshold (a new ban)."""
        if points < 0:
            raise ValueError(f"penalty points must not be negative, got {points}")
        if peer_id in self._banned_until:
            return False
        total = self.points(peer_id, now) + points
        self._scores.pop(peer_id, None)  # re-inserted last: the most recently penalized last
        self._scores[peer_id] = _Score(points=total, at=now)
        if total < self.threshold:
            return False
        self._banned_until[peer_id] = now + self.ban_seconds
        return True

    def points(self, peer_id: str, now: float) -> float:
        """The peer's score at `now`, decayed (0 for a peer never penalized or forgiven)."""
        score = self._scores.get(peer_id)
        if score is None:
            return 0.0
        quiet = now - score.at - self.hold_seconds
        if quiet <= 0 or peer_id in self._banned_until:
            return score.points
        decay: float = 0.5 ** (quiet / self.half_life)
        return score.points * decay

    def is_banned(self, peer_id: str) -> bool:
        """True while the peer's ban lasts (call `expire` to end old bans)."""
        return peer_id in self._banned_until

    def banned(self) -> set[str]:
        """The peers banned right now."""
        return set(self._banned_until)

    def penalized(self) -> list[str]:
        """Every peer with points (the banned ones included), the most recently penalized last."""
        return list(self._scores)

    def expire(self, now: float) -> list[str]:
        """End the bans that ran out by `now` (their score is reset) and forget decayed scores.

        Returns:
            The peers whose ban ended.
        """
        ended = [peer for peer, until in self._banned_until.items() if until <= now]
        for peer in ended:
            del self._banned_until[peer]
            self._scores.pop(peer, None)
        for peer in [p for p in self._scores if self.points(p, now) < FORGET_BELOW]:
            del self._scores[peer]
        return ended


@dataclass(slots=True)
class _Entry:
    addrs: list[str]
    pinned: bool
    failures: int = 0
    next_try: float = 0.0
    last_ok: float = 0.0


@dataclass(slots=True)
class KnownPeers:
    """Peers worth redialling and their addresses (multiaddrs without `/p2p/`).

    Bootstrap peers are pinned: they are redialled forever. A peer we only learned
    about (it connected to us, the DHT or mDNS named it) is redialled every
    `interval` while it is down, then every `slow_interval` after `patience`
    seconds, and forgotten after `forget_after` seconds without a connection.
    """

    interval: float = 3.0
    slow_interval: float = 30.0
    patience: float = 300.0
    forget_after: float = 3600.0
    _peers: dict[str, _Entry] = field(default_factory=dict)

    def pin(self, peer_id: str, addrs: list[str], not_before: float = 0.0) -> None:
        """Remember a bootstrap peer for good; a newly pinned one is first dialled at `not_before`."""
        entry = self._peers.get(peer_id)
        if entry is None:
            entry = self._peers[peer_id] = _Entry(addrs=[], pinned=True, next_try=not_before)
        entry.pinned = True
        _merge(entry.addrs, addrs)

    def learn(self, peer_id: str, addrs: list[str], now: float) -> None:
        """Remember (or refresh) a peer's addresses; it counts as seen at `now`."""
        entry = self._peers.get(peer_id)
        if entry is None:
            entry = self._peers[peer_id] = _Entry(addrs=[], pinned=False, last_ok=now)
        _merge(entry.addrs, addrs)

    def connected(self, peer_id: str, now: float) -> None:
        """Record that the peer is connected (resets its failure count)."""
        entry = self._peers.get(peer_id)
        if entry is not None:
            entry.failures = 0
            entry.next_try = 0.0
            entry.last_ok = now

    def failed(self, peer_id: str, now: float) -> None:
        """Record a failed dial and schedule the next one."""
        entry = self._peers.get(peer_id)
        if entry is None:
            return
        entry.failures += 1
        slow = not entry.pinned and now - entry.last_ok > self.patience
        entry.next_try = now + (self.slow_interval if slow else self.interval)
        if not entry.pinned and now - entry.last_ok > self.forget_after:
            del self._peers[peer_id]

    def due(self, now: float, skip: set[str]) -> list[tuple[str, list[str]]]:
        """Peers (with addresses) to dial now, leaving out those in `skip`."""
        return [
            (peer, list(entry.addrs))
            for peer, entry in self._peers.items()
            if peer not in skip and entry.addrs and entry.next_try <= now
        ]

    def addrs(self, peer_id: str) -> list[str]:
        """The remembered addresses of a peer (empty if unknown)."""
        entry = self._peers.get(peer_id)
        return list(entry.addrs) if entry is not None else []


def _merge(into: list[str], addrs: list[str]) -> None:
    for addr in addrs:
        if addr not in into:
            into.append(addr)
