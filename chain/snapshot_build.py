"""Taking a snapshot of the stored state (the serving side of `chain.snapshot`).

`SnapshotSource.take` reads what must be read at the snapshot's height itself (the
head block, its certificate, the validator-set changes) and opens the scans of the
state (domains and naming entries) on the store's view at that moment, so the
rest (`SnapshotSource.build`: grouping, chunk encoding) may run later, off the
event loop, while blocks keep coming.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from chain import keys
from chain.errors import InvalidUpdate, RejectReason
from chain.ledger import Ledger
from chain.snapshot import Manifest, chunk_depth, chunk_of, item_key, make_chunk, root_from_entries
from chain.store import Scan


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotSource:
    """The parts of a snapshot read at its height, and the open scans of its state."""

    height: int
    block: bytes
    certificate: bytes
    state_root: bytes
    changes: tuple[tuple[bytes, bytes, bytes], ...]
    scans: tuple[Scan, Scan]

    @classmethod
    def take(cls, ledger: Ledger) -> SnapshotSource | None:
        """The snapshot at the ledger's head; None when one cannot be taken there.

        None at genesis, and while a validator-set change is scheduled past the
        head (its announcing block is not final yet, so a joiner could not check it).
        """
        height = ledger.height
        rosters = ledger.rosters()
        if height < 1 or any(start > height + 1 for start, _ in rosters):
            return None
        changes = tuple(
            (
                ledger.get_block_bytes(start - 1),
                ledger.get_certificate(start - 1).to_bytes(),
                roster.to_bytes(),
            )
            for start, roster in rosters[1:]
        )
        return cls(
            height=height,
            block=ledger.get_block_bytes(height),
            certificate=ledger.get_certificate(height).to_bytes(),
            state_root=ledger.head.state_root,
            changes=changes,
            scans=(ledger.store.iterate(keys.DOMAIN), ledger.store.iterate(keys.NAMING)),
        )

    def close(self) -> None:
        """Release the scans (when `build` is not called)."""
        for scan in self.scans:
            scan.close()

    def items(self) -> Iterator[tuple[bytes, bytes, bytes]]:
        """Every leaf of the state as ``(tree key, id, value)``, in no useful order."""
        for scan in self.scans:
            with scan:
                for key, value in scan:
                    ident = key[1:]
                    yield item_key(ident, value), ident, value

    def build(self) -> tuple[Manifest, list[bytes]]:
        """The manifest and every chunk's bytes.

        Raises:
            InvalidUpdate: the chunks do not make the head's state root (the store
                changed under the scans: a bug).
        """
        items = list(self.items())
        depth = chunk_depth(len(items))
        buckets: list[list[tuple[bytes, bytes, bytes]]] = [[] for _ in range(1 << depth)]
        for item in items:
            buckets[chunk_of(item[0], depth)].append(item)
        del items
        entries = bytearray()
        chunks = []
        for index, bucket in enumerate(buckets):
            chunk, entry = make_chunk(self.height, depth, index, bucket)
            chunks.append(chunk.to_bytes())
            entries += entry
            buckets[index] = []
        manifest = Manifest(
            height=self.height, block=self.block, certificate=self.certificate, depth=depth,
            entries=bytes(entries), changes=self.changes,
        )  # fmt: skip
        if root_from_entries(manifest.entries, depth) != self.state_root:
            raise InvalidUpdate(RejectReason.BAD_STATE_ROOT, f"snapshot {self.height}: state root")
        return manifest, chunks
