"""How intent is computed: one customer's score state, and what one event does to it.

Pure: no Kafka, Faust, Redis or HTTP. A score is a sum of behaviour weights, each decaying
exponentially with the plan's half-life. The state keeps the sum as of `score_at`; because decay
is exponential, an event older than `score_at` is simply added at its decayed weight, so the
result does not depend on the order events arrive in (except where a negative weight meets the
floor at zero, or a model falls out of the strongest MAX_MODELS).

Bounded (docs/contract.md, "Bounds"): per-model interest keeps the MAX_MODELS strongest models of
a customer; a weaker one is forgotten (ties: the model named first alphabetically stays).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated

from shared.compact import EMPTY, ONE_COPY, SHARED_WHEN_EMPTY
from shared.dataclass_replace import replace
from shared.scores import Activity, Band

from .inputs import ScoringEvent
from .plan import ScoringPlan

DAY_S = 86_400.0
# Vehicle models a customer's interest is kept for: a maker sells a few dozen, a buyer weighs a
# handful; past this the weakest interest goes, so no input can grow the row without end.
MAX_MODELS = 20


@dataclass(frozen=True, slots=True)
class CustomerScore:
    """A customer's scoring state. Decayed sums are as of `score_at`.

    A plain dataclass, not a pydantic model: the worker builds one per event, and pydantic
    (which still validates and serialises it as a field of the models around it) would cost
    several times the arithmetic.
    """

    customer_id: str
    intent_score: float = 0.0
    model_scores: Annotated[dict[str, float], SHARED_WHEN_EMPTY] = field(default_factory=lambda: EMPTY)
    score_at: Annotated[datetime, ONE_COPY] | None = None  # rows written together share it
    points: int = 0
    growth: int = 0
    last_interaction_at: Annotated[datetime, ONE_COPY] | None = None


def decay_factor(from_time: datetime, to_time: datetime, half_life_days: float) -> float:
    """How much of a weight at `from_time` is left at `to_time` (above 1 when going back)."""
    return 2.0 ** (-(to_time - from_time).total_seconds() / (half_life_days * DAY_S))


def intent_pct(score: float, plan: ScoringPlan) -> float:
    return 100.0 * (1.0 - math.exp(-max(score, 0.0) / plan.pct_scale))


def intent_at(state: CustomerScore, at: datetime, plan: ScoringPlan) -> tuple[float, Band]:
    """intent_pct (to 2 places) and band as a reader sees them at `at`: decayed, with `plan`."""
    pct = intent_pct(score_at(state, at, plan), plan)
    return round(pct, 2), band_of(pct, plan)


def band_of(pct: float, plan: ScoringPlan) -> Band:
    if pct >= plan.bands.hot:
        return Band.hot
    if pct >= plan.bands.high:
        return Band.high
    if pct >= plan.bands.medium:
        return Band.medium
    return Band.low


def level_of(growth: int, plan: ScoringPlan) -> str:
    reached = [name for name, minimum in plan.levels.items() if growth >= minimum]
    return reached[-1]


def activity_of(state: CustomerScore, now: datetime, plan: ScoringPlan) -> Activity:
    if state.last_interaction_at is None:
        return Activity.dormant
    idle_days = (now - state.last_interaction_at).total_seconds() / DAY_S
    if idle_days <= plan.activity.active_7d_days:
        return Activity.active_7d
    if idle_days <= plan.activity.active_30d_days:
        return Activity.active_30d
    return Activity.dormant


def score_at(state: CustomerScore, now: datetime, plan: ScoringPlan) -> float:
    """The decayed intent score as of `now`."""
    if state.score_at is None:
        return 0.0
    return state.intent_score * decay_factor(state.score_at, now, plan.half_life_days)


def model_interest(state: CustomerScore, now: datetime, plan: ScoringPlan) -> dict[str, float]:
    """intent_pct per vehicle model, as of `now`."""
    if state.score_at is None:
        return {}
    carried = decay_factor(state.score_at, now, plan.half_life_days)
    return {model: round(intent_pct(score * carried, plan), 2) for model, score in state.model_scores.items()}


def apply_event(state: CustomerScore, event: ScoringEvent, plan: ScoringPlan) -> CustomerScore:
    """The state after one event. Dedupe by event_id is the caller's job."""
    at = event.occurred_at
    reference = max(state.score_at, at) if state.score_at else at
    carried = decay_factor(state.score_at, reference, plan.half_life_days) if state.score_at else 1.0
    added = (
        plan.weights.get(event.type, 0.0)
        * plan.source_multipliers.get(event.source, 1.0)
        * decay_factor(at, reference, plan.half_life_days)
    )

    # Most customers never name a model: they share one empty mapping (64 bytes a row less).
    model_scores = {model: score * carried for model, score in state.model_scores.items()} or EMPTY
    model = event.vehicle_model
    if model and added > 0:
        model_scores = strongest_models(model_scores | {model: model_scores.get(model, 0.0) + added})

    interacted = event.type not in plan.activity.not_interactions
    last_interaction = state.last_interaction_at
    if interacted and (last_interaction is None or at > last_interaction):
        last_interaction = at

    return CustomerScore(
        customer_id=state.customer_id,
        intent_score=max(state.intent_score * carried + added, 0.0),
        model_scores=model_scores,
        score_at=reference,
        points=points_after(state.points, event, plan),
        growth=state.growth + plan.growth.get(event.type, 0),
        last_interaction_at=last_interaction,
    )


def points_after(points: int, event: ScoringEvent, plan: ScoringPlan) -> int:
    """Spendable points after an event: earned by behaviour (the plan's `points`), granted by a
    campaign (points.granted), spent (points.redeemed: never below zero; a redemption of more
    than the customer holds spends what they hold)."""
    points += plan.points.get(event.type, 0)
    if event.type == "points.granted":
        points += event.points or 0
    elif event.type == "points.redeemed":
        points -= min(points, event.points or 0)
    return points


def merge_states(survivor: CustomerScore, merged: CustomerScore, plan: ScoringPlan) -> CustomerScore:
    """Fold a merged-away customer's state into the survivor's (identity.merged)."""
    times = [t for t in (survivor.score_at, merged.score_at) if t is not None]
    if not times:
        return replace(
            survivor, points=survivor.points + merged.points, growth=survivor.growth + merged.growth
        )
    reference = max(times)

    def carried(state: CustomerScore) -> float:
        return decay_factor(state.score_at, reference, plan.half_life_days) if state.score_at else 0.0

    models: dict[str, float] = {}
    for state in (survivor, merged):
        for model, score in state.model_scores.items():
            models[model] = models.get(model, 0.0) + score * carried(state)
    interactions = [t for t in (survivor.last_interaction_at, merged.last_interaction_at) if t]
    return replace(
        survivor,
        intent_score=survivor.intent_score * carried(survivor) + merged.intent_score * carried(merged),
        model_scores=strongest_models(models),
        score_at=reference,
        points=survivor.points + merged.points,
        growth=survivor.growth + merged.growth,
        last_interaction_at=max(interactions) if interactions else None,
    )


def strongest_models(model_scores: dict[str, float]) -> dict[str, float]:
    """The MAX_MODELS highest scores (all as of one moment, so comparable); ties by model name."""
    if len(model_scores) <= MAX_MODELS:
        return model_scores
    kept = sorted(model_scores.items(), key=lambda item: (-item[1], item[0]))[:MAX_MODELS]
    return {model: model_scores[model] for model in sorted(model for model, _ in kept)}


def next_change_at(state: CustomerScore, now: datetime, plan: ScoringPlan) -> datetime | None:
    """When time alone will next move the customer's band or activity (None: never).

    Decay is exponential, so the moment the score falls below its band's lower bound is solved
    for, not searched: score(t) = s0 * 2^(-(t - t0) / half-life) = bound. Activity moves at fixed
    distances from the last interaction. A second is added to land just past the crossing.
    (Once per changed customer and batch: written without throwaway dicts and generators.)"""
    soonest: datetime | None = None
    if state.score_at is not None and state.intent_score > 0:
        floor = _band_floor(intent_pct(score_at(state, now, plan), plan), plan)
        if floor is not None:
            bound = -plan.pct_scale * math.log(1.0 - floor / 100.0)  # the score at that intent_pct
            half_lives = math.log2(state.intent_score / bound)
            moment = state.score_at + timedelta(days=half_lives * plan.half_life_days, seconds=1)
            if moment > now:
                soonest = moment
    if state.last_interaction_at is not None:
        for days in (plan.activity.active_7d_days, plan.activity.active_30d_days):
            moment = state.last_interaction_at + _days_and_a_second(days)
            if moment > now and (soonest is None or moment < soonest):
                soonest = moment
    return soonest


def _band_floor(pct: float, plan: ScoringPlan) -> float | None:
    """The lower bound of the band `pct` is in (as `band_of`), None for the lowest band."""
    bands = plan.bands
    for floor in (bands.hot, bands.high, bands.medium):
        if pct >= floor:
            return floor
    return None


@lru_cache(maxsize=64)
def _days_and_a_second(days: float) -> timedelta:
    return timedelta(days=days, seconds=1)


def should_emit(previous_pct: float | None, pct: float, plan: ScoringPlan) -> bool:
    """Publish to intent.scores.v1 on a band change or a move of at least emit_min_pct_change."""
    if previous_pct is None:
        return True
    return (
        band_of(previous_pct, plan) != band_of(pct, plan)
        or abs(pct - previous_pct) >= plan.emit_min_pct_change
    )
