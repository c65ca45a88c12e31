"""What scoring reads from its input topics, decoded from the bytes on the wire.

Only the fields scoring uses are decoded (pydantic skips the rest in Rust), so a worker pays
for what it needs. A message that does not decode goes to the topic's dead-letter topic.
"""

from __future__ import annotations

from pydantic import AliasChoices, AliasPath, Field

from shared.events import PublishedEventCore
from shared.identity import IdentityJoined, IdentityMerged


class ScoringEvent(PublishedEventCore):
    """The part of a `touchpoint.events.v1` envelope that scoring uses."""

    # On the wire these are properties.vehicle_model and .content_id; in a handover, the fields
    # themselves. content_id is only shown in the customer's latest events (latest_events.py).
    vehicle_model: str | None = Field(
        default=None, validation_alias=AliasChoices("vehicle_model", AliasPath("properties", "vehicle_model"))
    )
    content_id: str | None = Field(
        default=None, validation_alias=AliasChoices("content_id", AliasPath("properties", "content_id"))
    )


# Ingest writes a merge's records with `type` first (shared/identity.py), so a prefix tells them
# from events without decoding every event twice.
_MERGED = b'{"type":"identity.merged"'
_JOINED = b'{"type":"identity.joined"'


def decode_touchpoint(raw: bytes) -> ScoringEvent | IdentityMerged | IdentityJoined:
    """A record of `touchpoint.events.v1`: an event, or one of a merge's two records."""
    if raw.startswith(_MERGED):
        return IdentityMerged.model_validate_json(raw)
    if raw.startswith(_JOINED):
        return IdentityJoined.model_validate_json(raw)
    return ScoringEvent.model_validate_json(raw)
