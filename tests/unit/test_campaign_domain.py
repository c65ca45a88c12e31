"""Campaign domain: definitions, audience, holdout and variants, consent, pacing, dealers."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pydantic import ValidationError

from services.campaign.batch import BatchOutcome as CampaignBatchOutcome
from services.campaign.batch import CampaignFold, JourneyRecord, merge_journeys
from services.campaign.consent import Consent, consents_after
from services.campaign.decide import MAX_ENTERED, Decision, Pacing, bounded_pacing, decide
from services.campaign.definitions import ActionKind, Campaign, Channel, TriggerKind
from services.campaign.examples import example_campaigns
from services.campaign.inputs import CampaignEvent
from services.campaign.journey import (
    MAX_SCHEDULED,
    SCHEDULE_FULL,
    Context,
    Reaction,
    Scheduled,
    bounded,
    new_journey,
    on_event,
    on_tick,
)
from services.campaign.targeting import (
    CustomerView,
    QuietHours,
    fires,
    has_consent,
    in_audience,
    in_holdout,
    variant_of,
)
from shared.channels import CONSENT_CHANNELS, MESSAGING_CHANNELS
from shared.fold import Handover
from shared.record_table import RecordCodec
from tests.unit.test_campaign_journey import touch

# 10:00 in China: outside quiet hours.
DAY = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)  # 22:30 in China
QUIET = QuietHours()
MINIMAL = {
    "id": "high-intent-nurture",
    "name": "...",
    "status": "active",
    "trigger": {"on": "band_entered", "value": "high"},
    "audience": {"layers": ["prospect", "intent"], "orientations": [], "tags_all": [], "tags_none": []},
    "action": {
        "kind": "send_content",
        "channel": "wecom_1v1",
        "content": {"rational": "c-spec-compare", "emotional": "c-owner-story", "default": "c-brand"},
    },
    "holdout_pct": 0,
    "frequency_cap": {"per_customer_per_day": 1},
    "reentry": "never",
}
EARLIER = DAY - timedelta(days=1)
WECOM_FRIEND = {"wecom_1v1": Consent(True, EARLIER), "wecom_group": Consent(True, EARLIER)}


def campaign(**changes: object) -> Campaign:
    return Campaign.model_validate(MINIMAL | changes)


def customer(**changes: object) -> CustomerView:
    base = {"customer_id": "cus_1", "layer": "prospect", "orientation": "rational", "consents": WECOM_FRIEND}
    return CustomerView(**(base | changes))


def test_designs_minimal_definition_and_the_examples_are_valid() -> None:
    assert campaign().action.content.rational == "c-spec-compare"
    examples = example_campaigns()
    kinds = {c.action.kind for c in examples}
    assert kinds == {"send_content", "invite_group", "assign_dealer", "grant_points"}
    assert len({c.id for c in examples}) == len(examples)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"trigger": {"on": "band_entered", "value": "warm"}}, "band_entered takes one of"),
        ({"trigger": {"on": "became_rich", "value": "x"}}, "trigger.on"),
        ({"trigger": {"on": "event", "value": "content.klick"}}, "unknown event type"),
        ({"action": {"kind": "teleport", "channel": "sms"}}, "action.kind"),
        ({"action": {"kind": "send_content", "channel": "wecom_1v1"}}, "needs content"),
        ({"action": {"kind": "grant_points", "channel": "membership"}}, "needs points"),
        ({"action": {"kind": "send_content", "channel": "dealer", "content": {"default": "c"}}}, "messaging"),
        ({"holdout_pct": 120}, "holdout_pct"),
        ({"frequency_cap": {"per_customer_per_day": 0}}, "per_customer_per_day"),
        ({"id": "Has Spaces"}, "ids are"),
        ({"audience": {"tags_all": ["a"], "tags_none": ["a"]}}, "both required and excluded"),
        ({"audience": {"layers": ["vip"]}}, "audience.layers"),
    ],
)
def test_invalid_definitions_are_refused_with_reasons(changes: dict, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        campaign(**changes)
    assert reason in str(caught.value)


def test_variant_weights_must_be_positive_and_names_unique() -> None:
    content = {"default": "c"}
    variants = [
        {"name": "a", "weight": 50, "content": content},
        {"name": "a", "weight": 50, "content": content},
    ]
    with pytest.raises(ValidationError, match="unique"):
        campaign(action={"kind": "send_content", "channel": "sms", "variants": variants})
    with pytest.raises(ValidationError, match="weight"):
        campaign(action={"kind": "send_content", "channel": "sms", "variants": [variants[0] | {"weight": 0}]})


def test_a_campaign_fires_on_its_trigger_when_active() -> None:
    assert fires(campaign(), TriggerKind.band_entered, "high")
    assert not fires(campaign(), TriggerKind.band_entered, "hot")
    assert not fires(campaign(status="paused"), TriggerKind.band_entered, "high")


def test_audience_matching() -> None:
    audience = campaign(
        audience={
            "layers": ["defeated"],
            "tags_all": ["price_sensitive"],
            "tags_none": ["defeat_reason:need_mismatch"],
        }
    ).audience
    lost = customer(layer="defeated", tags=frozenset({"price_sensitive", "defeat_reason:budget"}))
    assert in_audience(audience, lost)
    assert not in_audience(
        audience,
        customer(layer="defeated", tags=frozenset({"price_sensitive", "defeat_reason:need_mismatch"})),
    )
    assert not in_audience(audience, customer(layer="intent", tags=frozenset({"price_sensitive"})))


def test_holdout_and_variants_are_deterministic_and_follow_the_weights() -> None:
    content = {"default": "c"}
    ab = campaign(
        holdout_pct=10,
        action={
            "kind": "send_content",
            "channel": "sms",
            "variants": [
                {"name": "a", "weight": 75, "content": content},
                {"name": "b", "weight": 25, "content": content},
            ],
        },
    )
    ids = [f"cus_{n}" for n in range(20_000)]
    held = [c for c in ids if in_holdout(ab, c)]
    assert 0.09 < len(held) / len(ids) < 0.11
    assert held == [c for c in ids if in_holdout(ab, c)]  # the same every time
    shares = Counter(variant_of(ab, c) for c in ids)
    assert 0.73 < shares["a"] / len(ids) < 0.77
    # Another campaign draws its own groups.
    other = ab.model_copy(update={"id": "other"})
    assert {c for c in ids if in_holdout(other, c)} != set(held)


def test_content_follows_the_customers_orientation() -> None:
    decide_for = lambda orientation: decide(  # noqa: E731
        customer(orientation=orientation), Pacing(), [campaign()], "e1", DAY, QUIET
    )[1][0]
    assert decide_for("rational").content_id == "c-spec-compare"
    assert decide_for("emotional").content_id == "c-owner-story"
    assert decide_for("unknown").content_id == "c-brand"


def test_consent_comes_from_the_customers_own_events() -> None:
    consents = consents_after({}, "wecom.friend_added", None, EARLIER)
    assert consents == WECOM_FRIEND
    consents = consents_after(consents, "consent.revoked", "wecom", DAY)
    assert consents == {"wecom_1v1": Consent(False, DAY), "wecom_group": Consent(False, DAY)}
    consents = consents_after(consents, "consent.granted", " SMS ", DAY)  # as ingest lets it through
    assert consents["sms"] == Consent(True, DAY)
    assert consents_after(consents, "content.view", None, DAY) == consents
    assert consents_after(consents, "consent.granted", "dealer", DAY) == consents  # not a message


def consenting(consents: dict[str, Consent]) -> set[str]:
    view = CustomerView("cus_1", consents=consents)
    return {c.value for c in Channel if c.messages_the_customer and has_consent(c, view)}


def test_all_grants_and_revokes_every_messaging_channel() -> None:
    granted = consents_after({}, "consent.granted", "all", EARLIER)
    assert consenting(granted) == set(MESSAGING_CHANNELS)
    revoked = consents_after(granted, "consent.revoked", "All", DAY)
    assert consenting(revoked) == set()
    assert has_consent(Channel.dealer, CustomerView("cus_1", consents=revoked))  # a task, not a message


def test_deleting_the_brands_wecom_contact_revokes_wecom_consent() -> None:
    consents = consents_after({}, "consent.granted", "all", EARLIER)
    deleted = consents_after(consents, "wecom.friend_deleted", None, DAY)
    assert consenting(deleted) == set(MESSAGING_CHANNELS) - {"wecom_1v1", "wecom_group"}
    assert consenting(consents_after(deleted, "wecom.friend_added", None, DAY + timedelta(hours=1))) == set(
        MESSAGING_CHANNELS
    )


def test_the_latest_word_by_occurred_at_wins_whatever_order_the_events_arrive_in() -> None:
    grant = ("consent.granted", "sms", EARLIER)
    revoke = ("consent.revoked", "sms", DAY)
    # A touchpoint back-fills an older grant after the newer revocation: still revoked.
    assert consenting(consents_after(consents_after({}, *revoke), *grant)) == set()
    assert consenting(consents_after(consents_after({}, *grant), *revoke)) == set()
    # The other way round: a newer grant stands, whichever came first.
    regrant = ("consent.granted", "sms", DAY + timedelta(hours=1))
    assert consenting(consents_after(consents_after({}, *regrant), *revoke)) == {"sms"}
    assert consenting(consents_after(consents_after({}, *revoke), *regrant)) == {"sms"}
    # "all" is a word on each channel at its own time: an older "all" grant does not undo sms's.
    assert consenting(consents_after(consents_after({}, *revoke), "consent.granted", "all", EARLIER)) == (
        set(MESSAGING_CHANNELS) - {"sms"}
    )


def test_at_the_same_moment_a_revocation_wins() -> None:
    both = [("consent.granted", "app_push", DAY), ("consent.revoked", "app_push", DAY)]
    assert consenting(consents_after(consents_after({}, *both[0]), *both[1])) == set()
    assert consenting(consents_after(consents_after({}, *both[1]), *both[0])) == set()


def test_merged_customers_keep_the_later_word_per_channel() -> None:
    survivor = new_journey("cus_1")
    survivor = replace(
        survivor,
        view=replace(
            survivor.view, consents={"sms": Consent(True, EARLIER), "app_push": Consent(False, DAY)}
        ),
    )
    merged = new_journey("cus_2")
    merged = replace(
        merged,
        view=replace(
            merged.view,
            consents={
                "sms": Consent(False, DAY),
                "app_push": Consent(True, EARLIER),
                "wecom_1v1": Consent(True, DAY),
            },
        ),
    )
    expected = {"sms": Consent(False, DAY), "app_push": Consent(False, DAY), "wecom_1v1": Consent(True, DAY)}
    assert merge_journeys(survivor, merged).view.consents == expected
    assert merge_journeys(merged, survivor).view.consents == expected  # whoever survives


def test_consent_channels_are_the_campaign_workers_messaging_channels() -> None:
    messaging = {c.value for c in Channel if c.messages_the_customer}
    assert set(MESSAGING_CHANNELS) == messaging  # ingest (shared) and the worker agree
    assert messaging | {"wecom", "all"} == CONSENT_CHANNELS
    assert {c.value for c in Channel if c.consent_by_wecom_friendship} == set(
        consents_after({}, "wecom.friend_added", None, DAY)
    )


def at_night_then_released(
    *between: CampaignEvent, campaigns: list[Campaign] | None = None
) -> tuple[str, str | None]:
    """A message deferred by quiet hours, what happens in the night, then the 09:00 tick."""
    nurture = campaign(trigger={"on": "event", "value": "content.click"})
    journey = on_event(
        new_journey("cus_1"), touch("consent.granted", NIGHT, channel="wecom"), Context([nurture], NIGHT)
    ).journey
    reaction = on_event(journey, touch("content.click", NIGHT, content_id="c1"), Context([nurture], NIGHT))
    (deferred,) = reaction.decisions
    assert (deferred.outcome, deferred.reason) == ("deferred", "quiet_hours")
    journey = reaction.journey
    for event in between:
        journey = on_event(journey, event, Context([nurture], NIGHT)).journey
    morning = Context([nurture] if campaigns is None else campaigns, deferred.deliver_at)
    (released,) = on_tick(journey, morning).decisions
    assert released.action_id == deferred.action_id  # the same action, now sent or suppressed
    return released.outcome, released.reason


def test_a_deferred_message_goes_out_at_nine_if_consent_and_campaign_still_hold() -> None:
    assert at_night_then_released() == ("sent", None)


def test_a_deferred_message_is_suppressed_if_consent_was_revoked_in_the_night() -> None:
    later = NIGHT + timedelta(hours=1)
    assert at_night_then_released(touch("consent.revoked", later, channel="all")) == (
        "suppressed",
        "no_consent",
    )
    assert at_night_then_released(touch("wecom.friend_deleted", later)) == (
        "suppressed",
        "no_consent",
    )


def test_a_deferred_message_is_suppressed_if_the_campaign_was_paused_or_deleted() -> None:
    paused = campaign(trigger={"on": "event", "value": "content.click"}, status="paused")
    assert at_night_then_released(campaigns=[paused]) == ("suppressed", "campaign_inactive")
    assert at_night_then_released(campaigns=[]) == ("suppressed", "campaign_inactive")


def test_suppression_reasons() -> None:
    nurture = campaign()
    _, [no_consent] = decide(customer(consents={}), Pacing(), [nurture], "e1", DAY, QUIET)
    assert (no_consent.outcome, no_consent.reason) == ("suppressed", "no_consent")
    pacing, [sent] = decide(customer(), Pacing(), [nurture], "e1", DAY, QUIET)
    assert (sent.outcome, sent.channel, sent.content_id) == ("sent", Channel.wecom_1v1, "c-spec-compare")
    _, [again] = decide(customer(), pacing, [nurture], "e2", DAY, QUIET)
    assert again.reason == "already_entered"
    reentrant = campaign(reentry="always")
    pacing, _ = decide(customer(), Pacing(), [reentrant], "e1", DAY, QUIET)
    _, [capped] = decide(customer(), pacing, [reentrant], "e2", DAY + timedelta(hours=2), QUIET)
    assert capped.reason == "frequency_cap"
    _, [next_day] = decide(customer(), pacing, [reentrant], "e3", DAY + timedelta(days=1), QUIET)
    assert next_day.outcome == "sent"


def decided_again(after: timedelta, nurture: Campaign) -> tuple[str, str | None]:
    """The customer enters `nurture` at DAY (10:00 China); it fires again `after` later."""
    pacing, [first] = decide(customer(), Pacing(), [nurture], "e1", DAY, QUIET)
    assert first.outcome == "sent" and pacing.entered == {nurture.id}
    assert pacing.entered_at == {nurture.id: DAY}
    _, [again] = decide(customer(), pacing, [nurture], "e2", DAY + after, QUIET)
    return again.outcome, again.reason


def test_reentry_never_always_and_after_days() -> None:
    never, always = campaign(), campaign(reentry="always")
    after_3 = campaign(reentry="after_days", reentry_after_days=3)
    assert never.reentry == "never"  # the default
    assert decided_again(timedelta(days=1), never) == ("suppressed", "already_entered")
    assert decided_again(timedelta(days=400), never) == ("suppressed", "already_entered")
    assert decided_again(timedelta(days=1), always) == ("sent", None)
    # Same day: `always` lets them in, and the frequency cap, not re-entry, stops the second send.
    assert decided_again(timedelta(hours=2), always) == ("suppressed", "frequency_cap")
    almost = timedelta(days=3) - timedelta(minutes=1)  # 09:59 China, outside quiet hours
    assert decided_again(almost, after_3) == ("suppressed", "already_entered")
    assert decided_again(timedelta(days=3), after_3) == ("sent", None)
    assert decided_again(timedelta(days=30), after_3) == ("sent", None)


def test_after_days_count_from_the_last_entry() -> None:
    after_3 = campaign(reentry="after_days", reentry_after_days=3)
    pacing, _ = decide(customer(), Pacing(), [after_3], "e1", DAY, QUIET)
    pacing, [second] = decide(customer(), pacing, [after_3], "e2", DAY + timedelta(days=3), QUIET)
    assert second.outcome == "sent" and pacing.entered_at == {after_3.id: DAY + timedelta(days=3)}
    _, [third] = decide(customer(), pacing, [after_3], "e3", DAY + timedelta(days=5), QUIET)
    assert third.reason == "already_entered"  # 2 days after the second entry, not 5 after the first
    # A suppressed trigger is no entry: the time stays that of the last entry.
    blocked, _ = decide(customer(), pacing, [after_3], "e3", DAY + timedelta(days=5), QUIET)
    assert blocked.entered_at == {after_3.id: DAY + timedelta(days=3)}


def test_a_holdout_decision_is_an_entry_too() -> None:
    held_out = campaign(holdout_pct=100, reentry="after_days", reentry_after_days=1)
    pacing, [held] = decide(customer(), Pacing(), [held_out], "e1", DAY, QUIET)
    assert held.reason == "holdout" and pacing.entered_at == {held_out.id: DAY}
    _, [again] = decide(customer(), pacing, [held_out], "e2", DAY + timedelta(hours=2), QUIET)
    assert again.reason == "already_entered"


def test_an_entry_from_before_the_times_were_kept_counts_as_long_ago() -> None:
    old = Pacing(entered=frozenset({"high-intent-nurture"}))  # a row without entered_at
    after_3 = campaign(reentry="after_days", reentry_after_days=3)
    pacing, [sent] = decide(customer(), old, [after_3], "e1", DAY, QUIET)
    assert sent.outcome == "sent" and pacing.entered_at == {after_3.id: DAY}
    _, [never] = decide(customer(), old, [campaign()], "e1", DAY, QUIET)
    assert never.reason == "already_entered"


def test_journeys_stored_without_entry_times_read_back() -> None:
    codec = RecordCodec(JourneyRecord)
    pacing = Pacing(entered=frozenset({"a", "b"}), entered_at={"a": DAY})
    row = JourneyRecord(journey=replace(new_journey("cus_1"), pacing=pacing))
    assert codec.decode(codec.encode(row)) == row
    written = orjson.loads(codec.encode(row))
    del written["journey"]["pacing"]["entered_at"]  # the shape written before this field
    old = codec.decode(orjson.dumps(written)).journey.pacing
    assert old.entered == {"a", "b"} and old.entered_at == {}


@pytest.mark.parametrize(
    ("stored", "mode"), [(True, "always"), (False, "never"), ("after_days", "after_days")]
)
def test_reentry_stored_as_a_bool_reads_as_a_mode(stored: object, mode: str) -> None:
    days = {"reentry_after_days": 7} if mode == "after_days" else {}
    read = Campaign.model_validate_json(orjson.dumps(MINIMAL | {"reentry": stored} | days))
    assert read.reentry == mode
    assert read.model_dump(mode="json")["reentry"] == mode  # written back as the mode
    points = next(c for c in example_campaigns() if c.id == "community-post-points")
    assert points.reentry == "always"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reentry": "after_days"}, "reentry after_days needs the number of days"),
        ({"reentry": "after_days", "reentry_after_days": 0}, "greater than 0"),
        ({"reentry": "after_days", "reentry_after_days": 3651}, "less than or equal to 3650"),
        ({"reentry": "always", "reentry_after_days": 3}, "goes with reentry after_days, not with always"),
        ({"reentry": "never", "reentry_after_days": 3}, "goes with reentry after_days, not with never"),
        ({"reentry_after_days": 3}, "goes with reentry after_days, not with never"),
    ],
)
def test_reentry_days_go_with_after_days_only(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        campaign(**changes)
    [error] = caught.value.errors()
    assert error["loc"] == ("reentry_after_days",)  # the API's 422 names the field
    assert message in error["msg"]


def test_an_unknown_reentry_mode_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        campaign(reentry="sometimes")
    assert [e["loc"] for e in caught.value.errors()] == [("reentry",)]
    with pytest.raises(ValidationError):
        campaign(reentry=1)  # only real booleans are the old shape


def test_merged_customers_keep_the_later_entry_per_campaign() -> None:
    later = DAY + timedelta(days=2)
    one = replace(
        new_journey("cus_1"),
        pacing=Pacing(entered=frozenset({"a", "b"}), entered_at={"a": DAY, "b": later}),
    )
    other = replace(
        new_journey("cus_2"),
        pacing=Pacing(entered=frozenset({"a", "c", "old"}), entered_at={"a": later, "c": DAY}),
    )
    expected = {"a": later, "b": later, "c": DAY}
    for survivor, merged in ((one, other), (other, one)):  # whoever survives
        pacing = merge_journeys(survivor, merged).pacing
        assert pacing.entered_at == expected
        assert pacing.entered == {"a", "b", "c", "old"}  # "old": entered before times were kept


def test_a_channels_daily_cap_holds_across_campaigns_and_priority_takes_the_place() -> None:
    caps = {"wecom_1v1": 1}
    first, second = campaign(id="first"), campaign(id="second", priority=5)
    other_channel = campaign(
        id="by-sms", action={"kind": "send_content", "channel": "sms", "content": {"default": "c-sms"}}
    )
    # Two campaigns on one trigger: the higher priority takes the day's WeCom 1v1 message.
    pacing, decided = decide(customer(), Pacing(), [first, second], "e1", DAY, QUIET, caps)
    assert [(d.campaign_id, d.outcome, d.reason) for d in decided] == [
        ("second", "sent", None),
        ("first", "suppressed", "priority"),
    ]
    # Later the same day, another campaign on the same channel: capped; another channel is not.
    later = DAY + timedelta(hours=3)
    consenting = customer(consents=WECOM_FRIEND | {"sms": Consent(True, DAY)})
    pacing, decided = decide(consenting, pacing, [first, other_channel], "e2", later, QUIET, caps)
    assert {d.campaign_id: d.reason for d in decided} == {"first": "channel_cap", "by-sms": None}
    # The next day (China time) the channel has its message again.
    _, [next_day] = decide(customer(), pacing, [first], "e3", DAY + timedelta(days=1), QUIET, caps)
    assert next_day.outcome == "sent"
    # Without a cap, nothing changes.
    _, [uncapped] = decide(customer(), pacing, [first], "e4", later, QUIET)
    assert uncapped.outcome == "sent"


def test_a_holdout_customer_is_measured_not_contacted() -> None:
    always = campaign(holdout_pct=100)
    pacing, [held] = decide(customer(consents={}), Pacing(), [always], "e1", DAY, QUIET)
    assert (held.outcome, held.reason, held.variant, held.content_id) == (
        "suppressed",
        "holdout",
        "holdout",
        None,
    )
    assert "high-intent-nurture" in pacing.entered


def test_quiet_hours_defer_messages_to_nine_in_the_morning_china_time() -> None:
    _, [deferred] = decide(customer(), Pacing(), [campaign()], "e1", NIGHT, QUIET)
    assert (deferred.outcome, deferred.reason) == ("deferred", "quiet_hours")
    assert deferred.deliver_at == datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # 09:00 +08:00
    dealer = campaign(id="to-dealer", action={"kind": "assign_dealer", "channel": "dealer"})
    _, [task] = decide(customer(), Pacing(), [dealer], "e1", NIGHT, QUIET)
    assert task.outcome == "sent"  # a consultant's task is not a message to the customer
    assert QUIET.over_at(DAY) == DAY
    early = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # 02:00 in China
    assert QUIET.over_at(early) == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


def test_the_higher_priority_campaign_takes_the_channel() -> None:
    low = campaign(id="low", priority=1)
    high = campaign(id="high", priority=9)
    points = campaign(id="points", action={"kind": "grant_points", "channel": "membership", "points": 10})
    _, decisions = decide(customer(), Pacing(), [low, points, high], "e1", DAY, QUIET)
    outcome = {d.campaign_id: (d.outcome, d.reason) for d in decisions}
    assert outcome == {"high": ("sent", None), "low": ("suppressed", "priority"), "points": ("sent", None)}


def test_a_replayed_trigger_decides_the_same_action_ids() -> None:
    first = decide(customer(), Pacing(), [campaign()], "e1", DAY, QUIET)[1][0]
    again = decide(customer(), Pacing(), [campaign()], "e1", DAY + timedelta(seconds=5), QUIET)[1][0]
    other = decide(customer(), Pacing(), [campaign()], "e2", DAY, QUIET)[1][0]
    assert first.action_id == again.action_id != other.action_id


def test_a_paused_campaign_neither_reassigns_its_leads_nor_acts_on_delayed_triggers() -> None:
    lead = campaign(
        id="to-dealer",
        trigger={"on": "event", "value": "test_drive.booked"},
        action={"kind": "assign_dealer", "channel": "dealer", "sla_hours": 24},
    )
    booked = touch("test_drive.booked", DAY, vehicle_model="g6")
    journey = on_event(new_journey("cus_1"), booked, Context([lead], DAY)).journey
    after_sla = DAY + timedelta(hours=25)
    assert on_tick(journey, Context([lead], after_sla)).reassignments  # active: the lead is reassigned
    assert not on_tick(journey, Context([lead.model_copy(update={"status": "paused"})], after_sla)).decisions
    assert not on_tick(journey, Context([], after_sla)).decisions
    cooled = campaign(trigger={"on": "event", "value": "content.click", "delay_hours": 2})
    journey = on_event(
        replace(new_journey("cus_1"), view=customer()),
        touch("content.click", DAY, content_id="c1"),
        Context([cooled], DAY),
    ).journey
    later = DAY + timedelta(hours=2)
    assert [d.outcome for d in on_tick(journey, Context([cooled], later)).decisions] == ["sent"]
    assert not on_tick(journey, Context([cooled.model_copy(update={"status": "paused"})], later)).decisions


def test_a_journey_keeps_at_most_so_many_items_waiting_and_records_what_it_drops() -> None:
    # Every click fires a campaign with a cooldown: one trigger waiting per click.
    cooled = campaign(trigger={"on": "event", "value": "content.click", "delay_hours": 2})
    journey = replace(new_journey("cus_1"), view=customer())
    dropped = []
    for n in range(MAX_SCHEDULED + 5):
        at = DAY + timedelta(seconds=n)
        reaction = on_event(journey, touch("content.click", at, content_id="c1"), Context([cooled], at))
        journey = reaction.journey
        dropped += reaction.decisions
    assert len(journey.scheduled) == MAX_SCHEDULED
    # The ones due last went: the newest triggers, each recorded under the id it would have decided.
    assert [(d.outcome, d.reason) for d in dropped] == [("suppressed", SCHEDULE_FULL)] * 5
    assert max(s.due for s in journey.scheduled) == DAY + timedelta(hours=2, seconds=MAX_SCHEDULED - 1)


def test_sla_checks_and_deferred_messages_outlast_delayed_triggers_when_the_schedule_is_full() -> None:
    cooled = campaign(trigger={"on": "event", "value": "content.click", "delay_hours": 2})
    decision = Decision(
        "a1",
        "high-intent-nurture",
        "cus_1",
        ActionKind.send_content,
        Channel.wecom_1v1,
        "c",
        None,
        "deferred",
        "quiet_hours",
        DAY,
    )
    waiting = (
        Scheduled(DAY + timedelta(days=9), "sla", "high-intent-nurture", "a0"),
        Scheduled(DAY + timedelta(days=8), "deliver", "high-intent-nurture", "t1", decision),
        *(
            Scheduled(DAY + timedelta(hours=1), "trigger", "high-intent-nurture", f"t{n}")
            for n in range(MAX_SCHEDULED)
        ),
    )
    reaction = bounded(Reaction(replace(new_journey("cus_1"), scheduled=waiting)), Context([cooled], DAY))
    assert [s.kind for s in reaction.journey.scheduled[:2]] == ["sla", "deliver"]
    assert len(reaction.journey.scheduled) == MAX_SCHEDULED
    assert [(d.reason, d.outcome) for d in reaction.decisions] == [(SCHEDULE_FULL, "suppressed")] * 2
    # Only SLA checks and deliveries beyond the bound: the deliveries due last go, as suppressed.
    many = tuple(replace(waiting[1], due=DAY + timedelta(minutes=n)) for n in range(MAX_SCHEDULED + 1))
    reaction = bounded(
        Reaction(replace(new_journey("cus_1"), scheduled=(waiting[0], *many))), Context([], DAY)
    )
    assert reaction.journey.scheduled[0] == waiting[0] and len(reaction.journey.scheduled) == MAX_SCHEDULED
    assert [(d.outcome, d.reason, d.deliver_at) for d in reaction.decisions] == [
        ("suppressed", SCHEDULE_FULL, None)
    ] * 2


def test_merged_journeys_keep_the_bound_too() -> None:
    half = MAX_SCHEDULED // 2 + 1
    items = lambda prefix: tuple(  # noqa: E731
        Scheduled(DAY + timedelta(hours=n), "trigger", "gone", f"{prefix}{n}") for n in range(half)
    )
    survivor = replace(new_journey("a"), scheduled=items("a"))
    merged = replace(new_journey("b"), scheduled=items("b"))
    assert len(merge_journeys(survivor, merged).scheduled) == 2 * half  # merging itself keeps all
    fold = CampaignFold(Context([], DAY))
    outcome = CampaignBatchOutcome()
    handover = Handover(handover_id="m", customer_id="a", from_customer_id="b", state=merged)
    assert len(fold.merge_in(survivor, handover, outcome).scheduled) == MAX_SCHEDULED
    assert outcome.decisions == []  # of campaigns no longer defined: dropped without a decision


def test_pacing_keeps_todays_counts_and_the_campaigns_entered_last() -> None:
    old = {f"c{n:03}": ("2026-11-01", 1) for n in range(MAX_ENTERED + 10)}
    entered_at = {f"c{n:03}": EARLIER + timedelta(minutes=n) for n in range(MAX_ENTERED + 10)}
    pacing = Pacing(frozenset(entered_at), old, {"wecom_1v1": ("2026-11-01", 1)}, entered_at)
    after, (sent,) = decide(customer(), pacing, [campaign(id="new-one")], "t1", DAY, QUIET)
    assert sent.outcome == "sent"
    assert after.sent_on == {"new-one": ("2026-11-25", 1)} and after.channel_sent_on == {}
    assert len(after.entered) == MAX_ENTERED and "new-one" in after.entered
    assert "c000" not in after.entered and f"c{MAX_ENTERED + 9:03}" in after.entered
    assert set(after.entered_at) == after.entered
    # Rows from before entry times were kept: those campaigns go first.
    undated = bounded_pacing(Pacing(frozenset({"x", *entered_at}), {}, {}, entered_at))
    assert "x" not in undated.entered and len(undated.entered) == MAX_ENTERED
