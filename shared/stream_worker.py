"""Plumbing every Faust stream worker shares (scoring, tagging, campaign).

- `WorkerSettings`: group timeouts, batching and the table directory, from the environment.
- `faust_config`: the Faust settings our workers run with.
- `add_operations_pages`: /metrics, /healthz and /readyz on the worker's web port.
- `DeadLetter`: what goes to `<topic>.dlq` for an input the worker cannot take (kept small).
- `retrying`: keep trying a write while the broker or Redis is away (the batch stays unacked).
- `fold_within_record_limit`, `send_outputs`: no input stalls a worker by making a record the
  broker can never take (below).
- `InputWatch`: per input partition, offsets never delivered (gaps) and lag, into the metrics.
- `run_worker`: a worker process's entrypoint; `stop_on_shutdown`: close its producer on the way out.

Records that cannot be written (docs/contract.md, "Bounds"). Brokers refuse records over a size
(Apache Kafka's default is 1,048,588 bytes a record batch), and a refused record is refused on
every retry: a worker that kept retrying would stall for good, and again after every restart.
Two layers keep that from happening while keeping "effects durable before the offsets commit":

1. Before any effect (`fold_within_record_limit`, pure): a batch's outputs are built and
   measured against `max_record_bytes` (default 1,000,000: a margin below Kafka's limit for the
   batch's own overhead). If one is larger, the batch is folded again customer by customer,
   and the inputs of a customer whose outputs are too large one at a time: an input whose own
   outputs are too large is dead-lettered with the reason, and the customer's state stays as it
   was before it, so table, changelog, read model and outputs agree. The others go on.
2. At the broker (`send_outputs`, with `BulkSender`): whatever the broker still refuses for
   what it is (a smaller limit than ours, a record it finds invalid) is dead-lettered with the
   broker's reason instead of retried, and only then is the batch acked. This is the last
   resort: a refused changelog row means the worker's table is ahead of its changelog until
   the next restart, which takes the row before the batch back (its dead letter says so).
   Errors that are not about the record (broker away, timeouts) are retried as ever.

Dead letters stay small themselves (shared/dead_letters.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import faust
from aiokafka.errors import KafkaError
from faust.types import Message
from prometheus_client import CollectorRegistry
from pydantic import Field, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from shared.batch_drain import BatchHandler, consume_in_batches
from shared.dead_letters import DeadLetter
from shared.erasure import CustomerErased, erasure_of
from shared.faust_runtime import recovery_done
from shared.fold import Delivery, FoldOutcome
from shared.gc_tuning import tune_gc_for_throughput
from shared.kafka import BulkSender, OutgoingRecord, ensure_topics, over_limit
from shared.metrics import CONTENT_TYPE, render
from shared.record_table import RecordCodec
from shared.settings import ServiceSettings
from shared.topics import TopicSpec, contract_topics
from shared.worker_metrics import WorkerMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class WorkerSettings(ServiceSettings):
    # At most this many inputs per batch (a batch is what one fetch returned).
    batch_max_events: int = Field(default=2000, ge=1)
    # The largest record (key and value) a worker writes; an input that would make a larger one
    # is dead-lettered. Below the broker's limit (Apache Kafka: 1,048,588 bytes a batch) by a
    # margin for the batch's own bytes; lower it with the broker's.
    max_record_bytes: int = Field(default=1_000_000, ge=128 * 1024)  # dead letters must fit
    # Group membership: short enough that a replacement worker takes over within seconds.
    broker_session_timeout_s: float = 10.0
    broker_heartbeat_interval_s: float = 1.0
    broker_rebalance_timeout_s: float = 20.0
    broker_commit_interval_s: float = 1.0
    # How long a fetch may wait at the broker for data (Faust's own is 1.5 s). Tansu answers a
    # waiting fetch only when the wait is over (Kafka answers as data arrives), so on Tansu this
    # is each hop's latency and the span of time a batch collects: 0.2 s is a middle ground
    # between event-to-action latency and batches big enough to be cheap (README, Pipeline).
    broker_fetch_max_wait_s: float = Field(default=0.2, gt=0, le=10)


def faust_config(settings: WorkerSettings, *, metrics_port: int, table_dir: str) -> dict[str, Any]:
    """A worker's Faust settings: state in memory restored from changelogs (inputs are acked by
    shared/batch_drain.py, after their effects are written)."""
    return {
        "broker": ";".join(f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")),
        **({"broker_credentials": credentials} if (credentials := settings.kafka_security.faust()) else {}),
        "store": "memory://",
        # No standby copies of other workers' rows: a memory store restores a partition it takes
        # over from the changelog's start whatever a standby read, so they would only cost memory.
        "table_standby_replicas": 0,
        "datadir": table_dir,
        "topic_partitions": settings.topic_partitions,
        # Faust's own topics (its assignor's) as ours; unset (-1) keeps Faust's default of 1.
        **(
            {"topic_replication_factor": settings.topic_replication_factor}
            if settings.topic_replication_factor > 0
            else {}
        ),
        "broker_session_timeout": settings.broker_session_timeout_s,
        "broker_heartbeat_interval": settings.broker_heartbeat_interval_s,
        "broker_rebalance_timeout": settings.broker_rebalance_timeout_s,
        "broker_commit_interval": settings.broker_commit_interval_s,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "stream_recovery_delay": 0.0,
        "web_enabled": True,
        "web_bind": settings.http_host,
        "web_host": settings.http_host,
        "web_port": metrics_port,
        "web_stats_enabled": False,
        "web_graph_enabled": False,
        "web_tables_enabled": False,
        "web_router_enabled": False,
    }


def add_operations_pages(app: faust.App, registry: CollectorRegistry, redis: Redis) -> None:
    """/metrics, /healthz and /readyz (Redis reachable and tables recovered) on the worker's port."""

    @app.page("/metrics")
    async def metrics_page(web: faust.web.View, request: faust.web.Request) -> Any:
        # aiohttp takes the charset apart from the content type.
        return web.bytes(render(registry), content_type=CONTENT_TYPE.split("; charset")[0])

    @app.page("/healthz")
    async def healthz(web: faust.web.View, request: faust.web.Request) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: faust.web.View, request: faust.web.Request) -> Any:
        checks = {"redis": "ok", "recovery": "ok"}
        try:
            await redis.ping()
        except Exception as error:  # any failure means "not ready"; say which
            checks["redis"] = f"failed: {type(error).__name__}: {error}"[:200]
        if not recovery_done(app):
            checks["recovery"] = "in progress"
        ready = all(v == "ok" for v in checks.values())
        return web.json(
            {"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503
        )


async def retrying(what: str, write: Callable[[], Awaitable[T]]) -> T:
    """Call `write` until it succeeds, backing off while Kafka or Redis is away; its result.

    The batch stays unacked meanwhile: nothing is lost, lag grows. A retried send may duplicate
    records, which the ledgers, the changelogs (last row wins) and consumers (event_id) absorb.
    """
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type((KafkaError, RedisError, OSError)),
        wait=wait_exponential(multiplier=0.1, max=5),
        before_sleep=lambda state: log.warning("%s failed, retrying: %r", what, state.outcome.exception()),
    ):
        with attempt:
            return await write()
    raise AssertionError("unreachable: AsyncRetrying retries until the write succeeds")


async def send_outputs(
    sender: BulkSender,
    records: list[OutgoingRecord],
    dead_letters: str,
    metrics: WorkerMetrics,
    *,
    last_alone: frozenset[str] = frozenset(),
) -> None:
    """Send a batch's outputs until the broker has them all, or has refused some for what they
    are: those go to `dead_letters` (the worker's main input's `.dlq`) with the broker's reason,
    acknowledged before this returns, so the batch may be acked. Counted as `output_refused`."""
    refused = await retrying("send", lambda: sender.send_all(records, last_alone=last_alone))
    if not refused:
        return
    for one in refused:
        log.error("dead-lettering a %s record the broker will not take: %s", one.record.topic, one.reason)
    metrics.count({"output_refused": len(refused)})
    letters = [
        OutgoingRecord(dead_letters, letter.key, letter.encode(), DEAD_LETTER_PARTITION)
        for letter in (DeadLetter.of_refused(one) for one in refused)
    ]
    alone = frozenset({dead_letters})
    for lost in await retrying("send dead letters", lambda: sender.send_all(letters, last_alone=alone)):
        log.error("the broker refused a dead letter too, it is lost: %s", lost.reason)


class InputWatch:
    """Watches the offsets a worker takes, per input partition: holes and lag."""

    def __init__(self, metrics: WorkerMetrics, highwater: Callable[[faust.types.TP], int | None]) -> None:
        self._metrics = metrics
        self._highwater = highwater
        self._read_up_to: dict[faust.types.TP, int] = {}

    def refresh_lag(self) -> None:
        """Lag of every partition read so far against its current end: called on a timer, so a
        worker that stops taking input shows its lag growing instead of the last value it had."""
        for tp, offset in self._read_up_to.items():
            highwater = self._highwater(tp)
            if highwater is not None:
                self._metrics.set_lag(tp.topic, tp.partition, highwater - offset - 1)

    def observe(self, messages: Sequence[Message]) -> None:
        metrics = self._metrics
        last_offsets: dict[faust.types.TP, int] = {}
        for message in messages:
            tp, offset = message.tp, message.offset
            previous = self._read_up_to.get(tp)
            if previous is None:
                log.info("first input read from %s/%d: offset %d", tp.topic, tp.partition, offset)
            elif offset > previous + 1:
                # Our inputs are never compacted or transactional: a jump means records were not
                # delivered. Faust would commit past them as a gap; say so loudly.
                metrics.gaps.labels(metrics.service, tp.topic).inc(offset - previous - 1)
                log.warning("offsets %d..%d of %s/%d were never delivered", previous + 1, offset - 1, *tp)
            self._read_up_to[tp] = max(offset, previous if previous is not None else -1)
            last_offsets[tp] = offset
        for tp, offset in last_offsets.items():
            highwater = self._highwater(tp)
            if highwater is not None:
                metrics.set_lag(tp.topic, tp.partition, highwater - offset - 1)


def run_worker(
    service: str,
    settings: WorkerSettings,
    owned_topics: list[TopicSpec],
    table_dir: str,
    app: Callable[[], faust.App],
) -> None:
    """A worker's entrypoint: topics first (with the contract's partitions), then Faust."""
    from shared.logging import configure_logging, logging_dict_config

    configure_logging(service, settings.log_level)
    tune_gc_for_throughput()
    topics = contract_topics(settings.topic_partitions) + owned_topics
    ensure_topics(settings.kafka_bootstrap_servers, topics, settings.topic_policy, settings.kafka_security)
    Path(table_dir).mkdir(parents=True, exist_ok=True)  # Faust's datadir must exist
    # Faust sets logging up again when it starts: hand it ours.
    logging_config = logging_dict_config(service, settings.log_level)
    worker = faust.Worker(app(), loglevel=settings.log_level.lower(), logging_config=logging_config)
    worker.execute_from_commandline()


def refresh_lag_every(app: faust.App, watch: InputWatch, interval_s: float = 5.0) -> None:
    @app.timer(interval=interval_s)
    async def refresh_lag() -> None:
        watch.refresh_lag()


def stop_on_shutdown(app: faust.App, sender: BulkSender) -> None:
    """Close the worker's own producer when Faust stops (it flushes what is in flight)."""

    @app.on_before_shutdown.connect
    async def _stop_sender(app: faust.App, **kwargs: Any) -> None:
        await sender.stop()


Outcome = TypeVar("Outcome", bound=FoldOutcome)
P = TypeVar("P")


def decode_inputs(
    messages: Sequence[Message],
    decoder_for: Callable[[str], Callable[[bytes], P]],
    erasures_on: str | None = None,
) -> tuple[list[Delivery[P | CustomerErased]], dict[str, int], list[DeadLetter]]:
    """Decode a batch: the deliveries (with the bytes read), each customer's input partition,
    and what does not decode. A tombstone on `erasures_on` (the chain's topic the worker reads)
    erases its customer (shared/erasure.py); elsewhere it is dead-lettered."""
    deliveries: list[Delivery[P | CustomerErased]] = []
    partitions: dict[str, int] = {}
    dead: list[DeadLetter] = []
    for message in messages:
        try:
            payload: P | CustomerErased
            if message.value is None:
                if message.topic != erasures_on:
                    raise ValueError("empty message")
                payload = erasure_of(message.key)
            else:
                payload = decoder_for(message.topic)(message.value)
        except (ValidationError, ValueError) as error:
            dead.append(DeadLetter.of(message, f"{type(error).__name__}: {error}"))
            continue
        at = message.timestamp or 0.0  # Faust's: the record's timestamp, in seconds (None: unknown)
        raw = message.value or b""
        # One shared "topic/partition" text, not one per input: every row's ledger keeps it.
        where = sys.intern(f"{message.topic}/{message.partition}")
        decoded = Delivery(where, message.offset, payload, raw, at)
        deliveries.append(decoded)
        partitions[decoded.customer_id] = message.partition
    return deliveries, partitions, dead


def one_at_a_time(
    deliveries: Sequence[Delivery[Any]],
    run: Callable[[list[Delivery[Any]]], None],
    dead: list[DeadLetter],
    what: str,
) -> None:
    """After a batch failed in the domain: run its inputs one by one and dead-letter those that
    fail on their own (as they were read), so one input that breaks the domain does not hold up
    the rest."""
    for one in deliveries:
        try:
            run([one])
        except Exception as error:  # the domain's bug, not the input's format: keep it for a replay
            dead.append(DeadLetter.of_delivery(one, f"{what} failed: {type(error).__name__}: {error}"))


def fold_or_one_by_one(
    deliveries: list[Delivery[Any]],
    rows: Mapping[str, Any],
    fold: Callable[[list[Delivery[Any]], Callable[[str], Any]], Outcome],
    new_outcome: Callable[[], Outcome],
    dead: list[DeadLetter],
    what: str,
) -> Outcome:
    """`fold` the batch over the table's rows; if the domain fails on it, fold its inputs one at a
    time, each on the rows the ones before it left, and dead-letter those that fail alone."""
    try:
        return fold(deliveries, rows.get)
    except Exception:
        log.exception("a batch failed in %s; retrying its inputs one by one", what)
    outcome = new_outcome()

    def row_of(customer_id: str) -> Any:
        return outcome.records.get(customer_id) or rows.get(customer_id)

    def run(one: list[Delivery[Any]]) -> None:
        outcome.absorb(fold(one, row_of))

    one_at_a_time(deliveries, run, dead, what)
    return outcome


def fold_within_record_limit(
    deliveries: list[Delivery[Any]],
    rows: Mapping[str, Any],
    fold: Callable[[list[Delivery[Any]], Callable[[str], Any]], Outcome],
    new_outcome: Callable[[], Outcome],
    dead: list[DeadLetter],
    what: str,
    records_of: Callable[[Outcome], list[OutgoingRecord]],
    max_record_bytes: int,
) -> tuple[Outcome, list[OutgoingRecord]]:
    """`fold_or_one_by_one`, and the outcome's records (`records_of`), every one of them at most
    `max_record_bytes`. Pure, and before any effect: an input whose own outputs would be larger
    is dead-lettered with the reason, and its customer's state stays as before it.

    The common case costs nothing more: the records are built once, measured, and returned for
    sending. Only if one is too large is the batch folded again, customer by customer (their
    folds are independent: each reads its own row), and a customer whose outputs are too large
    one input at a time, each on the row the inputs before it left."""
    mark = len(dead)
    outcome = fold_or_one_by_one(deliveries, rows, fold, new_outcome, dead, what)
    records = records_of(outcome)
    too_large = over_limit(records, max_record_bytes)
    if too_large is None:
        return outcome, records
    log.warning("%s: %s; folding the batch customer by customer", what, too_large.reason)
    del dead[mark:]  # decided again below
    outcome = new_outcome()

    def row_of(customer_id: str) -> Any:
        return outcome.records.get(customer_id) or rows.get(customer_id)

    by_customer: dict[str, list[Delivery[Any]]] = {}
    for delivery in deliveries:
        by_customer.setdefault(delivery.customer_id, []).append(delivery)
    for inputs in by_customer.values():
        try:
            part: Outcome | None = fold(inputs, row_of)
        except Exception:
            part = None
        if part is not None and over_limit(records_of(part), max_record_bytes) is None:
            outcome.absorb(part)
            continue
        for one in inputs:
            try:
                part = fold([one], row_of)
            except Exception as error:  # the domain's bug, as in one_at_a_time
                dead.append(DeadLetter.of_delivery(one, f"{what} failed: {type(error).__name__}: {error}"))
                continue
            if (refused := over_limit(records_of(part), max_record_bytes)) is not None:
                dead.append(DeadLetter.of_delivery(one, f"{what}: {refused.reason}"))
                continue
            outcome.absorb(part)
    return outcome, records_of(outcome)


@dataclass
class WorkerParts:
    """What every worker is built from; its `create_app` adds its table, agent and timers."""

    app: faust.App
    redis: Redis
    sender: BulkSender
    metrics: WorkerMetrics
    watch: InputWatch


def worker_parts(
    service: str,
    app_id: str,
    settings: WorkerSettings,
    *,
    metrics_port: int,
    table_dir: str,
    registry: CollectorRegistry,
) -> WorkerParts:
    """A Faust app with our settings, its Redis client and producer, input watch and pages."""
    from shared.rebalance import hold_input_until_seeked
    from shared.redis import create_redis

    app = faust.App(app_id, **faust_config(settings, metrics_port=metrics_port, table_dir=table_dir))
    hold_input_until_seeked(app)  # else input fetched while an assignment completes can be lost
    redis = create_redis(settings.redis_url)
    metrics = WorkerMetrics(service, registry)
    watch = InputWatch(metrics, lambda tp: app.consumer.highwater(tp))
    sender = BulkSender(
        settings.kafka_bootstrap_servers,
        max_record_bytes=settings.max_record_bytes,
        security=settings.kafka_security,
    )
    refresh_lag_every(app, watch)
    stop_on_shutdown(app, sender)
    add_operations_pages(app, registry, redis)
    return WorkerParts(app, redis, sender, metrics, watch)


def batch_consumer(
    parts: WorkerParts,
    topic: faust.TopicT,
    settings: WorkerSettings,
    handle: BatchHandler,
) -> None:
    """The worker's input: fetched batches to `handle`, acked only once it wrote their effects."""
    consume_in_batches(
        parts.app,
        topic,
        handle,
        max_batch=settings.batch_max_events,
        fetch_max_wait_s=settings.broker_fetch_max_wait_s,
    )


class _CustomerOutput(Protocol):
    customer_id: str

    def model_dump_json(self, *, exclude_none: bool = ...) -> str: ...


def keyed_records(
    topic: str, outputs: Iterable[_CustomerOutput], *, exclude_none: bool = False
) -> list[OutgoingRecord]:
    """Outputs as JSON records keyed by their customer, as every topic of ours is."""
    return [
        OutgoingRecord(topic, o.customer_id.encode(), o.model_dump_json(exclude_none=exclude_none).encode())
        for o in outputs
    ]


def changelog_records(
    topic: str, codec: RecordCodec[Any], rows: Mapping[str, Any], partitions: Mapping[str, int]
) -> list[OutgoingRecord]:
    """Table rows for the changelog, each to the partition of the input it was read from."""
    return [
        OutgoingRecord(topic, customer_id.encode(), codec.encode(row), partitions[customer_id])
        for customer_id, row in rows.items()
    ]


def erasure_records(
    changelog: str, erased: Iterable[str], partitions: Mapping[str, int], chain: str | None = None
) -> list[OutgoingRecord]:
    """For customers erased in a batch: a tombstone for each row on the changelog (to the
    partition the tombstone was read from) and, for the next worker, on the `chain` topic."""
    records = [OutgoingRecord(changelog, cid.encode(), None, partitions[cid]) for cid in erased]
    if chain is not None:
        records += [OutgoingRecord(chain, cid.encode(), None) for cid in erased]
    return records


def update_rows(rows: MutableMapping[str, Any], outcome: FoldOutcome) -> None:
    """The table's rows after a batch: the changed ones set, the erased ones gone."""
    for customer_id, record in outcome.records.items():
        rows[customer_id] = record
    for customer_id in outcome.erased:
        rows.pop(customer_id, None)


# Dead-letter topics have one partition (shared/topics.py): named, so that the last letter of a
# batch can be sent on its own (`read_to_the_end`).
DEAD_LETTER_PARTITION = 0


def dead_letter_records(dead_letters: Mapping[str, str], dead: Iterable[DeadLetter]) -> list[OutgoingRecord]:
    """Each dead letter to its input topic's `.dlq`."""
    return [OutgoingRecord(dead_letters[d.topic], d.key, d.encode(), DEAD_LETTER_PARTITION) for d in dead]


def read_to_the_end(changelog: str, dead_letters: Mapping[str, str]) -> frozenset[str]:
    """The topics whose last record of a batch a worker sends alone (BulkSender.send_all's
    `last_alone`): its changelog, read to its end on recovery, and its dead-letter topics, read
    to their end by `pd-dlq` and the API. Tansu reports a partition's end as the start of its
    last record batch + 1, so a reader stopping there would miss the records after the first of
    a multi-record last batch."""
    return frozenset({changelog, *dead_letters.values()})
