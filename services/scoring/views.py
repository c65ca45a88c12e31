"""Read-side views: what the scoring API answers, computed at read time with the current plan.

Pure: the API fetches rows from the read model and hands them here.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from .intent import (
    DAY_S,
    Activity,
    Band,
    CustomerScore,
    activity_of,
    band_of,
    intent_at,
    intent_pct,
    level_of,
    model_interest,
    score_at,
)
from .plan import ScoringPlan
from .ranking import band_key_range


class ScoreView(BaseModel):
    """GET /v1/customers/{customer_id}/score (docs/contract.md), plus `activity`."""

    customer_id: str
    intent_score: float
    intent_pct: float
    band: Band
    activity: Activity
    model_interest: dict[str, float]
    points: int
    growth: int
    level: str
    benefits: list[str]
    last_interaction_at: datetime | None
    updated_at: datetime


def score_view(state: CustomerScore, updated_at: datetime, plan: ScoringPlan, now: datetime) -> ScoreView:
    score = score_at(state, now, plan)
    pct = intent_pct(score, plan)
    return ScoreView(
        customer_id=state.customer_id,
        intent_score=round(score, 4),
        intent_pct=round(pct, 2),
        band=band_of(pct, plan),
        activity=activity_of(state, now, plan),
        model_interest=model_interest(state, now, plan),
        points=state.points,
        growth=state.growth,
        level=level_of(state.growth, plan),
        benefits=plan.benefits.get(level_of(state.growth, plan), []),
        last_interaction_at=state.last_interaction_at,
        updated_at=updated_at,
    )


class ForecastPoint(BaseModel):
    at: datetime
    intent_pct: float
    band: Band


class ForecastView(BaseModel):
    """GET /v1/customers/{customer_id}/forecast: where decay alone takes the customer's intent."""

    customer_id: str
    plan_version: int
    points: list[ForecastPoint] = Field(description="from now, one per step, assuming no new events")


def forecast(
    state: CustomerScore, plan: ScoringPlan, now: datetime, days: int, step_hours: int
) -> list[ForecastPoint]:
    """The customer's intent at now, now + step, ... up to now + days, if nothing else happens.

    Decayed and banded exactly as the score endpoint would answer at each of those moments."""
    step = timedelta(hours=step_hours)
    points: list[ForecastPoint] = []
    for n in range(days * 24 // step_hours + 1):
        at = now + n * step
        pct, band = intent_at(state, at, plan)
        points.append(ForecastPoint(at=at, intent_pct=pct, band=band))
    return points


def band_of_key(key: float, plan: ScoringPlan, now: datetime) -> Band:
    for band in (Band.hot, Band.high, Band.medium):
        if key >= band_key_range(band, plan, now)[0]:
            return band
    return Band.low


def _within(last_interaction_s: float, days: float, now_s: float) -> bool:
    # The one formula for "active within `days`": activity_at and active_since must agree to the
    # last bit, or the matrix counted in Redis would differ from this one at a window's edge.
    return (now_s - last_interaction_s) / DAY_S <= days


def activity_at(last_interaction_s: float | None, plan: ScoringPlan, now: datetime) -> Activity:
    if last_interaction_s is None:
        return Activity.dormant
    now_s = now.timestamp()
    if _within(last_interaction_s, plan.activity.active_7d_days, now_s):
        return Activity.active_7d
    if _within(last_interaction_s, plan.activity.active_30d_days, now_s):
        return Activity.active_30d
    return Activity.dormant


def active_since(days: float, now: datetime) -> float:
    """The earliest last interaction (epoch s) still active within `days` of `now`, to the bit:
    `activity_at`'s window as a bound on the `last_interaction` sorted set."""
    now_s = now.timestamp()
    since = now_s - days * DAY_S
    # Rounding may put the plain difference a few ulps off the formula's edge: step onto it.
    while not _within(since, days, now_s):
        since = math.nextafter(since, math.inf)
    while _within(earlier := math.nextafter(since, -math.inf), days, now_s):
        since = earlier
    return since


def matrix(
    rows: dict[str, tuple[float, float | None]], plan: ScoringPlan, now: datetime
) -> dict[Band, dict[Activity, int]]:
    """The lead concentration matrix: customers per (band x activity) cell."""
    floors = [(band, band_key_range(band, plan, now)[0]) for band in (Band.hot, Band.high, Band.medium)]
    cells = {band: dict.fromkeys(Activity, 0) for band in Band}
    for key, last_interaction in rows.values():
        band = next((b for b, floor in floors if key >= floor), Band.low)
        cells[band][activity_at(last_interaction, plan, now)] += 1
    return cells
