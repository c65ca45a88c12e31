"""The campaign agent: decode a batch, call the domain (batch.react_batch), write the effects.

As in scoring and tagging, effects are written — dealer assignments, the Redis read model, the
table rows, their changelog records and the outputs acknowledged by the broker — before the batch
is acked. Actions are emitted with ids derived from their trigger, so a replay emits the same ids.
A ticker (shared/ticks.py) turns due times in Redis into tick records on the worker's own topic,
so that what is due is released inside the stream, in order with the customer's other inputs.

The rows' changelog records and the handovers are built and measured before any effect: an
input that would make one larger than `max_record_bytes` is dead-lettered instead, and a record
the broker still refuses for what it is goes to the dead-letter topic too
(shared/stream_worker.py, "Records that cannot be written"): no input stalls the worker.
Actions are made of a campaign's definition and ids, bounded by the definitions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from time import perf_counter

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.types import Message
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.erasure import ErasedCustomers
from shared.faust_runtime import table_rows
from shared.kafka import BulkSender, OutgoingRecord
from shared.metrics import LATENCY_BUCKETS
from shared.record_table import RecordCodec
from shared.stream_worker import (
    DeadLetter,
    InputWatch,
    changelog_records,
    dead_letter_records,
    decode_inputs,
    erasure_records,
    fold_within_record_limit,
    keyed_records,
    read_to_the_end,
    retrying,
    send_outputs,
    update_rows,
)
from shared.topics import TAGGED_INPUTS
from shared.worker_metrics import WorkerMetrics

from . import read_model
from .batch import (
    BatchOutcome,
    CampaignHandover,
    Delivery,
    JourneyRecord,
    Payload,
    TaggedInput,
    Tick,
    consents_changed,
    react_batch,
)
from .broadcasts import due_occurrence, is_broadcast, tick_id
from .dealers import Roster
from .definitions import ActionKind, Campaign
from .desk import (
    Lead,
    assign_leads,
    close_leads,
    confirm_released,
    lead_counts,
    open_lead,
    release_pool,
)
from .erasure import erase_customers
from .journey import DEFAULT_SLA_HOURS, Context
from .points import points_granted
from .read_model import BROADCASTS_SENT, ActionRecord, action_records, handover_action
from .roster_store import RosterVersion, load_roster, roster_version
from .store import CAMPAIGNS, load_campaigns
from .targeting import QuietHours, in_audience
from .topics import CampaignTopics

log = logging.getLogger(__name__)


class ActionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.actions = Counter(
            "pd_campaign_actions",
            "Campaign decisions by campaign, action kind and outcome: sent, deferred, or why not",
            ["campaign", "kind", "outcome"],
            registry=registry,
        )
        self.version = Gauge(
            "pd_campaigns_version",
            "Version of the campaign definitions the worker applies",
            registry=registry,
        )
        self.event_to_action = Histogram(
            "pd_event_to_action_seconds",
            "From ingest's received_at of the input that fired a campaign to its action emitted",
            buckets=(*LATENCY_BUCKETS, 30, 60, 300),
            registry=registry,
        )
        self.leads = Gauge(
            "pd_campaign_leads",
            "Hot leads handed to dealers: waiting in the pool, open with a consultant, overdue (past SLA)",
            ["state"],
            registry=registry,
        )
        self.sla_misses = Counter(
            "pd_campaign_sla_misses",
            "Leads taken from a consultant after a missed SLA, by the consultant's store",
            ["store"],
            registry=registry,
        )


class Campaigner:
    def __init__(
        self,
        *,
        table: faust.Table,
        codec: RecordCodec[JourneyRecord],
        topics: CampaignTopics,
        redis: Redis,
        sender: BulkSender,
        metrics: WorkerMetrics,
        action_metrics: ActionMetrics,
        watch: InputWatch,
        attribution_window: timedelta,
        quiet: QuietHours,
        clock: Callable[[], datetime],
        channel_caps: Mapping[str, int] | None = None,
        global_control_pct: float = 0.0,
        max_record_bytes: int = 1_000_000,
    ) -> None:
        self._max_record_bytes = max_record_bytes
        self.campaigns: list[Campaign] = []
        self.campaigns_version = -1
        self._table = table
        self._rows = table_rows(table)  # the table's rows in memory, restored from its changelog
        self._codec = codec
        self._topics = topics
        self._redis = redis
        self._sender = sender
        self._metrics = metrics
        self._action_metrics = action_metrics
        self._watch = watch
        self.roster = Roster()
        self.roster_version: RosterVersion = (-1, -1)
        self._window = attribution_window
        self._quiet = quiet
        self._channel_caps = dict(channel_caps or {})
        self._global_control_pct = global_control_pct
        self._clock = clock
        self._last_alone = read_to_the_end(topics.changelog, topics.dead_letters)
        self._erased = ErasedCustomers()
        self._partitioner = DefaultPartitioner()
        self._decoders: dict[str, Callable[[bytes], Payload]] = {
            TAGGED_INPUTS: TaggedInput.model_validate_json,
            topics.ticks: Tick.model_validate_json,
            topics.handovers: CampaignHandover.model_validate_json,
        }

    async def react(self, messages: Sequence[Message]) -> None:
        # The definitions in force for inputs accepted after a create, update, pause or delete
        # was answered: the change is in Redis before any such input reaches a fetch of ours
        # (docs/causal-order.md). One GET of the version per batch; the whole set when it moved.
        await retrying("campaigns refresh", self._refresh_or_fail)
        await retrying("erasures refresh", lambda: self._erased.refresh(self._redis))
        started = perf_counter()
        deliveries, partitions, dead = self._decode(messages)
        now = self._clock()
        context = Context(
            self.campaigns,
            now,
            self._quiet,
            self._window,
            channel_caps=self._channel_caps,
            global_control_pct=self._global_control_pct,
        )
        outcome, state_records = self._react(deliveries, partitions, context, dead)
        records = await self._assign_dealers(outcome, now)
        due = {cid: record.journey.next_due for cid, record in outcome.records.items()}
        # Compared with the rows as the batch found them: the table takes the new ones only below.
        consents = consents_changed(self._rows.get, outcome.records)
        await retrying(
            "redis write",
            lambda: read_model.write_batch(
                self._redis, records, outcome.conversions, due, consents, outcome.figures, outcome.funnel
            ),
        )
        followed_up = [
            p.customer_id
            for d in deliveries
            if isinstance(p := d.payload, TaggedInput)
            and p.event is not None
            and p.event.type == "dealer.followup"
            and p.customer_id not in self._erased.ids
        ]
        if followed_up:
            await retrying("close leads", lambda: close_leads(self._redis, followed_up))
        if outcome.erased:
            await retrying("redis erase", lambda: erase_customers(self._redis, outcome.erased))
        update_rows(self._rows, outcome)
        outputs = [
            *state_records,
            *keyed_records(self._topics.actions, [r for r in records if r.outcome == "sent"]),
            *(OutgoingRecord(*granted) for granted in points_granted(records)),
            *dead_letter_records(self._topics.dead_letters, dead),
        ]
        dead_letters = self._topics.dead_letters[TAGGED_INPUTS]
        await send_outputs(self._sender, outputs, dead_letters, self._metrics, last_alone=self._last_alone)
        events_received = [
            p.event.received_at for d in deliveries if isinstance(p := d.payload, TaggedInput) and p.event
        ]
        self._observe(outcome, records, events_received, len(dead), started)
        self._watch.observe(messages)

    async def _refresh_or_fail(self) -> None:
        if await CAMPAIGNS.current_version(self._redis) != self.campaigns_version:
            await self.refresh_campaigns()
        if await roster_version(self._redis) != self.roster_version:
            await self.refresh_roster()

    async def release_broadcasts(self, owned: set[int], partitions: int) -> None:
        """Send each broadcast's due occurrence, once per partition, as a tick to every customer
        of this worker's partitions in its audience (broadcasts.py). Marked sent per partition
        once the broker has the ticks: a crash before re-sends them, and the ledger decides each
        customer's tick once."""
        now = self._clock()
        due = [
            (campaign, tick_id(campaign, occurrence))
            for campaign in self.campaigns
            if is_broadcast(campaign)
            and campaign.status == "active"
            and (occurrence := due_occurrence(campaign, now)) is not None
        ]
        if not due:
            return
        fields = [f"{tick}|{p}" for _, tick in due for p in sorted(owned)]
        sent = dict(zip(fields, await self._redis.hmget(BROADCASTS_SENT, fields), strict=True))
        all_partitions = list(range(partitions))
        for campaign, tick in due:
            waiting = {p for p in owned if sent[f"{tick}|{p}"] is None}
            if not waiting:
                continue
            ticks = [
                OutgoingRecord(
                    self._topics.ticks,
                    cid.encode(),
                    Tick(tick_id=tick, customer_id=cid).model_dump_json().encode(),
                )
                for cid, row in list(self._rows.items())
                if row.merged_into is None
                and self._partitioner(cid.encode(), all_partitions, all_partitions) in waiting
                and in_audience(campaign.audience, row.journey.view)
            ]
            for refused in await self._sender.send_all(ticks):
                log.error("the broker will not take a broadcast's tick: %s", refused.reason)
            await self._redis.hset(BROADCASTS_SENT, mapping={f"{tick}|{p}": now.isoformat() for p in waiting})
            log.info("broadcast %s: %d customers ticked", tick, len(ticks))

    async def refresh_roster(self) -> None:
        try:
            version, roster = await load_roster(self._redis)
        except (RedisError, OSError, ValidationError) as error:
            log.warning("could not read the dealer roster, keeping %s: %r", self.roster_version, error)
            return
        if version != self.roster_version:
            self.roster, self.roster_version = roster, version
            log.info(
                "dealer roster %s in force: %d stores, %d consultants",
                version,
                len(roster.stores),
                len(roster.consultants),
            )

    async def release_leads(self) -> None:
        """Hand leads waiting in the pool to consultants with capacity now, and the open leads of
        consultants who left to others: each as an assign_dealer action, on the actions topic
        before the desk forgets it still has to announce it."""
        if await roster_version(self._redis) != self.roster_version:  # one GET, as before a batch
            await self.refresh_roster()
        now = self._clock()
        await self._erased.refresh(self._redis)
        released = await release_pool(self._redis, self.roster, now)
        # A lead of a customer erased since the batch that pooled it: erased again, not announced.
        if erased := {lead.customer_id for lead in released if lead.customer_id in self._erased.ids}:
            await erase_customers(self._redis, sorted(erased))
            released = [lead for lead in released if lead.customer_id not in erased]
        if released:
            records = [handover_action(lead, now) for lead in released]
            for refused in await self._sender.send_all(keyed_records(self._topics.actions, records)):
                log.error("the broker will not take a lead's action: %s", refused.reason)  # ids alone: never
            await read_model.write_batch(self._redis, records, [], {}, {})
            await confirm_released(self._redis, [lead.action_id for lead in released])
            for record in records:
                self._action_metrics.actions.labels(record.campaign_id, record.kind, "sent").inc()
        for state, count in (await lead_counts(self._redis, now)).items():
            self._action_metrics.leads.labels(state).set(count)

    async def refresh_campaigns(self) -> None:
        try:
            version, campaigns = await load_campaigns(self._redis)
        except (RedisError, OSError, ValidationError) as error:
            log.warning("could not read campaigns, keeping version %d: %r", self.campaigns_version, error)
            return
        if version != self.campaigns_version:
            self.campaigns, self.campaigns_version = campaigns, version
            self._action_metrics.version.set(version)
            log.info("campaigns version %d in force: %d campaigns", version, len(campaigns))

    async def _assign_dealers(self, outcome: BatchOutcome, now: datetime) -> list[ActionRecord]:
        """Every decision as a record; a dealer lead gets its consultant, or waits in the lead
        pool (`deferred` as `lead_pool`) until one has capacity. A reassignment after a missed
        SLA of a lead that is no longer open (followed up, or handed on when its consultant
        left) is `lead_closed`."""
        reassigned = {decision.action_id: original for original, decision in outcome.reassignments}
        leads: list[Lead] = []
        closed: set[str] = set()
        for decision in outcome.decisions:
            if decision.kind is ActionKind.assign_dealer and decision.outcome == "sent":
                row = outcome.records.get(decision.customer_id)
                journey = row.journey if row is not None else None
                replaces = missed = None
                if (original := reassigned.get(decision.action_id)) is not None:  # rare: an SLA missed
                    lead = await open_lead(self._redis, original)
                    if lead is None or lead.consultant_id is None:
                        closed.add(decision.action_id)
                        continue
                    replaces, missed = original, lead.consultant_id
                    self._action_metrics.sla_misses.labels(self.roster.store_of(missed) or "unknown").inc()
                store_id, city = (journey.dealer_id, journey.city) if journey else (None, None)
                model = journey.view.model if journey else None
                hours = decision.sla_hours or DEFAULT_SLA_HOURS
                leads.append(
                    Lead(
                        decision.action_id,
                        decision.customer_id,
                        decision.campaign_id,
                        store_id,
                        city,
                        hours,
                        replaces,
                        missed,
                        model,
                    )
                )
        consultants = await assign_leads(self._redis, self.roster, leads, now)
        return action_records(outcome.decisions, consultants, closed)

    def _state_records(self, outcome: BatchOutcome, partitions: dict[str, int]) -> list[OutgoingRecord]:
        """The outputs made of customers' journeys: the rows' changelog records and handovers."""
        topics = self._topics
        return [
            *changelog_records(topics.changelog, self._codec, outcome.records, partitions),
            *erasure_records(topics.changelog, outcome.erased, partitions),
            # Every field, None too: a state may hold a required field that is None.
            *keyed_records(topics.handovers, outcome.handovers),
        ]

    def _decode(self, messages: Sequence[Message]) -> tuple[list[Delivery], dict[str, int], list[DeadLetter]]:
        return decode_inputs(messages, self._decoders.__getitem__, TAGGED_INPUTS)

    def _react(
        self, deliveries: list[Delivery], partitions: dict[str, int], context: Context, dead: list[DeadLetter]
    ) -> tuple[BatchOutcome, list[OutgoingRecord]]:
        erased = self._erased.ids
        return fold_within_record_limit(
            deliveries,
            self._rows,
            lambda batch, row_of: react_batch(batch, row_of, context, erased),
            BatchOutcome,
            dead,
            "campaign",
            lambda outcome: self._state_records(outcome, partitions),
            self._max_record_bytes,
        )

    def _observe(
        self,
        outcome: BatchOutcome,
        records: list[ActionRecord],
        received_at_of_events: list[datetime],
        dead: int,
        started: float,
    ) -> None:
        metrics = self._metrics
        metrics.count(outcome.counts | ({"dead_lettered": dead} if dead else {}))
        metrics.batch_seconds.labels(metrics.service).observe(perf_counter() - started)
        emitted = self._clock()
        event_seconds = metrics.event_seconds.labels(metrics.service)
        for received in received_at_of_events:
            event_seconds.observe((emitted - received).total_seconds())
        for record in records:
            label = record.outcome if record.outcome != "suppressed" else record.reason or "suppressed"
            self._action_metrics.actions.labels(record.campaign_id, record.kind, label).inc()
            received = outcome.received_at.get(record.action_id)
            if record.outcome == "sent" and received is not None:
                self._action_metrics.event_to_action.observe((emitted - received).total_seconds())
