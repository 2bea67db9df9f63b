"""One validator floods a real cluster: the honest nodes keep finalizing, and stay small.

Validator 3 of four (plus a follower) runs `tools/byzantine.py` under `tools/flood.py`:
first signed votes nobody can blame (past the round window, far ahead, next height)
at just under the consensus topic's per-forwarder rate, then fresh-hash
equivocations on a new p2p identity. Registrations submitted over RPC must become
visible on every honest node throughout, and every one of them in the end; the
honest nodes' memory (node and DNS worker) must not grow by more than the issue's
bound. The full figures (60 s, every flood mode) are in docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.flood import HONEST, TARGET_GROWTH_MIB, measure

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLOOD_S = 12.0
STAGE_CAP_S = 10.0
CLEAN_UPDATES = 8


def test_honest_nodes_finalize_through_a_flood_and_stay_bounded(tmp_path: Path) -> None:
    result = measure(
        tmp_path, ["flood-votes", "flood-equivocate"], FLOOD_S, STAGE_CAP_S, CLEAN_UPDATES
    )
    votes, equivocate = result["stages"]
    print(f"\nflood: {result}")  # the figures for the report (pytest -s)
    assert result["lost"] == 0, result["lost_names"]
    assert result["heights_during_flood"] > 0, result
    # Registrations kept becoming visible everywhere while the flood ran, not only after it.
    assert votes["sent"] > 10 * FLOOD_S, votes  # the flood did run, at a high rate
    assert votes["updates"] - votes["late"] >= 5, votes
    assert votes["p50_ms"] is not None and votes["p50_ms"] < 5_000, votes
    # Valid votes under the rate limit prove nothing: no honest node bans for them.
    assert votes["banned_by"] == [], votes
    # Fresh-hash equivocations are proof: every honest validator bans the new identity. The
    # follower (node 4) bans it when both conflicting votes reach it; with its smaller gossip
    # mesh (issue 20) they may not, as the validators ban the flooder at once and stop passing
    # its messages on (seen in 1 of 3 runs: banned by [0, 1, 2]). Not yet understood whether
    # the follower was connected to the flooder then: a lead, written in the stop note.
    assert {0, 1, 2} <= set(equivocate["banned_by"]) <= set(HONEST), equivocate
    assert result["rss_growth_mib_max"] < TARGET_GROWTH_MIB, result
