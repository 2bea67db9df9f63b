"""What the soak measures on each node: memory, descriptors, LevelDB on disk; and the MANIFEST's live tables.

A node is a process group (the node and its DNS worker processes): RSS and
file descriptors are summed over the group, from ``/proc``. The LevelDB
directory is ``<data dir>/chain``; its current write-ahead log (``NNNNNN.log``)
grows with the memtable and starts again empty when the memtable is written
out as a table, so its size says where in the write-buffer cycle a sample was
taken (see `memtable_share`).

`live_tables` reads a LevelDB MANIFEST (the log of version edits named by
``CURRENT``) without LevelDB, so it works on a directory a running node holds:
the files added minus the files deleted are the tables the current version
uses. A table file on disk that is not among them is obsolete: LevelDB deletes
such files after each compaction unless something (an open iterator pins the
version it was made from) still uses them.
"""

from __future__ import annotations

import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ledgerdns.api.client import NodeUnreachable, RpcError
from tools.localnet import ClusterNode

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
TABLE_SUFFIXES = (".ldb", ".sst")
BLOCK = 32 * 1024  # LevelDB log blocks
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class Sample:
    """One node at one moment."""

    t: float  # seconds since the load started
    phase: str
    node: int
    rss_bytes: int
    processes: int
    fds: int
    db_bytes: int
    wal_bytes: int
    wal_number: int
    cpu_s: float
    height: int | None
    mempool: int | None
    # taken right after ``POST /v1/admin/flush`` wrote the memtable out (then `wal_bytes`
    # is what arrived since, not a memtable's worth); LevelDB's memory estimate then
    flushed: bool = False
    leveldb_bytes: int | None = None
    # from /proc/PID/status, summed over the group: anonymous (heap, arenas, LevelDB's
    # memtable and cache) against file-backed (code, mapped libraries); and the DNS
    # workers' share of `rss_bytes` (everything but the node process itself)
    rss_anon_bytes: int | None = None
    rss_file_bytes: int | None = None
    worker_rss_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def group_pids(pgid: int) -> list[int]:
    """The processes of process group `pgid` (a node and its DNS workers)."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            if int(fields[2]) == pgid:
                out.append(int(proc.name))
    return out


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def proc_status(pid: int) -> dict[str, int]:
    """The ``kB`` fields of ``/proc/PID/status`` (RssAnon, RssFile, VmRSS, ...) in bytes; {} if gone."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[key] = int(parts[0]) * 1024
    return out


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def chain_dir(node: ClusterNode) -> Path:
    return node.data_dir / "chain"


def dir_bytes(path: Path) -> int:
    total = 0
    for entry in os.scandir(path):
        try:
            total += entry.stat().st_size if entry.is_file() else 0
        except OSError:
            continue
    return total


def wal(path: Path) -> tuple[int, int]:
    """(number, size) of the newest ``*.log`` in a LevelDB directory: the current write-ahead log."""
    logs = []
    for entry in os.scandir(path):
        stem, _, suffix = entry.name.partition(".")
        if suffix == "log" and stem.isdigit():
            try:
                logs.append((int(stem), entry.stat().st_size))
            except OSError:
                continue
    return max(logs, default=(0, 0))


def sample(
    node: ClusterNode, t: float, phase: str, status: dict[str, Any] | None,
    leveldb_bytes: int | None = None,
) -> Sample:  # fmt: skip
    """Measure `node` now (`status` is its RPC status, None if it did not answer).

    `leveldb_bytes` is what the node's memtable flush returned just before
    (None: not flushed, see `flush`).
    """
    pids = group_pids(node.pid) if node.pid is not None else []
    number, size = wal(chain_dir(node))
    statuses = {p: proc_status(p) for p in pids}
    return Sample(
        t=round(t, 2), phase=phase, node=node.index,
        rss_bytes=sum(_rss(p) for p in pids), processes=len(pids), fds=sum(_fds(p) for p in pids),
        db_bytes=dir_bytes(chain_dir(node)), wal_bytes=size, wal_number=number,
        cpu_s=round(sum(_cpu_s(p) for p in pids), 2),
        height=None if status is None else int(status["height"]),
        mempool=None if status is None else int(status["mempool_txs"]),
        flushed=leveldb_bytes is not None, leveldb_bytes=leveldb_bytes,
        rss_anon_bytes=sum(st.get("RssAnon", 0) for st in statuses.values()),
        rss_file_bytes=sum(st.get("RssFile", 0) for st in statuses.values()),
        worker_rss_bytes=sum(st.get("VmRSS", 0) for p, st in statuses.items() if p != node.pid),
    )  # fmt: skip


def flush(node: ClusterNode) -> int | None:
    """Write `node`'s LevelDB memtable out (``POST /v1/admin/flush``); None if it failed.

    Issue 21 allows flushing before each sample so that every sample is at the
    same point of the write-buffer cycle: the memtable is then never more than
    one sampling interval of writes, and nothing has to be subtracted.
    """
    try:
        return node.rpc.flush_store()
    except (NodeUnreachable, RpcError):
        return None


def memtable_share(samples: list[Sample]) -> tuple[list[float], float | None]:
    """Per sample, the bytes of RSS taken as the memtable's; and the share measured at rollovers.

    Until this node's first memtable is written out, every byte of the
    write-ahead log is taken as a byte of new memtable (the memtable holds the
    same entries, plus skip-list links). At each rollover (the log's number
    changes between two samples) the RSS drop over the log's drop measures how
    much of a full memtable the process gives back (the lowest RSS of the two
    samples after the rollover: the old memtable is freed only once written out); after the first rollover the
    mean of those (clamped to 0..1.5) is used: 0 if the freed memtable is simply
    reused by the next one, 1 if it goes back to the system and is taken again.
    """
    drops = [
        # the old memtable is freed once it is written out, which may be a sample later
        (a.rss_bytes - min(x.rss_bytes for x in samples[i + 1 : i + 3])) / a.wal_bytes
        for i, (a, b) in enumerate(zip(samples, samples[1:], strict=False))
        if b.wal_number != a.wal_number and a.wal_bytes > 0
    ]
    measured = min(1.5, max(0.0, sum(drops) / len(drops))) if drops else None
    first = samples[0].wal_number if samples else 0
    return [
        float(s.wal_bytes) if s.wal_number == first or measured is None else s.wal_bytes * measured
        for s in samples
    ], measured


# -- the MANIFEST --


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _records(data: bytes) -> list[bytes]:
    """The records of a LevelDB log file (32 KiB blocks, fragments FULL/FIRST/MIDDLE/LAST).

    A torn record at the end (a writer mid-append) is dropped; checksums are
    not verified (the file is read, never trusted for anything but counting).
    """
    out: list[bytes] = []
    pos, partial = 0, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # trailer padding
            pos += left
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        if kind == 0 and length == 0:  # zero padding (preallocated)
            pos += left
            continue
        body = data[pos + 7 : pos + 7 + length]
        if len(body) < length:
            break
        pos += 7 + length
        if kind == FULL:
            out.append(body)
        elif kind == FIRST:
            partial = body
        elif kind == MIDDLE:
            partial += body
        elif kind == LAST:
            out.append(partial + body)
            partial = b""
    return out


def _edit_files(edit: bytes, live: set[int]) -> None:
    """Apply one VersionEdit's new (tag 7) and deleted (tag 6) files to `live`."""
    pos = 0
    while pos < len(edit):
        tag, pos = _varint(edit, pos)
        if tag in (1,):  # comparator name
            n, pos = _varint(edit, pos)
            pos += n
        elif tag in (2, 3, 4, 9):  # log number, next file, last sequence, prev log
            _, pos = _varint(edit, pos)
        elif tag == 5:  # compact pointer: level, key
            _, pos = _varint(edit, pos)
            n, pos = _varint(edit, pos)
            pos += n
        elif tag == 6:  # deleted file: level, number
            _, pos = _varint(edit, pos)
            number, pos = _varint(edit, pos)
            live.discard(number)
        elif tag == 7:  # new file: level, number, size, smallest, largest
            _, pos = _varint(edit, pos)
            number, pos = _varint(edit, pos)
            _, pos = _varint(edit, pos)
            for _ in range(2):
                n, pos = _varint(edit, pos)
                pos += n
            live.add(number)
        else:
            raise ValueError(f"unknown VersionEdit tag {tag}")


def live_tables(db_dir: Path) -> set[int]:
    """The table numbers the current version of the LevelDB in `db_dir` uses (from its MANIFEST)."""
    manifest = (db_dir / "CURRENT").read_text().strip()
    live: set[int] = set()
    for edit in _records((db_dir / manifest).read_bytes()):
        _edit_files(edit, live)
    return live


def table_files(db_dir: Path) -> dict[int, int]:
    """Table files on disk: number -> bytes."""
    out = {}
    for entry in os.scandir(db_dir):
        stem, dot, suffix = entry.name.partition(".")
        if dot and f".{suffix}" in TABLE_SUFFIXES and stem.isdigit():
            try:
                out[int(stem)] = entry.stat().st_size
            except OSError:
                continue
    return out


def obsolete_tables(db_dir: Path) -> dict[int, int]:
    """Table files on disk the MANIFEST's current version does not use: number -> bytes."""
    live = live_tables(db_dir)
    return {n: size for n, size in table_files(db_dir).items() if n not in live}
