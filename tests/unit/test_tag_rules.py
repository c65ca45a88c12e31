"""Tag rules as data: validation with reasons, windows, dependencies between rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.tagging.profile import Profile, apply_event, apply_score
from services.tagging.rules import RuleSet, TagRule, evaluation_order
from tests.unit.test_tagging_domain import LIMITS, T0, ingested, replay, scored


def rules(*raw: dict) -> RuleSet:
    return RuleSet.of(1, [TagRule.model_validate(r) for r in raw])


LIVE_FAN = {
    "tag": "live_fan",
    "counts": [{"types": ["live.watch", "live.comment"], "at_least": 3, "within_days": 7}],
}


def test_a_windowed_count_rule_tags_and_untags_with_time() -> None:
    ruleset = rules(LIVE_FAN)
    watches = [ingested("live.watch", T0 + timedelta(days=i), duration_s=60) for i in range(3)]
    profile = replay(watches, rules=ruleset)
    assert "live_fan" in profile.tags
    # Eight days later, the three watches are out of the window: the tag goes.
    later = replay([ingested("mini_program.visit", T0 + timedelta(days=10))], profile, rules=ruleset)
    assert "live_fan" not in later.tags


def test_spread_out_events_do_not_count_within_a_window() -> None:
    watches = [ingested("live.watch", T0 + timedelta(days=4 * i), duration_s=60) for i in range(3)]
    assert "live_fan" not in replay(watches, rules=rules(LIVE_FAN)).tags


def test_count_conditions_can_filter_on_properties() -> None:
    ruleset = rules(
        {
            "tag": "model_fan:id4",
            "counts": [{"types": ["content.click"], "where": {"vehicle_model": "id4"}, "at_least": 2}],
        }
    )
    clicks = [ingested("content.click", content_id="c", vehicle_model=m) for m in ("id4", "id6", "id4")]
    assert "model_fan:id4" not in replay(clicks[:2], rules=ruleset).tags
    assert "model_fan:id4" in replay(clicks, rules=ruleset).tags


def test_rules_on_score_layer_and_builtin_tags() -> None:
    ruleset = rules(
        {
            "tag": "coupon_target",
            "intent_pct_at_least": 30,
            "intent_pct_below": 60,
            "layers": ["prospect"],
            "tags_all": ["price_sensitive"],
        },
        {"tag": "vip_nurture", "tags_all": ["coupon_target"], "tags_none": ["ripple"]},
    )
    coupons = [ingested("coupon.claimed", T0 + timedelta(minutes=i)) for i in range(2)]
    profile = replay(coupons, rules=ruleset)
    assert "coupon_target" not in profile.tags  # no score yet
    profile = apply_score(profile, *scored(45.0, T0), LIMITS, ruleset)
    assert {"coupon_target", "vip_nurture", "price_sensitive"} <= set(profile.tags)
    profile = apply_score(profile, *scored(65.0, T0), LIMITS, ruleset)  # now an intent lead
    assert "coupon_target" not in profile.tags and "vip_nurture" not in profile.tags


def test_rules_are_evaluated_after_the_rules_they_depend_on() -> None:
    raw = [
        {"tag": "a_needs_b", "tags_all": ["b_base"]},
        {"tag": "b_base", "layers": ["prospect"]},
    ]
    order = [r.tag for r in evaluation_order(TagRule.model_validate(r) for r in raw)]
    assert order == ["b_base", "a_needs_b"]
    profile = replay([ingested("ad.click")], rules=rules(*raw))
    assert {"a_needs_b", "b_base"} <= set(profile.tags)


def test_a_cycle_of_rules_is_refused() -> None:
    raw = [{"tag": "x", "tags_all": ["y"]}, {"tag": "y", "tags_none": ["x"]}]
    with pytest.raises(ValueError, match="cycle"):
        rules(*raw)


def test_a_deleted_rule_leaves_no_evidence_behind() -> None:
    profile = replay([ingested("live.watch", duration_s=5)], rules=rules(LIVE_FAN))
    assert profile.evidence
    after = apply_event(profile, ingested("ad.click"), LIMITS, RuleSet(version=2))
    assert not after.evidence


def test_evidence_keeps_only_what_the_window_can_need() -> None:
    watches = [ingested("live.watch", T0 + timedelta(hours=i), duration_s=60) for i in range(20)]
    profile = replay(watches, rules=rules(LIVE_FAN))
    (evidence,) = profile.evidence.values()
    assert evidence.total == 20 and len(evidence.recent) == 3


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ({"tag": "x"}, "at least one condition"),
        ({"tag": "Bad Tag", "layers": ["owner"]}, "tags are"),
        ({"tag": "ripple", "layers": ["owner"]}, "built-in"),
        ({"tag": "interest:cars", "layers": ["owner"]}, "built-in"),
        ({"tag": "x", "layers": ["buyer"]}, "layers"),
        ({"tag": "x", "counts": [{"types": ["content.klick"], "at_least": 1}]}, "unknown event types"),
        ({"tag": "x", "counts": [{"types": ["ad.click"], "at_least": 0}]}, "at_least"),
        ({"tag": "x", "intent_pct_at_least": 70, "intent_pct_below": 60}, "below"),
        ({"tag": "x", "tags_all": ["x"]}, "own tag"),
        ({"tag": "x", "layers": ["owner"], "colour": "red"}, "colour"),
    ],
)
def test_invalid_rules_are_refused_with_reasons(rule: dict, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TagRule.model_validate(rule)
    assert reason in str(caught.value)


def test_a_new_rule_counts_from_when_it_is_in_force() -> None:
    before = replay([ingested("live.watch", T0 + timedelta(hours=i), duration_s=1) for i in range(3)])
    profile = replay([ingested("live.watch", T0 + timedelta(hours=4), duration_s=1)], before, rules(LIVE_FAN))
    assert "live_fan" not in profile.tags
    assert Profile(customer_id="c").evidence == {}
