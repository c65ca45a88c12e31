"""The derived parts of a profile: orientation, journey stage and the built-in tag families.

Thresholds are data (thresholds.py) and documented in docs/tagging.md. Rule-defined tags
(rules.py) are added last, so rules can test built-in tags.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from shared.compact import one_copy
from shared.dataclass_replace import replace

from .rules import Layer, Orientation, RuleContext, RuleSet, Stage, rule_tags
from .thresholds import TaggingThresholds

if TYPE_CHECKING:
    from .profile import Profile


def derive(profile: Profile, thresholds: TaggingThresholds, rules: RuleSet) -> Profile:
    orientation = orientation_of(profile, thresholds)
    stage = stage_of(profile, thresholds)
    builtin = frozenset(builtin_tags(profile, thresholds))
    context = RuleContext(
        profile.layer, orientation, stage, profile.intent_pct, profile.evidence, profile.last_event_at
    )
    # Profiles share their sets of tags (shared/compact.py).
    tags = one_copy(tuple(sorted(builtin | rule_tags(rules, context, builtin))))
    if (orientation, stage, tags) == (profile.orientation, profile.stage, profile.tags):
        return profile
    return replace(profile, orientation=orientation, stage=stage, tags=tags)


def orientation_of(profile: Profile, thresholds: TaggingThresholds) -> Orientation:
    """The weighted majority of content value points; `unknown` below the minimum or on a tie."""
    if profile.value_point_interactions < thresholds.orientation_min_interactions:
        return Orientation.unknown
    rational = profile.value_points.get(Orientation.rational, 0.0)
    emotional = profile.value_points.get(Orientation.emotional, 0.0)
    if rational > emotional:
        return Orientation.rational
    if emotional > rational:
        return Orientation.emotional
    return Orientation.unknown


def stage_of(profile: Profile, thresholds: TaggingThresholds) -> Stage:
    """Volume and depth of engagement; both only grow, so a stage is never lost."""
    volume, depth = profile.interactions, profile.deep_interactions
    if volume >= thresholds.die_hard_fan_interactions and depth >= thresholds.die_hard_fan_deep:
        return Stage.die_hard_fan
    if volume >= thresholds.active_fan_interactions or depth >= thresholds.active_fan_deep:
        return Stage.active_fan
    return Stage.newcomer


def builtin_tags(profile: Profile, thresholds: TaggingThresholds) -> set[str]:
    tags = {
        f"interest:{topic}"
        for topic, count in profile.topics.items()
        if count >= thresholds.interest_min_interactions
    }
    if profile.price_interactions >= thresholds.price_sensitive_min:
        tags.add("price_sensitive")
    if profile.shares >= thresholds.ripple_min_shares or profile.referrals > 0:
        tags.add("ripple")
    if profile.recalled and profile.layer is Layer.intent:
        tags.add("recalled")
    if profile.layer is Layer.defeated and profile.defeat_reason:
        tags.add(f"defeat_reason:{profile.defeat_reason.lower()}")
    if profile.level:
        tags.add(f"level:{profile.level}")
    if segment := rfm_segment(profile, thresholds):
        tags.add(f"rfm:{segment}")
    return tags


def rfm_segment(profile: Profile, thresholds: TaggingThresholds) -> str | None:
    """Owners with purchases (mall and maintenance) by recency, frequency and monetary value.

    champion: recent, frequent and high spending; loyal: recent and frequent or high spending;
    promising: recent; at_risk: not recent, but was frequent or high spending; hibernating: the rest.
    """
    if profile.layer is not Layer.owner or profile.purchases == 0 or profile.last_purchase_at is None:
        return None
    now = profile.last_event_at or profile.last_purchase_at
    recent = now - profile.last_purchase_at <= timedelta(days=thresholds.rfm_recent_days)
    frequent = profile.purchases >= thresholds.rfm_frequent_purchases
    high = profile.purchase_amount >= thresholds.rfm_high_amount
    if recent and frequent and high:
        return "champion"
    if recent and (frequent or high):
        return "loyal"
    if recent:
        return "promising"
    if frequent or high:
        return "at_risk"
    return "hibernating"
