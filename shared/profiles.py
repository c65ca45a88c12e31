"""The `profile.tags.v1` record: a customer's tags, layer, orientation or stage changed.

Produced by tagging, read by campaign. At-least-once: dedupe by `event_id` (the last input that
led to the change).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict


class ProfileTagsChanged(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["profile.tags_changed"] = "profile.tags_changed"
    event_id: str
    customer_id: str
    layer: str
    orientation: str
    stage: str
    previous_layer: str | None  # None: the customer's first record
    previous_orientation: str | None
    previous_stage: str | None
    tags: list[str]  # all of them, sorted
    tags_added: list[str]
    tags_removed: list[str]
    intent_pct: float | None
    changed_at: AwareDatetime
    received_at: AwareDatetime | None = None  # of the input, for end-to-end latency
    schema_version: Literal[1] = 1
