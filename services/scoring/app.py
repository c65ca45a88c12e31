"""`create_app(settings)`: the scoring worker's Faust app, wired.

One handler takes events, merges and handovers together, in batches; a timer picks up plans
ops replace; the worker's web server answers /metrics, /healthz and /readyz on 9102.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import faust
from prometheus_client import CollectorRegistry

from shared.metrics import process_registry
from shared.record_table import RecordCodec, record_table
from shared.stream_worker import batch_consumer, worker_parts

from .agents import PlanHolder, Scorer, refresh_plan
from .batch import CustomerRecord
from .plan import default_plan
from .plan_store import VersionedPlan
from .settings import ScoringSettings
from .topics import scoring_topics


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: ScoringSettings,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = _utc_now,
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
    codec = RecordCodec(CustomerRecord)
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
    )
    batch_consumer(parts, topics.inputs, settings, scorer.score)

    @app.task
    async def load_plan_at_start() -> None:
        await refresh_plan(plans, redis, table)

    @app.timer(interval=settings.plan_poll_interval_s)
    async def poll_plan() -> None:
        await refresh_plan(plans, redis, table)

    return app
