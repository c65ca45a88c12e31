"""The content catalogue (内容中台): contents registered once, referred to by id.

Ops register a content on the tagging API (`PUT /v1/contents/{id}`): its value point (rational
or emotional), topics, car model and whether it is about price. An event that names only its
`content_id` is given those attributes by ingest before it is published, so every worker reads
them as if the touchpoint had sent them; what the event says itself wins (docs/tagging.md,
"Content catalogue"). Stored as a versioned hash (shared/versioned_hash.py): every change is
audited, and ingest reloads the catalogue when its version moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from redis.asyncio import Redis

from shared.events import MAX_TOPICS, Label
from shared.versioned_hash import VersionedHash

CONTENTS = VersionedHash("pd:contents", "content")
# The attributes an event takes from the catalogue when it does not say them itself.
ATTRIBUTES = ("value_point", "topics", "vehicle_model", "price_related")


class Content(BaseModel):
    """One content of the catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    content_id: Label
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    value_point: Literal["rational", "emotional"] | None = Field(
        default=None, description="the value point it speaks to (理性 / 感性); null: neither"
    )
    topics: list[Label] = Field(default_factory=list, max_length=MAX_TOPICS)
    vehicle_model: Label | None = Field(default=None, description="the car model it is about, if one")
    price_related: bool = Field(default=False, description="about price: offers, financing, coupons")
    schema_version: Literal[1] = 1

    def attributes(self) -> dict[str, Any]:
        """What an event naming this content takes from it (nothing unset)."""
        given = {
            "value_point": self.value_point,
            "topics": list(self.topics) or None,
            "vehicle_model": self.vehicle_model,
            "price_related": self.price_related or None,
        }
        return {name: value for name, value in given.items() if value is not None}


def with_catalogue(properties: Mapping[str, Any], catalogue: Mapping[str, Content]) -> Mapping[str, Any]:
    """An event's properties with its content's attributes where it does not say them itself;
    the same mapping when it names no registered content."""
    content_id = properties.get("content_id")
    content = catalogue.get(content_id) if isinstance(content_id, str) else None
    if content is None:
        return properties
    missing = {k: v for k, v in content.attributes().items() if properties.get(k) is None}
    return {**properties, **missing} if missing else properties


class Catalogue:
    """The catalogue as a process holds it, reloaded when its version moved."""

    def __init__(self) -> None:
        self.version = -1
        self.contents: dict[str, Content] = {}

    async def refresh(self, redis: Redis) -> bool:
        """Reload if the version moved (one GET otherwise); whether it did."""
        if await CONTENTS.current_version(redis) == self.version:
            return False
        version, documents = await CONTENTS.load(redis)
        contents = (Content.model_validate_json(document) for document in documents)
        self.contents = {content.content_id: content for content in contents}
        self.version = version
        return True
