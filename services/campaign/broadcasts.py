"""Broadcasts (分标签群发): "send content X to segment S on Saturday at 10:00", once or every few
days. Pure: which occurrence is due, and which customers a broadcast's ticks go to.

A broadcast is a campaign whose trigger is `scheduled` (docs/campaign.md, "Broadcasts"): its
audience is the segment (layers, orientations, stages, bands, activities, tags, car models), its
action what is sent. At an occurrence's time the worker sends a tick, `broadcast:<campaign
id>:<occurrence>`, to every customer of its partitions in the audience; each customer's tick is
then decided in the stream like any trigger, on the customer as they are then — audience again,
holdout, consent, frequency and channel caps, quiet hours — under an action id made of the tick
id, so a tick sent twice decides once.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from .definitions import Campaign, TriggerKind

PREFIX = "broadcast:"


def is_broadcast(campaign: Campaign) -> bool:
    return campaign.trigger.on is TriggerKind.scheduled


def due_occurrence(campaign: Campaign, now: datetime) -> datetime | None:
    """The broadcast's latest occurrence at or before `now` (None: none yet). Missed occurrences
    are not caught up one by one: after a pause the latest goes out, once."""
    first = datetime.fromisoformat(campaign.trigger.value)
    if now < first:
        return None
    every = campaign.trigger.every_days
    if every is None:
        return first
    period = timedelta(days=every)
    return first + period * math.floor((now - first) / period)


def tick_id(campaign: Campaign, occurrence: datetime) -> str:
    return f"{PREFIX}{campaign.id}:{occurrence.isoformat()}"


def campaign_of(tick: str) -> str | None:
    """The campaign a broadcast's tick is for; None for any other tick."""
    if not tick.startswith(PREFIX):
        return None
    return tick[len(PREFIX) :].split(":", 1)[0]
