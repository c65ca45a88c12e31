"""How a customer's profile changes: one event, one score change, or a merge at a time.

Pure: no Kafka, Faust, Redis or HTTP. A profile keeps the evidence (counts, weights, amounts,
times) and the layer, whose value-ladder transitions depend on the path taken; orientation,
stage and tags are derived from the evidence after every change (families.py, rules.py).

Value ladder (docs/contract.md): `prospect` by default; `intent` at intent_pct >= 60 or on a quote,
test-drive booking or store visit; `defeated` on `lead.defeated`; `owner` on an order or a
delivery, for good. A defeated lead who re-engages (any input after the defeat that leaves the
score at 60+, or a quote, test drive or store visit) is `intent` again and `recalled`, until
defeated again.

Bounded (docs/contract.md, "Bounds"): the evidence per topic keeps the MAX_PROFILE_TOPICS
strongest topics of a customer (most interactions; of equal counts, the one seen last stays),
so no stream of inputs, however varied its topics, grows a profile, a row or the customer's
segments without end. The rest of the evidence is counts, a few times, and one entry per tag
rule condition (rules.py keeps only as many times as a condition can need).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from shared.chain import ScoreSnapshot
from shared.compact import EMPTY, ONE_COPY, ONE_TEXT, SHARED_WHEN_EMPTY, one_copy, one_text
from shared.dataclass_replace import replace
from shared.funnels import MILESTONES

from .families import derive
from .funnel import FunnelStep, reached_after, reached_by_either
from .inputs import TaggingEvent
from .rules import Evidence, Layer, Orientation, RuleSet, Stage, merge_evidence, record_hit
from .thresholds import (
    DEEP_ENGAGEMENT,
    NOT_ENGAGEMENT,
    PURCHASE_TYPES,
    VALUE_POINT_WEIGHTS,
    TaggingThresholds,
)

INTENT_EVENTS = frozenset({"quote.requested", "test_drive.booked", "store.visit"})
OWNER_EVENTS = frozenset({"order.placed", "vehicle.delivered"})
# Merging two profiles keeps the further layer along the ladder.
LADDER_RANK = {Layer.prospect: 0, Layer.defeated: 1, Layer.intent: 2, Layer.owner: 3}
# Topics whose interactions a profile counts: each at `interest_min_interactions` is an
# `interest:<topic>` tag and a segment; a customer's real interests are a handful.
MAX_PROFILE_TOPICS = 50
# Contents a conversion is credited to: those a customer engaged with last.
RECENT_CONTENTS = 10


@dataclass(frozen=True, slots=True)
class Profile:
    customer_id: str
    # The path-dependent part.
    layer: Layer = Layer.prospect
    recalled: bool = False
    defeated_received_at: datetime | None = None  # when the last defeat reached us
    defeat_reason: Annotated[str, ONE_TEXT] | None = None
    # Evidence.
    interactions: int = 0
    deep_interactions: int = 0
    # rational/emotional -> weight. Mappings empty for most customers share one, and the texts,
    # tuples, days and amounts many hold one copy (shared/compact.py), built or read back.
    value_points: Annotated[dict[str, float], SHARED_WHEN_EMPTY] = field(default_factory=lambda: EMPTY)
    value_point_interactions: int = 0
    topics: Annotated[dict[str, int], SHARED_WHEN_EMPTY] = field(default_factory=lambda: EMPTY)
    price_interactions: int = 0  # price-related content and coupon claims
    shares: int = 0
    referrals: int = 0
    purchases: int = 0
    purchase_amount: Annotated[float, ONE_COPY] = 0.0
    last_purchase_at: datetime | None = None
    last_event_at: datetime | None = None  # the latest occurred_at: "now" for windows and recency
    intent_pct: float | None = None  # from scoring's latest score
    level: Annotated[str, ONE_TEXT] | None = None  # membership level, from scoring's growth
    band: Annotated[str, ONE_TEXT] | None = None  # from scoring's latest score, decay included
    activity: Annotated[str, ONE_TEXT] | None = None
    # Funnel steps reached, in funnel order (funnel.py). Rows written before steps were kept
    # decode with none reached.
    reached: Annotated[tuple[FunnelStep, ...], ONE_COPY] = ()
    # The contents engaged with last (latest last, at most RECENT_CONTENTS): a conversion counts
    # for each of them (content_stats.py). Rows written before decode with none.
    recent_contents: Annotated[tuple[str, ...], ONE_COPY] = ()
    # Funnel figures by cohort (funnel_figures.py): the China day of the first input, its source,
    # the latest store named, the milestones reached. Rows written before decode without them.
    entered_on: Annotated[str, ONE_COPY] | None = None
    first_source: Annotated[str, ONE_TEXT] | None = None
    dealer_id: Annotated[str, ONE_TEXT] | None = None
    milestones: Annotated[tuple[str, ...], ONE_COPY] = ()
    # rule condition key -> evidence
    evidence: Annotated[dict[str, Evidence], SHARED_WHEN_EMPTY] = field(default_factory=lambda: EMPTY)
    # Derived after every change.
    orientation: Orientation = Orientation.unknown
    stage: Stage = Stage.newcomer
    tags: Annotated[tuple[str, ...], ONE_COPY] = ()  # sorted


def apply_event(
    profile: Profile, event: TaggingEvent, thresholds: TaggingThresholds, rules: RuleSet
) -> Profile:
    """The profile after one touchpoint event. Dedupe by event_id is the caller's job."""
    return derive(_with_event(profile, event, thresholds, rules), thresholds, rules)


def apply_input(
    profile: Profile,
    event: TaggingEvent | None,
    score: ScoreSnapshot | None,
    received_at: datetime | None,
    thresholds: TaggingThresholds,
    rules: RuleSet,
) -> Profile:
    """The profile after one input of the chain: its event, then the score that includes it
    (derived once, for both)."""
    if event is not None:
        profile = _with_event(profile, event, thresholds, rules)
    if score is not None:
        profile = _with_score(profile, score, received_at, thresholds)
    return derive(profile, thresholds, rules)


def _with_event(
    profile: Profile, event: TaggingEvent, thresholds: TaggingThresholds, rules: RuleSet
) -> Profile:
    kind = event.type
    engaged = kind not in NOT_ENGAGEMENT
    deep = kind in DEEP_ENGAGEMENT or (
        kind == "live.watch" and event.number("duration_s") >= thresholds.deep_live_watch_s
    )
    value_points = profile.value_points
    value_point_interactions = profile.value_point_interactions
    value_point = event.text("value_point")
    if value_point in (Orientation.rational, Orientation.emotional) and kind in VALUE_POINT_WEIGHTS:
        value_points = dict(value_points)
        value_points[value_point] = value_points.get(value_point, 0.0) + VALUE_POINT_WEIGHTS[kind]
        value_point_interactions += 1
    topics = profile.topics
    if engaged and (event_topics := event.topics()):
        topics = dict(topics)
        for topic in event_topics:
            topics[topic] = topics.pop(topic, 0) + 1  # to the end: the latest seen last
        topics = strongest_topics(topics)
    price = kind == "coupon.claimed" or (engaged and event.properties.get("price_related") is True)
    recent_contents = profile.recent_contents
    if engaged and (content_id := event.content_id()):
        recent_contents = _latest_contents(recent_contents, (one_copy(content_id),))
    purchase = kind in PURCHASE_TYPES
    # The same float object while nothing is bought: a new 0.0 per input would be one per row.
    purchase_amount = (
        profile.purchase_amount + event.number("amount") if purchase else profile.purchase_amount
    )
    last_purchase = profile.last_purchase_at
    if purchase and (last_purchase is None or event.occurred_at > last_purchase):
        last_purchase = event.occurred_at
    last_event = profile.last_event_at
    if last_event is None or event.occurred_at > last_event:
        last_event = event.occurred_at

    updated = replace(
        profile,
        interactions=profile.interactions + engaged,
        deep_interactions=profile.deep_interactions + (engaged and deep),
        value_points=value_points,
        value_point_interactions=value_point_interactions,
        topics=topics,
        price_interactions=profile.price_interactions + price,
        recent_contents=recent_contents,
        shares=profile.shares + (kind == "content.share"),
        referrals=profile.referrals + (kind == "referral.made"),
        purchases=profile.purchases + purchase,
        purchase_amount=purchase_amount,
        last_purchase_at=last_purchase,
        last_event_at=last_event,
        reached=reached_after(profile.reached, kind),
        evidence=_record_evidence(profile.evidence, event, rules),
    )
    return _climb(updated, event)


def _climb(profile: Profile, event: TaggingEvent) -> Profile:
    """The value-ladder transition an event makes."""
    kind, layer = event.type, profile.layer
    if layer is Layer.owner:
        return profile
    if kind in OWNER_EVENTS:
        return replace(profile, layer=Layer.owner, recalled=False)
    if kind == "lead.defeated":
        return replace(
            profile,
            layer=Layer.defeated,
            recalled=False,
            defeated_received_at=event.received_at,
            defeat_reason=(reason := event.text("reason")) and one_text(reason),
        )
    if kind in INTENT_EVENTS:
        if layer is Layer.defeated:
            return replace(profile, layer=Layer.intent, recalled=True)
        return replace(profile, layer=Layer.intent)
    return profile


def apply_score(
    profile: Profile,
    score: ScoreSnapshot,
    received_at: datetime | None,
    thresholds: TaggingThresholds,
    rules: RuleSet,
) -> Profile:
    """The profile after scoring's score for an input that reached ingest at `received_at`."""
    return derive(_with_score(profile, score, received_at, thresholds), thresholds, rules)


def _with_score(
    profile: Profile, score: ScoreSnapshot, received_at: datetime | None, thresholds: TaggingThresholds
) -> Profile:
    updated = replace(
        profile,
        intent_pct=score.intent_pct,
        level=one_text(score.level),
        band=one_text(score.band),
        activity=one_text(score.activity),
    )
    if score.intent_pct >= thresholds.intent_pct:
        if profile.layer is Layer.prospect:
            updated = replace(updated, layer=Layer.intent)
        elif profile.layer is Layer.defeated and _after_defeat(received_at, profile):
            updated = replace(updated, layer=Layer.intent, recalled=True)
    return updated


def _after_defeat(received_at: datetime | None, profile: Profile) -> bool:
    # The score that comes with the defeat itself (the same input) is no re-engagement; only a
    # score of an input that reached ingest after the defeat is.
    defeated = profile.defeated_received_at
    return received_at is not None and (defeated is None or received_at > defeated)


def merge_profiles(
    survivor: Profile, merged: Profile, thresholds: TaggingThresholds, rules: RuleSet
) -> Profile:
    """Fold a merged-away customer's profile into the survivor's (identity.merged)."""
    keep = survivor if LADDER_RANK[survivor.layer] >= LADDER_RANK[merged.layer] else merged
    conditions = rules.conditions
    evidence = dict(survivor.evidence)
    for key, theirs in merged.evidence.items():
        ours = evidence.get(key)
        evidence[key] = merge_evidence(ours, theirs, conditions.get(key)) if ours else theirs
    return derive(
        replace(
            survivor,
            layer=keep.layer,
            recalled=keep.recalled,
            defeated_received_at=keep.defeated_received_at,
            defeat_reason=keep.defeat_reason,
            interactions=survivor.interactions + merged.interactions,
            deep_interactions=survivor.deep_interactions + merged.deep_interactions,
            value_points=_add(survivor.value_points, merged.value_points),
            value_point_interactions=survivor.value_point_interactions + merged.value_point_interactions,
            topics=strongest_topics(_add(survivor.topics, merged.topics)),
            price_interactions=survivor.price_interactions + merged.price_interactions,
            shares=survivor.shares + merged.shares,
            referrals=survivor.referrals + merged.referrals,
            purchases=survivor.purchases + merged.purchases,
            purchase_amount=survivor.purchase_amount + merged.purchase_amount,
            last_purchase_at=_latest(survivor.last_purchase_at, merged.last_purchase_at),
            last_event_at=_latest(survivor.last_event_at, merged.last_event_at),
            intent_pct=survivor.intent_pct if survivor.intent_pct is not None else merged.intent_pct,
            level=survivor.level or merged.level,
            reached=reached_by_either(survivor.reached, merged.reached),
            recent_contents=_latest_contents(merged.recent_contents, survivor.recent_contents),
            **_merged_cohort(survivor, merged),
            evidence=evidence or EMPTY,
        ),
        thresholds,
        rules,
    )


def _record_evidence(
    evidence: dict[str, Evidence], event: TaggingEvent, rules: RuleSet
) -> dict[str, Evidence]:
    conditions = rules.conditions
    matched = {key: c for key, c in conditions.items() if c.matches(event.type, event.properties)}
    kept = {key: value for key, value in evidence.items() if key in conditions}  # drop deleted rules'
    if not matched and len(kept) == len(evidence):
        return evidence
    for key, condition in matched.items():
        kept[key] = record_hit(kept.get(key), event.occurred_at, condition)
    return kept or EMPTY


def strongest_topics(topics: dict[str, int]) -> dict[str, int]:
    """The MAX_PROFILE_TOPICS topics with the most interactions; of equal counts, those later in
    `topics` (seen later) stay. The order of `topics` is kept."""
    if len(topics) <= MAX_PROFILE_TOPICS:
        return topics
    ranked = sorted(enumerate(topics.items()), key=lambda entry: (-entry[1][1], -entry[0]))
    kept = {topic for _, (topic, _) in ranked[:MAX_PROFILE_TOPICS]}
    return {topic: count for topic, count in topics.items() if topic in kept}


def _add(a: dict, b: dict) -> dict:
    total = dict(a)
    for key, value in b.items():
        total[key] = total.get(key, 0) + value
    return total or EMPTY


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(t for t in (a, b) if t is not None) if (a or b) else None


def milestones_in_order(held: set[str]) -> tuple[str, ...]:
    """The milestones `held`, in funnel order: one shared tuple per set (shared/compact.py)."""
    return one_copy(tuple(m for m in MILESTONES if m in held))


def _latest_contents(kept: tuple[str, ...], engaged: tuple[str, ...]) -> tuple[str, ...]:
    """`kept` then `engaged`, each content once where it came last, the latest RECENT_CONTENTS."""
    order = [c for c in kept if c not in engaged] + list(dict.fromkeys(engaged))
    return one_copy(tuple(order[-RECENT_CONTENTS:]))


def _merged_cohort(survivor: Profile, merged: Profile) -> dict[str, Any]:
    """The earlier cohort and its source, the survivor's store if known, every milestone
    (funnel_figures.py). The merge counts nothing new: each was counted as who they were."""
    earlier = min((survivor, merged), key=lambda p: p.entered_on or "9999-12-31")
    held = set(survivor.milestones) | set(merged.milestones)
    return {
        "entered_on": earlier.entered_on,
        "first_source": earlier.first_source,
        "dealer_id": survivor.dealer_id or merged.dealer_id,
        "milestones": milestones_in_order(held),
    }
