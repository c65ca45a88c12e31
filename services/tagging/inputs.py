"""What tagging reads from its input topics, decoded from the bytes on the wire.

A message that does not decode goes to its topic's dead-letter topic.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.events import PublishedEventCore


class TaggingEvent(PublishedEventCore):
    """The part of a `touchpoint.events.v1` envelope that tagging uses."""

    properties: dict[str, Any] = Field(default_factory=dict)  # rules may test any of them

    def text(self, name: str) -> str | None:
        value = self.properties.get(name)
        return value if isinstance(value, str) and value else None

    def number(self, name: str) -> float:
        value = self.properties.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return 0.0
        return float(value)

    def topics(self) -> list[str]:
        value = self.properties.get("topics")
        if not isinstance(value, list):
            return []
        return sorted({t.strip().lower() for t in value if isinstance(t, str) and t.strip()})
