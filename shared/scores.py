"""The `intent.scores.v1` record: a customer's intent moved (band change or >= 5 points).

Produced by scoring, read by tagging and campaign. At-least-once: dedupe by `event_id` (the
input that moved the score).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict


class Band(StrEnum):
    """Intent bands, lowest first (docs/contract.md): scoring sets them, tagging and campaign read them."""

    low = "low"
    medium = "medium"
    high = "high"
    hot = "hot"


class Activity(StrEnum):
    """Recency of the customer's last own interaction."""

    active_7d = "active_7d"
    active_30d = "active_30d"
    dormant = "dormant"


class IntentScoreChanged(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["intent.score_changed"] = "intent.score_changed"
    event_id: str
    customer_id: str
    intent_score: float
    intent_pct: float
    band: str
    previous_pct: float | None
    previous_band: str | None
    model_interest: dict[str, float]
    points: int
    growth: int
    level: str
    activity: str
    scored_at: AwareDatetime
    received_at: AwareDatetime | None = None  # of the input, for end-to-end latency
    schema_version: Literal[1] = 1
