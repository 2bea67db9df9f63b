"""The validator rosters of every height, as the ledger stored them (chain/validators.py).

The genesis roster starts at height 1; each change a finalized block scheduled is
stored under its first height (`chain.keys.make_roster_key`) by the same batch
that scheduled it. The list is read once and extended as blocks commit: one
entry per change since genesis (~33 bytes per validator each).
"""

from __future__ import annotations

from chain import keys
from chain.params import ChainParams
from chain.store import KVStore
from chain.validators import Roster, genesis_roster


class RosterHistory:
    """Every roster since genesis with the height it starts at, oldest first."""

    def __init__(self, store: KVStore, params: ChainParams) -> None:
        self._store = store
        self._params = params
        self._rosters: list[tuple[int, Roster]] | None = None

    def all(self) -> list[tuple[int, Roster]]:
        """The rosters, scheduled ones included (their blocks are final, their heights not yet)."""
        if self._rosters is None:
            found = [(1, genesis_roster(self._params))]
            with self._store.iterate(keys.ROSTER) as pairs:
                for key, value in pairs:
                    found.append((keys.read_u64(key[len(keys.ROSTER) :]), Roster.from_bytes(value)))
            self._rosters = found
        return self._rosters

    def at(self, height: int) -> Roster:
        """The roster of `height` (known up to two heights past the head)."""
        rosters = self.all()
        for start, roster in reversed(rosters):  # the latest first: what nearly every call wants
            if start <= height:
                return roster
        return rosters[0][1]

    def extend(self, scheduled: list[tuple[int, Roster]]) -> None:
        """Rosters a just-committed block scheduled."""
        if scheduled:
            self.all().extend(scheduled)

    def name_of(self, key: bytes) -> str | None:
        """The name of the validator with `key` in the latest roster that has it, None if none."""
        for _, roster in reversed(self.all()):
            name = roster.name_of(key)
            if name is not None:
                return name
        return None
