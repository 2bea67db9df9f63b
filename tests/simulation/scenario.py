"""What one simulated run injects, drawn from `random.Random(seed)`.

A `Scenario` is plain data: the validator count, the network model (delay
distribution, loss, duplication, a partition), which validators crash and
restart, which are Byzantine and how, the heal time and the client
submissions. `generate(seed)` picks the fault mix ``MIXES[seed % len(MIXES)]``
and draws the rest from the seed, so a run is reproduced from its seed alone.

The mixes:

- ``clean``: a fixed delay and no fault (n = 1, 4 or 7).
- ``jitter``: uniform, heavy-tailed or "slow" delays (as long as the tight
  timeouts, so rounds fail and locks move), duplicates.
- ``lossy``: up to 50 % of messages lost, duplicates.
- ``partition``: the validators split in two sides from a random time.
- ``crash``: 1..f validators crash and restart; half of them crash right
  after a guard write, dropping the broadcast that should follow it.
- ``equivocate``, ``invalid``, ``silent``: 1..f Byzantine validators of that kind.
- ``chaos``: partition, loss, duplicates, crashes and Byzantine validators of
  any kind together, never more than f faulty.
- ``adversary``: proposals and precommits lost at random for the whole run,
  gossip and sync off, maybe one Byzantine validator. Without a heal there is
  no liveness to expect: only safety is checked.
- ``restart``, ``restart-all``: n - f, or all n, validators crash together
  when the first honest validator reaches round r (0..3, mostly >= 1) of a
  height, and restart together after a short down time (`QuorumRestart`).
  Until then proposals of rounds < r are lost, so rounds fail, and in half of
  the seeds precommits for blocks too, so the validators are locked on a block
  nobody stored when they crash. The network heals when they are back up;
  clients resend what is not final then (the mempools of the crashed
  validators are gone).
- ``flood``: 1..f Byzantine validators that run the honest machine and, every
  gossip tick until the heal, flood votes for rounds far ahead (up to
  2**31 - 1, and just past `ROUND_WINDOW`), proposals for rounds they do not
  lead (this height and the next) and for rounds far ahead, and votes for many
  random block hashes per round (fresh-hash equivocation). What they made the
  others keep stays (the state a flood left must not stop the chain either).

With ``changes`` (`with_changes`, `tools/sim.py --changes`) a seed's faults also
get 1-3 validator-set changes (add a node outside the genesis set, remove a
validator, rotate one's key), proposed before the heal, drawn from their own
random stream so the faults stay the same.

Every fault that breaks synchrony (loss, partition, heavy delays, crashes)
happens before `heal_ms`, the global stabilisation time: from then on no
message is lost and every delay is at most `DelayModel.max_after_heal`.
Byzantine validators stay Byzantine for the whole run. Faulty validators
(crashed plus Byzantine) never number more than f = floor((n - 1) / 3), but
for the quorum restarts (crash-recovery with the guard and the lock record on
disk, no Byzantine validator). Clients send 1-4 registrations, and maybe a
chain of updates, to validators that are honest and never crash (any
validator in the restart mixes: a client retries while its validator is
down), until 2 s after the heal. Tight timeouts
(`Scenario.tight`) are drawn for 40 % of the seeds of the faulty mixes, 80 %
of ``jitter`` and every ``adversary`` seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

MIXES = (
    "clean", "jitter", "lossy", "partition", "crash", "equivocate", "invalid", "silent", "chaos",
    "adversary", "restart", "restart-all", "flood",
)  # fmt: skip
NETWORK_MIXES = ("clean", "jitter", "lossy", "partition")  # every validator honest and up
BYZANTINE_MODES = ("equivocate", "invalid", "silent", "flood")
RESTART_MIXES = ("restart", "restart-all")
RESTART_FALLBACK_MS = 40_000  # crash anyway (and heal after) if the round is never reached
POST_HEAL_CAP_MS = 300  # every delay after the heal is at most this (the Δ of partial synchrony)
NEVER = 10**12  # heal time of a network that never heals
NAME_POOL = 8  # client transactions register name{i}.p2p, i < NAME_POOL (cached across seeds)


@dataclass(frozen=True, slots=True)
class DelayModel:
    """One-way message delay: ``fixed`` d, ``uniform`` in [low, high], or ``heavy`` (Pareto)."""

    kind: str
    low: int
    high: int  # uniform: upper bound; heavy: cap before the heal
    alpha: float = 1.5

    def draw(self, rng: random.Random, healed: bool) -> int:
        """A delay in ms for a message sent now."""
        if self.kind == "fixed":
            return self.low
        if self.kind == "uniform":
            d = rng.randint(self.low, self.high)
        else:
            d = min(self.high, int(self.low * rng.paretovariate(self.alpha)))
        return min(d, POST_HEAL_CAP_MS) if healed else d

    @property
    def max_after_heal(self) -> int:
        """The largest delay a message sent after the heal can have."""
        if self.kind == "fixed":
            return self.low
        return min(self.high, POST_HEAL_CAP_MS)


@dataclass(frozen=True, slots=True)
class Crash:
    """Validator `node` crashes at `at_ms` (or, with `after_guard`, at its first guard write
    from then on, dropping the effects after it) and restarts `down_ms` later, by the heal."""

    node: int
    at_ms: int
    down_ms: int
    after_guard: bool


@dataclass(frozen=True, slots=True)
class QuorumRestart:
    """Validators `nodes` crash together and restart `down_ms` later (then the network heals).

    They crash when the first honest validator reaches round `round` of a height (the
    round its machine reports), or with `locked`, when the first one locks on a block in
    a round >= `round` (plus `delay_ms`, so others lock too). Until the crash, proposals
    of rounds < `round` are lost (so those rounds fail), and with `locked` every
    precommit for a block too (so nobody decides the block they lock on). If that never
    happens, they crash at the scenario's `heal_ms` whatever the round.
    """

    nodes: tuple[int, ...]
    round: int
    down_ms: int
    locked: bool = False
    delay_ms: int = 0


@dataclass(frozen=True, slots=True)
class Submission:
    """A client sends one transaction to validator `node` at `at_ms`.

    With ``seq == 0`` it registers ``name{name}.p2p`` (owner key `owner`, by
    default ``name + 1``); with ``seq > 0`` it is the seq-th update of the
    genesis domain ``ledgerdns.p2p``. `variant` makes a conflicting twin (other
    records on the same prev). A `contested` transaction races another one, so
    it need not be finalized (the test that makes it checks who wins).
    """

    at_ms: int
    node: int
    name: int = 0
    owner: int = -1
    seq: int = 0
    variant: int = 0
    contested: bool = False


@dataclass(frozen=True, slots=True)
class ValidatorPlan:
    """A validator-set change its operators make (chain/validators.py), as transactions.

    Validator `proposer`'s operator proposes it at `at_ms` (once the plan's previous
    change is scheduled in its node's ledger, as an operator waits for one change
    before the next); then the operator of every honest validator of the set that
    sees the proposal pending in its node's ledger approves it through its node's
    mempool. ``add`` puts node `node` (outside the genesis set) in the set,
    ``remove`` takes it out (it goes on following), ``rotate`` gives it the fresh
    key `devnet.rotated_key(new_key)`: the node restarts with that key when its
    ledger reaches the height before the change takes effect, with a fresh signing
    guard (a new data directory) or, without `fresh_guard`, the guard it had.
    """

    at_ms: int
    action: str  # "add", "remove" or "rotate"
    node: int
    proposer: int
    new_key: int = -1
    fresh_guard: bool = True


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything one run injects."""

    seed: int
    mix: str
    n: int
    delay: DelayModel
    loss: float = 0.0
    duplicate: float = 0.0
    heal_ms: int = 0
    partition: frozenset[int] = frozenset()  # one side, cut off from the rest until the heal
    partition_from_ms: int = 0
    crashes: tuple[Crash, ...] = ()
    byzantine: tuple[tuple[int, str], ...] = ()  # (validator index, mode)
    submissions: tuple[Submission, ...] = ()
    tight: bool = False  # short timeouts (propose 300 ms, prevote/precommit 150, +100 a round)
    # Drop probabilities for proposals, prevotes and precommits for the whole run, with
    # gossip and sync off: an adversarial network that never heals. Safety only.
    adversary: tuple[float, float, float] | tuple[()] = ()
    restart: QuorumRestart | None = None  # a quorum (or all) crashing together mid-height
    flood_bursts: int = 1  # bursts a ``flood`` validator sends per gossip tick
    flood_after_heal: bool = False  # a ``flood`` validator floods after the heal too
    extra: int = 0  # nodes n..n+extra-1: keys outside the genesis set, following until added
    changes: tuple[ValidatorPlan, ...] = ()  # validator-set changes, made in this order

    @property
    def nodes(self) -> int:
        """How many simulated nodes run: the genesis validators and the extra ones."""
        return self.n + self.extra

    @property
    def f(self) -> int:
        """How many faulty validators the run may have."""
        return (self.n - 1) // 3

    def describe(self) -> str:
        """One line for logs and failure messages."""
        d = self.delay
        parts = [f"seed={self.seed} mix={self.mix} n={self.n} delay={d.kind}:{d.low}-{d.high}"]
        if self.loss:
            parts.append(f"loss={self.loss}")
        if self.duplicate:
            parts.append(f"dup={self.duplicate}")
        if self.partition:
            parts.append(f"partition={sorted(self.partition)}@{self.partition_from_ms}")
        if self.crashes:
            parts.append("crashes=" + ",".join(
                f"{c.node}@{c.at_ms}+{c.down_ms}{'g' if c.after_guard else ''}" for c in self.crashes
            ))
        if self.byzantine:
            parts.append("byz=" + ",".join(f"{i}:{m}" for i, m in self.byzantine))
        if self.restart:
            q = self.restart
            lock = f" locked+{q.delay_ms}" if q.locked else ""
            parts.append(f"restart={','.join(map(str, q.nodes))}@round{q.round}{lock}+{q.down_ms}")
        if self.changes:
            parts.append("changes=" + ",".join(map(_describe_plan, self.changes))
                         + f" extra={self.extra}")  # fmt: skip
        parts.append(f"heal={self.heal_ms} txs={len(self.submissions)}")
        if self.tight:
            parts.append("tight")
        if self.adversary:
            parts.append("adversary={}/{}/{} (safety only)".format(*self.adversary))
        return " ".join(parts)


def _describe_plan(c: ValidatorPlan) -> str:
    key = "" if c.new_key < 0 else f"->k{c.new_key}" + ("" if c.fresh_guard else "+guard")
    return f"{c.action}:{c.node}{key}@{c.at_ms}/by{c.proposer}"


def _delay(rng: random.Random, kinds: tuple[str, ...] = ("fixed", "uniform", "heavy")) -> DelayModel:
    kind = rng.choice(kinds)
    if kind == "slow":  # as long as the tight timeouts: rounds fail, locks move
        return DelayModel("uniform", rng.randint(20, 100), rng.randint(300, 800))
    if kind == "fixed":
        d = rng.choice((1, 5, 10, 20, 50))
        return DelayModel("fixed", d, d)
    if kind == "uniform":
        low = rng.randint(1, 20)
        return DelayModel("uniform", low, low + rng.randint(5, 200))
    return DelayModel(
        "heavy", rng.randint(2, 20), rng.choice((500, 2000, 5000)), rng.choice((1.1, 1.5, 2.0))
    )


def generate(
    seed: int, mix: str | None = None, *, quick: bool = False, changes: bool = False
) -> Scenario:
    """The scenario of `seed` (fault mix ``MIXES[seed % len(MIXES)]`` unless given).

    `quick` keeps runs small (n <= 4, at most two transactions) for a fast smoke run.
    `changes` adds validator-set changes (`with_changes`) to the same faults.
    """
    scenario = _generate(seed, mix, quick)
    return with_changes(scenario, quick=quick) if changes else scenario


def with_changes(sc: Scenario, *, quick: bool = False) -> Scenario:
    """`sc` with 1-3 validator-set changes proposed before its heal (while its faults act).

    Drawn from their own random stream, so the faults stay those of `generate(seed)`.
    Each change keeps every set within the fault bound: the Byzantine validators in a
    set never exceed its f (so with n = 4 and one of them, a removal takes that one out,
    or follows an addition). The proposer is an honest genesis validator that no change
    touches; a rotated validator gets a fresh key. Networks of one validator get none
    (rotating the only key breaks the step rule; see `chain.validators.check_step`).
    """
    if sc.n < 4:
        return sc
    rng = random.Random(f"ledgerdns-sim-changes-{sc.seed}")
    byzantine = {i for i, _ in sc.byzantine}
    honest = [i for i in range(sc.n) if i not in byzantine]
    proposer = rng.choice(honest)
    members = list(range(sc.n))
    extra = rotated = 0
    window = min(sc.heal_ms, 6000) if sc.heal_ms > 0 else 3000  # a restart heals early
    plans: list[ValidatorPlan] = []
    for _ in range(rng.randint(1, 2 if quick else 3)):
        removable = [
            i for i in members
            if i != proposer
            and len(byzantine.intersection(members)) - (i in byzantine) <= (len(members) - 2) // 3
        ]  # fmt: skip
        rotatable = [i for i in members if i != proposer and i not in byzantine]
        options = ["add"] + ["remove"] * bool(removable) + ["rotate"] * bool(rotatable)
        action = rng.choice(options)
        at = rng.randint(0, window)
        if action == "add":
            node = sc.n + extra
            extra += 1
            members.append(node)
            plans.append(ValidatorPlan(at, action, node, proposer))
        elif action == "remove":
            node = rng.choice(removable)
            members.remove(node)
            plans.append(ValidatorPlan(at, action, node, proposer))
        else:
            fresh = (sc.seed + rotated) % 2 == 0  # both ways, without another draw
            plans.append(ValidatorPlan(at, action, rng.choice(rotatable), proposer, rotated, fresh))
            rotated += 1
    partition = sc.partition
    if partition:  # the extra nodes are on either side
        partition |= {sc.n + i for i in range(extra) if rng.random() < 0.5}
    return replace(sc, extra=extra, changes=tuple(plans), partition=partition)


def _generate(seed: int, mix: str | None, quick: bool) -> Scenario:
    rng = random.Random(seed)
    mix = mix or MIXES[seed % len(MIXES)]
    sizes: tuple[int, ...] = (1, 4, 4, 7) if mix in ("clean", "jitter", "lossy") else (4, 4, 7)
    if quick:
        sizes = tuple(s for s in sizes if s <= 4)
    n = rng.choice(sizes)
    f = (n - 1) // 3
    loss = duplicate = 0.0
    heal = rng.randint(1500, 6000)
    partition: frozenset[int] = frozenset()
    partition_from = 0
    if mix == "clean":
        delay, heal = _delay(rng, ("fixed",)), 0
    elif mix == "jitter":
        delay = _delay(rng, ("uniform", "heavy", "slow", "slow"))
        duplicate = rng.choice((0.0, 0.05, 0.2))
    elif mix == "lossy":
        delay, loss = _delay(rng), rng.choice((0.05, 0.15, 0.3, 0.5))
        duplicate = rng.choice((0.0, 0.1))
    else:
        delay = _delay(rng, ("fixed", "uniform", "heavy", "slow"))
        if mix in ("partition", "chaos") or rng.random() < 0.3:
            loss = rng.choice((0.0, 0.05, 0.1))
        if mix in ("partition", "chaos") and n > 1:
            partition = frozenset(rng.sample(range(n), rng.randint(1, n - 1)))
            partition_from = rng.randint(0, heal // 2)
        if mix == "chaos":
            duplicate = rng.choice((0.0, 0.1))
    if mix == "adversary":
        return _adversary(seed, rng, n)
    if mix in RESTART_MIXES:
        return _restart(seed, mix, rng, n, quick)
    faulty = rng.sample(range(n), rng.randint(1, f)) if f and mix not in NETWORK_MIXES else []
    stable = [i for i in range(n) if i not in faulty]
    submissions = _submissions(rng, heal, stable, quick)
    byzantine: list[tuple[int, str]] = []
    crashes: list[Crash] = []
    for i, node in enumerate(sorted(faulty)):
        if mix == "crash" or (mix == "chaos" and i % 2 == 0 and rng.random() < 0.7):
            if rng.random() < 0.5:  # armed before some transaction arrives, so it fires
                at = rng.randint(0, rng.choice(submissions).at_ms)
                crashes.append(Crash(node, at, rng.randint(50, 3000), True))
            else:
                crashes.append(Crash(node, rng.randint(0, max(heal - 200, 1)), rng.randint(50, 3000), False))
        elif mix in BYZANTINE_MODES:
            byzantine.append((node, mix))
        elif mix == "chaos":
            byzantine.append((node, rng.choice(BYZANTINE_MODES)))
    return Scenario(
        seed=seed,
        mix=mix,
        n=n,
        delay=delay,
        loss=loss,
        duplicate=duplicate,
        heal_ms=heal,
        partition=partition,
        partition_from_ms=partition_from,
        crashes=tuple(crashes),
        byzantine=tuple(byzantine),
        submissions=submissions,
        tight=mix != "clean" and rng.random() < (0.8 if mix == "jitter" else 0.4),
    )


def _submissions(
    rng: random.Random, heal: int, stable: list[int], quick: bool
) -> tuple[Submission, ...]:
    """1-4 registrations and maybe a chain of 1-2 updates, until 2 s after the heal."""
    window = max(heal, 0) + 2000
    names = rng.sample(range(NAME_POOL), rng.randint(1, 2 if quick else 4))
    subs = [Submission(rng.randint(0, window), rng.choice(stable), name) for name in names]
    if not quick and rng.random() < 0.5:
        node, at = rng.choice(stable), rng.randint(0, window)
        for seq in range(1, rng.randint(1, 2) + 1):  # a chain goes to one validator, in order
            subs.append(Submission(at, node, seq=seq))
            at += rng.randint(0, 300)
    return tuple(sorted(subs, key=lambda sub: sub.at_ms))



def _adversary(seed: int, rng: random.Random, n: int) -> Scenario:
    """Targeted loss forever, maybe with one Byzantine validator: only safety must hold."""
    drops = (rng.choice((0.15, 0.2, 0.25)), rng.choice((0.0, 0.0, 0.1)), rng.choice((0.4, 0.5)))
    byz = [(rng.randrange(n), rng.choice(("equivocate", "invalid")))] if rng.random() < 0.5 else []
    stable = [i for i in range(n) if i not in dict(byz)]
    names = rng.sample(range(NAME_POOL), rng.randint(2, 5))
    subs = [Submission(rng.randint(0, 3000), rng.choice(stable), name) for name in names]
    return Scenario(
        seed=seed,
        mix="adversary",
        n=n,
        delay=_delay(rng, ("fixed", "uniform", "slow")),
        heal_ms=NEVER,
        byzantine=tuple(byz),
        submissions=tuple(sorted(subs, key=lambda sub: sub.at_ms)),
        tight=True,
        adversary=drops,
    )


def _restart(seed: int, mix: str, rng: random.Random, n: int, quick: bool) -> Scenario:
    """n - f (``restart``) or all n (``restart-all``) validators crash together mid-height."""
    count = n if mix == "restart-all" else n - (n - 1) // 3
    nodes = tuple(sorted(rng.sample(range(n), count)))
    locked = rng.random() < 0.5
    restart = QuorumRestart(
        nodes=nodes,
        round=rng.choice((0, 1, 1, 2, 3)),
        down_ms=rng.randint(50, 3000),
        locked=locked,
        delay_ms=rng.randint(0, 300) if locked else 0,
    )
    # one registration early, so a height is under way, then the rest at any time
    first = Submission(rng.randint(0, 500), rng.randrange(n), rng.randrange(NAME_POOL))
    others = [name for name in rng.sample(range(NAME_POOL), 4) if name != first.name]
    subs = [first] + [
        Submission(rng.randint(0, 8000), rng.randrange(n), name)
        for name in others[: rng.randint(0, 1 if quick else 2)]
    ]
    return Scenario(
        seed=seed,
        mix=mix,
        n=n,
        delay=_delay(rng, ("fixed", "uniform", "heavy", "slow")),
        heal_ms=RESTART_FALLBACK_MS,
        submissions=tuple(sorted(subs, key=lambda sub: sub.at_ms)),
        tight=rng.random() < 0.5,
        restart=restart,
    )
