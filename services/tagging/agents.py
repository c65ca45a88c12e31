"""The tagging agent: decode a batch, call the domain (batch.tag_batch), write the effects.

Order matters for "nothing lost, nothing doubled": the read model is written, the table rows
set, and the rows' changelog records and the batch's outputs sent and acknowledged by the
broker; only then does the agent ack the batch, so its offsets can be committed. A crash
anywhere before the commit means a replay, which each customer's ledger turns into no-ops.

New tag rules are applied to every profile the worker holds, under the same lock as a batch,
so a customer's row is never written by both at once.

The outputs are built and measured before any effect: an input that would make a record larger
than `max_record_bytes` is dead-lettered instead, and a record the broker still refuses for
what it is goes to the dead-letter topic too (shared/stream_worker.py, "Records that cannot be
written"): no input stalls the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from time import perf_counter

import faust
from faust.types import Message
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.distinct_counts import add_distinct
from shared.erasure import ErasedCustomers
from shared.faust_runtime import table_rows
from shared.funnels import group_names
from shared.funnels import touch_members as funnel_members
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
from shared.topics import SCORED_INPUTS, TAGGED_INPUTS
from shared.worker_metrics import WorkerMetrics

from . import read_model
from .batch import (
    BatchOutcome,
    Delivery,
    Payload,
    ProfileRecord,
    Rules,
    ScoredInput,
    TaggingHandover,
    rederive,
    tag_batch,
)
from .content_stats import touch_members as content_members
from .erasure import erase_customers
from .rule_store import load_rules, rules_version
from .topics import TaggingTopics

log = logging.getLogger(__name__)


class Tagger:
    def __init__(
        self,
        *,
        table: faust.Table,
        codec: RecordCodec[ProfileRecord],
        topics: TaggingTopics,
        redis: Redis,
        sender: BulkSender,
        rules: Rules,
        metrics: WorkerMetrics,
        watch: InputWatch,
        owned_partitions: Callable[[], set[int]],
        clock: Callable[[], datetime],
        max_record_bytes: int,
    ) -> None:
        self._max_record_bytes = max_record_bytes
        self.rules = rules
        self._owned_partitions = owned_partitions
        self._table = table
        self._rows = table_rows(table)  # the table's rows in memory, restored from its changelog
        self._codec = codec
        self._topics = topics
        self._redis = redis
        self._sender = sender
        self._metrics = metrics
        self._watch = watch
        self._clock = clock
        self._lock = asyncio.Lock()
        # Rows restored from the changelog may predate the rules in force: the first call of
        # apply_rules re-derives them all.
        self._rederived_version: int | None = None
        self._last_alone = read_to_the_end(topics.changelog, topics.dead_letters)
        self._erased = ErasedCustomers()
        self._decoders: dict[str, Callable[[bytes], Payload]] = {
            SCORED_INPUTS: ScoredInput.model_validate_json,
            topics.handovers: TaggingHandover.model_validate_json,
        }

    async def tag(self, messages: Sequence[Message]) -> None:
        # The rules in force for inputs accepted after a rule change was answered: the change is
        # in Redis before any such input reaches a fetch of ours (docs/causal-order.md).
        await self.apply_rules()
        await retrying("erasures refresh", lambda: self._erased.refresh(self._redis))
        async with self._lock:
            started = perf_counter()
            deliveries, partitions, dead = self._decode(messages)
            now = self._clock()
            outcome, records = self._tag(deliveries, partitions, now, dead)
            await self._write(outcome, records + dead_letter_records(self._topics.dead_letters, dead), now)
            self._observe(deliveries, outcome, len(dead), started, now)
            self._watch.observe(messages)

    async def apply_rules(self) -> None:
        """Take up rules ops changed, and re-derive every profile held under them. One GET of the
        version when nothing changed (before every batch); the rules only when it moved."""
        try:
            if await rules_version(self._redis) == self._rederived_version:
                return
            latest = await load_rules(self._redis)
        except (RedisError, OSError) as error:  # the next poll tries again
            log.warning("could not read tag rules: %r", error)
            return
        except (ValidationError, ValueError) as error:  # e.g. two API calls raced into a cycle
            log.error(
                "tag rules in Redis are not usable, keeping version %d: %s", self.rules.rules.version, error
            )
            return
        if latest.version == self._rederived_version:
            return
        async with self._lock:
            self.rules = Rules(self.rules.thresholds, latest)
            self._rederived_version = latest.version
            now = self._clock()
            # Only the rows of partitions this worker owns (by each row's ledger), rewritten there.
            owned = self._owned_partitions()
            row_partition = self._codec.row_partition
            partitions = {cid: p for cid, row in self._rows.items() if (p := row_partition(row)) in owned}
            rows = [self._rows[cid] for cid in partitions]
            outcome = rederive(rows, self.rules, f"rules-{latest.version}", now)
            await self._write(outcome, self._outputs(outcome, partitions), now)
        log.info("tag rules version %d in force; %d profiles changed", latest.version, len(outcome.records))

    async def _write(self, outcome: BatchOutcome, records: list[OutgoingRecord], now: datetime) -> None:
        if outcome.records:
            await retrying("redis write", lambda: read_model.write_records(self._redis, outcome.records, now))
        counted = [*content_members(outcome.content_touches), *funnel_members(outcome.funnel_touches)]
        if counted:
            groups = group_names(outcome.funnel_touches)
            await retrying("redis write", lambda: add_distinct(self._redis, counted, groups))
        if outcome.erased:
            await retrying("redis erase", lambda: erase_customers(self._redis, outcome.erased))
        update_rows(self._rows, outcome)
        dead_letters = self._topics.dead_letters[SCORED_INPUTS]
        await send_outputs(self._sender, records, dead_letters, self._metrics, last_alone=self._last_alone)

    def _outputs(self, outcome: BatchOutcome, partitions: dict[str, int]) -> list[OutgoingRecord]:
        topics = self._topics
        return [
            *changelog_records(topics.changelog, self._codec, outcome.records, partitions),
            *erasure_records(topics.changelog, outcome.erased, partitions, TAGGED_INPUTS),
            *keyed_records(topics.changes, outcome.changes),
            *(OutgoingRecord(TAGGED_INPUTS, cid.encode(), value) for cid, value in outcome.chain),
            # Every field, None too: a state may hold a required field that is None.
            *keyed_records(topics.handovers, outcome.handovers),
        ]

    def _decode(self, messages: Sequence[Message]) -> tuple[list[Delivery], dict[str, int], list[DeadLetter]]:
        return decode_inputs(messages, self._decoders.__getitem__, SCORED_INPUTS)

    def _tag(
        self, deliveries: list[Delivery], partitions: dict[str, int], now: datetime, dead: list[DeadLetter]
    ) -> tuple[BatchOutcome, list[OutgoingRecord]]:
        rules, erased = self.rules, self._erased.ids
        return fold_within_record_limit(
            deliveries,
            self._rows,
            lambda batch, row_of: tag_batch(batch, row_of, rules, now, erased),
            BatchOutcome,
            dead,
            "tagging",
            lambda outcome: self._outputs(outcome, partitions),
            self._max_record_bytes,
        )

    def _observe(
        self, deliveries: list[Delivery], outcome: BatchOutcome, dead: int, started: float, now: datetime
    ) -> None:
        metrics = self._metrics
        metrics.count(outcome.counts | ({"dead_lettered": dead} if dead else {}))
        metrics.batch_seconds.labels(metrics.service).observe(perf_counter() - started)
        event_seconds = metrics.event_seconds.labels(metrics.service)
        for delivery in deliveries:
            payload = delivery.payload
            if isinstance(payload, ScoredInput) and payload.event is not None:
                event_seconds.observe((now - payload.event.received_at).total_seconds())
