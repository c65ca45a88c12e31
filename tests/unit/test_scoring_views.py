"""Read-side ranking and views: rank keys, band ranges, the matrix and activity, without Redis."""

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from services.scoring.intent import (
    Activity,
    Band,
    CustomerScore,
    activity_of,
    band_of,
    intent_pct,
    score_at,
)
from services.scoring.plan import default_plan
from services.scoring.ranking import NEVER, band_key_range, key_floor, rank_key, score_floor
from services.scoring.views import activity_at, band_of_key, matrix, score_view

PLAN = default_plan()
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def random_states(count: int, seed: int) -> list[CustomerScore]:
    rng = random.Random(seed)
    return [
        CustomerScore(
            customer_id=f"c{i}",
            intent_score=rng.uniform(0.1, 150.0),
            score_at=NOW - timedelta(seconds=rng.uniform(0, 120 * 86_400)),
        )
        for i in range(count)
    ]


# Moments before, at and long after the states' score_at: keys must hold at all of them.
MOMENTS = [NOW - 200 * DAY, NOW - 30 * DAY, NOW, NOW + 3 * DAY, NOW + 365 * DAY, NOW + 3650 * DAY]


@pytest.mark.parametrize("now", MOMENTS)
def test_order_by_rank_key_is_order_by_current_score_at_any_time(now: datetime) -> None:
    states = random_states(200, seed=1)
    by_key = sorted(states, key=lambda s: rank_key(s, PLAN))
    by_score = sorted(states, key=lambda s: score_at(s, now, PLAN))
    assert [s.customer_id for s in by_key] == [s.customer_id for s in by_score]


def test_rank_key_does_not_change_as_an_untouched_score_decays() -> None:
    state = CustomerScore(customer_id="c", intent_score=40.0, score_at=NOW)
    later = replace(state, intent_score=score_at(state, NOW + 30 * DAY, PLAN), score_at=NOW + 30 * DAY)
    assert later.intent_score < state.intent_score / 4  # two half-lives and more have passed
    assert rank_key(later, PLAN) == pytest.approx(rank_key(state, PLAN), abs=1e-9)


@pytest.mark.parametrize("now", MOMENTS)
def test_band_key_ranges_agree_with_band_of_the_decayed_score(now: datetime) -> None:
    states = random_states(300, seed=2)
    seen = set()
    for state in states:
        expected = band_of(intent_pct(score_at(state, now, PLAN), PLAN), PLAN)
        key = rank_key(state, PLAN)
        containing = [
            band
            for band in Band
            if band_key_range(band, PLAN, now)[0] <= key < band_key_range(band, PLAN, now)[1]
        ]
        assert containing == [expected], state
        assert band_of_key(key, PLAN, now) is expected
        seen.add(expected)
    if now == NOW:
        assert seen == set(Band)  # the sample really crosses every boundary


def test_band_ranges_tile_the_whole_key_line() -> None:
    ranges = [band_key_range(band, PLAN, NOW) for band in (Band.low, Band.medium, Band.high, Band.hot)]
    assert ranges[0][0] == NEVER and ranges[-1][1] == math.inf
    assert all(upper == lower for (_, upper), (lower, _) in pairwise(ranges))


def test_a_zero_score_is_low_at_any_time() -> None:
    for state in (
        CustomerScore(customer_id="never-scored"),
        CustomerScore(customer_id="defeated", intent_score=0.0, score_at=NOW),
    ):
        assert rank_key(state, PLAN) == NEVER
        assert band_of_key(NEVER, PLAN, NOW) is Band.low
        assert band_key_range(Band.low, PLAN, NOW)[0] <= NEVER


def test_score_floor_inverts_intent_pct_and_has_open_ends() -> None:
    for pct in (1.0, 30.0, 60.0, 85.0, 99.9):
        assert intent_pct(score_floor(pct, PLAN), PLAN) == pytest.approx(pct)
    assert score_floor(0, PLAN) == 0.0 and key_floor(0, PLAN, NOW) == NEVER
    assert score_floor(100, PLAN) == math.inf and key_floor(100, PLAN, NOW) == math.inf


@pytest.mark.parametrize(
    ("idle", "expected"),
    [
        (timedelta(0), Activity.active_7d),
        (7 * DAY, Activity.active_7d),
        (7 * DAY + timedelta(seconds=1), Activity.active_30d),
        (30 * DAY, Activity.active_30d),
        (30 * DAY + timedelta(seconds=1), Activity.dormant),
        (400 * DAY, Activity.dormant),
    ],
)
def test_activity_boundaries_match_the_plan_and_intent(idle: timedelta, expected: Activity) -> None:
    last = NOW - idle
    assert activity_at(last.timestamp(), PLAN, NOW) is expected
    assert activity_of(CustomerScore(customer_id="c", last_interaction_at=last), NOW, PLAN) is expected


def test_no_interaction_is_dormant() -> None:
    assert activity_at(None, PLAN, NOW) is Activity.dormant


def key_for_pct(pct: float, at: datetime) -> float:
    """The rank key of a customer whose intent is `pct` at `at`."""
    return rank_key(CustomerScore(customer_id="x", intent_score=score_floor(pct, PLAN), score_at=at), PLAN)


def test_matrix_counts_customers_per_band_and_activity() -> None:
    recent, month, old = ((NOW - d * DAY).timestamp() for d in (1, 20, 90))
    rows = {
        "hot-1": (key_for_pct(95, NOW), recent),
        "hot-2": (key_for_pct(86, NOW - 2 * DAY), recent),  # 86 two days ago, about 83 now
        "high": (key_for_pct(70, NOW), month),
        "medium": (key_for_pct(40, NOW), old),
        "low": (key_for_pct(10, NOW), recent),
        "zero": (NEVER, None),
    }
    cells = matrix(rows, PLAN, NOW)
    assert set(cells) == set(Band) and all(set(row) == set(Activity) for row in cells.values())
    expected = {
        (Band.hot, Activity.active_7d): 1,
        (Band.high, Activity.active_7d): 1,  # hot-2, decayed out of hot
        (Band.high, Activity.active_30d): 1,
        (Band.medium, Activity.dormant): 1,
        (Band.low, Activity.active_7d): 1,
        (Band.low, Activity.dormant): 1,
    }
    assert {(b, a): n for b, row in cells.items() for a, n in row.items() if n} == expected

    # A year on, everyone has decayed to low and gone dormant: same customers, one cell.
    later = matrix(rows, PLAN, NOW + 365 * DAY)
    assert later[Band.low][Activity.dormant] == len(rows)


def test_score_view_decays_bands_and_levels_at_read_time() -> None:
    state = CustomerScore(
        customer_id="c1",
        intent_score=45.0,  # one test_drive.booked
        model_scores={"G6": 45.0},
        score_at=NOW,
        points=20,
        growth=150,
        last_interaction_at=NOW,
    )
    fresh = score_view(state, NOW, PLAN, NOW)
    assert (fresh.customer_id, fresh.band, fresh.activity, fresh.level) == (
        "c1",
        Band.hot,
        Activity.active_7d,
        "silver",
    )
    assert fresh.intent_pct == pytest.approx(85.5, abs=0.1)
    assert fresh.model_interest == {"G6": fresh.intent_pct}

    later = score_view(state, NOW, PLAN, NOW + 14 * DAY)  # one half-life
    assert later.intent_score == pytest.approx(22.5)
    assert (later.band, later.activity) == (Band.high, Activity.active_30d)
    assert later.model_interest["G6"] < fresh.model_interest["G6"]
    assert (later.points, later.growth, later.updated_at) == (20, 150, NOW)  # points and growth never decay
