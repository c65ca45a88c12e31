"""What scoring reads from its input topics, decoded from the bytes on the wire.

Only the fields scoring uses are decoded (pydantic skips the rest in Rust), so a worker pays
for what it needs. A message that does not decode goes to the topic's dead-letter topic.

Scoring is where events enter the chain, so an event outside the shape of ingest's bounds
(shared/events.py: nesting, items per list, keys per object, topics; not lengths, which phone
hashing may grow), which only a record put on the topic by other means can be, does not decode
either: it is dead-lettered with the bounds it breaks rather than carried to every worker.
Checked for records over CHECKED_ABOVE_BYTES only: a smaller event can break a bound but not
bloat anything (every worker caps its state), and checking every event would cost scoring a
twentieth of its speed.
"""

from __future__ import annotations

import orjson
from pydantic import AliasChoices, AliasPath, Field

from shared.events import (
    MAX_PUBLISHED_LABEL_CHARS,
    PublishedEventCore,
    describe_errors,
    property_bound_errors,
)
from shared.identity import IdentityJoined, IdentityMerged


class ScoringEvent(PublishedEventCore):
    """The part of a `touchpoint.events.v1` envelope that scoring uses."""

    # On the wire these are properties.vehicle_model and .content_id; in a handover, the fields
    # themselves. content_id is only shown in the customer's latest events (latest_events.py).
    # Labels (longer as published than as sent only by phone hashes): a longer one (a record put
    # on the topic by other means) does not decode, and is dead-lettered, rather than become a
    # key of the customer's state.
    vehicle_model: str | None = Field(
        default=None,
        max_length=MAX_PUBLISHED_LABEL_CHARS,
        validation_alias=AliasChoices("vehicle_model", AliasPath("properties", "vehicle_model")),
    )
    # points.granted / points.redeemed: how many (properties.points on the wire).
    points: int | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        validation_alias=AliasChoices("points", AliasPath("properties", "points")),
    )
    content_id: str | None = Field(
        default=None,
        max_length=MAX_PUBLISHED_LABEL_CHARS,
        validation_alias=AliasChoices("content_id", AliasPath("properties", "content_id")),
    )


# Ingest writes a merge's records with `type` first (shared/identity.py), so a prefix tells them
# from events without decoding every event twice.
_MERGED = b'{"type":"identity.merged"'
_JOINED = b'{"type":"identity.joined"'


# Typical events are a few hundred bytes; ingest's bounds allow far more than this, but only a
# rare event comes near it.
CHECKED_ABOVE_BYTES = 16 * 1024


def decode_touchpoint(raw: bytes) -> ScoringEvent | IdentityMerged | IdentityJoined:
    """A record of `touchpoint.events.v1`: an event, or one of a merge's two records. ValueError
    for a large event outside ingest's bounds."""
    if raw.startswith(_MERGED):
        return IdentityMerged.model_validate_json(raw)
    if raw.startswith(_JOINED):
        return IdentityJoined.model_validate_json(raw)
    event = ScoringEvent.model_validate_json(raw)
    if len(raw) > CHECKED_ABOVE_BYTES:
        properties = orjson.loads(raw).get("properties")
        if errors := property_bound_errors(properties if properties is not None else {}, lengths=False):
            raise ValueError(f"outside ingest's bounds: {describe_errors(errors)}")
    return event
