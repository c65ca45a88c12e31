"""Campaign domain: definitions, audience, holdout and variants, consent, pacing, dealers."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.campaign.consent import consents_after
from services.campaign.dealers import Consultant, Desk, assign, sla_missed
from services.campaign.decide import Pacing, decide
from services.campaign.definitions import Campaign, Channel, TriggerKind
from services.campaign.examples import example_campaigns
from services.campaign.targeting import CustomerView, QuietHours, fires, in_audience, in_holdout, variant_of

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
    "reentry": False,
}
WECOM_FRIEND = {"wecom_1v1": True, "wecom_group": True}


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
    consents = consents_after({}, "wecom.friend_added", None)
    assert consents == WECOM_FRIEND
    consents = consents_after(consents, "consent.revoked", "wecom")
    assert consents == {"wecom_1v1": False, "wecom_group": False}
    consents = consents_after(consents, "consent.granted", "sms")
    assert consents["sms"] is True
    assert consents_after(consents, "content.view", None) == consents


def test_suppression_reasons() -> None:
    nurture = campaign()
    _, [no_consent] = decide(customer(consents={}), Pacing(), [nurture], "e1", DAY, QUIET)
    assert (no_consent.outcome, no_consent.reason) == ("suppressed", "no_consent")
    pacing, [sent] = decide(customer(), Pacing(), [nurture], "e1", DAY, QUIET)
    assert (sent.outcome, sent.channel, sent.content_id) == ("sent", Channel.wecom_1v1, "c-spec-compare")
    _, [again] = decide(customer(), pacing, [nurture], "e2", DAY, QUIET)
    assert again.reason == "already_entered"
    reentrant = campaign(reentry=True)
    pacing, _ = decide(customer(), Pacing(), [reentrant], "e1", DAY, QUIET)
    _, [capped] = decide(customer(), pacing, [reentrant], "e2", DAY + timedelta(hours=2), QUIET)
    assert capped.reason == "frequency_cap"
    _, [next_day] = decide(customer(), pacing, [reentrant], "e3", DAY + timedelta(days=1), QUIET)
    assert next_day.outcome == "sent"


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


ROSTER = [
    Consultant(id="sh-1-a", dealer_id="d-sh-1", city="shanghai", daily_capacity=2),
    Consultant(id="sh-1-b", dealer_id="d-sh-1", city="shanghai", daily_capacity=2),
    Consultant(id="sh-2-a", dealer_id="d-sh-2", city="shanghai", daily_capacity=1),
    Consultant(id="bj-1-a", dealer_id="d-bj-1", city="beijing", daily_capacity=1),
]


def test_leads_go_round_robin_to_the_customers_dealer_then_city_then_anyone() -> None:
    desk, picked = Desk(), []
    for _ in range(6):
        who, desk = assign(ROSTER, desk, "d-sh-1", "shanghai", DAY)
        picked.append(who)
    assert picked == ["sh-1-a", "sh-1-b", "sh-1-a", "sh-1-b", "sh-2-a", "bj-1-a"]
    who, desk = assign(ROSTER, desk, "d-sh-1", "shanghai", DAY)
    assert who is None  # everyone is at capacity today
    who, _ = assign(ROSTER, desk, "d-sh-1", "shanghai", DAY + timedelta(days=1))
    assert who is not None  # capacity is per day


def test_a_missed_sla_reassigns_to_someone_else() -> None:
    first, desk = assign(ROSTER, Desk(), "d-sh-1", None, DAY)
    assert sla_missed(DAY, 24, None, DAY + timedelta(hours=25))
    assert not sla_missed(DAY, 24, DAY + timedelta(hours=3), DAY + timedelta(hours=25))
    assert not sla_missed(DAY, 24, None, DAY + timedelta(hours=23))
    second, _ = assign(ROSTER, desk, "d-sh-1", None, DAY, exclude=frozenset({first}))
    assert second not in (first, None)
