"""A Byzantine validator, for tests only: a real `ledgerdns node` that misbehaves on purpose.

    python tools/byzantine.py --mode equivocate,invalid,garbage --data-dir ... --genesis ...

Every argument other than this tool's own goes to ``ledgerdns node`` unchanged,
so a test harness can swap it in for ``python -m ledgerdns node`` (see
`tools.localnet.Cluster`'s ``wrap`` hook and ``tests/integration/test_byzantine.py``).
The misbehaviour is switched on by patching the node's own classes at start-up;
the production code has no misbehaviour switches.

Modes (any subset, comma-separated):

- ``equivocate``: every vote the validator signs is followed by a second,
  conflicting signed vote for the same height, round and type (nil for a block
  vote, a made-up block hash for a nil vote).
- ``invalid``: when it is the round's proposer it proposes a block whose
  signature and transaction root are valid but whose content is not: the state
  root, or the previous block hash, is wrong (deterministically: every honest
  node refuses it whatever its clock says).
- ``garbage``: publishes random bytes, some small, some oversized, on every
  gossip topic at ``--garbage-rate`` messages per second.
- ``flood-votes``, ``flood-proposals``, ``flood-lead-proposals``,
  ``flood-equivocate``, ``flood-resent``: signed consensus messages published at
  ``--flood-rate`` a second (default just under the consensus topic's per-forwarder
  limit), while ``--flood-trigger`` exists if given, for at most
  ``--flood-seconds``; what each mode sends is in ``tools/flood_messages.py``.
  ``--flood-stats`` is rewritten every second with the counts (JSON).
  ``tools/flood.py`` measures honest nodes under these floods.

With several of the first three modes the offences are staged, so that each is committed before
the ban the previous one earns cuts the node off: first an invalid proposal
(when its turn to propose comes), then equivocation (from the same round's
votes on), then garbage (two seconds later).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import trio

from chain.block import Block
from chain.consensus import NIL, Tendermint
from chain.consensus_effects import Broadcast, Effect
from chain.crypto import sha256
from chain.quorum import Vote, VoteType
from ledgerdns.p2p.limits import DEFAULT_TOPIC_LIMITS
from tools.flood_messages import FLOOD_MODES, Flood, Signer

if TYPE_CHECKING:
    from ledgerdns.node.node import Node

log = logging.getLogger("byzantine")

MODES = ("equivocate", "invalid", "garbage", *FLOOD_MODES)
# Just under what one forwarder may send us on the consensus topic, so the rate
# limiter lets it all in (docs/p2p.md); the validator's own votes ride on top.
FLOOD_RATE = DEFAULT_TOPIC_LIMITS["consensus"].rate - 10
FLOOD_STATS_S = 1.0
FLAWS = ("state_root", "prev_block")
# Sizes of garbage messages: tiny, medium, and larger than any valid message of ours
# (a proposal is built under 256 KiB) yet under the gossip library's 1 MiB cap, so it is sent.
GARBAGE_SIZES = ((1, 64), (1024, 16 * 1024), (600 * 1024, 900 * 1024))
STAGE_GAP_S = 2.0  # garbage waits this long after the other offences: they reach peers first


@dataclasses.dataclass(slots=True)
class Plan:
    """Which offences are on, and which were committed (for staging them)."""

    modes: frozenset[str]
    invalid_sent: int = 0
    equivocations: int = 0
    garbage_sent: int = 0

    def equivocating(self) -> bool:
        """Equivocate now (after the first invalid proposal, when both are on)."""
        if "equivocate" not in self.modes:
            return False
        return "invalid" not in self.modes or self.invalid_sent > 0

    def sending_garbage(self) -> bool:
        """Send garbage now (after the other offences chosen were committed once)."""
        if "garbage" not in self.modes:
            return False
        if "invalid" in self.modes and not self.invalid_sent:
            return False
        return "equivocate" not in self.modes or self.equivocations > 0


def parse_modes(text: str) -> frozenset[str]:
    """``equivocate,invalid`` → the set of modes (argparse type)."""
    modes = frozenset(m.strip() for m in text.split(",") if m.strip())
    unknown = modes - set(MODES)
    if not modes or unknown:
        raise argparse.ArgumentTypeError(
            f"modes are a comma-separated subset of {', '.join(MODES)} (got {text!r})"
        )
    return modes


# -- the patches --


def _conflicting_hash(vote: Vote) -> bytes:
    if vote.block_hash != NIL:
        return NIL
    return sha256(b"byzantine block %d %d" % (vote.height, vote.round))


def patch_equivocation(plan: Plan) -> None:
    """Follow every vote the machine signs with a conflicting one."""
    original = Tendermint._vote

    def vote(
        self: Tendermint,
        vtype: VoteType,
        block_hash: bytes,
        effects: list[Effect],
        *,
        lock: bool = False,
    ) -> None:
        before = len(effects)
        original(self, vtype, block_hash, effects, lock=lock)
        if not plan.equivocating() or self.key is None:
            return
        for effect in effects[before:]:
            if isinstance(effect, Broadcast) and isinstance(effect.message, Vote):
                first = effect.message
                twin = Vote.create(
                    self.key, chain_id=first.chain_id, genesis_hash=self.genesis_hash,
                    vtype=first.vtype, height=first.height, round_=first.round,
                    block_hash=_conflicting_hash(first),
                )  # fmt: skip
                effects.append(Broadcast(twin))
                plan.equivocations += 1
                log.warning(
                    "equivocating: %s h=%d r=%d", first.vtype.name, first.height, first.round
                )

    Tendermint._vote = vote  # type: ignore[method-assign]


def patch_invalid_proposals(plan: Plan) -> None:
    """Make every block this validator proposes invalid (signature and tx root still good)."""
    from ledgerdns.consensus.driver import LedgerApp

    original = LedgerApp.build_proposal

    def build_proposal(self: LedgerApp, height: int, time_ms: int) -> Block:
        block = original(self, height, time_ms)
        flaw = FLAWS[plan.invalid_sent % len(FLAWS)]
        wrong = sha256(b"byzantine " + flaw.encode() + b" %d" % height)
        header = dataclasses.replace(block.header, **{flaw: wrong})
        plan.invalid_sent += 1
        log.warning("proposing an invalid block at height %d: wrong %s", height, flaw)
        return Block(header=header, txs=block.txs)

    LedgerApp.build_proposal = build_proposal  # type: ignore[method-assign]


def patch_garbage(plan: Plan, rate: float, rng: random.Random) -> None:
    """Run a garbage publisher beside the node once it is up."""
    from ledgerdns.node.node import Node

    original = Node.run

    async def run(self: Node, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            ready = await nursery.start(original, self)
            nursery.start_soon(_publish_garbage, self, plan, rate, rng)
            task_status.started(ready)

    Node.run = run  # type: ignore[method-assign]


async def _publish_garbage(node: Node, plan: Plan, rate: float, rng: random.Random) -> None:
    topics = list(node.topics.values())
    staged = len(plan.modes) > 1
    start_at: float | None = None
    while True:
        await trio.sleep(1 / rate)
        if not plan.sending_garbage():
            continue
        if start_at is None:
            start_at = trio.current_time() + (STAGE_GAP_S if staged else 0.0)
        if trio.current_time() < start_at:
            continue
        topic = topics[plan.garbage_sent % len(topics)]
        low, high = GARBAGE_SIZES[rng.randrange(len(GARBAGE_SIZES))]
        data = rng.randbytes(rng.randrange(low, high + 1))
        try:
            await node.p2p.publish(topic, data)
        except Exception as exc:  # a test tool: keep going whatever the library says
            log.warning("garbage publish failed topic=%s size=%d: %r", topic, len(data), exc)
            continue
        plan.garbage_sent += 1
        log.warning("garbage published topic=%s size=%d", topic.rsplit("/", 1)[-1], len(data))


@dataclasses.dataclass(frozen=True, slots=True)
class FloodOptions:
    """How hard, how long and when the flood modes publish."""

    rate: float = FLOOD_RATE
    seconds: float = 600.0
    body_bytes: int = 256 * 1024
    trigger: Path | None = None
    stats: Path | None = None


def patch_flood(plan: Plan, options: FloodOptions, rng: random.Random) -> None:
    """Run a flood publisher beside the node, and keep its own votes consistent with the flood."""
    from ledgerdns.node.node import Node

    modes = tuple(m for m in FLOOD_MODES if m in plan.modes)
    floods: list[Flood] = []
    original_run = Node.run

    async def run(self: Node, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            ready = await nursery.start(original_run, self)
            machine = self.driver.machine
            if machine.key is None:
                raise SystemExit("tools/byzantine.py: the flood modes need a validator key")
            signer = Signer(key=machine.key, chain_id=machine.chain_id,
                            genesis_hash=machine.genesis_hash, validators=machine.validators)  # fmt: skip
            floods.append(Flood(modes=modes, signer=signer, rng=rng, body_bytes=options.body_bytes))
            nursery.start_soon(_publish_flood, self, floods[0], options)
            task_status.started(ready)

    Node.run = run  # type: ignore[method-assign]
    original_vote = Tendermint._vote

    def vote(
        self: Tendermint, vtype: VoteType, block_hash: bytes, effects: list[Effect], *,
        lock: bool = False,
    ) -> None:  # fmt: skip
        # A nil vote already flooded into this slot: sign the same, or this is equivocation.
        if floods and (self.height, self.round, int(vtype)) in floods[0].flooded:
            block_hash, lock = NIL, False
        original_vote(self, vtype, block_hash, effects, lock=lock)

    Tendermint._vote = vote  # type: ignore[method-assign]
    _count_sender_drops()


# What py-libp2p dropped on the way out: each peer's outbound queue holds 32 RPCs and a
# full one drops the next (as go-libp2p does), so "published" is not "delivered".
_DROPPED = {"messages": 0}


def _count_sender_drops() -> None:
    from libp2p.pubsub.gossipsub import GossipSub

    original = GossipSub._handle_dropped_rpc

    def handle_dropped_rpc(self: GossipSub, peer_id: Any, rpc: Any, reason: str) -> None:
        _DROPPED["messages"] += len(rpc.publish)
        original(self, peer_id, rpc, reason)

    GossipSub._handle_dropped_rpc = handle_dropped_rpc  # type: ignore[method-assign]


async def _publish_flood(node: Node, flood: Flood, options: FloodOptions) -> None:
    """Publish `flood`'s messages at `options.rate` while triggered, for `options.seconds` at most."""
    topic, machine = node.topics["consensus"], node.driver.machine
    interval = 1 / options.rate
    sent = failed = 0
    flooding_s = 0.0
    last_stats = next_at = trio.current_time()
    while flooding_s < options.seconds:
        now = trio.current_time()
        if now - last_stats >= FLOOD_STATS_S:
            _write_stats(options.stats, flood, sent, failed, flooding_s, node.p2p.peer_id)
            last_stats = now
        if options.trigger is not None and not options.trigger.exists():
            await trio.sleep(0.2)
            next_at = trio.current_time()
            continue
        if next_at > now:
            await trio.sleep(next_at - now)
        flooding_s += max(interval, trio.current_time() - now)
        next_at = max(next_at + interval, trio.current_time() - interval)  # no catch-up bursts
        data = flood.next_message(machine.height, machine.round)
        try:
            await node.p2p.publish(topic, data)
        except Exception as exc:  # a test tool: keep going whatever the library says
            failed += 1
            log.debug("flood publish failed size=%d: %r", len(data), exc)
            continue
        sent += 1
    _write_stats(options.stats, flood, sent, failed, flooding_s, node.p2p.peer_id)
    log.warning("flood over after %.0f s: %d messages sent, %d failed", flooding_s, sent, failed)


def _write_stats(
    path: Path | None, flood: Flood, sent: int, failed: int, flooding_s: float, peer_id: str
) -> None:
    if path is None:
        return
    doc = {"modes": list(flood.modes), "sent": sent, "failed": failed, "by_mode": flood.sent_by_mode,
           "dropped_at_sender": _DROPPED["messages"], "flooding_s": round(flooding_s, 2),
           "peer_id": peer_id}  # fmt: skip
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def install(
    plan: Plan, *, garbage_rate: float, seed: int | None, flood: FloodOptions | None = None
) -> None:
    """Patch the node's classes for the chosen modes (before the node is built)."""
    if "equivocate" in plan.modes:
        patch_equivocation(plan)
    if "invalid" in plan.modes:
        patch_invalid_proposals(plan)
    if "garbage" in plan.modes:
        patch_garbage(plan, garbage_rate, random.Random(seed))
    if plan.modes & set(FLOOD_MODES):
        patch_flood(plan, flood or FloodOptions(), random.Random(seed))


def build_parser() -> argparse.ArgumentParser:
    """This tool's own options; the rest of the command line is `ledgerdns node`'s."""
    parser = argparse.ArgumentParser(
        prog="tools/byzantine.py",
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="TEST TOOL: run a real `ledgerdns node` as a Byzantine validator that "
        "misbehaves on purpose, to check that honest nodes keep finalizing, record the "
        "evidence and ban it. Never run it on a network you care about. Every argument not "
        "listed here is passed to `ledgerdns node` (see `ledgerdns node --help`).",
        epilog=__doc__.split("Modes", 1)[1].join(("Modes", "")) if __doc__ else None,
    )
    parser.add_argument(
        "--mode", required=True, type=parse_modes,
        help=f"comma-separated misbehaviours: any of {', '.join(MODES)}",
    )  # fmt: skip
    parser.add_argument(
        "--garbage-rate", type=float, default=4.0, metavar="PER_S",
        help="garbage messages per second (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, help="seed of the garbage and flood generators (default: random)"
    )
    parser.add_argument(
        "--flood-rate", type=float, default=FLOOD_RATE, metavar="PER_S",
        help="flood messages per second (default %(default)s: just under the consensus gossip limit)",
    )  # fmt: skip
    parser.add_argument(
        "--flood-seconds", type=float, default=600.0, metavar="S",
        help="stop flooding after this long spent flooding (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--flood-bytes", type=int, default=256 * 1024, metavar="N",
        help="about how large a flooded proposal's block is (default %(default)s)",
    )  # fmt: skip
    parser.add_argument("--flood-trigger", type=Path, metavar="PATH",
                        help="flood only while this file exists (default: from the start)")  # fmt: skip
    parser.add_argument("--flood-stats", type=Path, metavar="PATH",
                        help="rewrite this JSON file every second with the flood's counts")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse this tool's options, patch the node, and run `ledgerdns node` with the rest."""
    args, node_args = build_parser().parse_known_args(argv)
    if not 0 < args.garbage_rate <= 100:
        raise SystemExit("tools/byzantine.py: --garbage-rate must be in (0, 100]")
    if not 0 < args.flood_rate <= 10_000 or args.flood_seconds <= 0:
        raise SystemExit(
            "tools/byzantine.py: --flood-rate must be in (0, 10000], --flood-seconds > 0"
        )
    if not 0 < args.flood_bytes <= 900 * 1024:
        raise SystemExit(
            "tools/byzantine.py: --flood-bytes must be in (0, 921600] (gossip cap 1 MiB)"
        )
    flood = FloodOptions(rate=args.flood_rate, seconds=args.flood_seconds, body_bytes=args.flood_bytes,
                         trigger=args.flood_trigger, stats=args.flood_stats)  # fmt: skip
    install(Plan(modes=args.mode), garbage_rate=args.garbage_rate, seed=args.seed, flood=flood)
    from ledgerdns.cli import main as ledgerdns_main

    return ledgerdns_main(["node", *node_args])


if __name__ == "__main__":
    sys.exit(main())
