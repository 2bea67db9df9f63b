"""The stored chain: reading it, checking a block against it, applying a block.

`Ledger` owns no database: it reads through a `KVStore` and writes one
`WriteBatch` per finalized block (block, certificate, transaction index,
domain states and history, state-tree nodes and the head pointer), written
with ``sync=True`` so a crash leaves the store at the last whole block.

Height 0 is a virtual header built from genesis: its `prev_block` is the
genesis hash and its `state_root` commits to the genesis domains. Genesis
domains start at seq 0 with an anchor head (`genesis_anchor`) instead of a
transaction, so their first update is seq 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from chain import keys
from chain.block import NO_PROPOSER, Block, BlockHeader, tx_root
from chain.block_writes import write_block_keys, write_naming
from chain.blockwork import BlockWork, NamingEntry, state_entry_from_bytes
from chain.commits import Claim, CommitEntry, claim_tree_key
from chain.crypto import PublicKey, sha256
from chain.errors import ConfigError, InvalidUpdate, NotFound, RejectReason
from chain.genesis import Genesis
from chain.lightclient import DomainProof
from chain.quorum import CommitCertificate, ValidatorSet
from chain.smt import SparseMerkleTree
from chain.state import DomainState, DomainStatus, StateCache, domain_key
from chain.store import KVStore, WriteBatch
from chain.tx import Transaction
from chain.validator_history import RosterHistory
from chain.validators import SCHEDULE_TREE_KEY, Proposal, Roster, Schedule, proposal_tree_key

# 2: transactions, votes, proposals and certificates at version 2 (their
# signatures cover the genesis hash, issue 13). 3: headers at version 2 (they
# commit to the next height's validator set) and validator rosters (issue 15).
STORAGE_FORMAT = 3
# The state tree keeps its top 12 levels in memory: at most 2**12 - 1 = 4,095 nodes,
# ~270 B each (key, hash + encoded node, dict slot), so ~1.1 MiB once the tree has
# some 4,000 domains, and no more however many it gets. At 18 levels the cache held
# every node up to ~130,000 domains: ~540 B per name (issue 21, tools/soak_heap.py).
# Each update then reads the levels below 12 from the store: log2(domains) - 12 reads
# (8 at a million domains).
TREE_CACHE_LEVELS = 12
# Decoded states of the most recently used domains: at most 2,048 entries and
# 2 MiB as `chain.state.cached_size` counts them (~0.5 KiB for a one-record state;
# the largest record set the limits allow is ~10 KiB, so ~200 of those). A miss is
# a store read and a decode (~15 us).
STATE_CACHE_SIZE = 2048
STATE_CACHE_BYTES = 2 * 1024 * 1024


def genesis_anchor(chain_id: str, domain: str) -> bytes:
    """The head a genesis domain starts from (stands in for a seq-0 txid)."""
    return sha256(b"ledgerdns-genesis\x00" + chain_id.encode() + b"\x00" + domain.encode())


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockUpdate:
    """A checked block and the batch that applies it (not yet written)."""

    block: Block
    batch: WriteBatch
    states: dict[str, DomainState]
    scheduled: list[tuple[int, Roster]] = field(default_factory=list)  # rosters it scheduled


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    """A transaction a proposer left out, and why."""

    tx: Transaction
    error: InvalidUpdate


class Ledger:
    """The finalized chain in a `KVStore`, for one genesis.

    It keeps the head, the top of the state tree and recently used domain
    states in memory, refreshed from every batch it writes, so it must be its
    store's only writer.
    """

    def __init__(self, store: KVStore, genesis: Genesis) -> None:
        self.store = store
        self.genesis = genesis
        self.params = genesis.params
        self.tree = SparseMerkleTree(store, cache_levels=TREE_CACHE_LEVELS)
        self._states = StateCache(STATE_CACHE_SIZE, STATE_CACHE_BYTES)
        self._head: BlockHeader | None = None
        self._base: int | None = None  # `base_height`, read once
        self.roster_history = RosterHistory(store, self.params)

    # -- set-up --

    def reload(self) -> None:
        """Forget what is cached: the store was rewritten under this ledger (a state sync)."""
        self.tree = SparseMerkleTree(self.store, cache_levels=TREE_CACHE_LEVELS)
        self._states.clear()
        self._head = None
        self.roster_history = RosterHistory(self.store, self.params)

    def forget_base(self) -> None:
        """The base height moved (`chain.pruning`): read it again when needed."""
        self._base = None

    def _missing_block(self, height: int) -> NotFound:
        if 0 < height < self.base_height and height <= self.height:
            return NotFound(
                f"no block at height {height}: this node keeps blocks from height "
                f"{self.base_height} on (pruned or joined by state sync)"
            )
        return NotFound(f"no block at height {height}")

    def _partial_history(self) -> bool:
        if self._base is None:
            self._base = self.base_height
        return self._base > 1

    @property
    def base_height(self) -> int:
        """The lowest height from which this store holds every block (1: all of them).

        Higher on a node that joined by state sync (its snapshot's height) or prunes
        old blocks (`chain.pruning`).
        """
        raw = self.store.get(keys.make_meta_key(keys.META_BASE))
        return 1 if raw is None else keys.read_u64(raw)

    def initialize(self) -> None:
        """Write the genesis state into an empty store, or check the store's network.

        Raises:
            ConfigError: the store belongs to another genesis or a newer layout.
        """
        stored = self.store.get(keys.make_meta_key(keys.META_GENESIS))
        if stored is not None:
            if stored != self.genesis.hash():
                raise ConfigError(
                    "the data directory holds another network's chain (genesis hash "
                    f"{stored.hex()[:16]}, this genesis {self.genesis.hash().hex()[:16]})"
                )
            fmt = self.store.get(keys.make_meta_key(keys.META_FORMAT))
            if fmt is None or int.from_bytes(fmt, "big") != STORAGE_FORMAT:
                raise ConfigError("the data directory uses an unknown storage format")
            return
        batch = WriteBatch()
        states = {}
        for d in self.genesis.domains:
            states[d.domain] = DomainState(
                domain=d.domain,
                owner=d.owner,
                seq=0,
                head=genesis_anchor(self.params.chain_id, d.domain),
                records=d.records,
                expires_at=0,
                status=DomainStatus.ACTIVE,
            )
        for name, state in states.items():
            batch.put(keys.make_history_key(name, state.seq), state.head)
        root = self._write_states(batch, states)
        header = self.genesis_header(root)
        batch.put(keys.make_block_key(0), Block(header=header, txs=()).to_bytes())
        batch.put(keys.make_block_hash_key(header.hash), keys.u64(0))
        batch.put(keys.make_meta_key(keys.META_HEAD), keys.u64(0))
        batch.put(keys.make_meta_key(keys.META_FORMAT), STORAGE_FORMAT.to_bytes(4, "big"))
        batch.put(keys.make_meta_key(keys.META_GENESIS), self.genesis.hash())
        self._write(batch, states)
        self._head = header

    def genesis_header(self, state_root: bytes) -> BlockHeader:
        """The virtual height-0 header."""
        return BlockHeader(
            chain_id=self.params.chain_id,
            height=0,
            prev_block=self.genesis.hash(),
            time_ms=self.genesis.genesis_time_ms,
            proposer=NO_PROPOSER,
            tx_root=tx_root([]),
            state_root=state_root,
            validators_hash=self.params.validators.hash(),
            next_validators_hash=self.params.validators.hash(),
        )

    # -- reading --

    @property
    def height(self) -> int:
        """Height of the last applied block (0: genesis only)."""
        return self.head.height

    @property
    def head(self) -> BlockHeader:
        """Header of the last applied block."""
        if self._head is None:
            raw = self.store.get(keys.make_meta_key(keys.META_HEAD))
            if raw is None:
                raise NotFound("the store is not initialized; call initialize() first")
            self._head = self.get_block(keys.read_u64(raw)).header
        return self._head

    def get_block(self, height: int) -> Block:
        """The block at `height`.

        Raises:
            NotFound: no such block here.
        """
        raw = self.store.get(keys.make_block_key(height))
        if raw is None:
            raise self._missing_block(height)
        return Block.from_bytes(raw)

    def get_block_bytes(self, height: int) -> bytes:
        """The stored bytes of the block at `height` (for sync, without a decode)."""
        raw = self.store.get(keys.make_block_key(height))
        if raw is None:
            raise self._missing_block(height)
        return raw

    def get_height_of(self, block_hash: bytes) -> int:
        """The height of a block by hash."""
        raw = self.store.get(keys.make_block_hash_key(block_hash))
        if raw is None:
            raise NotFound(f"no block {block_hash.hex()[:16]}")
        return keys.read_u64(raw)

    def get_certificate(self, height: int) -> CommitCertificate:
        """The commit certificate of the block at `height` (none for genesis)."""
        raw = self.store.get(keys.make_certificate_key(height))
        if raw is None:
            raise NotFound(f"no certificate at height {height}")
        return CommitCertificate.from_bytes(raw)

    def get_domain(self, domain: str, batch: WriteBatch | None = None) -> DomainState | None:
        """A domain's finalized state (regardless of expiry), or None if never registered."""
        key = keys.make_domain_key(domain)
        if batch is not None:
            found, value = batch.pending(key)
            if found:
                return None if value is None else DomainState.from_bytes(value)
        found, state = self._states.lookup(domain)
        if found:
            return state
        raw = self.store.get(key)
        if raw is None:
            return None  # not remembered: a flood of unknown names must not push out known ones
        state = DomainState.from_bytes(raw)
        self._states.put(domain, state)
        return state

    def get_naming_entry(self, tree_key: bytes) -> NamingEntry | None:
        """A name commit or claim by its state-tree key, None if not in the state."""
        raw = self.store.get(keys.make_naming_key(tree_key))
        return None if raw is None else state_entry_from_bytes(raw)

    def get_commit(self, tree_key: bytes) -> CommitEntry | None:
        """A finalized commit not yet revealed (`chain.commits.commit_tree_key`)."""
        found = self.get_naming_entry(tree_key)
        return found if isinstance(found, CommitEntry) else None

    def get_claim(self, domain: str) -> Claim | None:
        """A domain's claim: set while an earlier commit may still take it over."""
        found = self.get_naming_entry(claim_tree_key(domain))
        return found if isinstance(found, Claim) else None

    def naming_leaving(self, height: int) -> list[bytes]:
        """The state-tree keys of the commits and claims marked to leave at `height`."""
        prefix = keys.make_naming_expiry_prefix(height)
        with self.store.iterate(prefix) as pairs:
            return [key[len(prefix) :] for key, _ in pairs]

    def get_tx(self, txid: bytes) -> tuple[Transaction, int, int]:
        """A finalized transaction with its block height and index."""
        raw = self.store.get(keys.make_tx_key(txid))
        if raw is None:
            raise NotFound(f"no transaction {txid.hex()[:16]}")
        height, index = keys.read_tx_location(raw)
        return self.get_block(height).txs[index], height, index

    def get_tx_location(self, txid: bytes) -> tuple[int, int]:
        """A finalized transaction's block height and index, without decoding the block.

        Raises:
            NotFound: no such finalized transaction (a genesis anchor is not one).
        """
        raw = self.store.get(keys.make_tx_key(txid))
        if raw is None:
            raise NotFound(f"no transaction {txid.hex()[:16]}")
        return keys.read_tx_location(raw)

    def history(self, domain: str) -> list[tuple[int, bytes]]:
        """``(seq, txid or genesis anchor)`` of every step of a domain's chain, oldest first.

        From the node's base height on (`base_height`): older steps are not kept by a
        node that joined by state sync or prunes; the head is always there.
        """
        prefix = keys.make_history_prefix(domain)
        with self.store.iterate(prefix) as pairs:
            steps = [(keys.read_u64(key[len(prefix) :]), value) for key, value in pairs]
        # A node that joined by state sync, or pruned, keeps no steps before its base
        # height; the head is in the state itself (which commits to it).
        state = self.get_domain(domain)
        if state is not None and (not steps or steps[-1][0] < state.seq):
            steps.append((state.seq, state.head))
        return steps

    def prove_domain(self, domain: str) -> DomainProof:
        """A light-client proof of `domain`'s state (or absence) at the head.

        Raises:
            NotFound: the chain has no certified block yet (genesis only).
        """
        head = self.head
        return DomainProof(
            domain=domain,
            header=head,
            certificate=self.get_certificate(head.height),
            state=self.get_domain(domain),
            proof=self.tree.prove(domain_key(domain)),
        )

    def domains(self, *, start: str = "", limit: int = 100) -> list[DomainState]:
        """Domain states in name order, from `start`."""
        out = []
        with self.store.iterate(keys.DOMAIN, start=keys.make_domain_key(start)) as pairs:
            for _, value in pairs:
                out.append(DomainState.from_bytes(value))
                if len(out) >= limit:
                    break
        return out

    # -- the validator set (chain/validators.py) --

    def rosters(self) -> list[tuple[int, Roster]]:
        """Every validator roster since genesis with the height it starts at, oldest first.

        Includes the rosters scheduled by finalized blocks that have not started yet.
        """
        return self.roster_history.all()

    def roster_at(self, height: int) -> Roster:
        """The validator roster of `height` (known up to two heights past the head)."""
        return self.roster_history.at(height)

    def validators_at(self, height: int) -> ValidatorSet:
        """The validator set that decides the block at `height`."""
        return self.roster_history.at(height).validators

    def is_validator_near(self, key: bytes) -> bool:
        """Whether `key` is in the set of the head, the next height or the one after.

        What a node's gossip filters accept from: a validator a height behind or ahead
        of us across a change still signs for a set we know.
        """
        head = self.height
        return any(
            self.validators_at(h).index_of(key) is not None for h in (head, head + 1, head + 2)
        )

    def validator_name(self, key: bytes) -> str | None:
        """The name of the validator with `key` in the latest roster that has it, None if none."""
        return self.roster_history.name_of(key)

    def get_proposal(self, proposal_id: bytes) -> Proposal | None:
        """A pending validator-set change by id, None if not pending."""
        found = self.get_naming_entry(proposal_tree_key(proposal_id))
        return found if isinstance(found, Proposal) else None

    def pending_proposals(self) -> list[Proposal]:
        """Every pending validator-set change, oldest first (from the local `P` index)."""
        out: list[Proposal] = []
        with self.store.iterate(keys.PROPOSAL_INDEX) as pairs:
            marked = [key[len(keys.PROPOSAL_INDEX) :] for key, _ in pairs]
        for tree_key in marked:
            found = self.get_naming_entry(tree_key)
            if isinstance(found, Proposal):
                out.append(found)
        return sorted(out, key=lambda p: (p.height, p.proposal))

    def schedule(self) -> Schedule | None:
        """The validator schedule in the state (None: no change was ever scheduled)."""
        found = self.get_naming_entry(SCHEDULE_TREE_KEY)
        return found if isinstance(found, Schedule) else None

    # -- checking and applying blocks --

    def _check_header(self, header: BlockHeader, prev: BlockHeader) -> None:
        p = self.params
        validators = self.validators_at(header.height)
        fails = [
            (header.chain_id != p.chain_id, RejectReason.WRONG_CHAIN, "chain_id"),
            (header.height != prev.height + 1, RejectReason.BAD_HEIGHT, f"height {header.height}, expected {prev.height + 1}"),
            (header.prev_block != prev.hash, RejectReason.BAD_PREV_BLOCK, "prev_block is not the head"),
            (header.time_ms <= prev.time_ms, RejectReason.BAD_TIME, "time does not move forward"),
            (validators.index_of(header.proposer) is None, RejectReason.BAD_PROPOSER, "proposer is not a validator"),
            (header.validators_hash != validators.hash(), RejectReason.BAD_VALIDATORS, "validators_hash"),
            (header.next_validators_hash != self.validators_at(header.height + 1).hash(), RejectReason.BAD_VALIDATORS, "next_validators_hash"),
        ]  # fmt: skip
        for failed, reason, message in fails:
            if failed:
                raise InvalidUpdate(reason, f"block {header.height}: {message}")

    def check_block(self, block: Block) -> BlockUpdate:
        """Validate `block` as the next one and prepare its write batch.

        The header's proposer must be a validator; that it was the one due for the
        round is consensus's check on the signed proposal (a block locked in one
        round may be re-proposed by a later round's proposer).

        Raises:
            InvalidUpdate: the first rule broken; the message names the transaction.
        """
        header = block.header
        self._check_header(header, self.head)
        limits = self.params.consensus
        size = sum(tx.size for tx in block.txs)
        if len(block.txs) > limits.max_block_txs or size > limits.max_block_bytes:
            raise InvalidUpdate(RejectReason.BLOCK_TOO_LARGE, f"block {header.height}: too large")
        if not block.body_matches_header():
            raise InvalidUpdate(RejectReason.BAD_TX_ROOT, f"block {header.height}: tx_root")
        batch = WriteBatch()
        work = BlockWork(self, self.params, header.height, header.time_ms // 1000)
        work.expire()
        for i, tx in enumerate(block.txs):
            try:
                work.apply(tx, i)
            except InvalidUpdate as exc:
                raise InvalidUpdate(
                    exc.reason,
                    f"block {header.height} tx {i} ({tx.txid.hex()[:16]}): {exc.args[0]}",
                ) from None
        if self._write_states(batch, work.states, work) != header.state_root:
            raise InvalidUpdate(RejectReason.BAD_STATE_ROOT, f"block {header.height}: state_root")
        write_block_keys(batch, block, work, partial_history=self._partial_history())
        return BlockUpdate(block=block, batch=batch, states=work.states, scheduled=work.scheduled)

    def _write_states(
        self, batch: WriteBatch, states: dict[str, DomainState], work: BlockWork | None = None
    ) -> bytes:
        changes: dict[bytes, bytes | None] = {}
        for name, state in states.items():
            data = state.to_bytes()
            batch.put(keys.make_domain_key(name), data)
            changes[domain_key(name)] = sha256(data)  # state.value_hash(), encoded once
        if work is not None:
            write_naming(batch, work, changes, self.params.naming)
        return self.tree.update(batch, changes)

    def commit(
        self, update: BlockUpdate, certificate: CommitCertificate, *, sync: bool = True
    ) -> None:
        """Write a checked block with its certificate in one synced batch.

        With ``sync=False`` the batch is still atomic but not flushed to disk at
        once (for blocks learned by sync, which peers can give again): a process
        crash loses nothing, a power cut may lose the last few such blocks.

        Raises:
            InvalidUpdate: the certificate does not finalize this block, or the
                head moved since `check_block`.
        """
        block = update.block
        if block.header.prev_block != self.head.hash:
            raise InvalidUpdate(RejectReason.BAD_PREV_BLOCK, "the head moved since the check")
        if certificate.height != block.height:
            raise InvalidUpdate(RejectReason.BAD_VOTE, "certificate is for another height")
        certificate.verify(
            self.validators_at(block.height),
            self.params.chain_id,
            block.hash,
            genesis_hash=self.params.genesis_hash,
        )
        update.batch.put(keys.make_certificate_key(block.height), certificate.to_bytes())
        self._write(update.batch, update.states, sync=sync)
        self._head = block.header
        self.roster_history.extend(update.scheduled)

    def _write(
        self, batch: WriteBatch, states: dict[str, DomainState], *, sync: bool = True
    ) -> None:
        """Write `batch` (which sets `states`) durably; keep the caches in step with it."""
        try:
            self.store.write(batch, sync=sync)
        except BaseException:
            self._states.clear()  # the store may or may not hold the batch now
            raise
        self.tree.committed(batch)
        for name, state in states.items():
            self._states.put(name, state)

    def apply_block(self, block: Block, certificate: CommitCertificate) -> BlockUpdate:
        """Check and commit a finalized block (what sync does)."""
        update = self.check_block(block)
        self.commit(update, certificate)
        return update

    # -- proposing --

    def build_block(
        self, txs: Iterable[Transaction], *, time_ms: int, proposer: PublicKey
    ) -> tuple[Block, list[Rejected]]:
        """The next block from candidate transactions in order, leaving out invalid ones.

        Stops at the genesis block limits. `time_ms` is raised to head time + 1 if needed.
        """
        update, rejected = self.build_update(txs, time_ms=time_ms, proposer=proposer)
        return update.block, rejected

    def build_update(
        self, txs: Iterable[Transaction], *, time_ms: int, proposer: PublicKey
    ) -> tuple[BlockUpdate, list[Rejected]]:
        """`build_block`, also returning the prepared batch so a proposer can `commit` it."""
        head = self.head
        time_ms = max(time_ms, head.time_ms + 1)
        now_s = time_ms // 1000
        limits = self.params.consensus
        chosen: list[Transaction] = []
        rejected: list[Rejected] = []
        work = BlockWork(self, self.params, head.height + 1, now_s)
        work.expire()
        waiting: set[str] = set()  # domains with a transaction left for a later block
        size = 0
        for tx in txs:
            if len(chosen) >= limits.max_block_txs or size + tx.size > limits.max_block_bytes:
                break
            if tx.body.domain in waiting or not work.fits(tx):
                # Over the per-block registration limits: it stays pending (not
                # rejected), and so does every later transaction of its domain.
                if tx.body.has_domain:
                    waiting.add(tx.body.domain)
                continue
            try:
                work.apply(tx, len(chosen))
            except InvalidUpdate as exc:
                rejected.append(Rejected(tx=tx, error=exc))
                continue
            chosen.append(tx)
            size += tx.size
        batch = WriteBatch()
        header = BlockHeader(
            chain_id=self.params.chain_id,
            height=head.height + 1,
            prev_block=head.hash,
            time_ms=time_ms,
            proposer=proposer,
            tx_root=tx_root(chosen),
            state_root=self._write_states(batch, work.states, work),
            validators_hash=self.validators_at(head.height + 1).hash(),
            next_validators_hash=self.validators_at(head.height + 2).hash(),
        )
        block = Block(header=header, txs=tuple(chosen))
        write_block_keys(batch, block, work, partial_history=self._partial_history())
        return BlockUpdate(
            block=block, batch=batch, states=work.states, scheduled=work.scheduled
        ), rejected
