"""One batch of campaign inputs in, new journey records and outputs out. Pure: no Kafka or Redis.

Inputs reach the worker on co-partitioned topics, all keyed by the customer they concern:
`tagged.inputs.v1` (the enrichment chain, shared/chain.py: every input of the customer in
order, with the score and profile it led to; merges keyed by the merged customer; the input
where a merged customer joins the survivor, `joins`), ticks (the
worker's own: something of the customer's may be due) and handovers (the worker's own: a merged
customer's journey, or an input that still names them, for the survivor). The loop around an
input — ledger, merges, handovers — is the one every worker shares (`shared/fold.py`);
`CampaignFold` says what an input does to a customer's journey.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from shared.chain import ChainInput
from shared.dataclass_replace import replace
from shared.erasure import CustomerErased
from shared.fold import NO_BARRIER, Barrier, CustomerFold, Delivery, FoldOutcome, Handover, Tick, fold_batch
from shared.funnels import FunnelTouch
from shared.identity import IdentityMerged
from shared.ledger import Ledger

from .broadcasts import campaign_of
from .consent import Consent, merge_consents
from .decide import Decision, Pacing, bounded_pacing
from .inputs import CampaignEvent
from .journey import (
    MAX_RUNS,
    MAX_TOUCHES,
    Context,
    Conversion,
    Journey,
    Reaction,
    bounded,
    new_journey,
    on_broadcast,
    on_input,
    on_tick,
)


class TaggedInput(ChainInput):
    """A record of `tagged.inputs.v1`, its event decoded as campaign reads events."""

    event: CampaignEvent | None = None


@dataclass(frozen=True, slots=True)
class JourneyRecord:
    """A customer's row in the worker's table."""

    journey: Journey
    ledger: Ledger = field(default_factory=Ledger)
    merged_into: str | None = None
    barrier: Barrier = NO_BARRIER  # merges waiting for their place (shared/fold.py)


CampaignHandover = Handover[Journey]
Payload = TaggedInput | Tick | CampaignHandover | CustomerErased
CampaignDelivery = Delivery[Payload]


def input_id(payload: Payload) -> str:
    if isinstance(payload, Handover):
        return payload.handover_id
    return payload.tick_id if isinstance(payload, Tick) else payload.input_id


@dataclass
class BatchOutcome(FoldOutcome):
    records: dict[str, JourneyRecord] = field(default_factory=dict)  # changed rows
    decisions: list[Decision] = field(default_factory=list)
    conversions: list[Conversion] = field(default_factory=list)
    reassignments: list[tuple[str, Decision]] = field(default_factory=list)
    figures: list[tuple[str, str, str]] = field(default_factory=list)  # (campaign, figure, customer)
    funnel: list[FunnelTouch] = field(default_factory=list)  # campaigns' funnels (shared/funnels.py)
    # The input each decision answers, for event-to-action latency: action id -> received_at.
    received_at: dict[str, datetime] = field(default_factory=dict)


class CampaignFold(CustomerFold[JourneyRecord, Journey, Payload, BatchOutcome]):
    """What an input does to a customer's journey: decisions, conversions, what comes due."""

    state_field = "journey"
    payload_types = (TaggedInput, Tick, CampaignHandover)

    def __init__(self, context: Context) -> None:
        self.context = context

    def new_row(self, customer_id: str) -> JourneyRecord:
        return JourneyRecord(journey=new_journey(customer_id))

    def input_id(self, payload: Payload) -> str:
        return input_id(payload)

    def merge_of(self, payload: Payload) -> IdentityMerged | None:
        return payload.merge if isinstance(payload, TaggedInput) else None

    def joins(self, payload: Payload) -> str | None:
        return payload.joins if isinstance(payload, TaggedInput) else None

    def decode(self, raw: bytes) -> TaggedInput:
        return TaggedInput.model_validate_json(raw)

    def apply(self, state: Journey, delivery: CampaignDelivery, outcome: BatchOutcome) -> Journey:
        payload = delivery.payload
        if isinstance(payload, Tick):
            if (broadcast := campaign_of(payload.tick_id)) is not None:
                return _take(on_broadcast(state, broadcast, payload.tick_id, self.context), None, outcome)
            return _take(on_tick(state, self.context), None, outcome)
        assert isinstance(payload, TaggedInput)
        received = payload.received_at
        return _take(on_input(state, payload, replace(self.context, received_at=received)), received, outcome)

    def merge_in(self, state: Journey, handover: CampaignHandover, outcome: BatchOutcome) -> Journey:
        assert handover.state is not None
        # Both customers' waiting items together may be more than a journey keeps.
        return _take(bounded(Reaction(merge_journeys(state, handover.state)), self.context), None, outcome)


def _take(reaction: Reaction, received: datetime | None, outcome: BatchOutcome) -> Journey:
    outcome.decisions += reaction.decisions
    outcome.conversions += reaction.conversions
    outcome.reassignments += reaction.reassignments
    outcome.figures += reaction.figures
    outcome.funnel += reaction.funnel
    if received is not None:
        outcome.received_at.update({d.action_id: received for d in reaction.decisions})
    return reaction.journey


def react_batch(
    deliveries: Iterable[CampaignDelivery],
    record_of: Callable[[str], JourneyRecord | None],
    context: Context,
    erased: Container[str] = frozenset(),
) -> BatchOutcome:
    """Apply a batch; each customer's inputs in the order they were read (none of `erased`)."""
    return fold_batch(deliveries, record_of, CampaignFold(context), BatchOutcome(), erased)


def consents_changed(
    before: Callable[[str], JourneyRecord | None], changed: Mapping[str, JourneyRecord]
) -> dict[str, Mapping[str, Consent]]:
    """The consents of the customers whose consents a batch changed (`changed`: the batch's rows;
    `before`: the rows as they were), for the read model. Customers whose consents stayed as
    they were, or came back to them within the batch, have nothing to write."""
    consents: dict[str, Mapping[str, Consent]] = {}
    for customer_id, record in changed.items():
        row = before(customer_id)
        now = record.journey.view.consents
        if now != (row.journey.view.consents if row is not None else {}):
            consents[customer_id] = now
    return consents


def merge_journeys(survivor: Journey, merged: Journey) -> Journey:
    """The survivor keeps its view; history and what is scheduled come together, and the merged
    customer's journeys the survivor is not in (as many as a row keeps)."""
    sent_on = dict(merged.pacing.sent_on) | dict(survivor.pacing.sent_on)
    # Per campaign, the later entry: re-entry after days counts from when either last entered.
    entered_at = dict(merged.pacing.entered_at)
    for campaign_id, at in survivor.pacing.entered_at.items():
        entered_at[campaign_id] = max(at, entered_at.get(campaign_id, at))
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
        pacing=bounded_pacing(
            Pacing(
                survivor.pacing.entered | merged.pacing.entered,
                sent_on,
                dict(merged.pacing.channel_sent_on) | dict(survivor.pacing.channel_sent_on),
                entered_at,
            )
        ),
        dealer_id=survivor.dealer_id or merged.dealer_id,
        # Per campaign, the earlier cohort: counted there already, as who they were.
        cohorts={
            campaign_id: min(day, survivor.cohorts.get(campaign_id, day))
            for campaign_id, day in {**survivor.cohorts, **merged.cohorts}.items()
        },
        city=survivor.city or merged.city,
        scheduled=survivor.scheduled + scheduled,
        runs=(
            *survivor.runs,
            *(r for r in merged.runs if r.campaign_id not in {s.campaign_id for s in survivor.runs}),
        )[:MAX_RUNS],
        touches=tuple(sorted((*survivor.touches, *merged.touches), key=lambda t: t.at))[-MAX_TOUCHES:],
    )
