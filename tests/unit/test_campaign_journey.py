"""A customer's journey through the example campaigns: the paper's flows, step by step."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.campaign.examples import example_campaigns
from services.campaign.inputs import CampaignEvent
from services.campaign.journey import Context, new_journey, on_event, on_profile, on_score, on_tick
from shared.profiles import ProfileTagsChanged
from tests.unit.test_tagging_domain import scored

DAY = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in China
CAMPAIGNS = example_campaigns()


def context(at: datetime = DAY) -> Context:
    return Context(campaigns=CAMPAIGNS, now=at)


def touch(kind: str, at: datetime = DAY, **properties: Any) -> CampaignEvent:
    return CampaignEvent(
        event_id=str(uuid.uuid4()),
        customer_id="cus_1",
        type=kind,
        source="wecom",
        occurred_at=at,
        received_at=at,
        properties=properties,
    )


def profile(
    layer: str,
    previous: str | None,
    orientation: str = "rational",
    added: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
) -> ProfileTagsChanged:
    return ProfileTagsChanged(
        event_id=str(uuid.uuid4()),
        customer_id="cus_1",
        layer=layer,
        orientation=orientation,
        stage="newcomer",
        previous_layer=previous,
        previous_orientation=None,
        previous_stage=None,
        tags=sorted({*tags, *added}),
        tags_added=list(added),
        tags_removed=[],
        intent_pct=None,
        changed_at=DAY,
    )


def band(new: str, previous: str | None) -> Any:
    pct = {"low": 10.0, "medium": 40.0, "high": 70.0, "hot": 90.0}[new]
    return scored(pct, DAY).model_copy(
        update={"band": new, "previous_band": previous, "customer_id": "cus_1"}
    )


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


def test_without_a_wecom_friendship_the_group_invite_is_suppressed_after_a_grace() -> None:
    waiting = on_score(journey_of(), band("high", "medium"), context())
    assert not waiting.decisions  # the consent may still be on its way, on another topic
    (invite,) = on_tick(waiting.journey, context(DAY + timedelta(seconds=60))).decisions
    assert (invite.outcome, invite.reason) == ("suppressed", "no_consent")


def test_a_consent_that_arrives_after_the_score_it_preceded_still_counts() -> None:
    waiting = on_score(journey_of(), band("high", "medium"), context()).journey
    friend = on_event(waiting, touch("wecom.friend_added", DAY - timedelta(seconds=5)), context()).journey
    (invite,) = on_tick(friend, context(DAY + timedelta(seconds=60))).decisions
    assert (invite.campaign_id, invite.outcome) == ("xpeng-high-intent-group", "sent")


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
    # Recalled before the cooldown ended: no longer in the audience, nothing is sent.
    back = on_profile(lost.journey, profile("intent", "defeated", added=("recalled",)), context())
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
    (deferred,) = on_score(journey, band("high", "medium"), context(night)).decisions
    assert deferred.outcome == "deferred"
    held = on_score(journey, band("high", "medium"), context(night)).journey
    morning = DAY + timedelta(hours=23)  # 09:00 next day in China
    (sent,) = on_tick(held, context(morning)).decisions
    assert (sent.action_id, sent.outcome) == (deferred.action_id, "sent")
    assert not on_tick(held, context(morning)).journey.scheduled


def test_conversions_are_attributed_to_the_last_touch_within_the_window() -> None:
    journey = on_event(journey_of(), touch("wecom.friend_added"), context()).journey
    journey = on_score(journey, band("high", "medium"), context()).journey
    (visit,) = on_event(
        journey, touch("store.visit", DAY + timedelta(days=2), dealer_id="d1"), context()
    ).conversions
    assert (visit.campaign_id, visit.group, visit.event_type) == (
        "xpeng-high-intent-group",
        "default",
        "store.visit",
    )
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


def test_a_store_visit_that_overtook_its_score_is_attributed_when_the_score_arrives() -> None:
    journey = on_event(journey_of(), touch("wecom.friend_added"), context()).journey
    # The visit came after the booking that made the lead hot, but reached the worker first.
    visit = on_event(journey, touch("store.visit", DAY + timedelta(minutes=5), dealer_id="d1"), context())
    assert visit.conversions == []
    hot = band("hot", "high").model_copy(update={"received_at": DAY + timedelta(minutes=1)})
    reaction = on_score(visit.journey, hot, replace(context(), received_at=hot.received_at))
    (conversion,) = reaction.conversions
    assert (conversion.campaign_id, conversion.event_type) == ("hot-lead-to-dealer", "store.visit")
    assert reaction.journey.unattributed == ()
    # A visit from before the touch is not credited to it.
    early = on_event(journey, touch("store.visit", DAY - timedelta(minutes=5), dealer_id="d1"), context())
    assert on_score(early.journey, hot, replace(context(), received_at=hot.received_at)).conversions == []


def test_a_conversion_goes_to_the_last_touch_before_it_whatever_order_the_topics_were_read_in() -> None:
    from itertools import permutations

    start = on_event(journey_of(), touch("wecom.friend_added"), context()).journey
    high = band("high", "medium").model_copy(update={"received_at": DAY + timedelta(minutes=1)})
    hot = band("hot", "high").model_copy(update={"received_at": DAY + timedelta(minutes=2)})
    visit = touch("store.visit", DAY + timedelta(minutes=3), dealer_id="d1")

    def converted_after(order: tuple[Any, ...]) -> set[tuple[str, str]]:
        journey, converted = start, set()
        for item in order:
            if item is visit:
                reaction = on_event(journey, item, context())
            else:
                reaction = on_score(journey, item, replace(context(), received_at=item.received_at))
            journey = reaction.journey
            for c in reaction.conversions:  # as the read model applies them: SADD, or SREM if withdrawn
                (converted.discard if c.withdrawn else converted.add)((c.campaign_id, c.group))
        return converted

    outcomes = {frozenset(converted_after(order)) for order in permutations((high, hot, visit))}
    assert outcomes == {frozenset({("hot-lead-to-dealer", "default")})}
