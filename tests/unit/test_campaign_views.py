"""What the campaign worker writes for ops besides its figures: each customer's consents and
each campaign's actions per China day. The pure parts; tests/integration/test_campaign_views.py
writes and reads them in Redis."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from services.campaign.batch import JourneyRecord, TaggedInput, consents_changed, react_batch
from services.campaign.consent import UNDATED, Consent
from services.campaign.consent_view import customer_consent, stored
from services.campaign.daily import china_date, daily_actions_of, expires_at, figure_of
from services.campaign.inputs import CampaignEvent
from services.campaign.journey import Context, new_journey
from services.campaign.read_model import ActionRecord
from shared.channels import MESSAGING_CHANNELS
from shared.fold import Delivery

DAY = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in China
GRANTED = Consent(True, DAY)


def row(customer_id: str, **consents: Consent) -> JourneyRecord:
    journey = new_journey(customer_id)
    return JourneyRecord(journey=replace(journey, view=replace(journey.view, consents=consents)))


def test_only_customers_whose_consents_the_batch_changed_are_written() -> None:
    before = {
        "same": row("same", sms=GRANTED),
        "revoked": row("revoked", sms=GRANTED),
        "back": row("back", sms=GRANTED),
    }
    after = {
        "same": replace(before["same"], merged_into=None),  # another change of the row
        "revoked": row("revoked", sms=Consent(False, DAY + timedelta(hours=1))),
        "back": row("back", sms=GRANTED),  # revoked and granted again within the batch
        "new": row("new", wecom_1v1=GRANTED),
        "quiet": row("quiet"),  # a new customer who said nothing: nothing to write
    }
    changed = consents_changed(before.get, after)
    assert changed == {
        "revoked": {"sms": Consent(False, DAY + timedelta(hours=1))},
        "new": {"wecom_1v1": GRANTED},
    }


def test_a_batch_with_a_consent_event_changes_that_customers_consents() -> None:
    event = CampaignEvent(
        event_id=str(uuid.uuid4()),
        customer_id="cus_1",
        type="consent.granted",
        source="app",
        occurred_at=DAY,
        received_at=DAY,
        properties={"channel": "app_push"},
    )
    chained = TaggedInput(input_id=event.event_id, customer_id="cus_1", received_at=DAY, event=event)
    outcome = react_batch([Delivery("tagged/0", 0, chained)], {}.get, Context(campaigns=[], now=DAY))
    assert consents_changed({}.get, outcome.records) == {"cus_1": {"app_push": GRANTED}}


def test_every_messaging_channel_is_listed_not_granted_where_nothing_was_said() -> None:
    said = {"wecom_1v1": GRANTED, "sms": Consent(False, DAY), "app_push": Consent(True, UNDATED)}
    shown = customer_consent("cus_1", stored(said)).model_dump(mode="json")
    assert shown["customer_id"] == "cus_1"
    assert list(shown["channels"]) == list(MESSAGING_CHANNELS)
    assert shown["channels"]["wecom_1v1"] == {"granted": True, "at": "2026-11-25T02:00:00Z"}
    assert shown["channels"]["sms"] == {"granted": False, "at": "2026-11-25T02:00:00Z"}
    assert shown["channels"]["app_push"] == {"granted": True, "at": None}  # said before words were dated
    assert shown["channels"]["wecom_group"] == {"granted": False, "at": None}
    nobody = customer_consent("cus_2", None).model_dump(mode="json")["channels"]
    assert set(nobody) == set(MESSAGING_CHANNELS)
    assert all(c == {"granted": False, "at": None} for c in nobody.values())


def test_the_day_of_an_action_is_its_china_date() -> None:
    assert china_date(datetime(2026, 11, 30, 15, 59, tzinfo=UTC)) == date(2026, 11, 30)  # 23:59 in China
    assert china_date(datetime(2026, 11, 30, 16, 0, tzinfo=UTC)) == date(2026, 12, 1)  # midnight in China


def test_every_write_of_a_day_expires_at_the_same_moment_35_days_after_it() -> None:
    day = date(2026, 12, 1)
    end_of_day = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # midnight into Dec 2 in China
    assert expires_at(day) == int((end_of_day + timedelta(days=35)).timestamp())


def record(outcome: str, reason: str | None = None, campaign_id: str = "nurture") -> ActionRecord:
    return ActionRecord(
        action_id=str(uuid.uuid4()),
        campaign_id=campaign_id,
        customer_id="cus_1",
        kind="send_content",
        channel="wecom_1v1",
        content_id="c-1",
        variant=None,
        outcome=outcome,
        reason=reason,
        at=DAY,
    )


def test_a_days_figures_by_campaign() -> None:
    assert figure_of(record("sent")) == "sent"
    assert figure_of(record("deferred", "quiet_hours")) == "deferred"
    assert figure_of(record("suppressed", "no_consent")) == "suppressed:no_consent"
    figures = {
        "nurture:sent": 5,
        "nurture:deferred": 2,
        "nurture:suppressed:holdout": 3,
        "nurture:suppressed:no_consent": 1,
        "recall:suppressed:frequency_cap": 4,
    }
    day = daily_actions_of(date(2026, 12, 1), figures).model_dump(mode="json")
    assert day == {
        "date": "2026-12-01",
        "campaigns": {
            "nurture": {
                "sent": 5,
                "deferred": 2,
                "suppressed": 4,
                "suppressed_by_reason": {"holdout": 3, "no_consent": 1},
            },
            "recall": {
                "sent": 0,
                "deferred": 0,
                "suppressed": 4,
                "suppressed_by_reason": {"frequency_cap": 4},
            },
        },
    }
