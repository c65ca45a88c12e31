"""What an event adds to the figures of contents (content_stats.py keeps them). Pure.

- reach: customers who engaged with the content (any engagement naming it);
- clicks: `content.click` events naming it;
- conversions: customers who converted (a store visit or an order) after engaging with it, among
  the last RECENT_CONTENTS contents they engaged with (profile.py keeps them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .inputs import TaggingEvent
from .profile import Profile

# A store visit or an order: what campaign's journeys exit on, too (journey.CONVERSIONS).
CONVERSIONS = frozenset({"store.visit", "order.placed"})

Figure = Literal["reached", "clicked", "converted"]
FIGURES: tuple[Figure, ...] = ("reached", "clicked", "converted")


@dataclass(frozen=True, slots=True)
class ContentTouch:
    """One thing a batch adds to a content's figures: a member (customer or event id)."""

    content_id: str
    figure: Figure
    member: str


def content_touches(event: TaggingEvent, before: Profile, after: Profile) -> list[ContentTouch]:
    """What one event adds to contents' figures: the content it names reached by the customer
    (clicked, for a click); a conversion credited to the contents engaged with before it."""
    customer = after.customer_id
    touches: list[ContentTouch] = []
    content_id = event.content_id()
    if content_id is not None and content_id in after.recent_contents:  # an engagement
        touches.append(ContentTouch(content_id, "reached", customer))
        if event.type == "content.click":
            touches.append(ContentTouch(content_id, "clicked", event.event_id))
    if event.type in CONVERSIONS:
        touches += [ContentTouch(c, "converted", customer) for c in before.recent_contents]
    return touches
