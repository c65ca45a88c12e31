"""Ordering customers by current intent without rewriting anyone as scores decay.

Every score decays by the same factor per unit of time, so the order of customers by current
score never changes on its own. `rank_key` is log2 of the score carried to a fixed origin (the
epoch): constant until the customer's next event, and comparable across customers. A band's
lower bound at any moment maps to a bound on the key, so "who is hot now" is a range query.
"""

from __future__ import annotations

import math
from datetime import datetime

from .intent import Band, CustomerScore
from .plan import ScoringPlan

NEVER = -math.inf  # the key of a zero score


def _half_lives_since_epoch(at: datetime, plan: ScoringPlan) -> float:
    return at.timestamp() / (plan.half_life_days * 86_400.0)


def rank_key(state: CustomerScore, plan: ScoringPlan) -> float:
    if state.score_at is None or state.intent_score <= 0:
        return NEVER
    return math.log2(state.intent_score) + _half_lives_since_epoch(state.score_at, plan)


def score_floor(pct: float, plan: ScoringPlan) -> float:
    """The lowest score whose intent_pct reaches `pct` (inverse of intent.intent_pct)."""
    if pct <= 0:
        return 0.0
    if pct >= 100:
        return math.inf
    return -plan.pct_scale * math.log(1.0 - pct / 100.0)


def key_floor(pct: float, plan: ScoringPlan, now: datetime) -> float:
    """The lowest rank key with intent_pct >= `pct` at `now`."""
    floor = score_floor(pct, plan)
    if floor <= 0:
        return NEVER
    if math.isinf(floor):
        return math.inf
    return math.log2(floor) + _half_lives_since_epoch(now, plan)


def band_key_range(band: Band, plan: ScoringPlan, now: datetime) -> tuple[float, float]:
    """[low, high) of rank keys in `band` at `now`."""
    bounds = {
        Band.low: (0.0, plan.bands.medium),
        Band.medium: (plan.bands.medium, plan.bands.high),
        Band.high: (plan.bands.high, plan.bands.hot),
        Band.hot: (plan.bands.hot, 100.0),
    }[band]
    low = NEVER if band is Band.low else key_floor(bounds[0], plan, now)
    high = math.inf if band is Band.hot else key_floor(bounds[1], plan, now)
    return low, high
