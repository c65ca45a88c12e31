"""Tagging domain: the value ladder, orientation, stage and the paper's tag families.

Cases follow docs/domain.md's stories (Xpeng's WeCom flow, Wuling's defeated-lead recall, NIO's
ripple referrals, owners' membership).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.tagging.families import rfm_segment
from services.tagging.inputs import TaggingEvent
from services.tagging.profile import MAX_PROFILE_TOPICS, Profile, apply_event, apply_score, merge_profiles
from services.tagging.rules import Layer, Orientation, RuleSet, Stage
from services.tagging.thresholds import TaggingThresholds
from shared.chain import ScoreSnapshot
from shared.events import MAX_PUBLISHED_LABEL_CHARS, MAX_TOPICS
from tests.factories import event

LIMITS = TaggingThresholds()
NO_RULES = RuleSet(version=0)
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def ingested(
    kind: str, at: datetime = T0, received_at: datetime | None = None, **properties: Any
) -> TaggingEvent:
    raw = event(type=kind, occurred_at=at.isoformat(), properties=properties)
    return TaggingEvent.model_validate(raw | {"customer_id": "cus_1", "received_at": received_at or at})


def scored(
    pct: float, received_at: datetime | None, level: str = "bronze"
) -> tuple[ScoreSnapshot, datetime | None]:
    """A score from the chain and when the input it came with reached ingest."""
    score = ScoreSnapshot(
        intent_score=0.0,
        intent_pct=pct,
        band="high" if pct >= 60 else "low",
        activity="active_7d",
        points=0,
        growth=0,
        level=level,
    )
    return score, received_at


def replay(events: list[TaggingEvent], profile: Profile | None = None, rules: RuleSet = NO_RULES) -> Profile:
    profile = profile or Profile(customer_id="cus_1")
    for one in events:
        profile = apply_event(profile, one, LIMITS, rules)
    return profile


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def test_a_new_customer_is_a_newcomer_prospect_of_unknown_orientation() -> None:
    profile = replay([ingested("ad.click")])
    assert (profile.layer, profile.orientation, profile.stage, profile.tags) == (
        Layer.prospect,
        Orientation.unknown,
        Stage.newcomer,
        (),
    )


def test_xpeng_wecom_flow_rational_clicks_then_high_intent_make_an_intent_lead() -> None:
    # Clicked an ad, would not leave a phone number, added the brand's WeCom account instead,
    # then read spec comparisons; scoring finds the intent high.
    steps = [ingested("ad.click", minutes(0)), ingested("wecom.friend_added", minutes(1))]
    steps += [
        ingested("content.click", minutes(2 + i), content_id=f"c{i}", value_point="rational", topics=["tech"])
        for i in range(3)
    ]
    profile = replay(steps)
    assert profile.layer is Layer.prospect
    assert profile.orientation is Orientation.rational
    assert "interest:tech" in profile.tags
    profile = apply_score(profile, *scored(70.0, minutes(5)), LIMITS, NO_RULES)
    assert profile.layer is Layer.intent


def test_intent_events_make_an_intent_lead_whatever_the_score() -> None:
    for kind, properties in [
        ("quote.requested", {"vehicle_model": "g6"}),
        ("test_drive.booked", {"vehicle_model": "g6"}),
        ("store.visit", {"dealer_id": "d1"}),
    ]:
        assert replay([ingested(kind, **properties)]).layer is Layer.intent


def test_orientation_is_unknown_below_three_value_point_interactions() -> None:
    two = [
        ingested("content.favorite", minutes(i), content_id="c", value_point="emotional") for i in range(2)
    ]
    assert replay(two).orientation is Orientation.unknown
    three = [*two, ingested("content.view", minutes(3), content_id="c", value_point="rational")]
    assert replay(three).orientation is Orientation.emotional


def test_orientation_is_the_weighted_majority_not_the_plain_count() -> None:
    # Three rational views (weight 1 each) against one emotional share (weight 3) and a favourite (2).
    views = [ingested("content.view", minutes(i), content_id="c", value_point="rational") for i in range(3)]
    share = ingested("content.share", minutes(4), content_id="c", value_point="emotional")
    assert replay([*views, share]).orientation is Orientation.unknown  # 3 against 3: a tie
    favourite = ingested("content.favorite", minutes(5), content_id="c", value_point="emotional")
    assert replay([*views, share, favourite]).orientation is Orientation.emotional


def test_wuling_defeated_lead_is_recalled_by_a_later_high_score_only() -> None:
    profile = apply_score(Profile(customer_id="cus_1"), *scored(70.0, minutes(0)), LIMITS, NO_RULES)
    assert profile.layer is Layer.intent
    profile = replay([ingested("lead.defeated", minutes(10), reason="bought_rival")], profile)
    assert profile.layer is Layer.defeated
    assert "defeat_reason:bought_rival" in profile.tags
    # A score computed before the defeat that arrives after it is not a re-engagement.
    stale = apply_score(profile, *scored(72.0, minutes(5)), LIMITS, NO_RULES)
    assert stale.layer is Layer.defeated
    # Re-engaged: a score of 60+ moved by an input that came after the defeat.
    recalled = apply_score(stale, *scored(64.0, minutes(30)), LIMITS, NO_RULES)
    assert recalled.layer is Layer.intent
    assert "recalled" in recalled.tags
    assert not any(tag.startswith("defeat_reason:") for tag in recalled.tags)
    # Lost again: no longer `recalled`.
    again = replay([ingested("lead.defeated", minutes(40), reason="budget")], recalled)
    assert again.layer is Layer.defeated
    assert "recalled" not in again.tags and "defeat_reason:budget" in again.tags


def test_a_defeated_lead_booking_a_test_drive_is_recalled() -> None:
    defeated = replay([ingested("lead.defeated", minutes(0), reason="stalled")])
    profile = replay([ingested("test_drive.booked", minutes(5), vehicle_model="kaijie")], defeated)
    assert profile.layer is Layer.intent
    assert "recalled" in profile.tags


def test_a_low_score_does_not_move_anyone_up_the_ladder() -> None:
    assert apply_score(Profile(customer_id="c"), *scored(59.9, T0), LIMITS, NO_RULES).layer is Layer.prospect


def test_owners_stay_owners() -> None:
    owner = replay([ingested("order.placed", vehicle_model="et5")])
    assert owner.layer is Layer.owner
    later = replay(
        [ingested("lead.defeated", minutes(1), reason="x"), ingested("store.visit", dealer_id="d")], owner
    )
    assert later.layer is Layer.owner
    assert replay([ingested("vehicle.delivered", vehicle_model="et5")]).layer is Layer.owner


def test_nio_ripple_two_shares_or_any_referral() -> None:
    one_share = [ingested("content.share", content_id="c")]
    assert "ripple" not in replay(one_share).tags
    assert "ripple" in replay([*one_share, ingested("content.share", minutes(1), content_id="c")]).tags
    assert "ripple" in replay([ingested("referral.made")]).tags


def test_price_sensitive_from_price_related_content_and_coupons() -> None:
    related = ingested("content.click", content_id="c-offer", price_related=True)
    assert "price_sensitive" not in replay([related]).tags
    assert "price_sensitive" in replay([related, ingested("coupon.claimed", minutes(1))]).tags
    not_related = ingested("content.click", content_id="c", price_related=False)
    assert "price_sensitive" not in replay([related, not_related]).tags


def test_interest_tags_need_three_interactions_on_the_topic() -> None:
    steps = [
        ingested("content.view", minutes(i), content_id="c", topics=["Anime", "games"]) for i in range(2)
    ]
    assert not replay(steps).tags
    steps.append(ingested("live.watch", minutes(3), duration_s=60, topics=["anime"]))
    assert replay(steps).tags == ("interest:anime",)


def test_stage_grows_with_volume_and_depth_of_engagement() -> None:
    views = [ingested("mini_program.visit", minutes(i)) for i in range(9)]
    assert replay(views).stage is Stage.newcomer
    assert replay([*views, ingested("mini_program.visit", minutes(9))]).stage is Stage.active_fan
    deep = [ingested("community.post", minutes(i)) for i in range(3)]
    assert replay(deep).stage is Stage.active_fan  # depth alone is enough for an active fan
    long_watches = [ingested("live.watch", minutes(i), duration_s=900) for i in range(12)]
    fan = replay([*long_watches, *(ingested("mini_program.visit", minutes(20 + i)) for i in range(28))])
    assert fan.stage is Stage.die_hard_fan
    short_watches = [ingested("live.watch", minutes(i), duration_s=30) for i in range(40)]
    assert replay(short_watches).stage is Stage.active_fan  # volume without depth


def test_consent_and_our_own_campaign_deliveries_are_not_engagement() -> None:
    profile = replay([ingested("consent.granted", minutes(i), channel="sms") for i in range(12)])
    assert profile.interactions == 0 and profile.stage is Stage.newcomer


def test_membership_level_comes_from_scoring() -> None:
    profile = apply_score(Profile(customer_id="c"), *scored(10.0, T0, level="gold"), LIMITS, NO_RULES)
    assert "level:gold" in profile.tags
    profile = apply_score(profile, *scored(12.0, T0, level="platinum"), LIMITS, NO_RULES)
    assert "level:platinum" in profile.tags and "level:gold" not in profile.tags


def purchases(*spec: tuple[int, float]) -> list[TaggingEvent]:
    """(days after T0, amount) -> alternating mall purchases and maintenance visits."""
    kinds = ("mall.purchase", "service.maintenance")
    return [
        ingested(kinds[i % 2], T0 + timedelta(days=day), amount=amount)
        for i, (day, amount) in enumerate(spec)
    ]


def test_rfm_segments_for_owners_with_purchases() -> None:
    owner = replay([ingested("vehicle.delivered", vehicle_model="et5")])
    assert rfm_segment(owner, LIMITS) is None  # no purchases yet
    assert rfm_segment(replay(purchases((0, 100))), LIMITS) is None  # not an owner
    cases = {
        "champion": purchases((0, 2000), (10, 2000), (20, 2000)),
        "loyal": purchases((0, 100), (10, 100), (20, 100)),
        "promising": purchases((0, 300)),
        "at_risk": [
            *purchases((0, 6000)),
            ingested("mini_program.visit", T0 + timedelta(days=200)),
        ],
        "hibernating": [*purchases((0, 300)), ingested("mini_program.visit", T0 + timedelta(days=200))],
    }
    for segment, steps in cases.items():
        profile = replay(steps, owner)
        assert f"rfm:{segment}" in profile.tags, (segment, profile.tags)
        assert sum(tag.startswith("rfm:") for tag in profile.tags) == 1


def test_merging_adds_the_evidence_and_keeps_the_further_layer() -> None:
    survivor = replay([ingested("content.share", content_id="c", topics=["tech"])])
    merged = replay(
        [
            ingested("content.share", minutes(1), content_id="c", topics=["tech"]),
            ingested("content.view", minutes(2), content_id="c", topics=["tech"]),
            ingested("test_drive.booked", minutes(3), vehicle_model="id4"),
        ]
    )
    merged = replace(merged, customer_id="cus_2")
    folded = merge_profiles(survivor, merged, LIMITS, NO_RULES)
    assert folded.customer_id == "cus_1"
    assert folded.layer is Layer.intent
    assert folded.interactions == 4
    assert {"ripple", "interest:tech"} <= set(folded.tags)
    assert merge_profiles(merged, survivor, LIMITS, NO_RULES).layer is Layer.intent


def test_a_profile_keeps_its_strongest_topics_only() -> None:
    # The case: thousands of distinct topics, 20 an event (as many as ingest takes).
    favourite = [ingested("content.view", content_id="c", topics=["suv"]) for _ in range(3)]
    flood = [
        ingested("content.view", content_id="c", topics=[f"t{n:04}-{k}" for k in range(20)])
        for n in range(200)
    ]
    profile = replay([*favourite, *flood])
    assert len(profile.topics) == MAX_PROFILE_TOPICS
    assert profile.topics["suv"] == 3 and "interest:suv" in profile.tags
    # Of equal counts, the topics seen last stay (an event's in sorted order).
    last = [sorted(f"t{n:04}-{k}" for k in range(20)) for n in (197, 198, 199)]
    assert set(profile.topics) - {"suv"} == {*last[0][-9:], *last[1], *last[2]}
    # A topic seen again moves ahead of those seen once.
    again = replay([ingested("content.view", content_id="c", topics=[last[0][-1]])], profile)
    assert again.topics[last[0][-1]] == 2 and len(again.topics) == MAX_PROFILE_TOPICS


def test_an_event_counts_at_most_as_many_topics_as_ingest_takes() -> None:
    many = ingested(
        "content.view",
        content_id="c",
        topics=["a" * (MAX_PUBLISHED_LABEL_CHARS + 1)] + [f"t{n:04}" for n in range(3800)],
    )
    assert many.topics() == [f"t{n:04}" for n in range(MAX_TOPICS)]


def test_merging_keeps_the_strongest_topics_only() -> None:
    one = replay(
        [ingested("content.view", content_id="c", topics=[f"a{n}" for n in range(20)]) for _ in range(2)]
    )
    other = replay(
        [ingested("content.view", content_id="c", topics=[f"b{n}" for n in range(20)]) for _ in range(3)]
        + [ingested("content.view", content_id="c", topics=[f"c{n}" for n in range(20)])]
    )
    merged = merge_profiles(one, other, LIMITS, NO_RULES)
    assert len(merged.topics) == MAX_PROFILE_TOPICS
    assert {t for t in merged.topics if t[0] in "ab"} == {f"a{n}" for n in range(20)} | {
        f"b{n}" for n in range(20)
    }


def test_labels_longer_than_published_ones_can_be_are_not_kept() -> None:
    defeated = replay([ingested("lead.defeated", reason="r" * (MAX_PUBLISHED_LABEL_CHARS + 1))])
    assert defeated.layer is Layer.defeated and defeated.defeat_reason is None
