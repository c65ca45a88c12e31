"""What scoring reads from its input topics, decoded from the bytes on the wire.

Only the fields scoring uses are decoded (pydantic skips the rest in Rust), so a worker pays
for what it needs. A message that does not decode goes to the topic's dead-letter topic.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, AliasPath, AwareDatetime, BaseModel, ConfigDict, Field

from shared.events import Source


class ScoringEvent(BaseModel):
    """The part of a `touchpoint.events.v1` envelope that scoring uses."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    source: Source
    occurred_at: AwareDatetime
    received_at: AwareDatetime
    # On the wire it is properties.vehicle_model; in a handover, the field itself.
    vehicle_model: str | None = Field(
        default=None, validation_alias=AliasChoices("vehicle_model", AliasPath("properties", "vehicle_model"))
    )
    schema_version: Literal[1] = 1
