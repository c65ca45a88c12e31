"""One batch of campaign inputs in, new journey records and outputs out. Pure: no Kafka or Redis.

Inputs reach the worker on co-partitioned topics, all keyed by the customer they concern:
`tagged.inputs.v1` (the enrichment chain, shared/chain.py: every input of the customer in
order, with the score and profile it led to; merges keyed by the merged customer), ticks (the
worker's own: something of the customer's may be due) and handovers (the worker's own: a merged
customer's journey, or an input that still names them, for the survivor).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from shared.chain import ChainInput
from shared.ledger import Ledger, LedgerEntry
from shared.outcome import BatchOutcomeBase

from .consent import merge_consents
from .decide import Decision, Pacing
from .inputs import CampaignEvent
from .journey import (
    MAX_TOUCHES,
    Context,
    Conversion,
    Journey,
    Reaction,
    new_journey,
    on_input,
    on_tick,
)


class TaggedInput(ChainInput):
    """A record of `tagged.inputs.v1`, its event decoded as campaign reads events."""

    event: CampaignEvent | None = None


class Tick(BaseModel):
    """The clock, for one customer: releases what is due in their journey."""

    model_config = ConfigDict(frozen=True)

    tick_id: str
    customer_id: str
    schema_version: int = 1


@dataclass(frozen=True, slots=True)
class JourneyRecord:
    """A customer's row in the worker's table."""

    journey: Journey
    ledger: Ledger = field(default_factory=Ledger)
    merged_into: str | None = None


class Handover(BaseModel):
    model_config = ConfigDict(frozen=True)

    handover_id: str  # the input id of what is handed over: what the receiver's ledger dedupes by
    customer_id: str  # the receiver
    from_customer_id: str
    merged_journey: Journey | None = None
    input: TaggedInput | None = None
    schema_version: int = 1


Payload = TaggedInput | Tick | Handover


def input_id(payload: Payload) -> str:
    if isinstance(payload, TaggedInput):
        return payload.input_id
    if isinstance(payload, Tick):
        return payload.tick_id
    return payload.handover_id


@dataclass(frozen=True)
class Delivery:
    partition: str  # "topic/partition"
    offset: int
    payload: Payload
    raw: bytes = b""

    @property
    def customer_id(self) -> str:
        return self.payload.customer_id


@dataclass
class BatchOutcome(BatchOutcomeBase):
    records: dict[str, JourneyRecord] = field(default_factory=dict)  # changed rows
    decisions: list[Decision] = field(default_factory=list)
    conversions: list[Conversion] = field(default_factory=list)
    reassignments: list[tuple[str, Decision]] = field(default_factory=list)
    handovers: list[Handover] = field(default_factory=list)
    # The input each decision answers, for event-to-action latency: action id -> received_at.
    received_at: dict[str, datetime] = field(default_factory=dict)


def react_batch(
    deliveries: Iterable[Delivery], record_of: Callable[[str], JourneyRecord | None], context: Context
) -> BatchOutcome:
    """Apply a batch; each customer's inputs in the order they were read."""
    by_customer: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        by_customer.setdefault(delivery.customer_id, []).append(delivery)
    outcome = BatchOutcome()
    for customer_id, inputs in by_customer.items():
        record = record_of(customer_id) or JourneyRecord(journey=new_journey(customer_id))
        updated = _apply_inputs(record, inputs, context, outcome)
        if updated is not record:
            outcome.records[customer_id] = updated
    return outcome


def _apply_inputs(
    record: JourneyRecord, inputs: list[Delivery], context: Context, outcome: BatchOutcome
) -> JourneyRecord:
    ledger = LedgerEntry(record.ledger)
    journey, merged_into = record.journey, record.merged_into
    customer_id = journey.view.customer_id
    admitted = False
    for delivery in inputs:
        payload = delivery.payload
        if not ledger.admit(delivery.partition, delivery.offset, input_id(payload)):
            outcome.count("duplicate")
            continue
        admitted = True
        if merged_into is not None:
            if not isinstance(payload, Tick):  # the survivor keeps its own clock
                outcome.handovers.append(_hand_on(payload, customer_id, merged_into))
            outcome.count("handed_over")
            continue
        if isinstance(payload, TaggedInput) and payload.merge is not None:
            merged_into = payload.merge.survivor_customer_id
            outcome.handovers.append(
                Handover(
                    handover_id=payload.merge.merge_id,
                    customer_id=merged_into,
                    from_customer_id=customer_id,
                    merged_journey=journey,
                )
            )
            journey = new_journey(customer_id)
            outcome.count("merged")
            continue
        for reaction, received in _react(journey, payload, context):
            journey = reaction.journey
            outcome.decisions += reaction.decisions
            outcome.conversions += reaction.conversions
            outcome.reassignments += reaction.reassignments
            if received is not None:
                outcome.received_at.update({d.action_id: received for d in reaction.decisions})
        outcome.count("processed")
    if not admitted:
        return record
    return JourneyRecord(journey=journey, ledger=ledger.freeze(), merged_into=merged_into)


def _react(journey: Journey, payload: Payload, context: Context) -> list[tuple[Reaction, datetime | None]]:
    if isinstance(payload, TaggedInput):
        received = payload.received_at
        return [(on_input(journey, payload, replace(context, received_at=received)), received)]
    if isinstance(payload, Tick):
        return [(on_tick(journey, context), None)]
    reactions: list[tuple[Reaction, datetime | None]] = []
    if payload.merged_journey is not None:
        journey = merge_journeys(journey, payload.merged_journey)
        reactions.append((Reaction(journey), None))
    if payload.input is not None:
        reactions += _react(journey, payload.input, context)
    return reactions


def merge_journeys(survivor: Journey, merged: Journey) -> Journey:
    """The survivor keeps its view; history and what is scheduled come together."""
    sent_on = dict(merged.pacing.sent_on) | dict(survivor.pacing.sent_on)
    scheduled = tuple(
        replace(item, decision=replace(item.decision, customer_id=survivor.view.customer_id))
        if item.decision is not None
        else item
        for item in merged.scheduled
    )
    view = survivor.view
    consents = merge_consents(view.consents, merged.view.consents)  # per channel, the later word stands
    return replace(
        survivor,
        view=replace(view, consents=consents),
        pacing=Pacing(survivor.pacing.entered | merged.pacing.entered, sent_on),
        dealer_id=survivor.dealer_id or merged.dealer_id,
        city=survivor.city or merged.city,
        scheduled=survivor.scheduled + scheduled,
        touches=tuple(sorted((*survivor.touches, *merged.touches), key=lambda t: t.at))[-MAX_TOUCHES:],
    )


def _hand_on(payload: Payload, customer_id: str, survivor: str) -> Handover:
    if isinstance(payload, Handover):
        return payload.model_copy(update={"customer_id": survivor})
    handover = Handover(handover_id=input_id(payload), customer_id=survivor, from_customer_id=customer_id)
    if isinstance(payload, Tick) or payload.merge is not None:
        return handover
    return handover.model_copy(update={"input": payload.model_copy(update={"customer_id": survivor})})
