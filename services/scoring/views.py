"""Read-side views: what the scoring API answers, computed at read time with the current plan.

Pure: the API fetches rows from the read model and hands them here.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from .intent import (
    Activity,
    Band,
    CustomerScore,
    activity_of,
    band_of,
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
        last_interaction_at=state.last_interaction_at,
        updated_at=updated_at,
    )


def band_of_key(key: float, plan: ScoringPlan, now: datetime) -> Band:
    for band in (Band.hot, Band.high, Band.medium):
        if key >= band_key_range(band, plan, now)[0]:
            return band
    return Band.low


def activity_at(last_interaction_s: float | None, plan: ScoringPlan, now: datetime) -> Activity:
    if last_interaction_s is None:
        return Activity.dormant
    idle_days = (now.timestamp() - last_interaction_s) / 86_400.0
    if idle_days <= plan.activity.active_7d_days:
        return Activity.active_7d
    if idle_days <= plan.activity.active_30d_days:
        return Activity.active_30d
    return Activity.dormant


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
