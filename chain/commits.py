"""Name commits and claims: the state commit-reveal registration keeps (docs/naming.md).

A registrant first commits to ``commitment = SHA-256([30, 1, genesis_hash,
domain, owner, salt])`` with a proof-of-work stamp; once that commit's block
is final and `reveal_delay` heights have passed, a registration revealing
the domain and salt claims the name. Until the reveal, no one but the
registrant knows the name, so no proposer or peer can take it first.

Two kinds of state-tree leaves, each with its own tree key so neither can be
mistaken for a domain (whose key is ``SHA-256(domain)``, and a domain holds no
0x00 byte):

- `CommitEntry` ``[32, 1, commitment, owner, height, index, work]`` under
  ``SHA-256("ledgerdns-commit" 0x00 commitment owner)``: a commit not yet
  revealed. It leaves the state when revealed, or after its reveal window
  (at the start of block ``height + reveal_window + 1``).
- `Claim` ``[33, 1, domain, commit_height, commit_index, until]`` under
  ``SHA-256("ledgerdns-claim" 0x00 domain)``: a name registered by a reveal
  while an earlier commit may still reveal the same name (until height
  `until` = ``commit_height + reveal_window``: a commit earlier in the same
  block may reveal as late as this one). A reveal whose commit is
  earlier (lower ``(height, index)``) takes the name over; until then the
  name is provisional and its owner cannot change it.

Both are keyed by the height at which they leave the state in a local index
(`chain.keys.make_naming_expiry_key`), so expiry costs reads of that height's
entries only and the state stays bounded by ``max_block_commits *
reveal_window`` commits and ``max_block_registrations * reveal_window`` claims.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.crypto import PUBLIC_KEY_SIZE, PrivateKey, PublicKey, sha256
from chain.encoding import Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.params import NamingParams
from chain.records import Record
from chain.tx import MAX_DOMAIN, ZERO_HASH, Op, Transaction, TxBody

MAX_ENTRY_BYTES = 512


def make_commitment(genesis_hash: bytes, domain: str, owner: bytes, salt: bytes) -> bytes:
    """What a commit publishes instead of the name: binds network, name, owner and salt."""
    return sha256(frame(Kind.NAME_COMMITMENT, genesis_hash, domain, bytes(owner), salt))


def commit_tree_key(commitment: bytes, owner: bytes) -> bytes:
    """The state-tree key of a commit.

    The owner is part of it: a copy of someone's commitment signed by another key
    is a separate entry (that can never be revealed), not a block on theirs.
    """
    return sha256(b"ledgerdns-commit\x00" + commitment + bytes(owner))


def claim_tree_key(domain: str) -> bytes:
    """The state-tree key of a domain's claim."""
    return sha256(b"ledgerdns-claim\x00" + domain.encode("ascii"))


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitEntry:
    """A finalized commit waiting for its reveal.

    Attributes:
        commitment: the committed hash.
        owner: the key that signed the commit (and must sign the reveal).
        height: the commit's block height.
        index: the commit's position in that block (ties between commits of one block).
        work: the stamp work the commit paid for.
    """

    commitment: bytes
    owner: PublicKey
    height: int
    index: int
    work: int

    def __post_init__(self) -> None:
        if len(self.commitment) != 32 or len(self.owner) != PUBLIC_KEY_SIZE:
            raise InvalidUpdate(RejectReason.MALFORMED, "commit entry field sizes")

    @property
    def tree_key(self) -> bytes:
        """Where the state tree holds it."""
        return commit_tree_key(self.commitment, self.owner)

    def leaves_at(self, params: NamingParams) -> int:
        """The height at whose start it leaves the state (its reveal window closed)."""
        return self.height + params.reveal_window + 1

    def to_bytes(self) -> bytes:
        """Canonical framed bytes (the tree stores their SHA-256)."""
        return frame(
            Kind.NAME_COMMIT, self.commitment, bytes(self.owner), self.height, self.index, self.work
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CommitEntry:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed input.
        """
        r = Reader.open(data, Kind.NAME_COMMIT, "commit", fields=5, max_size=MAX_ENTRY_BYTES)
        entry = cls(
            commitment=r.bytes("commitment", size=32),
            owner=PublicKey(r.bytes("owner", size=PUBLIC_KEY_SIZE)),
            height=r.uint("height", maximum=2**63 - 1),
            index=r.uint("index", maximum=2**32 - 1),
            work=r.uint("work", maximum=2**63 - 1),
        )
        r.done()
        return entry


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """A name registered by a reveal that an earlier commit may still take over.

    Attributes:
        domain: the name.
        commit_height: the height of the winning commit so far.
        commit_index: its index in that block.
        until: the last height at which an earlier commit may still reveal.
    """

    domain: str
    commit_height: int
    commit_index: int
    until: int

    @property
    def tree_key(self) -> bytes:
        """Where the state tree holds it."""
        return claim_tree_key(self.domain)

    def leaves_at(self) -> int:
        """The height at whose start it leaves the state (the name is settled)."""
        return self.until + 1

    def is_live(self, height: int) -> bool:
        """Whether an earlier commit may still take the name over at `height`."""
        return height <= self.until

    def to_bytes(self) -> bytes:
        """Canonical framed bytes (the tree stores their SHA-256)."""
        return frame(Kind.NAME_CLAIM, self.domain, self.commit_height, self.commit_index, self.until)

    @classmethod
    def from_bytes(cls, data: bytes) -> Claim:
        """Decode strictly.

        Raises:
            InvalidUpdate: malformed input.
        """
        r = Reader.open(data, Kind.NAME_CLAIM, "claim", fields=4, max_size=MAX_ENTRY_BYTES)
        claim = cls(
            domain=r.text("domain", maximum=MAX_DOMAIN),
            commit_height=r.uint("commit_height", maximum=2**63 - 1),
            commit_index=r.uint("commit_index", maximum=2**32 - 1),
            until=r.uint("until", maximum=2**63 - 1),
        )
        r.done()
        return claim


def entry_from_bytes(data: bytes) -> CommitEntry | Claim:
    """Decode a stored naming entry of either kind."""
    if data[1:3] == bytes([0x18, Kind.NAME_CLAIM]):
        return Claim.from_bytes(data)
    return CommitEntry.from_bytes(data)


@dataclass(frozen=True, slots=True, kw_only=True)
class NameContext:
    """What the naming rules need of the chain besides the domain's own state.

    Attributes:
        height: the height of the block the transaction goes into.
        commit: for a reveal, the commit it names (None: not in the state).
        claim: the domain's claim, if one is in the state.
    """

    height: int
    commit: CommitEntry | None = None
    claim: Claim | None = None


def reveal_commit_key(tx: Transaction, genesis_hash: bytes) -> bytes:
    """The tree key of the commit a reveal names."""
    body = tx.body
    commitment = make_commitment(genesis_hash, body.domain, body.owner, body.salt)
    return commit_tree_key(commitment, body.owner)


def check_commit(tx: Transaction, existing: CommitEntry | None, height: int, index: int) -> CommitEntry:
    """The entry a commit adds at `height`, `index` (its stamp already checked).

    Raises:
        InvalidUpdate: `DUPLICATE` if the same commitment and owner are already committed.
    """
    body = tx.body
    if existing is not None:
        raise InvalidUpdate(
            RejectReason.DUPLICATE,
            f"commit {body.commitment.hex()[:16]} is already in the state (height {existing.height})",
        )
    return CommitEntry(
        commitment=body.commitment, owner=body.owner, height=height, index=index, work=body.stamp_work
    )


def check_reveal(tx: Transaction, params: NamingParams, ctx: NameContext) -> CommitEntry:
    """Whether a reveal may register its name at `ctx.height`; returns its commit.

    Raises:
        InvalidUpdate: `REVEAL_TOO_EARLY`, `REVEAL_TOO_LATE`, `COMMIT_NOT_FOUND`
            or `STAMP_TOO_WEAK`.
    """
    body = tx.body
    name, height, committed = body.domain, ctx.height, body.commit_height
    if height < committed + params.reveal_delay:
        raise InvalidUpdate(
            RejectReason.REVEAL_TOO_EARLY,
            f"{name}: reveal at height {height}, its commit (height {committed}) "
            f"may be revealed from height {committed + params.reveal_delay}",
        )
    if height > committed + params.reveal_window:
        raise InvalidUpdate(
            RejectReason.REVEAL_TOO_LATE,
            f"{name}: reveal at height {height}, its commit (height {committed}) "
            f"could be revealed until height {committed + params.reveal_window}",
        )
    commit = ctx.commit
    if commit is None or commit.height != committed:
        raise InvalidUpdate(
            RejectReason.COMMIT_NOT_FOUND,
            f"{name}: no commit of this name, owner and salt at height {committed}",
        )
    need = params.required_work(name)
    if commit.work < need:
        raise InvalidUpdate(
            RejectReason.STAMP_TOO_WEAK,
            f"{name}: its commit's stamp has work {commit.work}, this name needs {need}",
        )
    return commit


def takes_over(commit: CommitEntry, claim: Claim | None, height: int) -> bool:
    """Whether a reveal of `commit` takes a name held under `claim` (an earlier commit wins)."""
    if claim is None or not claim.is_live(height):
        return False
    return (commit.height, commit.index) < (claim.commit_height, claim.commit_index)


def claim_after(domain: str, commit: CommitEntry, params: NamingParams) -> Claim:
    """The claim a reveal of `commit` leaves: live while an earlier commit may still reveal."""
    return Claim(
        domain=domain,
        commit_height=commit.height,
        commit_index=commit.index,
        until=commit.height + params.reveal_window,
    )


# -- building (the wallet and tests) --


def build_commit(
    *,
    key: PrivateKey,
    chain_id: str,
    genesis_hash: bytes,
    commitment: bytes,
    work: int,
    stamp: bytes,
    deadline: int,
) -> Transaction:
    """Sign a commit of `commitment` carrying `stamp` (searched by `chain.stamp.solve_stamp`)."""
    body = TxBody(
        chain_id=chain_id, domain="", seq=0, prev=ZERO_HASH, op=Op.COMMIT, records=(),
        owner=key.public_key, valid_until=deadline, commitment=commitment, stamp_work=work,
        stamp=stamp,
    )  # fmt: skip
    return Transaction.sign(body, key, genesis_hash)


def build_reveal(
    *,
    key: PrivateKey,
    chain_id: str,
    genesis_hash: bytes,
    domain: str,
    seq: int,
    prev: bytes,
    records: tuple[Record, ...],
    salt: bytes,
    commit_height: int,
    deadline: int,
) -> Transaction:
    """Sign the registration that reveals a commit (`seq`/`prev`: the name's next step)."""
    body = TxBody(
        chain_id=chain_id, domain=domain, seq=seq, prev=prev, op=Op.REGISTER, records=records,
        owner=key.public_key, valid_until=deadline, commit_height=commit_height, salt=salt,
    )  # fmt: skip
    return Transaction.sign(body, key, genesis_hash)
