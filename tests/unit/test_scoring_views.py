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
    next_change_at,
    score_at,
)
from services.scoring.plan import default_plan
from services.scoring.ranking import NEVER, band_key_range, key_floor, rank_key, score_floor
from services.scoring.views import active_since, activity_at, band_of_key, forecast, matrix, score_view

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


def booked(at: datetime) -> CustomerScore:
    """A customer whose one behaviour was a test_drive.booked (45) at `at`."""
    return CustomerScore(customer_id="c1", intent_score=45.0, score_at=at, last_interaction_at=at)


def test_a_forecast_decays_with_the_plans_half_life_from_now() -> None:
    state = booked(NOW - 3 * DAY)
    points = forecast(state, PLAN, NOW, days=28, step_hours=24)
    assert [p.at for p in points] == [NOW + n * DAY for n in range(29)]  # first point: now
    assert points[0].intent_pct == score_view(state, NOW, PLAN, NOW).intent_pct
    assert all(a.intent_pct > b.intent_pct for a, b in pairwise(points))
    # One half-life later the score (not the pct) has halved.
    today, half_life_on = score_floor(points[0].intent_pct, PLAN), score_floor(points[14].intent_pct, PLAN)
    assert half_life_on == pytest.approx(today / 2, rel=1e-3)


def test_a_forecast_crosses_bands_where_the_plan_puts_them() -> None:
    """45 points fall below hot (85 %, 44.2 points) in a third of a day, below high (21.4) after
    15.1 days and below medium (8.3) after 34.1 days of a 14-day half-life."""
    state = replace(booked(NOW), last_interaction_at=None)  # so only bands move
    points = forecast(state, PLAN, NOW, days=60, step_hours=24)
    bands = [p.band for p in points]
    assert bands == [Band.hot] + [Band.high] * 15 + [Band.medium] * 19 + [Band.low] * 26
    # Each crossing lies in the step where the worker schedules its decay tick (next_change_at).
    crossings = [points[n].at for n in range(1, len(points)) if bands[n] != bands[n - 1]]
    at: datetime | None = NOW
    ticks = []
    while (at := next_change_at(state, at, PLAN)) is not None:
        ticks.append(at)
    assert len(ticks) == len(crossings) == 3
    assert all(step_end - DAY < tick <= step_end for step_end, tick in zip(crossings, ticks, strict=True))


def test_a_forecast_steps_and_spans_as_asked() -> None:
    hourly = forecast(booked(NOW), PLAN, NOW, days=1, step_hours=1)
    assert len(hourly) == 25 and hourly[-1].at == NOW + DAY
    weekly = forecast(booked(NOW), PLAN, NOW, days=90, step_hours=168)
    assert [p.at for p in weekly] == [NOW + n * 7 * DAY for n in range(13)]  # never past 90 days
    nothing = forecast(CustomerScore(customer_id="new"), PLAN, NOW, days=2, step_hours=24)
    assert [(p.intent_pct, p.band) for p in nothing] == [(0.0, Band.low)] * 3


def test_active_since_is_activity_ats_window_to_the_bit() -> None:
    """The matrix counted in Redis takes activity windows as bounds on last_interaction: the
    plain `now - days` is an ulp off for a few windows in a hundred (this test finds them)."""
    rng = random.Random(5)
    for _ in range(2000):
        days = rng.choice([7.0, 30.0, rng.uniform(0.01, 60.0)])
        now = NOW + timedelta(microseconds=rng.randrange(-(10**14), 10**14))
        plan = PLAN.model_copy(update={"activity": PLAN.activity.model_copy(update={"active_7d_days": days})})
        since = active_since(days, now)
        assert activity_at(since, plan, now) is Activity.active_7d
        assert activity_at(math.nextafter(since, -math.inf), plan, now) is not Activity.active_7d
