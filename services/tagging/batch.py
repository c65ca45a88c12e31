"""One batch of tagging inputs in, new profile records and outputs out. Pure: no Kafka or Redis.

Inputs reach the worker on two co-partitioned topics, both keyed by the customer they concern:
`scored.inputs.v1`, every input of the customer in order with the score it led to (the
enrichment chain, shared/chain.py: events, merges keyed by the merged customer, merged-in
scores), and handovers, the worker's own topic for moving a merged customer's profile, and
inputs that still name the merged customer, to the survivor's partition.

Every input applied goes on to `tagged.inputs.v1` with the profile it led to, so that campaign
decides on the score and profile of exactly what came before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from shared.chain import ChainInput, ProfileSnapshot, chain_record, with_profile
from shared.ledger import Ledger, LedgerEntry
from shared.outcome import BatchOutcomeBase
from shared.profiles import ProfileTagsChanged

from .families import derive
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


class Handover(BaseModel):
    """Something for the survivor of a merge: the merged profile, or an input that came late."""

    model_config = ConfigDict(frozen=True)

    handover_id: str  # the input id of what is handed over: what the receiver's ledger dedupes by
    customer_id: str  # the receiver
    from_customer_id: str
    merged_profile: Profile | None = None
    input: ScoredInput | None = None
    schema_version: int = 1


Payload = ScoredInput | Handover


def input_id(payload: Payload) -> str:
    if isinstance(payload, ScoredInput):
        return payload.input_id
    return payload.handover_id


@dataclass(frozen=True)
class Delivery:
    """One decoded input and where it was read: `partition` is "topic/partition"."""

    partition: str
    offset: int
    payload: Payload
    raw: bytes = b""  # the bytes read: a scored input goes on with the profile added

    @property
    def customer_id(self) -> str:
        return self.payload.customer_id


@dataclass
class BatchOutcome(BatchOutcomeBase):
    records: dict[str, ProfileRecord] = field(default_factory=dict)  # changed rows
    changes: list[ProfileTagsChanged] = field(default_factory=list)  # for profile.tags.v1
    handovers: list[Handover] = field(default_factory=list)
    chain: list[tuple[str, bytes]] = field(default_factory=list)  # (customer, tagged.inputs.v1 record)


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
                received = last.received_at if isinstance(last, ScoredInput) else None
                outcome.changes.append(change.model_copy(update={"received_at": received}))
    return outcome


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
        outcome.records[customer_id] = ProfileRecord(profile, record.ledger, None)
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


def _apply_inputs(
    record: ProfileRecord, inputs: list[Delivery], rules: Rules, outcome: BatchOutcome
) -> ProfileRecord:
    ledger = LedgerEntry(record.ledger)
    profile = record.profile
    customer_id = profile.customer_id
    merged_into = record.merged_into
    thresholds, ruleset = rules.thresholds, rules.rules
    chain = outcome.chain
    admitted = False
    for delivery in inputs:
        payload = delivery.payload
        if not ledger.admit(delivery.partition, delivery.offset, input_id(payload)):
            outcome.count("duplicate")
            continue
        admitted = True
        if merged_into is not None:
            outcome.handovers.append(_hand_on(payload, customer_id, merged_into))
            outcome.count("handed_over")
        elif isinstance(payload, Handover):
            if payload.merged_profile is not None:
                profile = merge_profiles(profile, payload.merged_profile, thresholds, ruleset)
                merged_in = f"profile-merged:{payload.handover_id}"
                chain.append((customer_id, chain_record(merged_in, customer_id, profile=snapshot(profile))))
            if (late := payload.input) is not None:
                profile = apply_input(profile, late.event, late.score, late.received_at, thresholds, ruleset)
                raw = late.model_dump_json(exclude_none=True).encode()
                chain.append((customer_id, with_profile(raw, snapshot(profile))))
            outcome.count("processed")
        elif payload.merge is not None:
            merged_into = payload.merge.survivor_customer_id
            outcome.handovers.append(
                Handover(
                    handover_id=payload.merge.merge_id,
                    customer_id=merged_into,
                    from_customer_id=customer_id,
                    merged_profile=profile,
                )
            )
            profile = Profile(customer_id=customer_id)
            chain.append((customer_id, delivery.raw or payload.model_dump_json(exclude_none=True).encode()))
            outcome.count("merged")
        else:
            profile = apply_input(
                profile, payload.event, payload.score, payload.received_at, thresholds, ruleset
            )
            raw = delivery.raw or payload.model_dump_json(exclude_none=True).encode()
            chain.append((customer_id, with_profile(raw, snapshot(profile))))
            outcome.count("processed")
    if not admitted:
        return record
    return ProfileRecord(profile=profile, ledger=ledger.freeze(), merged_into=merged_into)


def _hand_on(payload: Payload, customer_id: str, survivor: str) -> Handover:
    """An input for a customer already merged away goes on to the survivor, unchanged."""
    if isinstance(payload, Handover):
        return payload.model_copy(update={"customer_id": survivor})
    handover = Handover(handover_id=payload.input_id, customer_id=survivor, from_customer_id=customer_id)
    if payload.merge is not None:  # merged twice: nothing left to hand over
        return handover
    moved = payload.model_copy(update={"customer_id": survivor})
    return handover.model_copy(update={"input": moved})
