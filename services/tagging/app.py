"""`create_app(settings)`: the tagging worker's Faust app, wired.

One agent reads events, scores, merges and handovers as one stream in batches; a timer takes
up tag rules ops change; the worker's web server answers /metrics, /healthz and /readyz on 9103.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import faust
from prometheus_client import CollectorRegistry

from shared.kafka import BulkSender
from shared.metrics import process_registry
from shared.rebalance import hold_input_until_seeked
from shared.record_table import RecordCodec
from shared.redis import create_redis
from shared.stream_worker import (
    InputWatch,
    add_operations_pages,
    faust_config,
    refresh_lag_every,
    stop_on_shutdown,
)
from shared.worker_metrics import WorkerMetrics

from .agents import Tagger
from .batch import ProfileRecord, Rules
from .rules import RuleSet
from .settings import TaggingSettings
from .tables import profiles_table
from .thresholds import TaggingThresholds
from .topics import tagging_topics


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: TaggingSettings,
    registry: CollectorRegistry | None = None,
    rules: RuleSet | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> faust.App:
    registry = registry or process_registry()
    config = faust_config(settings, metrics_port=settings.tagging_metrics_port, table_dir=settings.table_dir)
    app = faust.App(settings.tagging_app_id, **config)
    hold_input_until_seeked(app)  # else input fetched while an assignment completes can be lost
    topics = tagging_topics(app, settings)
    codec = RecordCodec(ProfileRecord)
    table = profiles_table(app, settings, codec)
    redis = create_redis(settings.redis_url)
    metrics = WorkerMetrics("tagging", registry)

    def highwater(tp: faust.types.TP) -> int | None:
        return app.consumer.highwater(tp)

    sender = BulkSender(settings.kafka_bootstrap_servers)
    watch = InputWatch(metrics, highwater)
    tagger = Tagger(
        table=table,
        codec=codec,
        topics=topics,
        redis=redis,
        sender=sender,
        # The rules in force when the worker starts (worker.py loads them), so that a restarted
        # worker replays its inputs under the same rules as before.
        rules=Rules(TaggingThresholds(), rules or RuleSet(version=0)),
        metrics=metrics,
        watch=watch,
        partitions=settings.topic_partitions,
        owned_partitions=lambda: {tp.partition for tp in app.assignor.assigned_actives()},
        clock=clock,
    )

    @app.agent(topics.inputs, name="tag")
    async def tag(stream: faust.StreamT) -> None:
        # noack_take: inputs are acked below, only once their effects are written.
        async for events in stream.noack_take(settings.batch_max_events, within=settings.batch_within_s):
            await tagger.tag(events)
            for event in events:
                await stream.ack(event)

    @app.timer(interval=settings.rules_poll_interval_s)
    async def poll_rules() -> None:
        if app.tables.recovery.completed.is_set():  # re-derive only a complete table
            await tagger.apply_rules()

    refresh_lag_every(app, watch)
    stop_on_shutdown(app, sender)
    add_operations_pages(app, registry, redis)
    return app
