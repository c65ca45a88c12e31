"""`create_app(settings)`: the scoring worker's Faust app, wired.

One handler takes events, merges, handovers and ticks together, in batches; timers pick up
plans ops replace and tick customers whose band or activity time alone has moved; the worker's
web server answers /metrics, /healthz and /readyz on 9102.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import faust
from prometheus_client import CollectorRegistry

from shared.clock import utc_now
from shared.faust_runtime import recovery_done
from shared.metrics import process_registry
from shared.record_table import RecordCodec, record_table
from shared.stream_worker import batch_consumer, worker_parts
from shared.ticks import Ticker

from .agents import PlanHolder, Scorer, refresh_plan
from .batch import CustomerRecord
from .plan import default_plan
from .plan_store import VersionedPlan
from .read_model import DUE
from .settings import ScoringSettings
from .topics import scoring_topics


def create_app(
    settings: ScoringSettings,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> faust.App:
    registry = registry or process_registry()
    parts = worker_parts(
        "scoring",
        settings.scoring_app_id,
        settings,
        metrics_port=settings.scoring_metrics_port,
        table_dir=settings.table_dir,
        registry=registry,
    )
    app, redis = parts.app, parts.redis
    topics = scoring_topics(app, settings)
    codec = RecordCodec(CustomerRecord, lambda row: row.score.customer_id)
    table = record_table(app, "customers", codec, settings.topic_partitions, help="scoring state")
    plans = PlanHolder(VersionedPlan(version=0, updated_at=None, plan=default_plan()))
    scorer = Scorer(
        table=table,
        codec=codec,
        topics=topics,
        redis=redis,
        sender=parts.sender,
        plans=plans,
        metrics=parts.metrics,
        watch=parts.watch,
        clock=clock,
        max_record_bytes=settings.max_record_bytes,
    )
    batch_consumer(parts, topics.inputs, settings, scorer.score)

    ticker = Ticker(redis, DUE, topics.ticks, parts.sender, clock, kind="decay")

    @app.timer(interval=settings.tick_interval_s)
    async def tick() -> None:
        if recovery_done(app):
            await ticker.tick()

    @app.timer(interval=settings.plan_poll_interval_s)
    async def poll_plan() -> None:
        # Only with every row restored: a plan change rewrites the rows' cells (agents.py).
        if recovery_done(app):
            await refresh_plan(plans, redis, table, clock)

    return app
