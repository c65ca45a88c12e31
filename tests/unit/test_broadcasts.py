"""When a broadcast is due, and what its definition may say (services/campaign/broadcasts.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from services.campaign.broadcasts import campaign_of, due_occurrence, tick_id
from services.campaign.definitions import Campaign

CHINA = timezone(timedelta(hours=8))
SATURDAY_10 = datetime(2026, 12, 5, 10, 0, tzinfo=CHINA)


def broadcast(**trigger: object) -> Campaign:
    return Campaign.model_validate(
        {
            "id": "weekend-offer",
            "name": "weekend offer",
            "trigger": {"on": "scheduled", "value": SATURDAY_10.isoformat(), **trigger},
            "action": {"kind": "send_content", "channel": "wecom_1v1", "content": {"default": "c-1"}},
            "reentry": "always",
        }
    )


def test_a_one_off_broadcast_is_due_from_its_time_on() -> None:
    once = broadcast()
    assert due_occurrence(once, SATURDAY_10 - timedelta(seconds=1)) is None
    assert (
        due_occurrence(once, SATURDAY_10)
        == due_occurrence(once, SATURDAY_10 + timedelta(days=30))
        == SATURDAY_10
    )


def test_a_weekly_broadcast_is_due_at_its_latest_occurrence_only() -> None:
    weekly = broadcast(every_days=7)
    assert due_occurrence(weekly, SATURDAY_10 + timedelta(days=20)) == SATURDAY_10 + timedelta(days=14)
    tick = tick_id(weekly, SATURDAY_10 + timedelta(days=14))
    assert campaign_of(tick) == "weekend-offer" and campaign_of("tick:cus_1:123") is None


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ({"value": "saturday"}, "ISO 8601"),
        ({"value": "2026-12-05T10:00:00"}, "offset"),
        ({"delay_hours": 2}, "no delay"),
    ],
)
def test_a_broadcast_without_a_time_it_can_keep_is_refused(trigger: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        broadcast(**trigger)


def test_every_days_belongs_to_broadcasts_only() -> None:
    with pytest.raises(ValidationError, match="every_days is for scheduled"):
        Campaign.model_validate(
            broadcast().model_dump() | {"trigger": {"on": "event", "value": "ad.click", "every_days": 7}}
        )
