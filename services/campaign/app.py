"""`create_app(settings)`: the campaign worker's Faust app, wired.

One handler takes the enrichment chain's tagged inputs, ticks and handovers together, in
batches; timers take up changed campaigns and send ticks for what is due; the worker's web
server answers /metrics, /healthz and /readyz on 9104.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import faust
from prometheus_client import CollectorRegistry

from shared.clock import utc_now
from shared.faust_runtime import owned_partitions, recovery_done
from shared.metrics import process_registry
from shared.record_table import RecordCodec, record_table
from shared.stream_worker import batch_consumer, worker_parts
from shared.ticks import Ticker

from .agents import ActionMetrics, Campaigner
from .batch import JourneyRecord
from .read_model import DUE
from .settings import CampaignSettings
from .targeting import QuietHours
from .topics import campaign_topics


def create_app(
    settings: CampaignSettings,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> faust.App:
    registry = registry or process_registry()
    parts = worker_parts(
        "campaign",
        settings.campaign_app_id,
        settings,
        metrics_port=settings.campaign_metrics_port,
        table_dir=settings.table_dir,
        registry=registry,
    )
    app = parts.app
    topics = campaign_topics(app, settings)
    codec = RecordCodec(JourneyRecord, lambda row: row.journey.view.customer_id)
    table = record_table(app, "journeys", codec, settings.topic_partitions, help="campaign journeys")
    campaigner = Campaigner(
        table=table,
        codec=codec,
        topics=topics,
        redis=parts.redis,
        sender=parts.sender,
        metrics=parts.metrics,
        action_metrics=ActionMetrics(registry),
        watch=parts.watch,
        attribution_window=timedelta(days=settings.attribution_window_days),
        quiet=QuietHours(settings.quiet_hours_start, settings.quiet_hours_end),
        clock=clock,
        channel_caps=settings.channel_daily_caps,
        global_control_pct=settings.global_control_pct,
        max_record_bytes=settings.max_record_bytes,
    )
    batch_consumer(parts, topics.inputs, settings, campaigner.react)

    @app.timer(interval=settings.campaigns_poll_interval_s)
    async def poll_campaigns() -> None:
        await campaigner.refresh_campaigns()

    @app.timer(interval=settings.lead_pool_interval_s)
    async def release_leads() -> None:
        if recovery_done(app):
            await campaigner.release_leads()

    @app.timer(interval=settings.tick_interval_s)
    async def release_broadcasts() -> None:
        if recovery_done(app):
            await campaigner.release_broadcasts(owned_partitions(app), settings.topic_partitions)

    ticker = Ticker(parts.redis, DUE, topics.ticks, parts.sender, clock, kind="tick")

    @app.timer(interval=settings.tick_interval_s)
    async def tick() -> None:
        if recovery_done(app):
            await ticker.tick()

    return app
