"""A customer's journey through the example campaigns: the paper's flows, step by step."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.campaign.decide import Decision
from services.campaign.examples import example_campaigns
from services.campaign.inputs import CampaignEvent
from services.campaign.journey import PROGRAMME, Context, new_journey, on_event, on_input, on_tick
from shared.chain import ChainInput, ProfileSnapshot
from tests.factories import read_event, score_snapshot

# A score or a profile change alone is one input of the chain, as a merged-in state is.
on_score = on_profile = on_input

DAY = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in China
CAMPAIGNS = example_campaigns()


def context(at: datetime = DAY) -> Context:
    return Context(campaigns=CAMPAIGNS, now=at)


def touch(kind: str, at: datetime = DAY, **properties: Any) -> CampaignEvent:
    return read_event(CampaignEvent, kind, at, **properties)


def profile(
    layer: str,
    previous: str | None,  # the layer before, for the reader: the journey's view has it
    orientation: str = "rational",
    added: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
) -> ChainInput:
    snapshot = ProfileSnapshot(
        layer=layer, orientation=orientation, stage="newcomer", tags=sorted({*tags, *added})
    )
    return ChainInput(input_id=str(uuid.uuid4()), customer_id="cus_1", received_at=DAY, profile=snapshot)


def band(new: str, previous: str | None, received_at: datetime = DAY) -> ChainInput:
    score = score_snapshot(new)
    return ChainInput(input_id=str(uuid.uuid4()), customer_id="cus_1", received_at=received_at, score=score)


def not_held_out(customer_id: str) -> str:
    """A customer id outside every example campaign's 10 % holdout, so actions go out."""
    from services.campaign.targeting import in_holdout

    for n in range(1000):
        candidate = f"{customer_id}-{n}"
        if not any(in_holdout(c, candidate) for c in CAMPAIGNS):
            return candidate
    raise AssertionError("no such customer")


def journey_of(customer_id: str = "cus_1"):
    j = new_journey(not_held_out(customer_id))
    return replace(j, view=replace(j.view, layer="prospect", orientation="rational"))


def test_xpeng_high_intent_wecom_friend_is_invited_to_a_group_then_handed_to_a_dealer() -> None:
    journey = on_event(journey_of(), touch("wecom.friend_added"), context()).journey
    reaction = on_score(journey, band("high", "medium"), context())
    (invite,) = reaction.decisions
    assert (invite.campaign_id, invite.kind, invite.outcome, invite.content_id) == (
        "xpeng-high-intent-group",
        "invite_group",
        "sent",
        "c-group-spec-qa",  # rational
    )
    hot = on_score(reaction.journey, band("hot", "high"), context())
    (lead,) = hot.decisions
    assert (lead.kind, lead.channel, lead.outcome) == ("assign_dealer", "dealer", "sent")
    assert any(s.kind == "sla" for s in hot.journey.scheduled)


def test_without_a_wecom_friendship_the_group_invite_is_suppressed() -> None:
    (invite,) = on_score(journey_of(), band("high", "medium"), context()).decisions
    assert (invite.campaign_id, invite.outcome, invite.reason) == (
        "xpeng-high-intent-group",
        "suppressed",
        "no_consent",
    )


def test_the_consent_and_profile_an_input_brings_count_for_the_score_it_brings() -> None:
    """One input of the chain: the friendship, the rational profile and the high score it led
    to are all there when the campaign decides (no grace, no waiting for another topic)."""
    friend = touch("wecom.friend_added")
    snapshot = band("high", "low").score
    rational = ProfileSnapshot(layer="prospect", orientation="rational", stage="newcomer", tags=[])
    chained = ChainInput(
        input_id=friend.event_id, customer_id="cus_1", event=friend, score=snapshot, profile=rational
    )
    start = new_journey(journey_of().view.customer_id)
    (invite,) = on_input(start, chained, context()).decisions
    assert (invite.campaign_id, invite.outcome, invite.content_id) == (
        "xpeng-high-intent-group",
        "sent",
        "c-group-spec-qa",
    )


def test_a_lead_nobody_follows_up_is_reassigned_after_the_sla() -> None:
    journey = on_score(journey_of(), band("hot", "high"), context()).journey
    followed = on_event(
        journey, touch("dealer.followup", DAY + timedelta(hours=2), dealer_id="d1"), context()
    ).journey
    assert not on_tick(followed, context(DAY + timedelta(hours=25))).reassignments
    missed = on_tick(journey, context(DAY + timedelta(hours=25)))
    ((original, again),) = missed.reassignments
    assert again.reason == "sla_missed" and again.action_id != original


def test_wuling_defeated_leads_are_recalled_after_the_cooldown_unless_the_need_did_not_match() -> None:
    journey = on_event(journey_of(), touch("wecom.friend_added"), context()).journey
    lost = on_profile(journey, profile("defeated", "intent", added=("defeat_reason:budget",)), context())
    assert not lost.decisions  # the cooldown first
    assert on_tick(lost.journey, context(DAY + timedelta(hours=71))).decisions == []
    (recall,) = on_tick(lost.journey, context(DAY + timedelta(hours=72))).decisions
    assert (recall.campaign_id, recall.content_id, recall.outcome) == (
        "defeated-recall",
        "c-recall-price-guarantee",
        "sent",
    )
    mismatch = on_profile(
        journey, profile("defeated", "intent", added=("defeat_reason:need_mismatch",)), context()
    )
    assert not mismatch.journey.scheduled
    # Recalled before the cooldown ended: no longer in the audience, the waiting trigger exits
    # at once (recorded), and nothing is sent when it would have been due.
    back = on_profile(lost.journey, profile("intent", "defeated", added=("recalled",)), context())
    assert [(d.campaign_id, d.outcome, d.reason) for d in back.decisions] == [
        ("defeated-recall", "suppressed", "left_audience")
    ]
    assert on_tick(back.journey, context(DAY + timedelta(hours=72))).decisions == []


def test_owners_with_ripple_get_the_referral_programme_and_prospects_a_coupon() -> None:
    journey = on_event(journey_of(), touch("wecom.friend_added"), context()).journey
    owner = on_profile(journey, profile("owner", "intent", added=("ripple",)), context())
    assert [d.campaign_id for d in owner.decisions if d.outcome == "sent"] == ["owner-ripple-referral"]
    coupon = on_event(journey, touch("consent.granted", channel="mini_program"), context()).journey
    (offer,) = on_profile(
        coupon, profile("prospect", "prospect", added=("price_sensitive",)), context()
    ).decisions
    assert (offer.campaign_id, offer.channel, offer.content_id) == (
        "price-sensitive-coupon",
        "mini_program",
        "c-coupon-test-drive-gift",
    )


def test_messages_at_night_go_out_at_nine() -> None:
    night = DAY + timedelta(hours=12)  # 22:00 in China
    journey = on_event(journey_of(), touch("wecom.friend_added"), context(night)).journey
    high = band("high", "medium")
    (deferred,) = on_score(journey, high, context(night)).decisions
    assert deferred.outcome == "deferred"
    held = on_score(journey, high, context(night)).journey
    morning = DAY + timedelta(hours=23)  # 09:00 next day in China
    (sent,) = on_tick(held, context(morning)).decisions
    assert (sent.action_id, sent.outcome) == (deferred.action_id, "sent")
    assert not on_tick(held, context(morning)).journey.scheduled


def test_conversions_are_attributed_to_the_last_touch_within_the_window() -> None:
    journey = on_event(journey_of(), touch("wecom.friend_added"), context()).journey
    journey = on_score(journey, band("high", "medium"), context()).journey
    visit, programme = on_event(
        journey, touch("store.visit", DAY + timedelta(days=2), dealer_id="d1"), context()
    ).conversions
    assert (visit.campaign_id, visit.group, visit.event_type) == (
        "xpeng-high-intent-group",
        "default",
        "store.visit",
    )
    # ... and once for the programme as a whole: the customer was messaged (treated).
    assert (programme.campaign_id, programme.group) == (PROGRAMME, "treated")
    late = on_event(journey, touch("order.placed", DAY + timedelta(days=9), vehicle_model="g6"), context())
    assert late.conversions == []


def test_holdout_customers_convert_too_and_count_for_the_holdout_group() -> None:
    from services.campaign.targeting import in_holdout

    coupon = next(c for c in CAMPAIGNS if c.id == "price-sensitive-coupon")
    held = next(f"cus-h-{n}" for n in range(1000) if in_holdout(coupon, f"cus-h-{n}"))
    journey = new_journey(held)
    (decision,) = on_profile(
        journey, profile("prospect", None, added=("price_sensitive",)), context()
    ).decisions
    assert decision.reason == "holdout"
    journey = on_profile(journey, profile("prospect", None, added=("price_sensitive",)), context()).journey
    (conversion,) = on_event(
        journey, touch("store.visit", DAY + timedelta(days=1), dealer_id="d"), context()
    ).conversions
    assert conversion.group == "holdout"


def test_points_for_community_posts_up_to_the_daily_cap() -> None:
    journey = journey_of()
    granted = []
    for n in range(4):
        reaction = on_event(
            journey, touch("community.post", DAY + timedelta(minutes=n)), context(DAY + timedelta(minutes=n))
        )
        journey = reaction.journey
        granted += [(d.outcome, d.reason, d.points) for d in reaction.decisions]
    assert granted == [("sent", None, 50)] * 3 + [("suppressed", "frequency_cap", 50)]


def test_a_lead_cooling_down_and_a_customer_going_dormant_fire_their_campaigns_once() -> None:
    from services.campaign.definitions import Campaign

    def campaign(campaign_id: str, on: str, value: str) -> Campaign:
        return Campaign.model_validate(
            {
                "id": campaign_id,
                "name": campaign_id,
                "trigger": {"on": on, "value": value},
                "action": {"kind": "send_content", "channel": "wecom_1v1", "content": {"default": "c-wake"}},
            }
        )

    cooling, waking = (
        campaign("hot-cooling", "band_left", "hot"),
        campaign("wake-dormant", "activity_entered", "dormant"),
    )
    ctx = Context(campaigns=[cooling, waking], now=DAY)

    def tick(band_now: str, activity: str) -> ChainInput:  # scoring's own input: time alone moved it
        chained = band(band_now, None)
        return chained.model_copy(
            update={
                "input_id": f"decay:{uuid.uuid4()}",
                "score": chained.score.model_copy(update={"activity": activity}),
            }
        )

    journey = on_event(journey_of(), touch("wecom.friend_added"), ctx).journey
    sent: list[str] = []
    for band_now, activity in [
        ("hot", "active_7d"),
        ("high", "active_7d"),
        ("high", "active_30d"),
        ("medium", "dormant"),
        ("low", "dormant"),
    ]:
        reaction = on_input(journey, tick(band_now, activity), ctx)
        journey = reaction.journey
        sent += [d.campaign_id for d in reaction.decisions if d.outcome == "sent"]
    assert sent == ["hot-cooling", "wake-dormant"]


def test_the_global_control_group_gets_no_marketing_and_counts_for_the_programme() -> None:
    from services.campaign.targeting import in_global_control, in_holdout

    controlled = next(
        f"cus-g-{n}"
        for n in range(1000)
        if in_global_control(f"cus-g-{n}", 50) and not any(in_holdout(c, f"cus-g-{n}") for c in CAMPAIGNS)
    )
    with_control = Context(campaigns=CAMPAIGNS, now=DAY, global_control_pct=50)
    journey = new_journey(controlled)
    journey = replace(journey, view=replace(journey.view, layer="prospect", orientation="rational"))
    journey = on_event(journey, touch("wecom.friend_added"), with_control).journey
    warm = on_score(journey, band("high", "medium"), with_control)
    reaction = on_score(warm.journey, band("hot", "high"), with_control)
    outcomes = {d.campaign_id: (d.outcome, d.reason) for d in (*warm.decisions, *reaction.decisions)}
    # No message from any campaign; the dealer hand-off is service, not marketing: it goes out.
    assert outcomes["xpeng-high-intent-group"] == ("suppressed", "global_control")
    assert outcomes["hot-lead-to-dealer"] == ("sent", None)
    conversions = on_event(
        reaction.journey, touch("store.visit", DAY + timedelta(days=1), dealer_id="d"), with_control
    ).conversions
    assert {(c.campaign_id, c.group) for c in conversions} == {
        ("hot-lead-to-dealer", "default"),
        (PROGRAMME, "control"),
    }
    # The same customer without a control group is messaged.
    uncontrolled = on_score(journey, band("high", "medium"), context())
    assert {d.campaign_id: d.outcome for d in uncontrolled.decisions}["xpeng-high-intent-group"] == "sent"


def test_the_global_control_group_is_a_stable_share_of_customers() -> None:
    from services.campaign.targeting import in_global_control

    members = [c for c in (f"cus_{n}" for n in range(20_000)) if in_global_control(c, 5)]
    assert 0.04 < len(members) / 20_000 < 0.06
    # The same answer in every process and release (a changed hash would regroup everyone).
    assert members[:3] == ["cus_14", "cus_38", "cus_56"] and not in_global_control("cus_0", 5)
    assert not any(in_global_control(f"cus_{n}", 0) for n in range(1000))


def waiting_recall(at: datetime = DAY):
    """A WeCom friend who was just defeated (budget): the recall waits out its 72 h cooldown."""
    journey = on_event(journey_of(), touch("wecom.friend_added", at), context(at)).journey
    lost = on_profile(journey, profile("defeated", "intent", added=("defeat_reason:budget",)), context(at))
    assert not lost.decisions
    (waiting,) = lost.journey.scheduled
    assert (waiting.kind, waiting.campaign_id) == ("trigger", "defeated-recall")
    return lost.journey


def recall_at_due(journey) -> Decision:
    """What the waiting recall decides at its time, had nothing happened: its action id is the
    one an exit records."""
    (recall,) = on_tick(journey, context(DAY + timedelta(hours=72))).decisions
    assert (recall.campaign_id, recall.outcome) == ("defeated-recall", "sent")
    return recall


def test_a_conversion_ends_the_waiting_delayed_trigger() -> None:
    journey = waiting_recall()
    visit_at = DAY + timedelta(days=1)
    visited = on_event(journey, touch("store.visit", visit_at, dealer_id="d1"), context(visit_at))
    (exited,) = visited.decisions
    assert (exited.campaign_id, exited.outcome, exited.reason, exited.at) == (
        "defeated-recall",
        "suppressed",
        "converted",
        visit_at,
    )
    assert (exited.kind, exited.channel) == ("send_content", "wecom_1v1")
    assert exited.action_id == recall_at_due(journey).action_id
    assert visited.journey.scheduled == ()
    assert on_tick(visited.journey, context(DAY + timedelta(hours=72))).decisions == []


def test_without_exit_on_conversion_the_delayed_trigger_still_acts() -> None:
    stays = [
        c.model_copy(update={"exit_on_conversion": False}) if c.id == "defeated-recall" else c
        for c in CAMPAIGNS
    ]
    journey = waiting_recall()
    visit_at = DAY + timedelta(days=1)
    visited = on_event(journey, touch("order.placed", visit_at, vehicle_model="g6"), Context(stays, visit_at))
    assert visited.decisions == [] and len(visited.journey.scheduled) == 1
    (recall,) = on_tick(visited.journey, Context(stays, DAY + timedelta(hours=72))).decisions
    assert (recall.campaign_id, recall.outcome) == ("defeated-recall", "sent")


def test_a_conversion_with_nothing_waiting_exits_nothing() -> None:
    journey = on_event(journey_of(), touch("wecom.friend_added"), context()).journey
    journey = on_score(journey, band("high", "medium"), context()).journey
    hot = on_score(journey, band("hot", "high"), context()).journey  # a lead: an SLA check waits
    assert [s.kind for s in hot.scheduled] == ["sla"]
    visited = on_event(hot, touch("store.visit", DAY + timedelta(hours=1), dealer_id="d1"), context())
    assert visited.decisions == []
    assert visited.conversions  # credited as ever
    assert visited.journey.scheduled == hot.scheduled  # SLA checks are not triggers: they stay


def test_an_input_that_leaves_the_audience_ends_the_waiting_trigger() -> None:
    journey = waiting_recall()
    # Still defeated, but the need did not match after all: the audience excludes that tag.
    mismatch = profile(
        "defeated", "defeated", tags=("defeat_reason:budget",), added=("defeat_reason:need_mismatch",)
    )
    at = DAY + timedelta(hours=5)
    reaction = on_profile(journey, mismatch, context(at))
    (exited,) = reaction.decisions
    assert (exited.campaign_id, exited.outcome, exited.reason, exited.at) == (
        "defeated-recall",
        "suppressed",
        "left_audience",
        at,
    )
    assert exited.action_id == recall_at_due(journey).action_id
    assert reaction.journey.scheduled == ()


def test_an_input_within_the_audience_leaves_the_trigger_waiting() -> None:
    journey = waiting_recall()
    clicked = on_event(journey, touch("content.click", DAY + timedelta(hours=1), content_id="c1"), context())
    assert clicked.decisions == [] and clicked.journey.scheduled == journey.scheduled
    still = on_profile(journey, profile("defeated", "defeated", tags=("defeat_reason:budget",)), context())
    assert still.decisions == [] and still.journey.scheduled == journey.scheduled


def test_a_customer_outside_the_audience_at_due_time_is_recorded_as_left() -> None:
    journey = waiting_recall()
    # Ops narrowed the audience during the cooldown, and no input of the customer came since.
    narrowed = [
        c.model_copy(update={"audience": c.audience.model_copy(update={"layers": ["owner"]})})
        if c.id == "defeated-recall"
        else c
        for c in CAMPAIGNS
    ]
    due = DAY + timedelta(hours=72)
    reaction = on_tick(journey, Context(narrowed, due))
    (exited,) = reaction.decisions
    assert (exited.campaign_id, exited.outcome, exited.reason, exited.at) == (
        "defeated-recall",
        "suppressed",
        "left_audience",
        due,
    )
    assert exited.action_id == recall_at_due(journey).action_id
    assert reaction.journey.scheduled == ()
    # Paused meanwhile: the trigger is dropped at due time without a decision, as before.
    paused = [
        c.model_copy(update={"status": "paused"}) if c.id == "defeated-recall" else c for c in CAMPAIGNS
    ]
    assert on_tick(journey, Context(paused, due)).decisions == []


def test_a_customer_whose_top_car_model_becomes_one_fires_model_entered_and_fits_model_audiences() -> None:
    from services.campaign.definitions import Campaign

    g6 = Campaign.model_validate(
        {
            "id": "g6-launch",
            "name": "G6 launch",
            "status": "active",
            "trigger": {"on": "model_entered", "value": "G6"},
            "audience": {"models": ["G6"]},
            "action": {"kind": "grant_points", "channel": "membership", "points": 50},
            "holdout_pct": 0,
        }
    )
    ctx = Context(campaigns=[g6], now=DAY)
    journey = journey_of()

    def scored(model: str | None) -> ChainInput:
        score = score_snapshot("medium", model)
        return ChainInput(input_id=str(uuid.uuid4()), customer_id=journey.view.customer_id, score=score)

    reaction = on_input(journey, scored("P7"), ctx)
    assert reaction.journey.view.model == "P7" and not [d for d in reaction.decisions if d.outcome == "sent"]
    reaction = on_input(reaction.journey, scored("G6"), ctx)
    assert [(d.campaign_id, d.outcome) for d in reaction.decisions] == [("g6-launch", "sent")]
    again = on_input(reaction.journey, scored("G6"), ctx)  # still G6: nothing new fires
    assert again.decisions == []
