"""Campaigns' funnels (`GET /v1/funnels?by=campaign`): a campaign's cohort is the customers it
acted for, from the China day it first did, counted for the milestones they held then and those
they reach after (services/campaign/journey.py, shared/funnels.py). Pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from services.campaign.batch import JourneyRecord, merge_journeys
from services.campaign.definitions import Campaign
from services.campaign.inputs import CampaignEvent
from services.campaign.journey import Context, Journey, Reaction, new_journey, on_event, on_input
from services.campaign.targeting import QuietHours
from shared.chain import ChainInput, ProfileSnapshot
from shared.record_table import RecordCodec
from tests.factories import read_event

DAY = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # 01:00 on the 26th in China


def points(**changes: Any) -> Campaign:
    definition = {
        "id": "welcome-points",
        "name": "Points on booking",
        "trigger": {"on": "event", "value": "test_drive.booked"},
        "action": {"kind": "grant_points", "channel": "membership", "points": 10},
        "reentry": "always",
        "frequency_cap": {"per_customer_per_day": 5},
    }
    return Campaign.model_validate(definition | changes)


def context(campaign: Campaign, at: datetime = DAY) -> Context:
    return Context(campaigns=[campaign], now=at, quiet=QuietHours(time(0, 0), time(0, 0)))


def holding(*milestones: str) -> ChainInput:
    profile = ProfileSnapshot(
        layer="prospect", orientation="rational", stage="newcomer", tags=[], milestones=list(milestones)
    )
    return ChainInput(input_id=f"p-{'-'.join(milestones)}", customer_id="cus_1", profile=profile)


def booked(at: datetime = DAY) -> CampaignEvent:
    return read_event(CampaignEvent, "test_drive.booked", at, vehicle_model="g6")


def counted(reaction: Reaction) -> set[tuple[str, str, str]]:
    return {(t.day, t.value, t.figure) for t in reaction.funnel}


def test_a_customer_joins_the_cohort_of_the_day_the_campaign_acts_with_what_they_hold() -> None:
    campaign = points()
    journey = on_input(
        new_journey("cus_1"), holding("entered", "friend_added", "lead"), context(campaign)
    ).journey
    acted = on_event(journey, booked(), context(campaign))
    assert counted(acted) == {
        ("2026-11-26", "welcome-points", "entered"),  # China day
        ("2026-11-26", "welcome-points", "friend_added"),
        ("2026-11-26", "welcome-points", "lead"),
        ("2026-11-26", "welcome-points", "entered>lead"),
    }
    assert acted.journey.cohorts == {"welcome-points": "2026-11-26"}
    later = DAY + timedelta(days=3)
    again = on_event(acted.journey, booked(later), context(campaign, later))
    assert [d.outcome for d in again.decisions] == ["sent"] and again.funnel == []  # the cohort stays


def test_a_milestone_reached_later_counts_in_the_cohort_it_joined() -> None:
    campaign = points()
    journey = on_input(
        new_journey("cus_1"), holding("entered", "friend_added", "lead"), context(campaign)
    ).journey
    acted = on_event(journey, booked(), context(campaign)).journey
    later = DAY + timedelta(days=9)
    ordered = on_input(acted, holding("entered", "friend_added", "lead", "order"), context(campaign, later))
    assert counted(ordered) == {
        ("2026-11-26", "welcome-points", "order"),
        ("2026-11-26", "welcome-points", "lead>order"),
        ("2026-11-26", "welcome-points", "friend_added>order"),
    }
    # A chain record from before milestones were carried takes nothing away.
    assert on_input(ordered.journey, holding(), context(campaign)).journey.view.milestones == {
        "entered",
        "friend_added",
        "lead",
        "order",
    }


def test_the_holdout_and_customers_never_acted_for_are_in_no_cohort() -> None:
    held_out = on_event(new_journey("cus_1"), booked(), context(points(holdout_pct=100)))
    assert [d.reason for d in held_out.decisions] == ["holdout"] and held_out.funnel == []
    untouched = on_input(new_journey("cus_1"), holding("entered", "order"), context(points()))
    assert untouched.funnel == []


def test_cohorts_survive_the_changelog_and_a_merge_keeps_the_earlier_day() -> None:
    campaign = points()
    acted = on_event(new_journey("cus_1"), booked(), context(campaign)).journey
    codec = RecordCodec(JourneyRecord)
    assert codec.decode(codec.encode(JourneyRecord(journey=acted))).journey.cohorts == acted.cohorts
    earlier: Journey = replace(acted, cohorts={"welcome-points": "2026-11-01", "other": "2026-11-02"})
    merged = merge_journeys(acted, earlier)
    assert merged.cohorts == {"welcome-points": "2026-11-01", "other": "2026-11-02"}
