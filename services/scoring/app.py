"""`create_app(settings)`: the scoring worker's Faust app, wired.

One agent reads events, merges and handovers as one stream in batches; a timer picks up plans
ops replace; the worker's web server answers /metrics, /healthz and /readyz on 9102.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from shared.kafka import BulkSender
from shared.metrics import CONTENT_TYPE, process_registry, render
from shared.rebalance import hold_input_until_seeked
from shared.redis import create_redis
from shared.worker_metrics import WorkerMetrics

from .agents import PlanHolder, Scorer, refresh_plan
from .plan import default_plan
from .plan_store import VersionedPlan
from .settings import ScoringSettings
from .tables import customers_table
from .topics import scoring_topics


def _utc_now() -> datetime:
    return datetime.now(UTC)


def faust_config(settings: ScoringSettings) -> dict[str, Any]:
    """The worker's Faust settings (bench/bare_worker.py runs its reference with the same)."""
    return {
        "broker": ";".join(f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")),
        "store": "memory://",
        "datadir": settings.table_dir,
        "topic_partitions": settings.topic_partitions,
        "broker_session_timeout": settings.broker_session_timeout_s,
        "broker_heartbeat_interval": settings.broker_heartbeat_interval_s,
        "broker_rebalance_timeout": settings.broker_rebalance_timeout_s,
        "broker_commit_interval": settings.broker_commit_interval_s,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "stream_buffer_maxsize": max(4096, 2 * settings.batch_max_events),
        "stream_recovery_delay": 0.0,
        # The agent acks by hand, after effects are written; never on a failure.
        "stream_ack_cancelled_tasks": False,
        "stream_ack_exceptions": False,
        "web_enabled": True,
        "web_bind": settings.http_host,
        "web_host": settings.http_host,
        "web_port": settings.scoring_metrics_port,
        "web_stats_enabled": False,
        "web_graph_enabled": False,
        "web_tables_enabled": False,
        "web_router_enabled": False,
    }


def create_app(
    settings: ScoringSettings,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> faust.App:
    registry = registry or process_registry()
    app = faust.App(settings.scoring_app_id, **faust_config(settings))
    hold_input_until_seeked(app)  # else input fetched while an assignment completes can be lost
    topics = scoring_topics(app, settings)
    table = customers_table(app, settings)
    redis = create_redis(settings.redis_url)
    plans = PlanHolder(VersionedPlan(version=0, updated_at=None, plan=default_plan()))
    metrics = WorkerMetrics("scoring", registry)

    def highwater(tp: faust.types.TP) -> int | None:
        return app.consumer.highwater(tp)

    sender = BulkSender(settings.kafka_bootstrap_servers)
    scorer = Scorer(
        table=table,
        topics=topics,
        redis=redis,
        sender=sender,
        plans=plans,
        metrics=metrics,
        highwater=highwater,
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
        if not app.tables.recovery.completed.is_set():
            checks["recovery"] = "in progress"
        ready = all(v == "ok" for v in checks.values())
        return web.json(
            {"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503
        )

    return app
