"""Penalty scores: bursts add up, points decay after a quiet minute, bans freeze them."""

from __future__ import annotations

import pytest

from ledgerdns.p2p.peers import (
    BAN_THRESHOLD,
    DECAY_HALF_LIFE,
    DECAY_HOLD_SECONDS,
    PeerScores,
)

DAY = 86_400.0


def test_a_burst_adds_up_exactly() -> None:
    scores = PeerScores()
    assert not scores.add("p", 50, now=1000.0)
    assert scores.points("p", 1000.0 + DECAY_HOLD_SECONDS) == 50  # whole through the hold
    assert scores.add("p", 50, now=1000.0 + DECAY_HOLD_SECONDS)  # the second 50 bans
    assert scores.is_banned("p")


@pytest.mark.parametrize(
    ("after", "left"),
    [
        (0.0, 80.0),
        (DECAY_HOLD_SECONDS, 80.0),
        (DECAY_HOLD_SECONDS + DECAY_HALF_LIFE, 40.0),
        (DECAY_HOLD_SECONDS + 3 * DECAY_HALF_LIFE, 10.0),
        (-5.0, 80.0),  # a clock read before the penalty decays nothing
    ],
)
def test_points_halve_every_half_life_after_the_hold(after: float, left: float) -> None:
    scores = PeerScores()
    scores.add("p", 80, now=500.0)
    assert scores.points("p", 500.0 + after) == pytest.approx(left)


@pytest.mark.parametrize(
    ("points", "every"),
    [
        (50, DAY / 4),  # an invalid synced block four times a day
        (25, 600.0),  # a malformed message every ten minutes: settles near 54 points
        (1, 90.0),  # one gossip message over the rate every minute and a half
    ],
)
def test_a_peer_misbehaving_now_and_then_is_never_banned(points: int, every: float) -> None:
    scores = PeerScores()
    steps = int(7 * DAY / every)
    assert not any(scores.add("p", points, now=i * every) for i in range(steps))
    assert scores.points("p", steps * every) < BAN_THRESHOLD


@pytest.mark.parametrize(
    ("points", "every", "banned_by"),
    [
        (25, 180.0, 3600.0),  # a malformed message every three minutes
        (1, 10.0, 1000.0),  # within the hold nothing decays: 100 messages, 100 points
        (50, 240.0, 480.0),  # an invalid proposal every four minutes: the third bans
    ],
)
def test_a_peer_that_keeps_misbehaving_is_banned(points: int, every: float, banned_by: float) -> None:
    scores = PeerScores()
    now = 0.0
    while not scores.add("p", points, now=now):
        now += every
        assert now <= banned_by, scores.points("p", now)
    assert scores.is_banned("p")


def test_a_banned_peers_points_are_frozen_until_a_clean_slate() -> None:
    scores = PeerScores(ban_seconds=600.0)
    assert scores.add("p", 120, now=0.0)
    assert not scores.add("p", 50, now=10.0)  # already banned: nothing added
    assert scores.points("p", 590.0) == 120  # shown as banned, no decay
    assert scores.expire(599.0) == [] and scores.is_banned("p")
    assert scores.expire(600.0) == ["p"]
    assert not scores.is_banned("p") and scores.points("p", 600.0) == 0
    assert scores.penalized() == []


def test_decayed_scores_are_forgotten_and_the_latest_penalized_is_listed_last() -> None:
    scores = PeerScores()
    scores.add("a", 10, now=0.0)
    scores.add("b", 10, now=0.0)
    scores.add("a", 10, now=1.0)
    assert scores.penalized() == ["b", "a"]
    # b: 10 points from t=0, under 1 point after the hold and four half-lives (0.625)
    later = DECAY_HOLD_SECONDS + 4 * DECAY_HALF_LIFE
    assert scores.expire(later) == []
    assert scores.penalized() == ["a"]  # a's 20 points from t=1 are still 1.25
    assert scores.expire(later + DECAY_HALF_LIFE) == [] and scores.penalized() == []


def test_negative_points_are_refused() -> None:
    with pytest.raises(ValueError):
        PeerScores().add("p", -1, now=0.0)
