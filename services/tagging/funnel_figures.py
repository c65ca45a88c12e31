"""Funnel figures by cohort: what share of the customers who entered in a period reached each
milestone, by acquisition source or by dealer (the paper's 留资率, 到店率, WeCom friend → deal,
lead → deal, defeated-lead recall). Pure: no Redis or HTTP (funnel_stats.py keeps the counts).

A customer's **cohort** is the China day of their first input and their **source** that
input's source; their **dealer** the latest store their events named. Milestones only grow:

- `entered` (first input), `friend_added`, `lead`, `test_drive`, `order` (the funnel's steps,
  funnel.py), `store_visit` (a `store.visit`), `defeated` (a `lead.defeated`), `recalled` (a
  defeated lead back to intent).

When an input makes a customer reach a milestone, they are counted for it in their cohort,
under their source and their dealer; and for each **pair** (earlier milestone, this one) they
now hold both of — friend_added > order is "WeCom friend → deal". Counts are of distinct
customers, so counting again (a replay) changes nothing.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from shared.compact import one_copy, one_text
from shared.dataclass_replace import replace
from shared.funnels import By, FunnelTouch, newly_counted

from .inputs import TaggingEvent
from .profile import Profile, milestones_in_order
from .rules import Layer

CHINA = ZoneInfo("Asia/Shanghai")


def funnel_progress(
    before: Profile, after: Profile, event: TaggingEvent | None
) -> tuple[Profile, list[FunnelTouch]]:
    """The profile with its cohort, groups and milestones after an input, and what to count."""
    profile = after
    if event is not None:
        if profile.entered_on is None:
            day = one_copy(event.occurred_at.astimezone(CHINA).date().isoformat())
            profile = replace(profile, entered_on=day, first_source=event.source.value)
        if dealer := event.text("dealer_id"):
            profile = replace(profile, dealer_id=one_text(dealer))
    reached = set(before.milestones)
    new = [m for m in _milestones(before, profile, event) if m not in reached]
    if not new or profile.entered_on is None:
        return profile, []
    held = reached | set(new)
    profile = replace(profile, milestones=milestones_in_order(held))
    figures = newly_counted(new, held)
    groups: list[tuple[By, str]] = [("source", profile.first_source or "unknown")]
    if profile.dealer_id:
        groups.append(("dealer", profile.dealer_id))
    touches = [
        FunnelTouch(profile.entered_on, by, value, figure, profile.customer_id)
        for by, value in groups
        for figure in figures
    ]
    return profile, touches


def _milestones(before: Profile, after: Profile, event: TaggingEvent | None) -> list[str]:
    found = ["entered"] if after.entered_on is not None else []
    found += [step.value for step in after.reached]
    if event is not None and event.type == "store.visit":
        found.append("store_visit")
    if (event is not None and event.type == "lead.defeated") or after.layer is Layer.defeated:
        found.append("defeated")
    if after.recalled and not before.recalled:
        found.append("recalled")
    return found
