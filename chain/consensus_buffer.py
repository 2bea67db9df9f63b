"""The next height's messages, kept until the height starts (bounded whatever peers send)."""

from __future__ import annotations

from chain.consensus_messages import Proposal
from chain.quorum import Vote

FUTURE_BUFFER = 4096  # next-height messages (one per slot) and equivocators' extra votes
FUTURE_BUFFER_BYTES = 16 * 1024 * 1024  # the next-height buffer's size in encoded bytes


class NextHeightBuffer:
    """One message per (height, round, type, signer), at most `FUTURE_BUFFER` and `FUTURE_BUFFER_BYTES`.

    The first message holds its slot: a second one for the same slot (an
    equivocation, or a flood of fresh hashes) waits until the height starts and
    arrives again, when the machine can count it and record the evidence.
    """

    def __init__(self) -> None:
        self._messages: dict[tuple[int, int, int, bytes], Proposal | Vote] = {}
        self.size_bytes = 0

    def __len__(self) -> int:
        return len(self._messages)

    def add(self, message: Proposal | Vote) -> None:
        """Keep `message` if its slot is free and the budget allows."""
        if isinstance(message, Proposal):
            key = (message.height, message.round, 0, bytes(message.proposer))
            size = sum(tx.size for tx in message.block.txs) + 1024
        else:
            key = (message.height, message.round, int(message.vtype), bytes(message.validator))
            size = 256
        if key in self._messages:
            return
        if len(self._messages) >= FUTURE_BUFFER or self.size_bytes + size > FUTURE_BUFFER_BYTES:
            return
        self._messages[key] = message
        self.size_bytes += size

    def drain(self) -> list[Proposal | Vote]:
        """Everything kept, in arrival order; the buffer is empty afterwards."""
        out = list(self._messages.values())
        self._messages, self.size_bytes = {}, 0
        return out
