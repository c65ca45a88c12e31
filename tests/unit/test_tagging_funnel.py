"""The conversion funnel: the steps a customer reached, as events show them, kept through merges
and through table rows written before the steps were kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.tagging.batch import ProfileRecord
from services.tagging.funnel import (
    FUNNEL,
    STEPS_OF_EVENT,
    FunnelStep,
    reached_after,
    reached_by_either,
)
from services.tagging.inputs import TaggingEvent
from services.tagging.profile import Profile, apply_event, merge_profiles
from services.tagging.rules import RuleSet
from services.tagging.thresholds import TaggingThresholds
from shared.events import EVENT_TYPES
from shared.record_table import RecordCodec
from tests.factories import event

LIMITS = TaggingThresholds()
NO_RULES = RuleSet(version=0)
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
PROPERTIES: dict[str, dict[str, Any]] = {
    "test_drive.booked": {"vehicle_model": "id4"},
    "test_drive.completed": {"vehicle_model": "id4"},
    "order.placed": {"vehicle_model": "id4"},
    "vehicle.delivered": {"vehicle_model": "id4"},
    "content.click": {"content_id": "c-1"},
    "quote.requested": {"vehicle_model": "id4"},
    "store.visit": {"dealer_id": "d-1"},
    "live.watch": {"duration_s": 60},
}


def ingested(kind: str, minute: int = 0) -> TaggingEvent:
    at = T0 + timedelta(minutes=minute)
    raw = event(type=kind, occurred_at=at.isoformat(), properties=PROPERTIES.get(kind, {}))
    return TaggingEvent.model_validate(raw | {"customer_id": "cus_1", "received_at": at})


def replay(kinds: list[str], customer_id: str = "cus_1") -> Profile:
    profile = Profile(customer_id=customer_id)
    for minute, kind in enumerate(kinds):
        profile = apply_event(profile, ingested(kind, minute), LIMITS, NO_RULES)
    return profile


@pytest.mark.parametrize(
    ("kind", "step"),
    [
        ("wecom.friend_added", (FunnelStep.friend_added,)),
        ("ad.lead_form", (FunnelStep.lead,)),
        ("quote.requested", (FunnelStep.lead,)),
        ("store.visit", (FunnelStep.lead,)),
        # Steps that need the customer's contact details capture a lead (留资) too.
        ("test_drive.booked", (FunnelStep.lead, FunnelStep.test_drive)),
        ("test_drive.completed", (FunnelStep.lead, FunnelStep.test_drive)),
        ("order.placed", (FunnelStep.lead, FunnelStep.order)),
        ("vehicle.delivered", (FunnelStep.lead, FunnelStep.order)),
    ],
)
def test_each_step_is_reached_by_its_events(kind: str, step: tuple[FunnelStep, ...]) -> None:
    assert replay([kind]).reached == step


def test_other_events_reach_no_step() -> None:
    assert replay(["ad.click", "content.click", "wecom.friend_deleted", "live.watch"]).reached == ()


def test_the_step_events_are_events_ingest_accepts() -> None:
    assert set(STEPS_OF_EVENT) <= set(EVENT_TYPES)


def test_steps_are_kept_in_funnel_order_once_each_whatever_the_order_they_come_in() -> None:
    # A walk-in: ordered first, then joined WeCom, booked two test drives and left a lead form.
    kinds = ["order.placed", "wecom.friend_added", "test_drive.booked", "test_drive.completed"]
    profile = replay([*kinds, "ad.lead_form", "vehicle.delivered", "wecom.friend_added"])
    assert profile.reached == FUNNEL


def test_a_later_step_does_not_imply_an_earlier_one_but_the_lead() -> None:
    assert replay(["wecom.friend_added", "order.placed"]).reached == (
        FunnelStep.friend_added,
        FunnelStep.lead,
        FunnelStep.order,
    )


def test_a_step_reached_again_leaves_the_steps_as_they_were() -> None:
    reached = (FunnelStep.friend_added,)
    assert reached_after(reached, "wecom.friend_added") is reached
    assert reached_after(reached, "content.view") is reached
    assert reached_after(reached, "ad.lead_form") == (FunnelStep.friend_added, FunnelStep.lead)


def test_a_merge_keeps_the_steps_either_customer_reached() -> None:
    survivor = replay(["wecom.friend_added", "test_drive.booked"])
    merged = replay(["ad.lead_form", "test_drive.completed"], customer_id="cus_2")
    folded = merge_profiles(survivor, merged, LIMITS, NO_RULES)
    assert folded.reached == (FunnelStep.friend_added, FunnelStep.lead, FunnelStep.test_drive)
    assert merge_profiles(merged, survivor, LIMITS, NO_RULES).reached == folded.reached
    assert reached_by_either((), ()) == ()


def test_a_table_row_written_before_steps_were_kept_reads_with_none_reached() -> None:
    codec = RecordCodec(ProfileRecord)
    row = ProfileRecord(replay(["wecom.friend_added", "order.placed"]))
    written = orjson.loads(codec.encode(row))
    assert written["profile"]["reached"] == ["friend_added", "lead", "order"]
    del written["profile"]["reached"]
    old = codec.decode(orjson.dumps(written))
    assert old.profile.reached == ()
    assert old.profile.layer == row.profile.layer
    # And the steps reached from then on are kept.
    later = apply_event(old.profile, ingested("ad.lead_form", 9), LIMITS, NO_RULES)
    assert later.reached == (FunnelStep.lead,)
    assert codec.decode(codec.encode(row)) == row
