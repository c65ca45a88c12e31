"""The scoring agent: decode a batch, call the domain (batch.score_batch), write the effects.

Order matters for "nothing lost, nothing doubled": the read model is written, the table rows
set, and the rows' changelog records and the batch's outputs sent and acknowledged by the
broker; only then does the agent ack the batch, so its offsets can be committed. A crash
anywhere before the commit means a replay, which each customer's ledger turns into no-ops.

The outputs are built and measured before any of that: an input that would make a record
larger than `max_record_bytes` is dead-lettered instead, and a record the broker still refuses
for what it is goes to the dead-letter topic too (shared/stream_worker.py, "Records that cannot
be written"): no input stalls the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from time import perf_counter

import faust
from faust.types import Message
from pydantic import ValidationError
from redis.asyncio import Redis

from shared.erasure import ErasedCustomers
from shared.faust_runtime import table_rows
from shared.fold import Delivery, Tick
from shared.kafka import BulkSender, OutgoingRecord
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
from shared.topics import SCORED_INPUTS, TOUCHPOINT_EVENTS
from shared.worker_metrics import WorkerMetrics

from . import read_model
from .batch import BatchOutcome, CustomerRecord, Payload, ScoringHandover, score_batch
from .erasure import erase_customers
from .inputs import ScoringEvent, decode_touchpoint
from .matrix_cells import plan_fingerprint
from .plan_store import VersionedPlan, load_plan, plan_version
from .topics import ScoringTopics

log = logging.getLogger(__name__)


class PlanHolder:
    """The plan in force; replaced by `refresh_plan` when ops put a new one."""

    def __init__(self, current: VersionedPlan) -> None:
        self.current = current


class Scorer:
    def __init__(
        self,
        *,
        table: faust.Table,
        topics: ScoringTopics,
        redis: Redis,
        sender: BulkSender,
        plans: PlanHolder,
        metrics: WorkerMetrics,
        watch: InputWatch,
        clock: Callable[[], datetime],
        codec: RecordCodec[CustomerRecord],
        max_record_bytes: int,
    ) -> None:
        self._max_record_bytes = max_record_bytes
        self._table = table
        self._rows = table_rows(table)  # the table's rows in memory, restored from its changelog
        self._codec = codec
        self._topics = topics
        self._redis = redis
        self._sender = sender
        self._last_alone = read_to_the_end(topics.changelog, topics.dead_letters)
        self._plans = plans
        self._metrics = metrics
        self._watch = watch
        self._clock = clock
        self._erased = ErasedCustomers()
        self._decoders: dict[str, Callable[[bytes], Payload]] = {
            TOUCHPOINT_EVENTS: decode_touchpoint,
            topics.ticks: Tick.model_validate_json,
            topics.handovers: ScoringHandover.model_validate_json,
        }

    async def score(self, messages: Sequence[Message]) -> None:
        # The plan in force for inputs accepted after a plan change was answered: the change is
        # in Redis before any such input reaches a fetch of ours (docs/causal-order.md).
        await retrying(
            "plan refresh", lambda: refresh_plan(self._plans, self._redis, self._table, self._clock)
        )
        await retrying("erasures refresh", lambda: self._erased.refresh(self._redis))
        started = perf_counter()
        deliveries, partitions, dead = self._decode(messages)
        now = self._clock()
        outcome, records = self._score(deliveries, partitions, now, dead)
        await self._write_read_model(outcome, now)
        if outcome.erased:
            await retrying("redis erase", lambda: erase_customers(self._redis, outcome.erased))
        update_rows(self._rows, outcome)
        records += dead_letter_records(self._topics.dead_letters, dead)
        await self._send(records)
        self._observe(messages, deliveries, outcome, len(dead), started, now)

    def _outputs(self, outcome: BatchOutcome, partitions: dict[str, int]) -> list[OutgoingRecord]:
        topics = self._topics
        return [
            *changelog_records(topics.changelog, self._codec, outcome.records, partitions),
            *erasure_records(topics.changelog, outcome.erased, partitions, SCORED_INPUTS),
            *(OutgoingRecord(topics.scores, cid.encode(), value) for cid, value in outcome.scores),
            *(OutgoingRecord(SCORED_INPUTS, cid.encode(), value) for cid, value in outcome.chain),
            # Every field, None too: a state may hold a required field that is None.
            *keyed_records(topics.handovers, outcome.handovers),
        ]

    async def _send(self, records: list[OutgoingRecord]) -> None:
        dead_letters = self._topics.dead_letters[TOUCHPOINT_EVENTS]
        await send_outputs(self._sender, records, dead_letters, self._metrics, last_alone=self._last_alone)

    def _decode(self, messages: Sequence[Message]) -> tuple[list[Delivery], dict[str, int], list[DeadLetter]]:
        return decode_inputs(messages, self._decoders.__getitem__, TOUCHPOINT_EVENTS)

    def _score(
        self, deliveries: list[Delivery], partitions: dict[str, int], now: datetime, dead: list[DeadLetter]
    ) -> tuple[BatchOutcome, list[OutgoingRecord]]:
        plan, erased = self._plans.current.plan, self._erased.ids
        return fold_within_record_limit(
            deliveries,
            self._rows,
            lambda batch, row_of: score_batch(batch, row_of, plan, now, erased),
            BatchOutcome,
            dead,
            "scoring",
            lambda outcome: self._outputs(outcome, partitions),
            self._max_record_bytes,
        )

    async def _write_read_model(self, outcome: BatchOutcome, now: datetime) -> None:
        if not outcome.records:
            return
        plan = self._plans.current.plan
        await retrying(
            "redis write",
            lambda: read_model.write_records(
                self._redis,
                outcome.records.values(),
                plan,
                now,
                outcome.due,
                latest_events=outcome.latest_events,
                events_moved=outcome.events_moved,
            ),
        )

    def _observe(
        self,
        messages: Sequence[Message],
        deliveries: list[Delivery],
        outcome: BatchOutcome,
        dead: int,
        started: float,
        now: datetime,
    ) -> None:
        metrics = self._metrics
        metrics.count(outcome.counts | ({"dead_lettered": dead} if dead else {}))
        metrics.batch_seconds.labels(metrics.service).observe(perf_counter() - started)
        event_seconds = metrics.event_seconds.labels(metrics.service)
        for delivery in deliveries:
            if isinstance(delivery.payload, ScoringEvent):
                event_seconds.observe((now - delivery.payload.received_at).total_seconds())
        self._watch.observe(messages)


async def refresh_plan(
    plans: PlanHolder, redis: Redis, table: faust.Table, clock: Callable[[], datetime]
) -> None:
    """Apply a plan ops replaced; where it moves customers' cells (bands, decay, activity
    windows), rewrite their rank keys, cells and due times under it."""
    current = plans.current
    if await plan_version(redis) == current.version:  # one GET per batch: the usual answer
        return
    try:
        latest = await load_plan(redis)
    except (ValidationError, ValueError) as error:  # the API validates plans; a hand edit may not
        log.error("the scoring plan in Redis is not usable, keeping version %d: %s", current.version, error)
        return
    if latest.version == current.version:
        return
    plans.current = latest
    log.info("scoring plan %d in force (was %d)", latest.version, current.version)
    fingerprint = plan_fingerprint(latest.plan)
    if fingerprint != plan_fingerprint(current.plan) and not await read_model.cells_hold(redis, fingerprint):
        scores = [record.score for record in table_rows(table).values() if record.merged_into is None]
        count = await read_model.rewrite_matrix(redis, scores, latest.plan, clock())
        log.info("rewrote %d customers' rank keys, cells and due times for plan %d", count, latest.version)
