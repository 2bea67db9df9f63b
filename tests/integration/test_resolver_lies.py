"""Lying upstreams, tested (issue 16): the resolver never returns their data and names them.

Real processes: an honest one-validator network with a 1 s heartbeat (so its
newest certified header is always recent), another network with the same
``chain_id`` but its own genesis, and ``ledgerdns resolver`` processes with
``--max-staleness 5``. In front of the honest node, proxies tell the lies:

- rewrite: an address edited in flight, in the answer and in the proof's state;
- replay: the reply recorded before the record changed, served ever after
  (genuine proofs of an old state: a node that stopped while the chain went on);
- foreign: the other network's node, answering for the same name;
- garbage: random bytes in place of the proof.

Alone, each liar gets SERVFAIL with an Extended DNS Error naming it and why;
among them, one honest node is enough for the right answer; the resolver's log
names every liar.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.rcode
import pytest

from chain.dns_proof import ProofRequest
from ledgerdns.dns.proof_query import fetch_proof_sync
from tests.support.resolver_net import (
    Network,
    addresses,
    ask,
    ede_texts,
    is_authentic,
    start_network,
)
from tools.liars import GarbageProof, LyingProxy, Replay, Rewrite
from tools.resolvers import ResolverProcess, addr

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STALENESS_S = 5.0
OLD, NEW, FORGED, FOREIGN = "192.0.2.1", "192.0.2.7", "6.6.6.6", "198.51.100.66"
# Random bytes fail to decode in one of these ways, depending on the bytes drawn.
GARBAGE = {"malformed", "non-canonical", "unknown-version", "oversize"}
FOREIGN_REASONS = {"bad-validators", "bad-signature", "wrong-chain"}


def _ip(text: str) -> bytes:
    return bytes(int(part) for part in text.split("."))


@dataclass(slots=True)
class Liars:
    honest: Network
    foreign: Network
    rewrite: LyingProxy
    replay: LyingProxy
    garbage: LyingProxy
    recorded_at: float  # time.monotonic() when the replay recorded its reply


@pytest.fixture(scope="module")
def liars(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Liars]:
    honest = start_network(tmp_path_factory.mktemp("honest"), validators=1, heartbeat_ms=1000)
    try:
        foreign = start_network(tmp_path_factory.mktemp("foreign"), validators=1, heartbeat_ms=1000)
        try:
            honest.register("alice.p2p", [f"@ A {OLD}"])
            foreign.register("alice.p2p", [f"@ A {FOREIGN}"])
            node = honest.dns(0)
            with (
                LyingProxy(node, Rewrite(_ip(NEW), _ip(FORGED))) as rewrite,
                LyingProxy(node, Replay()) as replay,
                LyingProxy(node, GarbageProof()) as garbage,
            ):
                # The replay records the proof of alice = OLD now, over UDP and TCP as the
                # resolver may ask; then the chain moves on to NEW.
                for tcp_only in (False, True):
                    recorded = fetch_proof_sync(
                        *replay.address, "alice.p2p", "A", ProofRequest(), tcp_only=tcp_only
                    )
                    assert recorded.proof is not None or not tcp_only
                recorded_at = time.monotonic()
                honest.update("alice.p2p", [f"@ A {NEW}"])
                yield Liars(honest, foreign, rewrite, replay, garbage, recorded_at)
        finally:
            foreign.cluster.stop()
    finally:
        honest.cluster.stop()


def _resolver(liars: Liars, tmp_path: Path, *upstreams: tuple[str, int]) -> ResolverProcess:
    return ResolverProcess(
        tmp_path, liars.honest.genesis_path, list(upstreams), max_staleness=STALENESS_S,
        extra=["--timeout", "3"],
    )  # fmt: skip


def _refused(process: ResolverProcess, liar: tuple[str, int], reasons: set[str]) -> str:
    """Ask alice.p2p: SERVFAIL, no data, one EDE naming `liar` with one of `reasons`."""
    reply = ask(process.address, "alice.p2p", "A")
    assert reply.rcode() == dns.rcode.SERVFAIL, reply
    assert not reply.answer and not is_authentic(reply)
    (error,) = ede_texts(reply)
    code, _, text = error.partition(": ")
    name, reason = text.split(" ")[:2]
    assert code == "0" and name == addr(liar) and reason.rstrip(":") in reasons, error
    log = process.log()
    assert f"upstream answer refused upstream={addr(liar)} name=alice.p2p reason=" in log, log
    return text


def test_the_networks_share_a_chain_id_not_a_genesis(liars: Liars) -> None:
    honest, foreign = liars.honest.cluster.genesis, liars.foreign.cluster.genesis
    assert honest is not None and foreign is not None
    assert honest.chain_id == foreign.chain_id and honest.hash() != foreign.hash()


def test_records_rewritten_in_flight_are_refused(liars: Liars, tmp_path: Path) -> None:
    with _resolver(liars, tmp_path, liars.rewrite.address) as process:
        text = _refused(process, liars.rewrite.address, {"bad-proof"})
    assert liars.rewrite.tamper.edits > 0  # type: ignore[attr-defined]  # the lie was told
    assert "does not match the header's state_root" in text


def test_a_node_of_another_network_is_refused(liars: Liars, tmp_path: Path) -> None:
    assert addresses(ask(liars.foreign.dns(0), "alice.p2p", "A")) == {FOREIGN}  # its own answer
    with _resolver(liars, tmp_path, liars.foreign.dns(0)) as process:
        _refused(process, liars.foreign.dns(0), FOREIGN_REASONS)


def test_garbage_proofs_are_refused(liars: Liars, tmp_path: Path) -> None:
    with _resolver(liars, tmp_path, liars.garbage.address) as process:
        _refused(process, liars.garbage.address, GARBAGE)
    assert liars.garbage.tamper.edits > 0  # type: ignore[attr-defined]


def _wait_replay_stale(liars: Liars) -> None:
    # The recorded header is at least as old as the recording: past the bound plus a margin.
    time.sleep(max(0.0, liars.recorded_at + STALENESS_S + 1.0 - time.monotonic()))


def test_an_old_state_with_valid_proofs_is_refused_once_stale(liars: Liars, tmp_path: Path) -> None:
    _wait_replay_stale(liars)
    with _resolver(liars, tmp_path, liars.replay.address) as process:
        text = _refused(process, liars.replay.address, {"stale-proof"})
    assert liars.replay.tamper.replays > 0  # type: ignore[attr-defined]
    assert f"over the {STALENESS_S:g} s bound" in text


def test_one_honest_upstream_among_liars_is_enough(liars: Liars, tmp_path: Path) -> None:
    _wait_replay_stale(liars)
    upstreams = [
        liars.replay.address,
        liars.rewrite.address,
        liars.foreign.dns(0),
        liars.garbage.address,
        liars.honest.dns(0),
    ]
    with _resolver(liars, tmp_path, *upstreams) as process:
        for tcp in (False, True):
            reply = ask(process.address, "alice.p2p", "A", tcp=tcp)
            assert reply.rcode() == dns.rcode.NOERROR and is_authentic(reply)
            assert addresses(reply) == {NEW}
        log = process.log()
    for liar, reasons in [
        (liars.replay.address, {"stale-proof"}),
        (liars.rewrite.address, {"bad-proof"}),
        (liars.garbage.address, GARBAGE),
        (liars.foreign.dns(0), FOREIGN_REASONS),
    ]:
        blamed = f"upstream answer refused upstream={addr(liar)} name=alice.p2p reason="
        said = {line.split(blamed, 1)[1].split()[0] for line in log.splitlines() if blamed in line}
        assert said and said <= reasons, (liar, said, log)
    assert f"upstream={addr(liars.honest.dns(0))}" not in log  # the honest one is never blamed
