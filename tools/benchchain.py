"""Benchmark chains: devnet data directories holding N names, built straight into LevelDB.

A real node resumes such a directory (``ledgerdns node --data-dir DIR``): it holds a
single-validator devnet ``genesis.json``, the validator's key (``validator.pem``, 0600:
a PUBLIC dev key from `tools.devchain.dev_key`) and ``chain/``, whose blocks are built
with `chain.ledger.Ledger` exactly as a proposer builds them (every registration's
signature is checked again on the way in) and committed with a commit certificate
signed by that validator. Nothing goes through the RPC or consensus, which makes
1,000,000 names a matter of minutes instead of hours.

Name ``i`` is ``d<i>.p2p`` with one record, ``@ 300 A 10.<i>>16>.<i>>8 & 255>.<i & 255>``
(`domain_name`, `address`): the same names and addresses a dnsmasq hosts file gets
(`write_hosts`) and a Knot zone file (`write_zone`). Directories are cached under
``<cache>/names-<N>`` (a ``bench-chain.json`` marker says the build finished); a build
goes to a temporary directory next to it first, so an interrupted build leaves no half
chain behind.

Signing runs in one worker process (libsecp256k1 through coincurve, the same RFC 6979
bytes as the wallet) a few blocks ahead of the main process, which checks and commits:
on two cores the signatures cost almost nothing.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult
from pathlib import Path

import coincurve

from chain.crypto import PublicKey, sha256
from chain.genesis import Genesis, make_single_validator_genesis
from chain.ledger import STORAGE_FORMAT, Ledger
from chain.rdata import RType
from chain.records import Record
from chain.tx import ZERO_HASH, Op, Transaction, TxBody, TxHash, tx_signing_digest
from ledgerdns.storage.leveldb import LevelDBStore
from tools.devchain import certify, dev_key
from tools.localnet import pid_alive

FORMAT = 1  # bump when the layout of a benchmark chain changes: old caches are rebuilt
CHAIN_ID = "ledgerdns-bench"
TLD = "p2p"
GENESIS_TIME_MS = 1_700_000_000_000  # fixed, in the past: block times follow it by 1 s
BLOCK_TXS = 2000  # the devnet genesis's max_block_txs
TTL = 300
AHEAD = 4  # blocks signed ahead of the one being committed
MARKER = "bench-chain.json"

Progress = Callable[[int], None]  # called with the number of names committed so far


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchChain:
    """A finished data directory and how it came to be."""

    data_dir: Path
    domains: int
    height: int
    build_s: float  # seconds the build took (when it was built, maybe by an earlier run)
    cached: bool  # found in the cache rather than built by this call


def domain_name(i: int) -> str:
    """The name of domain number `i`."""
    return f"d{i}.{TLD}"


def address(i: int) -> str:
    """The IPv4 address domain `i` maps to (10.0.0.0/8 holds 16 million)."""
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def _a_record(i: int) -> Record:
    return Record(
        name="@", rtype=RType.A, ttl=TTL, rdata=bytes((10, i >> 16 & 255, i >> 8 & 255, i & 255))
    )


def write_hosts(path: Path, count: int) -> None:
    """A hosts file (dnsmasq ``--addn-hosts``) with the first `count` names and addresses."""
    with path.open("w") as out:
        for start in range(0, count, 100_000):
            out.write(
                "".join(
                    f"{address(i)} {domain_name(i)}\n"
                    for i in range(start, min(count, start + 100_000))
                )
            )


def write_zone(path: Path, count: int) -> None:
    """A zone file for Knot: zone ``p2p.`` holding the first `count` names, one A record each.

    Besides them only the apex (SOA, NS) and the name server's address (``ns.p2p``),
    none of which the benchmark's query files ask for.
    """
    with path.open("w") as out:
        out.write(
            f"$ORIGIN {TLD}.\n$TTL {TTL}\n"
            f"@ SOA ns.{TLD}. hostmaster.{TLD}. 1 3600 600 86400 {TTL}\n"
            f"@ NS ns.{TLD}.\nns A 127.0.0.1\n"
        )
        for start in range(0, count, 100_000):
            out.write(
                "".join(f"d{i} A {address(i)}\n" for i in range(start, min(count, start + 100_000)))
            )


def genesis() -> Genesis:
    """The benchmark devnet's genesis (its one validator is ``dev_key("validator", 0)``)."""
    return make_single_validator_genesis(
        dev_key("validator", 0).public_key, genesis_time_ms=GENESIS_TIME_MS, chain_id=CHAIN_ID
    )


def _block_time_ms(height: int) -> int:
    return GENESIS_TIME_MS + 1000 * height


def _body(chain_id: str, owner: PublicKey, i: int, valid_until: int) -> TxBody:
    return TxBody(
        chain_id=chain_id, domain=domain_name(i), seq=0, prev=ZERO_HASH, op=Op.REGISTER,
        records=(_a_record(i),), owner=owner, valid_until=valid_until,
    )  # fmt: skip


def _sign_range(
    chain_id: str, genesis_hash: bytes, secret: bytes, start: int, stop: int, valid_until: int
) -> bytes:
    """The 64-byte signatures of registrations `start`..`stop`, concatenated (worker side)."""
    signer = coincurve.PrivateKey(secret)
    owner = PublicKey(signer.public_key.format(compressed=True))
    out = bytearray()
    for i in range(start, stop):
        txid = TxHash(sha256(_body(chain_id, owner, i, valid_until).to_bytes()))
        digest = tx_signing_digest(genesis_hash, txid)  # what `Transaction.sign` signs
        out += signer.sign_recoverable(digest, hasher=None)[:64]
    return bytes(out)


class _Builder:
    """Commits blocks of registrations into a fresh store; signatures come from a pool."""

    def __init__(self, chain_dir: Path, count: int) -> None:
        self.count = count
        self.genesis = genesis()
        self.validator = dev_key("validator", 0)
        self.owner = dev_key("owner", 0)
        self.store = LevelDBStore.open(chain_dir)
        self.ledger = Ledger(self.store, self.genesis)
        self.ledger.initialize()

    def blocks(self) -> Iterator[tuple[int, int, int]]:
        """(height, first name, end) of every block to build."""
        for height, start in enumerate(range(0, self.count, BLOCK_TXS), start=1):
            yield height, start, min(self.count, start + BLOCK_TXS)

    def run(self, pool: multiprocessing.pool.Pool, progress: Progress) -> None:
        secret = self.owner.to_bytes()
        pending: deque[tuple[int, int, int, AsyncResult[bytes]]] = deque()
        todo = self.blocks()
        while True:
            while len(pending) < AHEAD and (nxt := next(todo, None)) is not None:
                height, start, stop = nxt
                args = (
                    CHAIN_ID,
                    self.genesis.hash(),
                    secret,
                    start,
                    stop,
                    self._valid_until(height),
                )
                pending.append((height, start, stop, pool.apply_async(_sign_range, args)))
            if not pending:
                return
            height, start, stop, result = pending.popleft()
            self._commit(height, start, stop, result.get(timeout=600))
            progress(stop)

    @staticmethod
    def _valid_until(height: int) -> int:
        return _block_time_ms(height) // 1000 + 3600

    def _commit(self, height: int, start: int, stop: int, signatures: bytes) -> None:
        owner = self.owner.public_key
        valid_until = self._valid_until(height)
        txs = []
        for k, i in enumerate(range(start, stop)):
            body = _body(CHAIN_ID, owner, i, valid_until)
            txs.append(
                Transaction(
                    body=body,
                    body_bytes=body.to_bytes(),
                    signature=signatures[64 * k : 64 * k + 64],
                )
            )
        ledger = self.ledger
        update, rejected = ledger.build_update(
            txs, time_ms=_block_time_ms(height), proposer=self.validator.public_key
        )
        if rejected or update.block.height != height:
            raise RuntimeError(
                f"block {height}: {len(rejected)} registrations refused: {rejected[:1]}"
            )
        # Not synced per block: the build is thrown away unless it finishes, and close() flushes.
        ledger.commit(
            update, certify(ledger, update.block.hash, height, [self.validator]), sync=False
        )


def _write_key(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(dev_key("validator", 0).to_pem())


def _marker_key(count: int) -> dict[str, object]:
    """What a cached directory must match: a new storage format or genesis means a rebuild."""
    return {
        "format": FORMAT,
        "storage_format": STORAGE_FORMAT,
        "genesis": genesis().hash().hex(),
        "domains": count,
    }


def _read_marker(data_dir: Path, count: int) -> dict[str, object] | None:
    try:
        marker = json.loads((data_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict):
        return None
    if any(marker.get(k) != v for k, v in _marker_key(count).items()):
        return None
    return marker


def build(data_dir: Path, count: int, progress: Progress) -> BenchChain:
    """Build a data directory holding `count` names at `data_dir` (which must not exist)."""
    started = time.perf_counter()
    data_dir.mkdir(mode=0o700, parents=True)
    (data_dir / "genesis.json").write_text(genesis().to_json())
    _write_key(data_dir / "validator.pem")
    # The worker is forked before LevelDB opens; callers run no threads of their own
    # meanwhile (bench_dns's progress bar refreshes from the callback, not a thread).
    with multiprocessing.get_context("fork").Pool(1) as pool:
        builder = _Builder(data_dir / "chain", count)
        try:
            builder.run(pool, progress)
            height = builder.ledger.height
            # Settle the store now: the node would otherwise compact it in the
            # background while it is being measured.
            builder.store.compact()
        finally:
            builder.store.close()
    build_s = time.perf_counter() - started
    marker = {**_marker_key(count), "height": height, "build_s": round(build_s, 2)}
    (data_dir / MARKER).write_text(json.dumps(marker))
    return BenchChain(
        data_dir=data_dir, domains=count, height=height, build_s=build_s, cached=False
    )


def ensure(cache_dir: Path, count: int, progress: Progress) -> BenchChain:
    """The cached data directory for `count` names, built first if missing or stale.

    The build goes to ``<cache>/building-<N>-<pid>`` and is renamed into place once
    complete, so a killed build is simply built again next time.
    """
    final = cache_dir / f"names-{count}"
    marker = _read_marker(final, count)
    if marker is not None:
        build_s = marker.get("build_s")
        height = marker.get("height")
        return BenchChain(
            data_dir=final, domains=count, height=height if isinstance(height, int) else 0,
            build_s=float(build_s) if isinstance(build_s, int | float) else 0.0, cached=True,
        )  # fmt: skip
    cache_dir.mkdir(parents=True, exist_ok=True)
    for stale in cache_dir.glob(f"building-{count}-*"):  # left by a build that was killed
        pid = stale.name.rsplit("-", 1)[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    work = cache_dir / f"building-{count}-{os.getpid()}"
    try:
        chain = build(work, count, progress)
        shutil.rmtree(final, ignore_errors=True)  # an older format or a half-deleted one
        work.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BenchChain(
        data_dir=final, domains=count, height=chain.height, build_s=chain.build_s, cached=False
    )
