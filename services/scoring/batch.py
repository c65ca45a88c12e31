"""One batch of scoring inputs in, new customer records and outputs out. Pure: no Kafka or Redis.

Inputs reach the worker on three co-partitioned topics, all keyed by the customer they concern:
touchpoint events (among them a merge's two records: `identity.merged` keyed by the merged
customer, `identity.joined` keyed by the survivor), ticks, and handovers, the worker's own topic
for moving a merged customer's score to the survivor's partition. The loop around an input — ledger,
merges, handovers — is the one every worker shares (`shared/fold.py`); `ScoringFold` says what
an input does to a customer's score.

Every input applied goes on along the enrichment chain (`shared/chain.py`) with the score it
led to: events and merges as they came, a merged-in state as an input of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from shared.chain import chain_record
from shared.dataclass_replace import replace
from shared.erasure import CustomerErased
from shared.fold import NO_BARRIER, Barrier, CustomerFold, Delivery, FoldOutcome, Handover, Tick, fold_batch
from shared.identity import IdentityJoined, IdentityMerged
from shared.ledger import Ledger
from shared.scores import IntentScoreChanged

from .inputs import ScoringEvent, decode_touchpoint
from .intent import (
    CustomerScore,
    activity_of,
    apply_event,
    band_of,
    intent_pct,
    level_of,
    merge_states,
    model_interest,
    next_change_at,
    score_at,
    should_emit,
)
from .latest_events import latest_entry
from .plan import ScoringPlan


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """A customer's row in the worker's table (encoded by tables.py)."""

    score: CustomerScore
    ledger: Ledger = field(default_factory=Ledger)
    emitted_pct: float | None = None  # intent_pct last published on intent.scores.v1
    merged_into: str | None = None  # set once this customer was merged away
    barrier: Barrier = NO_BARRIER  # merges waiting for their place (shared/fold.py)


SCORE_CHANGED_VERSION = IntentScoreChanged.model_fields["schema_version"].default

ScoringHandover = Handover[CustomerScore]
Payload = ScoringEvent | IdentityMerged | IdentityJoined | Tick | ScoringHandover | CustomerErased
ScoringDelivery = Delivery[Payload]


@dataclass
class BatchOutcome(FoldOutcome):
    records: dict[str, CustomerRecord] = field(default_factory=dict)  # changed rows
    scores: list[tuple[str, bytes]] = field(default_factory=list)  # (customer, intent.scores.v1 record)
    chain: list[tuple[str, bytes]] = field(default_factory=list)  # (customer, scored.inputs.v1 record)
    # When time alone next moves each changed customer's band or activity (None: never).
    due: dict[str, datetime | None] = field(default_factory=dict)
    # The customers' latest events (latest_events.py): (customer, entry, occurred_at epoch s), and
    # (survivor, merged customer) for every merged-in state, whose entries the survivor takes over.
    latest_events: list[tuple[str, bytes, float]] = field(default_factory=list)
    events_moved: list[tuple[str, str]] = field(default_factory=list)


class ScoringFold(CustomerFold[CustomerRecord, CustomerScore, Payload, BatchOutcome]):
    """What an input does to a customer's score, and what goes on along the chain."""

    state_field = "score"
    payload_types = (ScoringEvent, IdentityMerged, IdentityJoined, Tick, ScoringHandover)

    def __init__(self, plan: ScoringPlan, now: datetime) -> None:
        self.plan = plan
        self.now = now

    def new_row(self, customer_id: str) -> CustomerRecord:
        return CustomerRecord(score=CustomerScore(customer_id=customer_id))

    def input_id(self, payload: Payload) -> str:
        if isinstance(payload, IdentityMerged):
            return payload.merge_id
        if isinstance(payload, IdentityJoined):
            return f"joined:{payload.merge_id}"  # not the merge id: the handover has that one
        if isinstance(payload, Tick):
            return payload.tick_id
        assert isinstance(payload, ScoringEvent)
        return payload.event_id

    def joins(self, payload: Payload) -> str | None:
        return payload.merge_id if isinstance(payload, IdentityJoined) else None

    def decode(self, raw: bytes) -> ScoringEvent | IdentityMerged | IdentityJoined:
        return decode_touchpoint(raw)

    def apply(self, state: CustomerScore, delivery: ScoringDelivery, outcome: BatchOutcome) -> CustomerScore:
        event = delivery.payload
        if isinstance(event, IdentityJoined):
            return state  # the merged customer's score came in right before (merge_in)
        if isinstance(event, Tick):
            # Time alone moved the band or the activity: downstream hears it as an input of its own.
            record = chain_record(
                event.tick_id, state.customer_id, score=snapshot(state, self.plan, self.now)
            )
            outcome.chain.append((state.customer_id, record))
            return state
        assert isinstance(event, ScoringEvent)
        score = apply_event(state, event, self.plan)
        record = chain_record(
            event.event_id,
            score.customer_id,
            received_at=event.received_at,
            event_json=delivery.raw or event.model_dump_json().encode(),
            score=snapshot(score, self.plan, self.now),
        )
        outcome.chain.append((score.customer_id, record))
        latest = latest_entry(event, self.plan)
        outcome.latest_events.append((score.customer_id, latest, event.occurred_at.timestamp()))
        return score

    def merge_in(
        self, state: CustomerScore, handover: ScoringHandover, outcome: BatchOutcome
    ) -> CustomerScore:
        assert handover.state is not None
        score = merge_states(state, handover.state, self.plan)
        # Downstream workers take in their state of the merged customer at this input.
        merge_id = handover.handover_id
        snap = snapshot(score, self.plan, self.now)
        record = chain_record(f"merged:{merge_id}", score.customer_id, joins=merge_id, score=snap)
        outcome.chain.append((score.customer_id, record))
        outcome.events_moved.append((score.customer_id, handover.from_customer_id))
        return score

    def merged_away(
        self, state: CustomerScore, delivery: ScoringDelivery, merge: IdentityMerged, outcome: BatchOutcome
    ) -> None:
        # Downstream workers hand over their state for the customer at this same place.
        outcome.chain.append(
            (state.customer_id, chain_record(merge.merge_id, state.customer_id, merge=merge))
        )

    def finish(
        self,
        customer_id: str,
        before: CustomerRecord | None,
        after: CustomerRecord,
        inputs: list[ScoringDelivery],
        outcome: BatchOutcome,
    ) -> CustomerRecord:
        last = inputs[-1].payload
        last_id = last.handover_id if isinstance(last, Handover) else self.input_id(last)
        received_at = last.received_at if isinstance(last, ScoringEvent) else None
        merged = after.merged_into is not None
        outcome.due[customer_id] = None if merged else next_change_at(after.score, self.now, self.plan)
        return _maybe_emit(after, last_id, received_at, self.plan, self.now, outcome)


def score_batch(
    deliveries: Iterable[ScoringDelivery],
    record_of: Callable[[str], CustomerRecord | None],
    plan: ScoringPlan,
    now: datetime,
    erased: Container[str] = frozenset(),
) -> BatchOutcome:
    """Apply a batch; each customer's inputs in the order they were read (none of `erased`)."""
    return fold_batch(deliveries, record_of, ScoringFold(plan, now), BatchOutcome(), erased)


def snapshot(score: CustomerScore, plan: ScoringPlan, now: datetime) -> dict[str, Any]:
    """The score as of now (or its last input, if later), for the chain: `ScoreSnapshot`'s fields,
    as a dict (building the model per input cost the fold a tenth of its time; the chain's
    readers validate it as a `ScoreSnapshot`)."""
    at = max(now, score.score_at) if score.score_at else now
    value = score_at(score, at, plan)
    pct = intent_pct(value, plan)
    models = score.model_scores
    return {
        "intent_score": value,
        "intent_pct": round(pct, 2),
        "band": band_of(pct, plan),  # of the exact value, as intent.scores.v1 and the API have it
        "activity": activity_of(score, at, plan),
        "points": score.points,
        "growth": score.growth,
        "level": level_of(score.growth, plan),
        "top_model": max(models, key=models.__getitem__) if models else None,
    }


def _maybe_emit(
    record: CustomerRecord,
    last_id: str,
    received_at: datetime | None,
    plan: ScoringPlan,
    now: datetime,
    outcome: BatchOutcome,
) -> CustomerRecord:
    if record.merged_into is not None:
        return record
    score = record.score
    at = max(now, score.score_at) if score.score_at else now
    value = score_at(score, at, plan)
    pct = intent_pct(value, plan)
    if not should_emit(record.emitted_pct, pct, plan):
        return record
    previous = record.emitted_pct
    # `IntentScoreChanged`'s fields, in its order, written by orjson: building and dumping the
    # model per emission (pydantic's model_construct, then model_dump_json) cost 10 µs, a dict 1.5.
    # Its readers validate it as an `IntentScoreChanged` (a unit test reads one back).
    changed = {
        "type": "intent.score_changed",
        "event_id": last_id,
        "customer_id": score.customer_id,
        "intent_score": value,
        "intent_pct": round(pct, 2),
        "band": band_of(pct, plan),
        "previous_pct": previous,
        "previous_band": band_of(previous, plan) if previous is not None else None,
        "model_interest": model_interest(score, at, plan),
        "points": score.points,
        "growth": score.growth,
        "level": level_of(score.growth, plan),
        "activity": activity_of(score, at, plan),
        "scored_at": now,
        "received_at": received_at,
        "schema_version": SCORE_CHANGED_VERSION,
    }
    outcome.scores.append((score.customer_id, orjson.dumps(changed)))
    return replace(record, emitted_pct=round(pct, 2))
