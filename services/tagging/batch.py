"""One batch of tagging inputs in, new profile records and outputs out. Pure: no Kafka or Redis.

Inputs reach the worker on four co-partitioned topics, all keyed by the customer they concern:
touchpoint events, intent scores, identity merges (keyed by the merged customer) and handovers,
the worker's own topic for moving a merged customer's profile, and inputs that still name the
merged customer, to the survivor's partition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from shared.identity import IdentityMerged
from shared.ledger import Ledger, LedgerEntry
from shared.outcome import BatchOutcomeBase
from shared.profiles import ProfileTagsChanged
from shared.scores import IntentScoreChanged

from .families import derive
from .inputs import TaggingEvent
from .profile import Profile, apply_event, apply_score, merge_profiles
from .rules import RuleSet
from .thresholds import TaggingThresholds


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    """A customer's row in the worker's table (encoded by tables.py)."""

    profile: Profile
    ledger: Ledger = field(default_factory=Ledger)
    merged_into: str | None = None  # set once this customer was merged away


class Handover(BaseModel):
    """Something for the survivor of a merge: the merged profile, or an input that came late."""

    model_config = ConfigDict(frozen=True)

    handover_id: str  # the input id of what is handed over: what the receiver's ledger dedupes by
    customer_id: str  # the receiver
    from_customer_id: str
    merged_profile: Profile | None = None
    event: TaggingEvent | None = None
    score: IntentScoreChanged | None = None
    schema_version: int = 1


Payload = TaggingEvent | IntentScoreChanged | IdentityMerged | Handover


def input_id(payload: Payload) -> str:
    if isinstance(payload, TaggingEvent):
        return payload.event_id
    if isinstance(payload, IntentScoreChanged):
        # A score carries the id of the event that moved it: keep the two apart in the ledger.
        return f"score:{payload.event_id}"
    if isinstance(payload, IdentityMerged):
        return payload.merge_id
    return payload.handover_id


@dataclass(frozen=True)
class Delivery:
    """One decoded input and where it was read: `partition` is "topic/partition"."""

    partition: str
    offset: int
    payload: Payload

    @property
    def customer_id(self) -> str:
        payload = self.payload
        if isinstance(payload, IdentityMerged):
            return payload.merged_customer_id
        return payload.customer_id


@dataclass
class BatchOutcome(BatchOutcomeBase):
    records: dict[str, ProfileRecord] = field(default_factory=dict)  # changed rows
    changes: list[ProfileTagsChanged] = field(default_factory=list)  # for profile.tags.v1
    handovers: list[Handover] = field(default_factory=list)


@dataclass(frozen=True)
class Rules:
    """What the domain needs to know to tag: thresholds and the tag rules in force."""

    thresholds: TaggingThresholds
    rules: RuleSet


def tag_batch(
    deliveries: Iterable[Delivery],
    record_of: Callable[[str], ProfileRecord | None],
    rules: Rules,
    now: datetime,
) -> BatchOutcome:
    """Apply a batch; each customer's inputs in the order they were read."""
    by_customer: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        by_customer.setdefault(delivery.customer_id, []).append(delivery)

    outcome = BatchOutcome()
    for customer_id, inputs in by_customer.items():
        before = record_of(customer_id)
        record = before or ProfileRecord(profile=Profile(customer_id=customer_id))
        updated = _apply_inputs(record, inputs, rules, outcome)
        if updated is record:
            continue
        outcome.records[customer_id] = updated
        if updated.merged_into is None:
            last = inputs[-1].payload
            change = profile_change(before.profile if before else None, updated.profile, input_id(last), now)
            if change is not None:
                received = last.received_at if isinstance(last, TaggingEvent | IntentScoreChanged) else None
                outcome.changes.append(change.model_copy(update={"received_at": received}))
    return outcome


def rederive(records: Iterable[ProfileRecord], rules: Rules, version_tag: str, now: datetime) -> BatchOutcome:
    """Re-evaluate profiles under new tag rules; the changed ones come back with their changes."""
    outcome = BatchOutcome()
    for record in records:
        if record.merged_into is not None:
            continue
        profile = derive(record.profile, rules.thresholds, rules.rules)
        if profile is record.profile:
            continue
        outcome.records[profile.customer_id] = ProfileRecord(profile, record.ledger, None)
        change = profile_change(record.profile, profile, f"{version_tag}:{profile.customer_id}", now)
        if change is not None:
            outcome.changes.append(change)
    return outcome


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


def _apply_inputs(
    record: ProfileRecord, inputs: list[Delivery], rules: Rules, outcome: BatchOutcome
) -> ProfileRecord:
    ledger = LedgerEntry(record.ledger)
    profile = record.profile
    merged_into = record.merged_into
    thresholds, ruleset = rules.thresholds, rules.rules
    admitted = False
    for delivery in inputs:
        payload = delivery.payload
        if not ledger.admit(delivery.partition, delivery.offset, input_id(payload)):
            outcome.count("duplicate")
            continue
        admitted = True
        if merged_into is not None:
            outcome.handovers.append(_hand_on(payload, profile.customer_id, merged_into))
            outcome.count("handed_over")
        elif isinstance(payload, IdentityMerged):
            merged_into = payload.survivor_customer_id
            outcome.handovers.append(
                Handover(
                    handover_id=payload.merge_id,
                    customer_id=merged_into,
                    from_customer_id=profile.customer_id,
                    merged_profile=profile,
                )
            )
            profile = Profile(customer_id=profile.customer_id)
            outcome.count("merged")
        elif isinstance(payload, Handover):
            if payload.merged_profile is not None:
                profile = merge_profiles(profile, payload.merged_profile, thresholds, ruleset)
            if payload.event is not None:
                profile = apply_event(profile, payload.event, thresholds, ruleset)
            if payload.score is not None:
                profile = apply_score(profile, payload.score, thresholds, ruleset)
            outcome.count("processed")
        elif isinstance(payload, IntentScoreChanged):
            profile = apply_score(profile, payload, thresholds, ruleset)
            outcome.count("processed")
        else:
            profile = apply_event(profile, payload, thresholds, ruleset)
            outcome.count("processed")
    if not admitted:
        return record
    return ProfileRecord(profile=profile, ledger=ledger.freeze(), merged_into=merged_into)


def _hand_on(payload: Payload, customer_id: str, survivor: str) -> Handover:
    """An input for a customer already merged away goes on to the survivor, unchanged."""
    if isinstance(payload, Handover):
        return payload.model_copy(update={"customer_id": survivor})
    handover = Handover(handover_id=input_id(payload), customer_id=survivor, from_customer_id=customer_id)
    if isinstance(payload, IdentityMerged):  # merged twice: nothing left to hand over
        return handover
    moved = payload.model_copy(update={"customer_id": survivor})
    if isinstance(payload, IntentScoreChanged):
        return handover.model_copy(update={"score": moved})
    return handover.model_copy(update={"event": moved})
