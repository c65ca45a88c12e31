"""`create_app(settings)`: the campaign worker's Faust app, wired.

One agent reads events, scores, profile changes, merges, ticks and handovers as one stream in
batches; timers take up changed campaigns and send ticks for what is due; the worker's web
server answers /metrics, /healthz and /readyz on 9104.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import faust
from prometheus_client import CollectorRegistry

from shared.kafka import BulkSender
from shared.metrics import process_registry
from shared.rebalance import hold_input_until_seeked
from shared.record_table import RecordCodec, record_table
from shared.redis import create_redis
from shared.stream_worker import (
    InputWatch,
    add_operations_pages,
    faust_config,
    refresh_lag_every,
    stop_on_shutdown,
)
from shared.worker_metrics import WorkerMetrics

from .agents import ActionMetrics, Campaigner
from .batch import JourneyRecord
from .desk import example_roster
from .settings import CampaignSettings
from .targeting import QuietHours
from .topics import campaign_topics


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: CampaignSettings,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> faust.App:
    registry = registry or process_registry()
    config = faust_config(settings, metrics_port=settings.campaign_metrics_port, table_dir=settings.table_dir)
    app = faust.App(settings.campaign_app_id, **config)
    hold_input_until_seeked(app)  # else input fetched while an assignment completes can be lost
    topics = campaign_topics(app, settings)
    codec = RecordCodec(JourneyRecord)
    table = record_table(app, "journeys", codec, settings.topic_partitions, help="campaign journeys")
    redis = create_redis(settings.redis_url)
    metrics = WorkerMetrics("campaign", registry)

    def highwater(tp: faust.types.TP) -> int | None:
        return app.consumer.highwater(tp)

    sender = BulkSender(settings.kafka_bootstrap_servers)
    watch = InputWatch(metrics, highwater)
    campaigner = Campaigner(
        table=table,
        codec=codec,
        topics=topics,
        redis=redis,
        sender=sender,
        metrics=metrics,
        action_metrics=ActionMetrics(registry),
        watch=watch,
        roster=example_roster(),
        attribution_window=timedelta(days=settings.attribution_window_days),
        quiet=QuietHours(settings.quiet_hours_start, settings.quiet_hours_end),
        consent_grace=timedelta(seconds=settings.consent_grace_s),
        clock=clock,
    )

    @app.agent(topics.inputs, name="campaign")
    async def react(stream: faust.StreamT) -> None:
        # The campaigns in force before the first input (the timer may not have run yet).
        if campaigner.campaigns_version < 0:
            await campaigner.refresh_campaigns()
        async for events in stream.noack_take(settings.batch_max_events, within=settings.batch_within_s):
            await campaigner.react(events)
            for event in events:
                await stream.ack(event)

    @app.timer(interval=settings.campaigns_poll_interval_s)
    async def poll_campaigns() -> None:
        await campaigner.refresh_campaigns()

    @app.timer(interval=settings.tick_interval_s)
    async def tick() -> None:
        if app.tables.recovery.completed.is_set():
            await campaigner.tick()

    refresh_lag_every(app, watch)
    stop_on_shutdown(app, sender)
    add_operations_pages(app, registry, redis)
    return app
