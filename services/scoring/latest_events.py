"""A customer's latest events, as ops see them: what came in and what each did to the score.

Pure: the worker's fold makes one entry per event it applies (`latest_entry`; the batch outcome
carries them, and the merges whose entries move to the survivor); read_model.py keeps them in
Redis, one sorted set per customer (member: the entry's JSON, score: when the event occurred),
the newest `KEPT`.

An entry is a function of the event and the plan alone, never of the customer's state or the
moment it was applied, so an event replayed after a crash writes the very same member again
(nothing doubled), whatever batch it comes in. Privacy: only the fields below, never the
identities or free properties of the event (phone hashes included).
"""

from __future__ import annotations

from datetime import datetime

import orjson
from pydantic import BaseModel, Field

from shared.events import Source

from .inputs import ScoringEvent
from .plan import ScoringPlan

KEPT = 50  # per customer, newest by occurred_at


class LatestEvent(BaseModel):
    event_id: str
    type: str
    source: Source
    occurred_at: datetime
    intent_added: float | None = Field(
        description="weight x source multiplier when it occurred, before decay; null: the plan "
        "in force when it was scored has no weight for the type"
    )
    points_added: int | None = Field(description="null: the plan has no points for the type")
    content_id: str | None = None
    vehicle_model: str | None = None


class LatestEventsView(BaseModel):
    """GET /v1/customers/{customer_id}/events."""

    customer_id: str
    events: list[LatestEvent] = Field(description="newest first")


def latest_entry(event: ScoringEvent, plan: ScoringPlan) -> bytes:
    """The event's entry as stored: compact JSON, the same bytes every time it is scored."""
    weight = plan.weights.get(event.type)
    fields: dict[str, object] = {
        "event_id": event.event_id,
        "type": event.type,
        "source": event.source,
        "occurred_at": event.occurred_at,
        # Rounded: 4.0 x 0.8 is 3.2, not 3.2000000000000006, on a console.
        "intent_added": None
        if weight is None
        else round(weight * plan.source_multipliers.get(event.source, 1.0), 4),
        "points_added": plan.points.get(event.type),
    }
    # Left out when absent, not null: most events carry neither, and each byte is kept 50 times.
    if event.content_id is not None:
        fields["content_id"] = event.content_id
    if event.vehicle_model is not None:
        fields["vehicle_model"] = event.vehicle_model
    return orjson.dumps(fields)


def newest(entries: list[bytes], limit: int) -> list[LatestEvent]:
    """Entries newest first as read, each event once, at most `limit`.

    An event scored again under another plan (a replay after a crash straddling a plan change)
    leaves a second entry with other figures. The one read first stands: which was written last
    is not known, and each is a true account of one scoring."""
    seen: set[str] = set()
    events: list[LatestEvent] = []
    for raw in entries:
        event = LatestEvent.model_validate_json(raw)
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        events.append(event)
        if len(events) == limit:
            break
    return events
