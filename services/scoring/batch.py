"""One batch of scoring inputs in, new customer records and outputs out. Pure: no Kafka or Redis.

Inputs reach the worker on three co-partitioned topics, all keyed by the customer they concern:
touchpoint events, identity merges (keyed by the merged customer) and handovers, the worker's
own topic for moving things to a survivor's partition. A merged customer's state is handed over
to the survivor; inputs that still name the merged customer afterwards are handed on too.

Every input applied goes on along the enrichment chain (`shared/chain.py`) with the score it
led to: events and merges as they came, a merged-in state as an input of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from pydantic import BaseModel, ConfigDict

from shared.chain import ScoreSnapshot, chain_record
from shared.identity import IdentityMerged
from shared.ledger import Ledger, LedgerEntry
from shared.outcome import BatchOutcomeBase
from shared.scores import IntentScoreChanged

from .inputs import ScoringEvent
from .intent import (
    CustomerScore,
    activity_of,
    apply_event,
    band_of,
    intent_pct,
    level_of,
    merge_states,
    model_interest,
    score_at,
    should_emit,
)
from .plan import ScoringPlan


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """A customer's row in the worker's table (encoded by tables.py)."""

    score: CustomerScore
    ledger: Ledger = field(default_factory=Ledger)
    emitted_pct: float | None = None  # intent_pct last published on intent.scores.v1
    merged_into: str | None = None  # set once this customer was merged away


class Handover(BaseModel):
    """Something for the survivor of a merge: the merged state, or an input that came late."""

    model_config = ConfigDict(frozen=True)

    handover_id: str  # the merge_id or event_id: what the receiver's ledger dedupes by
    customer_id: str  # the receiver
    from_customer_id: str
    merged_score: CustomerScore | None = None
    event: ScoringEvent | None = None
    event_json: str | None = None  # the whole event as published, for the chain
    schema_version: int = 1


Payload = ScoringEvent | IdentityMerged | Handover


@dataclass(frozen=True)
class Delivery:
    """One decoded input and where it was read: `partition` is "topic/partition"."""

    partition: str
    offset: int
    payload: Payload
    raw: bytes = b""  # the bytes read: an event goes on along the chain as it came

    @property
    def customer_id(self) -> str:
        payload = self.payload
        if isinstance(payload, IdentityMerged):
            return payload.merged_customer_id
        return payload.customer_id

    @property
    def input_id(self) -> str:
        payload = self.payload
        if isinstance(payload, ScoringEvent):
            return payload.event_id
        if isinstance(payload, IdentityMerged):
            return payload.merge_id
        return payload.handover_id


@dataclass
class BatchOutcome(BatchOutcomeBase):
    records: dict[str, CustomerRecord] = field(default_factory=dict)  # changed rows
    scores: list[IntentScoreChanged] = field(default_factory=list)  # for intent.scores.v1
    handovers: list[Handover] = field(default_factory=list)
    chain: list[tuple[str, bytes]] = field(default_factory=list)  # (customer, scored.inputs.v1 record)


def score_batch(
    deliveries: Iterable[Delivery],
    record_of: Callable[[str], CustomerRecord | None],
    plan: ScoringPlan,
    now: datetime,
) -> BatchOutcome:
    """Apply a batch; each customer's inputs in the order they were read."""
    by_customer: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        by_customer.setdefault(delivery.customer_id, []).append(delivery)

    outcome = BatchOutcome()
    for customer_id, inputs in by_customer.items():
        record = record_of(customer_id) or CustomerRecord(score=CustomerScore(customer_id=customer_id))
        updated = _apply_inputs(record, inputs, plan, now, outcome)
        if updated is not record:
            updated = _maybe_emit(updated, inputs, plan, now, outcome)
            outcome.records[customer_id] = updated
    return outcome


def _apply_inputs(
    record: CustomerRecord, inputs: list[Delivery], plan: ScoringPlan, now: datetime, outcome: BatchOutcome
) -> CustomerRecord:
    ledger = LedgerEntry(record.ledger)
    score = record.score
    merged_into = record.merged_into
    customer_id = score.customer_id
    chain = outcome.chain
    admitted = False
    for delivery in inputs:
        if not ledger.admit(delivery.partition, delivery.offset, delivery.input_id):
            outcome.count("duplicate")
            continue
        admitted = True
        payload = delivery.payload
        if merged_into is not None:
            outcome.handovers.append(_hand_on(delivery, customer_id, merged_into))
            outcome.count("handed_over")
        elif isinstance(payload, IdentityMerged):
            merged_into = payload.survivor_customer_id
            outcome.handovers.append(
                Handover(
                    handover_id=payload.merge_id,
                    customer_id=merged_into,
                    from_customer_id=score.customer_id,
                    merged_score=score,
                )
            )
            score = CustomerScore(customer_id=score.customer_id)
            # Downstream workers hand over their state for the customer at this same place.
            chain.append((customer_id, chain_record(payload.merge_id, customer_id, merge=payload)))
            outcome.count("merged")
        elif isinstance(payload, Handover):
            if payload.merged_score is not None:
                score = merge_states(score, payload.merged_score, plan)
                merged_in = f"merged:{payload.handover_id}"
                chain.append(
                    (customer_id, chain_record(merged_in, customer_id, score=snapshot(score, plan, now)))
                )
            if payload.event is not None:
                score = apply_event(score, payload.event, plan)
                event_json = (payload.event_json or payload.event.model_dump_json()).encode()
                chain.append(
                    (
                        customer_id,
                        chain_record(
                            payload.handover_id,
                            customer_id,
                            received_at=payload.event.received_at,
                            event_json=event_json,
                            score=snapshot(score, plan, now),
                        ),
                    )
                )
            outcome.count("processed")
        else:
            score = apply_event(score, payload, plan)
            chain.append(
                (
                    customer_id,
                    chain_record(
                        payload.event_id,
                        customer_id,
                        received_at=payload.received_at,
                        event_json=delivery.raw or payload.model_dump_json().encode(),
                        score=snapshot(score, plan, now),
                    ),
                )
            )
            outcome.count("processed")
    if not admitted:
        return record
    return CustomerRecord(
        score=score, ledger=ledger.freeze(), emitted_pct=record.emitted_pct, merged_into=merged_into
    )


def snapshot(score: CustomerScore, plan: ScoringPlan, now: datetime) -> ScoreSnapshot:
    """The score as of now (or its last input, if later), for the chain."""
    at = max(now, score.score_at) if score.score_at else now
    value = score_at(score, at, plan)
    pct = round(intent_pct(value, plan), 2)
    # Built from validated state; model_construct skips validating it again, per input.
    return ScoreSnapshot.model_construct(
        intent_score=value,
        intent_pct=pct,
        band=band_of(pct, plan),
        activity=activity_of(score, at, plan),
        points=score.points,
        growth=score.growth,
        level=level_of(score.growth, plan),
    )


def _hand_on(delivery: Delivery, customer_id: str, survivor: str) -> Handover:
    """An input for a customer already merged away goes on to the survivor, unchanged."""
    payload = delivery.payload
    if isinstance(payload, Handover):
        return payload.model_copy(update={"customer_id": survivor})
    if isinstance(payload, IdentityMerged):  # merged twice: nothing left to hand over
        return Handover(handover_id=payload.merge_id, customer_id=survivor, from_customer_id=customer_id)
    whole = orjson.loads(delivery.raw) if delivery.raw else payload.model_dump(mode="json")
    return Handover(
        handover_id=payload.event_id,
        customer_id=survivor,
        from_customer_id=customer_id,
        event=payload.model_copy(update={"customer_id": survivor}),
        event_json=orjson.dumps({**whole, "customer_id": survivor}).decode(),
    )


def _maybe_emit(
    record: CustomerRecord, inputs: list[Delivery], plan: ScoringPlan, now: datetime, outcome: BatchOutcome
) -> CustomerRecord:
    if record.merged_into is not None:
        return record
    score = record.score
    at = max(now, score.score_at) if score.score_at else now
    pct = intent_pct(score_at(score, at, plan), plan)
    if not should_emit(record.emitted_pct, pct, plan):
        return record
    last = inputs[-1].payload
    previous = record.emitted_pct
    outcome.scores.append(
        # Built from validated state; model_construct skips validating it again, per customer.
        IntentScoreChanged.model_construct(
            type="intent.score_changed",
            schema_version=1,
            event_id=inputs[-1].input_id,
            customer_id=score.customer_id,
            intent_score=score_at(score, at, plan),
            intent_pct=round(pct, 2),
            band=band_of(pct, plan),
            previous_pct=previous,
            previous_band=band_of(previous, plan) if previous is not None else None,
            model_interest=model_interest(score, at, plan),
            points=score.points,
            growth=score.growth,
            level=level_of(score.growth, plan),
            activity=activity_of(score, at, plan),
            scored_at=now,
            received_at=last.received_at if isinstance(last, ScoringEvent) else None,
        )
    )
    return CustomerRecord(
        score=score, ledger=record.ledger, emitted_pct=round(pct, 2), merged_into=record.merged_into
    )
