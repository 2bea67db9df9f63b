"""Changing a domain's record set: parse typed lines, add, remove, replace, check.

Every change returns the whole new set in canonical order (the ledger stores
full sets), checked against the record-set rules so that a mistake is reported
before anything is signed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chain import txbuilder
from chain.errors import InvalidUpdate
from chain.names import normalize_relative_name
from chain.rdata import RType
from chain.records import Record
from ledgerdns.wallet.errors import BadInput, WalletError


def parse_records(lines: Iterable[str], domain: str) -> list[Record]:
    """Read zone-file lines relative to `domain` (``"www 300 A 10.0.0.1"``, ``@`` = apex).

    Raises:
        BadInput: a line is not a valid record; the message quotes it and says why.
    """
    records = []
    for line in lines:
        try:
            records.append(Record.from_text(line, origin=domain))
        except InvalidUpdate as exc:
            raise BadInput(f"bad record {line!r}: {exc.args[0]}") from None
    return records


def check_record_set(records: Iterable[Record]) -> tuple[Record, ...]:
    """`chain.txbuilder.check_record_set`, its refusal said as the wallet's `BadInput`.

    Raises:
        BadInput: the set breaks a rule.
    """
    try:
        return txbuilder.check_record_set(records)
    except InvalidUpdate as exc:
        raise BadInput(f"the record set is not valid: {exc.args[0]}") from None


def _identity(record: Record) -> tuple[str, RType, bytes]:
    return (record.name, record.rtype, record.rdata)


def add_records(current: Sequence[Record], new: Sequence[Record]) -> tuple[Record, ...]:
    """`current` plus `new` (a record already there takes the new TTL)."""
    return check_record_set([*current, *new])


def remove_records(current: Sequence[Record], gone: Sequence[Record]) -> tuple[Record, ...]:
    """`current` without the records equal to `gone` (the TTL is not compared).

    Raises:
        WalletError: one of `gone` is not in `current`.
    """
    have = {_identity(record) for record in current}
    for record in gone:
        if _identity(record) not in have:
            raise WalletError(
                f"no record {record.name} {record.rtype.name} {record.rdata_text()} to remove"
            )
    drop = {_identity(record) for record in gone}
    return check_record_set(r for r in current if _identity(r) not in drop)


def remove_by_name(
    current: Sequence[Record], name: str, rtype: str | None = None
) -> tuple[Record, ...]:
    """`current` without the records at owner `name` (``www``, ``@``), of `rtype` if given.

    Raises:
        BadInput: `name` or `rtype` is not valid.
        WalletError: nothing matches.
    """
    try:
        owner = normalize_relative_name(name)
    except InvalidUpdate as exc:
        raise BadInput(f"--name {name!r}: {exc.args[0]}") from None
    wanted: RType | None = None
    if rtype is not None:
        wanted = RType.__members__.get(rtype.upper())
        if wanted is None:
            known = ", ".join(RType.__members__)
            raise BadInput(f"--type {rtype!r} is not a record type the ledger holds ({known})")
    kept = [r for r in current if not (r.name == owner and wanted in (None, r.rtype))]
    if len(kept) == len(current):
        what = f"{owner} {wanted.name}" if wanted else owner
        raise WalletError(f"no records at {what} to remove")
    return check_record_set(kept)
