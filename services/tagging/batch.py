"""One batch of tagging inputs in, new profile records and outputs out. Pure: no Kafka or Redis.

Inputs reach the worker on two co-partitioned topics, both keyed by the customer they concern:
`scored.inputs.v1`, every input of the customer in order with the score it led to (the
enrichment chain, shared/chain.py: events, merges keyed by the merged customer, and the input
where a merged customer joins the survivor), and handovers, the worker's own topic for moving a
merged customer's profile, and inputs that still name the merged customer, to the survivor's
partition.

Every input applied goes on to `tagged.inputs.v1` with the profile it led to, so that campaign
decides on the score and profile of exactly what came before.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from shared.chain import ChainInput, ProfileSnapshot, chain_record, with_profile
from shared.dataclass_replace import replace
from shared.erasure import CustomerErased
from shared.fold import NO_BARRIER, Barrier, CustomerFold, Delivery, FoldOutcome, Handover, fold_batch
from shared.identity import IdentityMerged
from shared.ledger import Ledger
from shared.profiles import ProfileTagsChanged

from .content_touches import ContentTouch, content_touches
from .families import derive
from .funnel_figures import FunnelTouch, funnel_progress
from .inputs import TaggingEvent
from .profile import Profile, apply_input, merge_profiles
from .rules import RuleSet
from .thresholds import TaggingThresholds


class ScoredInput(ChainInput):
    """A record of `scored.inputs.v1`, its event decoded as tagging reads events."""

    event: TaggingEvent | None = None


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    """A customer's row in the worker's table (encoded by tables.py)."""

    profile: Profile
    ledger: Ledger = field(default_factory=Ledger)
    merged_into: str | None = None  # set once this customer was merged away
    barrier: Barrier = NO_BARRIER  # merges waiting for their place (shared/fold.py)


TaggingHandover = Handover[Profile]
Payload = ScoredInput | TaggingHandover | CustomerErased
TaggingDelivery = Delivery[Payload]


def input_id(payload: Payload) -> str:
    return payload.handover_id if isinstance(payload, Handover) else payload.input_id


@dataclass
class BatchOutcome(FoldOutcome):
    records: dict[str, ProfileRecord] = field(default_factory=dict)  # changed rows
    changes: list[ProfileTagsChanged] = field(default_factory=list)  # for profile.tags.v1
    chain: list[tuple[str, bytes]] = field(default_factory=list)  # (customer, tagged.inputs.v1 record)
    content_touches: list[ContentTouch] = field(default_factory=list)  # content_stats.py
    funnel_touches: list[FunnelTouch] = field(default_factory=list)  # funnel_stats.py


@dataclass(frozen=True)
class Rules:
    """What the domain needs to know to tag: thresholds and the tag rules in force."""

    thresholds: TaggingThresholds
    rules: RuleSet


class TaggingFold(CustomerFold[ProfileRecord, Profile, Payload, BatchOutcome]):
    """What an input does to a customer's profile, and what goes on along the chain."""

    state_field = "profile"
    payload_types = (ScoredInput, TaggingHandover)

    def __init__(self, rules: Rules, now: datetime) -> None:
        self.thresholds, self.rules = rules.thresholds, rules.rules
        self.now = now

    def new_row(self, customer_id: str) -> ProfileRecord:
        return ProfileRecord(profile=Profile(customer_id=customer_id))

    def input_id(self, payload: Payload) -> str:
        return input_id(payload)

    def merge_of(self, payload: Payload) -> IdentityMerged | None:
        return payload.merge if isinstance(payload, ScoredInput) else None

    def joins(self, payload: Payload) -> str | None:
        return payload.joins if isinstance(payload, ScoredInput) else None

    def decode(self, raw: bytes) -> ScoredInput:
        return ScoredInput.model_validate_json(raw)

    def apply(self, state: Profile, delivery: TaggingDelivery, outcome: BatchOutcome) -> Profile:
        scored = delivery.payload
        assert isinstance(scored, ScoredInput)
        profile = apply_input(
            state, scored.event, scored.score, scored.received_at, self.thresholds, self.rules
        )
        profile, funnel = funnel_progress(state, profile, scored.event)
        outcome.funnel_touches += funnel
        raw = delivery.raw or scored.model_dump_json(exclude_none=True).encode()
        outcome.chain.append((profile.customer_id, with_profile(raw, snapshot(profile))))
        if scored.event is not None:
            outcome.content_touches += content_touches(scored.event, state, profile)
        return profile

    def merge_in(self, state: Profile, handover: TaggingHandover, outcome: BatchOutcome) -> Profile:
        # Right before the input that joins the merge, which goes on with the merged profile.
        assert handover.state is not None
        return merge_profiles(state, handover.state, self.thresholds, self.rules)

    def merged_away(
        self, state: Profile, delivery: TaggingDelivery, merge: IdentityMerged, outcome: BatchOutcome
    ) -> None:
        # Campaign hands over its journey at this same place.
        raw = delivery.raw or delivery.payload.model_dump_json(exclude_none=True).encode()
        outcome.chain.append((state.customer_id, raw))

    def finish(
        self,
        customer_id: str,
        before: ProfileRecord | None,
        after: ProfileRecord,
        inputs: list[TaggingDelivery],
        outcome: BatchOutcome,
    ) -> ProfileRecord:
        if after.merged_into is None:
            last = inputs[-1].payload
            change = profile_change(
                before.profile if before else None, after.profile, input_id(last), self.now
            )
            if change is not None:
                received = last.received_at if isinstance(last, ScoredInput) else None
                outcome.changes.append(change.model_copy(update={"received_at": received}))
        return after


def tag_batch(
    deliveries: Iterable[TaggingDelivery],
    record_of: Callable[[str], ProfileRecord | None],
    rules: Rules,
    now: datetime,
    erased: Container[str] = frozenset(),
) -> BatchOutcome:
    """Apply a batch; each customer's inputs in the order they were read (none of `erased`)."""
    return fold_batch(deliveries, record_of, TaggingFold(rules, now), BatchOutcome(), erased)


def rederive(records: Iterable[ProfileRecord], rules: Rules, version_tag: str, now: datetime) -> BatchOutcome:
    """Re-evaluate profiles under new tag rules; the changed ones come back with their changes,
    and go on along the chain as an input of their own."""
    outcome = BatchOutcome()
    for record in records:
        if record.merged_into is not None:
            continue
        profile = derive(record.profile, rules.thresholds, rules.rules)
        if profile is record.profile:
            continue
        customer_id = profile.customer_id
        outcome.records[customer_id] = replace(record, profile=profile)
        change_id = f"{version_tag}:{customer_id}"
        change = profile_change(record.profile, profile, change_id, now)
        if change is not None:
            outcome.changes.append(change)
            outcome.chain.append(
                (customer_id, chain_record(change_id, customer_id, profile=snapshot(profile)))
            )
    return outcome


def snapshot(profile: Profile) -> ProfileSnapshot:
    return ProfileSnapshot.model_construct(
        layer=profile.layer.value,
        orientation=profile.orientation.value,
        stage=profile.stage.value,
        tags=list(profile.tags),
        milestones=list(profile.milestones),
    )


def profile_change(
    before: Profile | None, after: Profile, event_id: str, now: datetime
) -> ProfileTagsChanged | None:
    """The profile.tags.v1 record for a change of layer, orientation, stage or tags; None if none."""
    if before is not None and (before.layer, before.orientation, before.stage, before.tags) == (
        after.layer,
        after.orientation,
        after.stage,
        after.tags,
    ):
        return None
    old_tags = set(before.tags) if before else set()
    return ProfileTagsChanged.model_construct(
        type="profile.tags_changed",
        schema_version=1,
        event_id=event_id,
        customer_id=after.customer_id,
        layer=after.layer.value,
        orientation=after.orientation.value,
        stage=after.stage.value,
        previous_layer=before.layer.value if before else None,
        previous_orientation=before.orientation.value if before else None,
        previous_stage=before.stage.value if before else None,
        tags=list(after.tags),
        tags_added=sorted(set(after.tags) - old_tags),
        tags_removed=sorted(old_tags - set(after.tags)),
        intent_pct=after.intent_pct,
        changed_at=now,
        received_at=None,
    )
