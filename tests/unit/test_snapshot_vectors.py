"""The state-sync vectors of docs/protocol.md §9 are what the code produces.

Built from the §7 vectors (alice's state, the header, transaction and certificate).
Print the table with ``python -m tests.unit.test_snapshot_vectors``.
"""

from __future__ import annotations

import re
from pathlib import Path

from chain.block import Block, BlockHeader
from chain.snapshot import (
    Chunk,
    ChunkRequest,
    Manifest,
    ManifestRequest,
    item_key,
    make_chunk,
    verify_chunk,
)
from chain.state import domain_key
from chain.tx import Transaction
from tools.vectors import compute

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
SECTION = "## 9. State sync"


def snapshot_vectors() -> dict[str, str]:
    """Every §9 vector, name -> lower-case hex."""
    base = {k: bytes.fromhex(x) for k, x in compute().items()}
    header = BlockHeader.from_bytes(base["header"])
    block = Block(header=header, txs=(Transaction.from_bytes(base["tx"]),))
    state = base["domain_state"]
    chunk, entry = make_chunk(
        header.height, 0, 0, [(item_key(b"alice.p2p", state), b"alice.p2p", state)]
    )
    manifest = Manifest(
        height=header.height, block=block.to_bytes(), certificate=base["certificate"], depth=0,
        entries=entry, changes=(),
    )  # fmt: skip
    return {
        "snapshot_manifest_request": ManifestRequest().to_bytes().hex(),
        "snapshot_chunk_request_height_1_index_0": ChunkRequest(height=1, index=0).to_bytes().hex(),
        "snapshot_chunk_alice": chunk.to_bytes().hex(),
        "snapshot_entry_alice": entry.hex(),
        "snapshot_manifest_alice": manifest.to_bytes().hex(),
    }


def published() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    rows = re.findall(
        r"^\| `(snapshot_[a-z0-9_]+)` \| `([0-9a-f]+)` \| .* \|$", section, re.MULTILINE
    )
    return dict(rows)


def test_docs_match_code() -> None:
    assert published() == snapshot_vectors()


def test_the_alice_chunk_verifies_against_its_manifest() -> None:
    v = {k: bytes.fromhex(x) for k, x in snapshot_vectors().items()}
    manifest = Manifest.from_bytes(v["snapshot_manifest_alice"])
    checked = verify_chunk(manifest, Chunk.from_bytes(v["snapshot_chunk_alice"]))
    assert checked.domains == [("alice.p2p", compute_state())]
    assert checked.top is not None and checked.top.a == domain_key("alice.p2p")


def compute_state() -> bytes:
    return bytes.fromhex(compute()["domain_state"])


if __name__ == "__main__":
    for name, value in snapshot_vectors().items():
        print(f"| `{name}` | `{value}` |")
