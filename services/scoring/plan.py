"""The scoring plan: weights, decay, intent_pct mapping, bands, points, growth and levels, as data.

The default lives in default_plan.toml; ops replace it through the API. Validation errors name
the field, so a bad plan is refused with reasons (422) and never reaches a worker.
"""

from __future__ import annotations

import tomllib
from importlib.resources import files
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from shared.events import CUSTOM_TYPE, EVENT_TYPES, Source

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0, le=100)]


class Bands(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    medium: Percent
    high: Percent
    hot: Percent

    @model_validator(mode="after")
    def _ascending(self) -> Bands:
        if not 0 < self.medium < self.high < self.hot < 100:
            raise ValueError("bands must ascend: 0 < medium < high < hot < 100")
        return self


class ActivityWindows(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    not_interactions: frozenset[str] = frozenset()
    active_7d_days: Positive = 7
    active_30d_days: Positive = 30

    @field_serializer("not_interactions")
    def _in_order(self, types: frozenset[str]) -> list[str]:
        # A set's order depends on the process's hash seed: the JSON must not.
        return sorted(types)


class ScoringPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    half_life_days: Positive
    pct_scale: Positive = Field(description="intent_pct = 100 * (1 - exp(-score / pct_scale))")
    emit_min_pct_change: Percent = 5.0
    bands: Bands
    weights: dict[str, Annotated[float, Field(ge=-1000, le=1000)]]
    source_multipliers: dict[Source, Annotated[float, Field(ge=0, le=10)]] = {}
    points: dict[str, Annotated[int, Field(ge=0)]] = {}
    growth: dict[str, Annotated[int, Field(ge=0)]] = {}
    levels: dict[str, Annotated[int, Field(ge=0)]]
    # What each level brings, as data (shown with the customer's score); a level may have none.
    benefits: dict[str, list[Annotated[str, Field(min_length=1, max_length=64)]]] = {}
    activity: ActivityWindows = ActivityWindows()

    @field_validator("weights", "points", "growth")
    @classmethod
    def _known_types(cls, mapping: dict[str, float]) -> dict[str, float]:
        unknown = [t for t in mapping if t not in EVENT_TYPES and not CUSTOM_TYPE.match(t)]
        if unknown:
            raise ValueError(f"unknown event types: {', '.join(sorted(unknown))}")
        return mapping

    @field_validator("levels")
    @classmethod
    def _levels_ascend_from_zero(cls, levels: dict[str, int]) -> dict[str, int]:
        thresholds = list(levels.values())
        if not thresholds or thresholds[0] != 0 or thresholds != sorted(set(thresholds)):
            raise ValueError("levels must start at 0 and ascend strictly")
        return levels

    @model_validator(mode="after")
    def _benefits_of_levels(self) -> ScoringPlan:
        if unknown := sorted(set(self.benefits) - set(self.levels)):
            raise ValueError(f"benefits of levels the plan does not have: {', '.join(unknown)}")
        return self


def default_plan() -> ScoringPlan:
    text = files(__package__).joinpath("default_plan.toml").read_text(encoding="utf-8")
    return ScoringPlan.model_validate(tomllib.loads(text))
