"""Per-domain state: what the finalized chain says about one name now.

Wire form: ``[Kind.DOMAIN_STATE, 1, domain, owner, seq, head, records,
expires_at, status]``. Its SHA-256 is the value the state tree commits to,
under the key ``sha256(domain)``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import IntEnum

from chain.crypto import PUBLIC_KEY_SIZE, PublicKey, sha256
from chain.encoding import Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.records import Record, records_from_cbor, records_to_cbor
from chain.tx import MAX_DOMAIN, MAX_TX_BYTES, MAX_TX_RECORDS


class DomainStatus(IntEnum):
    """Whether the owner holds the name or gave it up."""

    ACTIVE = 0
    RELEASED = 1


def domain_key(domain: str) -> bytes:
    """The state-tree key of a domain."""
    return sha256(domain.encode("ascii"))


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainState:
    """One domain's current owner, chain head and records.

    Attributes:
        domain: canonical name.
        owner: the current owner's key (the last owner, if released).
        seq: seq of the head transaction.
        head: txid of the head transaction (or the genesis anchor).
        records: the record set served for it.
        expires_at: unix seconds of block time when it lapses; 0 = never.
        status: active or released.
    """

    domain: str
    owner: PublicKey
    seq: int
    head: bytes
    records: tuple[Record, ...]
    expires_at: int
    status: DomainStatus

    def __post_init__(self) -> None:
        if len(self.owner) != PUBLIC_KEY_SIZE or len(self.head) != 32:
            raise InvalidUpdate(RejectReason.MALFORMED, "domain state key or head has a bad size")

    def is_active(self, now_s: int) -> bool:
        """Whether the name is held at block time `now_s` (not released, not expired)."""
        if self.status != DomainStatus.ACTIVE:
            return False
        return self.expires_at == 0 or now_s < self.expires_at

    def to_bytes(self) -> bytes:
        """Canonical framed bytes."""
        return frame(
            Kind.DOMAIN_STATE,
            self.domain,
            bytes(self.owner),
            self.seq,
            self.head,
            records_to_cbor(self.records),
            self.expires_at,
            int(self.status),
        )

    def value_hash(self) -> bytes:
        """What the state tree stores for this domain."""
        return sha256(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> DomainState:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed or non-canonical input.
        """
        r = Reader.open(data, Kind.DOMAIN_STATE, "state", fields=7, max_size=MAX_TX_BYTES)
        state = cls(
            domain=r.text("domain", maximum=MAX_DOMAIN),
            owner=PublicKey(r.bytes("owner", size=PUBLIC_KEY_SIZE)),
            seq=r.uint("seq", maximum=2**63 - 1),
            head=r.bytes("head", size=32),
            records=records_from_cbor(r.raw("records"), max_records=MAX_TX_RECORDS),
            expires_at=r.uint("expires_at", maximum=2**63 - 1),
            status=DomainStatus(r.uint("status", maximum=max(DomainStatus))),
        )
        r.done()
        return state


# What one cached state costs beyond its records' own bytes: the `DomainState`, its
# name, owner and head, one `Record` and the ordered-dict slot (measured with
# tracemalloc: ~430 B for a one-A-record state, tools/soak_heap.py).
STATE_OVERHEAD_BYTES = 400
RECORD_OVERHEAD_BYTES = 120


def cached_size(state: DomainState | None) -> int:
    """The memory `StateCache` charges for `state` (an estimate, in bytes)."""
    if state is None:
        return STATE_OVERHEAD_BYTES // 4  # the name and the slot only
    return STATE_OVERHEAD_BYTES + sum(
        RECORD_OVERHEAD_BYTES + len(r.name) + len(r.rdata) for r in state.records
    )


class StateCache:
    """A bounded least-recently-used map of committed domain states.

    Holds what the store says about a domain: its `DomainState`, or None for a
    name never registered. The ledger fills it from store reads and refreshes
    it from every block it writes, so it never holds uncommitted states.

    Bounded twice, oldest out first: `size` entries and `max_bytes` of
    `cached_size` (a state may hold up to 10 KiB or so of records).
    """

    __slots__ = ("_bytes", "_entries", "_max_bytes", "_size")

    def __init__(self, size: int, max_bytes: int) -> None:
        self._entries: OrderedDict[str, tuple[DomainState | None, int]] = OrderedDict()
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0

    def lookup(self, domain: str) -> tuple[bool, DomainState | None]:
        """``(True, state_or_None)`` if `domain` is cached, else ``(False, None)``."""
        entries = self._entries
        found = entries.get(domain)
        if found is None:
            return False, None
        entries.move_to_end(domain)
        return True, found[0]

    def put(self, domain: str, state: DomainState | None) -> None:
        """Remember `domain`'s committed state (None: not registered)."""
        entries = self._entries
        weight = cached_size(state)
        old = entries.pop(domain, None)
        if old is not None:
            self._bytes -= old[1]
        if weight > self._max_bytes:
            return  # larger than the whole cache: not kept
        entries[domain] = (state, weight)
        self._bytes += weight
        while len(entries) > self._size or self._bytes > self._max_bytes:
            self._bytes -= entries.popitem(last=False)[1][1]

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
        self._bytes = 0

    @property
    def bytes(self) -> int:
        """The `cached_size` of what is held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
