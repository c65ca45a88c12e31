"""`create_app(settings)`: the scoring worker's Faust app, wired.

One agent reads events, merges and handovers as one stream in batches; a timer picks up plans
ops replace; the worker's web server answers /metrics, /healthz and /readyz on 9102.
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

from .agents import PlanHolder, Scorer, refresh_plan
from .batch import CustomerRecord
from .plan import default_plan
from .plan_store import VersionedPlan
from .settings import ScoringSettings
from .tables import customers_table
from .topics import scoring_topics


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: ScoringSettings,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> faust.App:
    registry = registry or process_registry()
    config = faust_config(settings, metrics_port=settings.scoring_metrics_port, table_dir=settings.table_dir)
    app = faust.App(settings.scoring_app_id, **config)
    hold_input_until_seeked(app)  # else input fetched while an assignment completes can be lost
    topics = scoring_topics(app, settings)
    codec = RecordCodec(CustomerRecord)
    table = customers_table(app, settings, codec)
    redis = create_redis(settings.redis_url)
    plans = PlanHolder(VersionedPlan(version=0, updated_at=None, plan=default_plan()))
    metrics = WorkerMetrics("scoring", registry)

    def highwater(tp: faust.types.TP) -> int | None:
        return app.consumer.highwater(tp)

    sender = BulkSender(settings.kafka_bootstrap_servers)
    watch = InputWatch(metrics, highwater)
    scorer = Scorer(
        table=table,
        codec=codec,
        topics=topics,
        redis=redis,
        sender=sender,
        plans=plans,
        metrics=metrics,
        watch=watch,
        clock=clock,
    )

    @app.agent(topics.inputs, name="score")
    async def score(stream: faust.StreamT) -> None:
        # noack_take: events are acked below, only once their effects are written.
        async for events in stream.noack_take(settings.batch_max_events, within=settings.batch_within_s):
            await scorer.score(events)
            for event in events:
                await stream.ack(event)

    @app.task
    async def load_plan_at_start() -> None:
        await refresh_plan(plans, redis, table)

    @app.timer(interval=settings.plan_poll_interval_s)
    async def poll_plan() -> None:
        await refresh_plan(plans, redis, table)

    refresh_lag_every(app, watch)
    stop_on_shutdown(app, sender)
    add_operations_pages(app, registry, redis)
    return app
