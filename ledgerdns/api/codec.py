"""JSON views of chain objects, as the RPC sends them.

Pure functions: a chain object (and what it needs from the genesis) in, a
JSON-ready dict out. All bytes are lower-case hex; records are zone-file lines
relative to their domain (``"www 300 IN A 10.0.0.1"``). The reverse direction
exists only where a client needs the real object back: a transaction
(`tx_from_json`) and a light-client proof (`domain_proof_from_json`), both
decoded from their canonical bytes rather than from the friendly fields.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from chain.block import Block, BlockHeader
from chain.consensus_messages import Evidence, InvalidProposal
from chain.errors import InvalidUpdate, RejectReason
from chain.genesis import Genesis
from chain.ledger import genesis_anchor
from chain.lightclient import DomainProof, SetChange
from chain.quorum import CommitCertificate, Vote
from chain.state import DomainState, DomainStatus
from chain.tx import Op, Transaction
from chain.validators import Proposal, Roster, ValidatorChange, genesis_roster
from ledgerdns.services import NodeStatus

Json = dict[str, Any]
# Who names a validator: the roster of the height in question (`Ledger.roster_at`), or a
# genesis (its roster: right for every height before the first change of the set).
Names = Roster | Genesis


# -- small values --


def parse_hex(text: object, what: str, *, size: int | None = None) -> bytes:
    """Bytes from lower- or upper-case hex.

    Raises:
        ValueError: not a string of hex digits (of `size` bytes, when given),
            with a message naming `what`.
    """
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a hex string")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{what} is not valid hex") from None
    if len(text) != 2 * len(data):  # fromhex skips whitespace; we do not
        raise ValueError(f"{what} is not valid hex")
    if size is not None and len(data) != size:
        raise ValueError(f"{what} must be {size} bytes ({2 * size} hex digits)")
    return data


def parse_wait(text: str | None, *, maximum: float) -> float | None:
    """A ``wait=SECONDS`` query value: None when absent.

    Raises:
        ValueError: not a finite number in ``0..maximum``.
    """
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"wait must be a number of seconds, not {text[:20]!r}") from None
    if not math.isfinite(value) or not 0 <= value <= maximum:
        raise ValueError(f"wait must be between 0 and {maximum:g} seconds")
    return value


def plain_json(value: object) -> Any:
    """A dataclass (or container of them) as JSON: bytes hex, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [plain_json(item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    return value


def roster_of(names: Names) -> Roster:
    """The roster `names` stands for (a genesis: its first roster)."""
    return names if isinstance(names, Roster) else genesis_roster(names.params)


def validator_name(names: Names, key: bytes) -> str | None:
    """The name of the validator with `key` in `names`, or None for any other key."""
    return roster_of(names).name_of(key)


# -- transactions --


def tx_json(tx: Transaction) -> Json:
    """A transaction: its fields, and its canonical bytes as ``wire``."""
    body = tx.body
    return {
        "txid": tx.txid.hex(),
        "domain": body.domain,
        "seq": body.seq,
        "prev": body.prev.hex(),
        "op": body.op.name.lower(),
        "owner": bytes(body.owner).hex(),
        "valid_until": body.valid_until,
        "records": [r.to_text(origin=body.domain) for r in body.records],
        "signature": tx.signature.hex(),
        "size": tx.size,
        "wire": tx.to_bytes().hex(),
        **_change_json(tx),
    }


def _change_json(tx: Transaction) -> Json:
    """A validator op's ``change``: a proposal's change in the CLI's words, an approval's id."""
    body = tx.body
    if body.op == Op.VALIDATOR_APPROVE:
        return {"change": body.change.hex()}
    if body.op == Op.VALIDATOR_PROPOSE:
        try:
            return {"change": ValidatorChange.from_bytes(body.change).describe()}
        except InvalidUpdate:  # a pending proposal is checked when its block is built
            return {"change": body.change.hex()}
    return {}


def tx_from_json(doc: Mapping[str, Any]) -> Transaction:
    """The transaction a `tx_json` view describes, decoded from its ``wire`` bytes.

    Raises:
        InvalidUpdate: MALFORMED (or the decoder's reason) for anything else,
            including a ``txid`` that does not match the bytes.
    """
    try:
        wire = parse_hex(doc.get("wire"), "tx.wire")
    except ValueError as exc:
        raise InvalidUpdate(RejectReason.MALFORMED, str(exc)) from None
    tx = Transaction.from_bytes(wire)
    if doc.get("txid", tx.txid.hex()) != tx.txid.hex():
        raise InvalidUpdate(RejectReason.MALFORMED, "tx.txid does not match tx.wire")
    return tx


# -- blocks --


def certificate_json(cert: CommitCertificate, names: Names) -> Json:
    """A commit certificate: its round, the signers by name, and its bytes.

    Args:
        cert: the certificate.
        names: the roster of the certificate's height (its signer indexes are into it).
    """
    labels = roster_of(names).names
    return {
        "height": cert.height,
        "round": cert.round,
        "block_hash": cert.block_hash.hex(),
        "signers": [labels[i] if i < len(labels) else f"#{i}" for i, _ in cert.signatures],
        "hex": cert.to_bytes().hex(),
    }


def block_summary_json(block: Block, size: int, names: Names) -> Json:
    """One line of the block list: height, hash, time, proposer, tx count, size.

    `names` is the roster of the block's height.
    """
    header = block.header
    return {
        "height": header.height,
        "hash": header.hash.hex(),
        "time_ms": header.time_ms,
        "proposer": validator_name(names, header.proposer),
        "proposer_key": bytes(header.proposer).hex(),
        "txs": len(block.txs),
        "size": size,
    }


def block_json(
    block: Block, size: int, certificate: CommitCertificate | None, names: Names
) -> Json:
    """A whole block: every header field, its transactions and its certificate.

    `names` is the roster of the block's height (its proposer and signers are in it).
    """
    header = block.header
    return {
        "height": header.height,
        "hash": header.hash.hex(),
        "chain_id": header.chain_id,
        "prev_block": header.prev_block.hex(),
        "time_ms": header.time_ms,
        "proposer": validator_name(names, header.proposer),
        "proposer_key": bytes(header.proposer).hex(),
        "tx_root": header.tx_root.hex(),
        "state_root": header.state_root.hex(),
        "validators_hash": header.validators_hash.hex(),
        "next_validators_hash": header.next_validators_hash.hex(),
        "header": header.to_bytes().hex(),
        "size": size,
        "txs": [tx_json(tx) for tx in block.txs],
        "certificate": None if certificate is None else certificate_json(certificate, names),
    }


# -- domains --


def domain_status(state: DomainState, now_s: int) -> str:
    """``"active"``, ``"released"`` or ``"expired"`` at block time `now_s`."""
    if state.status == DomainStatus.RELEASED:
        return "released"
    return "active" if state.is_active(now_s) else "expired"


def domain_json(state: DomainState, pending: Iterable[Transaction], now_s: int) -> Json:
    """A domain's finalized state, judged at block time `now_s`, and its pending txs."""
    return {
        "domain": state.domain,
        "owner": bytes(state.owner).hex(),
        "seq": state.seq,
        "head": state.head.hex(),
        "records": [r.to_text(origin=state.domain) for r in state.records],
        "expires_at": state.expires_at,
        "status": domain_status(state, now_s),
        "pending": [tx_json(tx) for tx in pending],
    }


def history_entry_json(
    domain: str, seq: int, txid: bytes, found: tuple[Transaction, int, int] | None, chain_id: str
) -> Json:
    """One step of a domain's chain: the finalized transaction, or the genesis anchor."""
    if found is None:
        is_genesis = seq == 0 and txid == genesis_anchor(chain_id, domain)
        return {
            "seq": seq,
            "txid": txid.hex(),
            "height": 0 if is_genesis else None,
            "index": None,
            "genesis": is_genesis,
            "tx": None,
        }
    tx, height, index = found
    return {
        "seq": seq,
        "txid": txid.hex(),
        "height": height,
        "index": index,
        "genesis": False,
        "tx": tx_json(tx),
    }


# -- light-client proofs --


def domain_proof_json(proof: DomainProof, now_s: int) -> Json:
    """A proof of one domain's state at a certified header.

    ``bundle`` is `DomainProof.to_bytes`: what a client decodes and checks
    (`domain_proof_from_json`); the other fields are the same pieces for reading.
    """
    state = proof.state
    return {
        "domain": proof.domain,
        "height": proof.header.height,
        "block_hash": proof.header.hash.hex(),
        "header": proof.header.to_bytes().hex(),
        "certificate": proof.certificate.to_bytes().hex(),
        "state": None if state is None else domain_json(state, (), now_s),
        "state_bytes": None if state is None else state.to_bytes().hex(),
        "proof": proof.proof.to_bytes().hex(),
        "bundle": proof.to_bytes().hex(),
    }


def domain_proof_from_json(doc: Mapping[str, Any]) -> DomainProof:
    """The `DomainProof` inside a `domain_proof_json` view (not yet verified).

    Call ``.verify(genesis.params)`` on the result.

    Raises:
        InvalidUpdate: BAD_PROOF if the document is not a proof or its
            ``domain`` differs from the bundle's (or the decoder's reason).
    """
    try:
        bundle = parse_hex(doc.get("bundle"), "proof.bundle")
    except ValueError as exc:
        raise InvalidUpdate(RejectReason.BAD_PROOF, str(exc)) from None
    proof = DomainProof.from_bytes(bundle)
    if doc.get("domain") != proof.domain:
        raise InvalidUpdate(RejectReason.BAD_PROOF, "proof.domain does not match the bundle")
    return proof


# -- the validator set (chain/validators.py) --


def roster_json(roster: Roster) -> Json:
    """A roster: its validators by name and key, in proposer-rotation order, and its quorum."""
    return {
        "validators": [
            {"name": name, "public_key": bytes(key).hex()}
            for name, key in zip(roster.names, roster.validators.keys, strict=True)
        ],
        "quorum": roster.validators.quorum,
        "validators_hash": roster.validators.hash().hex(),
    }


def change_json(change: ValidatorChange) -> Json:
    """A change's parts: ``action`` (add, remove, rotate), ``name``, ``public_key`` (or null)."""
    return {
        "action": change.action.name.lower(),
        "name": change.name,
        "public_key": change.key.hex() if change.key else None,
    }


def proposal_json(
    proposal: Proposal, current: Roster, name_of: Callable[[bytes], str | None] | None = None
) -> Json:
    """A pending change with its approvals counted against the set now in force.

    Args:
        proposal: the pending proposal.
        current: the roster of the next height (whose quorum schedules the change).
        name_of: names a signer no longer in `current` (`Ledger.validator_name`).
    """

    def who(key: bytes) -> Json:
        name = current.name_of(key) or (name_of(key) if name_of is not None else None)
        return {"name": name, "public_key": bytes(key).hex()}

    return {
        "proposal": proposal.proposal.hex(),
        "change": proposal.change.describe(),
        **change_json(proposal.change),
        "proposer": who(proposal.proposer),
        "approved_by": [who(k) for k in proposal.approvals],
        "approvals": proposal.approved_by(current.validators),
        "needed": current.validators.quorum,
        "height": proposal.height,
        "lapses_at": proposal.leaves,
    }


def set_change_json(
    from_height: int, roster: Roster, header: BlockHeader, certificate: CommitCertificate
) -> Json:
    """One change of the set as a light client follows it (`chain.lightclient.SetChange`).

    `header` is the block at ``from_height - 1``: its ``next_validators_hash``
    names the new set, and `certificate` (by the set before the change) makes it final.
    """
    return {
        "from_height": from_height,
        "roster": {"names": list(roster.names),
                   "public_keys": [bytes(k).hex() for k in roster.validators.keys]},
        "roster_hex": roster.to_bytes().hex(),
        "header_hex": header.to_bytes().hex(),
        "certificate_hex": certificate.to_bytes().hex(),
    }


def set_change_from_json(doc: Mapping[str, Any]) -> SetChange:
    """The `SetChange` a `set_change_json` view carries, decoded from its bytes (not verified).

    Check a list of them with `chain.lightclient.follow_validator_set`.

    Raises:
        InvalidUpdate: BAD_VALIDATORS if the document is not one, or its
            ``from_height`` is not one past its header's height (or the decoders' reason).
    """
    try:
        header = BlockHeader.from_bytes(parse_hex(doc.get("header_hex"), "header_hex"))
        certificate = CommitCertificate.from_bytes(
            parse_hex(doc.get("certificate_hex"), "certificate_hex")
        )
        roster = Roster.from_bytes(parse_hex(doc.get("roster_hex"), "roster_hex"))
    except ValueError as exc:
        raise InvalidUpdate(RejectReason.BAD_VALIDATORS, str(exc)) from None
    change = SetChange(header=header, certificate=certificate, roster=roster)
    if doc.get("from_height") != change.from_height:
        raise InvalidUpdate(
            RejectReason.BAD_VALIDATORS, "from_height is not one past its header's height"
        )
    return change


# -- node --


def vote_json(vote: Vote) -> Json:
    """One vote of an equivocation: what it was for (``block_hash`` null for nil)."""
    return {
        "block_hash": vote.block_hash.hex() if vote.block_hash else None,
        "signature": vote.signature.hex(),
    }


def evidence_json(evidence: Evidence, names: Names) -> Json:
    """Two conflicting votes of one validator, and their canonical bytes.

    `names` is the roster of the votes' height.
    """
    first = evidence.first
    return {
        "validator": validator_name(names, first.validator),
        "validator_key": bytes(first.validator).hex(),
        "type": first.vtype.name.lower(),
        "height": first.height,
        "round": first.round,
        "first": vote_json(first),
        "second": vote_json(evidence.second),
        "hex": evidence.to_bytes().hex(),
    }


def invalid_proposal_json(record: InvalidProposal, names: Names) -> Json:
    """A signed proposal whose block broke the ledger rules, why, and its canonical bytes.

    `names` is the roster of the proposal's height.
    """
    proposal = record.proposal
    return {
        "validator": validator_name(names, proposal.proposer),
        "validator_key": bytes(proposal.proposer).hex(),
        "height": proposal.height,
        "round": proposal.round,
        "block_hash": proposal.block.hash.hex(),
        "reason": record.reason,
        "hex": record.to_bytes().hex(),
    }


def status_json(status: NodeStatus, genesis: Genesis) -> Json:
    """A `NodeStatus` with the network's TLDs, genesis time, naming rules and nameservers added.

    ``naming`` is the genesis naming section (docs/naming.md): what a wallet needs
    to register by commit and reveal (delay, window, stamp settings).
    ``nameservers`` is the network's public NS set (empty: each node names itself).
    """
    doc: Json = plain_json(status)
    doc["tlds"] = list(genesis.params.tlds)
    doc["genesis_time_ms"] = genesis.genesis_time_ms
    doc["name_lifetime_s"] = genesis.params.name_lifetime_s
    naming = genesis.params.naming
    doc["naming"] = {
        f.name: list(v) if isinstance(v := getattr(naming, f.name), tuple) else v
        for f in dataclasses.fields(naming)
    }
    doc["nameservers"] = list(genesis.params.nameservers)
    return doc
