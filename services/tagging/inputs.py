"""What tagging reads from its input topics, decoded from the bytes on the wire.

A message that does not decode goes to its topic's dead-letter topic.
"""

from __future__ import annotations

from shared.events import MAX_PUBLISHED_LABEL_CHARS, MAX_TOPICS, PublishedEvent


class TaggingEvent(PublishedEvent):
    """The part of a `touchpoint.events.v1` envelope that tagging uses (rules may test any property)."""

    def number(self, name: str) -> float:
        value = self.properties.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return 0.0
        return float(value)

    def content_id(self) -> str | None:
        """The content the event names, if a label (a longer one is not kept)."""
        value = self.properties.get("content_id")
        if isinstance(value, str) and 0 < len(value.strip()) <= MAX_PUBLISHED_LABEL_CHARS:
            return value.strip()
        return None

    def topics(self) -> list[str]:
        """The event's topics, normalised, sorted; as many as ingest takes (MAX_TOPICS, the
        first in order) and each a label: an event put on a topic by other means with thousands
        counts no more than one from ingest."""
        value = self.properties.get("topics")
        if not isinstance(value, list):
            return []
        topics = {t.strip().lower() for t in value if isinstance(t, str) and t.strip()}
        return sorted(t for t in topics if len(t) <= MAX_PUBLISHED_LABEL_CHARS)[:MAX_TOPICS]
