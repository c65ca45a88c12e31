"""Funnel figures by cohort (services/tagging/funnel_figures.py): which milestones and pairs an
input counts a customer for, in which cohort and groups. Pure."""

from __future__ import annotations

from datetime import timedelta

from services.tagging.batch import snapshot
from services.tagging.funnel_figures import funnel_progress
from services.tagging.profile import Profile, apply_input, merge_profiles
from shared.funnels import FunnelTouch
from tests.unit.test_tagging_domain import LIMITS, NO_RULES, T0, ingested, scored


def walk(steps: list) -> tuple[Profile, list[list[FunnelTouch]]]:
    profile, counted = Profile(customer_id="cus_1"), []
    for event, score in steps:
        after = apply_input(profile, event, *(score or (None, None)), LIMITS, NO_RULES)
        profile, touches = funnel_progress(profile, after, event)
        counted.append(touches)
    return profile, counted


def figures(touches: list[FunnelTouch], by: str = "source") -> set[str]:
    return {t.figure for t in touches if t.by == by}


def test_a_wecom_friend_who_leaves_details_visits_a_store_and_orders() -> None:
    friend = ingested("wecom.friend_added", T0)
    visit = ingested("store.visit", T0 + timedelta(days=2), dealer_id="d-sh-1")
    order = ingested("order.placed", T0 + timedelta(days=9), vehicle_model="G6")
    profile, counted = walk([(friend, None), (visit, None), (order, None)])
    assert figures(counted[0]) == {"entered", "friend_added"}
    assert figures(counted[1]) == {"lead", "store_visit", "entered>lead", "lead>store_visit"}
    assert figures(counted[2]) == {"order", "lead>order", "friend_added>order"}
    # Every count goes to the cohort of the first day, under the first source; the dealer once known.
    assert {(t.day, t.value) for t in counted[2] if t.by == "source"} == {("2026-11-01", "wecom")}
    assert figures(counted[2], "dealer") == figures(counted[2]) and not figures(counted[0], "dealer")
    assert profile.milestones == ("entered", "friend_added", "lead", "store_visit", "order")
    assert snapshot(profile).milestones == list(profile.milestones)  # on the chain, for campaigns' funnels
    again = funnel_progress(
        profile, profile, ingested("store.visit", T0 + timedelta(days=10), dealer_id="d-sh-1")
    )
    assert again[1] == []  # nothing new: nothing counted


def test_a_defeated_lead_recalled_then_ordering_counts_for_recall_and_recall_to_order() -> None:
    lead = ingested("ad.lead_form", T0)
    defeat = ingested("lead.defeated", T0 + timedelta(days=1), reason="price")
    later = T0 + timedelta(days=20)
    back = ingested("content.click", later, content_id="c-1")
    order = ingested("order.placed", later + timedelta(days=3), vehicle_model="G6")
    _, counted = walk([(lead, None), (defeat, None), (back, scored(80.0, later)), (order, None)])
    assert figures(counted[1]) == {"defeated"}
    assert figures(counted[2]) == {"recalled", "defeated>recalled"}
    assert figures(counted[3]) == {"order", "lead>order", "recalled>order"}


def test_a_merge_keeps_the_earlier_cohort_and_every_milestone() -> None:
    early, _ = walk([(ingested("wecom.friend_added", T0), None)])
    late, _ = walk([(ingested("ad.lead_form", T0 + timedelta(days=3)), None)])
    merged = merge_profiles(late, early, LIMITS, NO_RULES)
    assert (merged.entered_on, merged.first_source) == ("2026-11-01", "wecom")
    assert merged.milestones == ("entered", "friend_added", "lead")
