"""A bare Faust worker for bench.scoring: touchpoint.events.v1 as raw bytes, in batches, no state.

The reference the scoring worker is measured next to (the issue's "Faust consuming raw bytes in
batches with no state"): the same Faust version, broker settings, batch size and readiness and
metrics endpoints, but no decoding, table, read model or outputs. `take` acks each batch.
Settings come from the scoring worker's environment; run as `python -m bench.bare_worker`.
"""

from __future__ import annotations

from typing import Any

import faust
from prometheus_client import CollectorRegistry

from services.scoring.settings import ScoringSettings
from shared.metrics import CONTENT_TYPE, render
from shared.topics import TOUCHPOINT_EVENTS
from shared.worker_metrics import WorkerMetrics

SERVICE = "bare"


def create_app(settings: ScoringSettings) -> faust.App:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(SERVICE, registry)
    app = faust.App(
        settings.scoring_app_id,
        broker=";".join(f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")),
        store="memory://",
        datadir=settings.table_dir,
        topic_partitions=settings.topic_partitions,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        broker_rebalance_timeout=settings.broker_rebalance_timeout_s,
        broker_commit_interval=settings.broker_commit_interval_s,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=max(4096, 2 * settings.batch_max_events),
        web_enabled=True,
        web_bind=settings.http_host,
        web_host=settings.http_host,
        web_port=settings.scoring_metrics_port,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_tables_enabled=False,
        web_router_enabled=False,
    )
    events = app.topic(TOUCHPOINT_EVENTS, key_serializer="raw", value_serializer="raw")

    @app.agent(events, name="bare")
    async def bare(stream: faust.StreamT) -> None:
        async for batch in stream.take(settings.batch_max_events, within=settings.batch_within_s):
            metrics.count({"processed": len(batch)})
            metrics.batch_seconds.labels(SERVICE).observe(0.0)

    @app.page("/metrics")
    async def metrics_page(web: faust.web.View, request: faust.web.Request) -> Any:
        return web.bytes(render(registry), content_type=CONTENT_TYPE.split("; charset")[0])

    @app.page("/readyz")
    async def readyz(web: faust.web.View, request: faust.web.Request) -> Any:
        return web.json({"status": "ready"})

    return app


def main() -> None:
    settings = ScoringSettings()
    app = create_app(settings)
    faust.Worker(app, loglevel=settings.log_level.lower(), loop=None).execute_from_commandline()


if __name__ == "__main__":
    main()
