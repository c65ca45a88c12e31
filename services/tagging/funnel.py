"""The conversion funnel: which of its steps a customer has reached. Pure: no Redis or HTTP.

The paper's private-domain funnel runs from the WeCom friendship through the lead form (留资) and
the test drive to the order. A step is reached by the first event that shows it and never lost, so
the steps a customer reached only grow, and a merge keeps the steps either customer reached.
A lead (留资) is a customer whose contact details the brand holds: the lead form, and every step
that cannot be taken without them (a quote, a test drive, a store visit, an order) captures one
too, so `lead` counts every customer past the friendship stage who is known by name. The other
steps are not implied by later ones: a walk-in who orders without a booked test drive has reached
`order` but not `test_drive`, which is what the funnel's drop-offs are meant to show.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from shared.compact import one_copy


class FunnelStep(StrEnum):
    """In funnel order."""

    friend_added = "friend_added"
    lead = "lead"
    test_drive = "test_drive"
    order = "order"


FUNNEL = tuple(FunnelStep)
_LEAD = FunnelStep.lead
# Event type -> the steps it shows (docs/contract.md's event types).
STEPS_OF_EVENT: dict[str, tuple[FunnelStep, ...]] = {
    "wecom.friend_added": (FunnelStep.friend_added,),
    "ad.lead_form": (_LEAD,),
    "quote.requested": (_LEAD,),
    "store.visit": (_LEAD,),
    "test_drive.booked": (_LEAD, FunnelStep.test_drive),
    "test_drive.completed": (_LEAD, FunnelStep.test_drive),
    "order.placed": (_LEAD, FunnelStep.order),
    "vehicle.delivered": (_LEAD, FunnelStep.order),
}


def in_funnel_order(steps: Iterable[FunnelStep]) -> tuple[FunnelStep, ...]:
    """Each step once, in funnel order: at most len(FUNNEL) values however often they recur."""
    present = set(steps)
    return one_copy(tuple(step for step in FUNNEL if step in present))  # few sets: one copy each


def reached_after(reached: tuple[FunnelStep, ...], event_type: str) -> tuple[FunnelStep, ...]:
    """The steps reached once an event of `event_type` is applied; `reached` itself if unchanged
    (so a profile that reached nothing new keeps its identity)."""
    steps = STEPS_OF_EVENT.get(event_type, ())
    if all(step in reached for step in steps):
        return reached
    return in_funnel_order((*reached, *steps))


def reached_by_either(a: tuple[FunnelStep, ...], b: tuple[FunnelStep, ...]) -> tuple[FunnelStep, ...]:
    """A merge: the steps either customer reached."""
    return in_funnel_order((*a, *b))
