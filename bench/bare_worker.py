"""A bare Faust worker for bench.scoring: touchpoint.events.v1 as raw bytes, in batches, no state.

The reference the scoring worker is measured next to (the issue's "Faust consuming raw bytes in
batches with no state"): the same Faust version, broker settings, batch size and readiness and
metrics endpoints, but no decoding, table, read model or outputs. `take` acks each batch. It reads
through Faust's streams, a message at a time, as the issue's reference did; our workers take
whole fetches instead (shared/batch_drain.py).
Settings come from the scoring worker's environment; run as `python -m bench.bare_worker`.
"""

from __future__ import annotations

import os
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from services.scoring.settings import ScoringSettings
from shared.metrics import CONTENT_TYPE, render
from shared.stream_worker import faust_config
from shared.topics import TOUCHPOINT_EVENTS
from shared.worker_metrics import WorkerMetrics

SERVICE = "bare"
TAKE_WITHIN_S = 0.05  # how long `take` waits to fill a batch (what our workers used with Faust's streams)


def create_app(settings: ScoringSettings) -> faust.App:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(SERVICE, registry)
    app = faust.App(
        settings.scoring_app_id,
        **faust_config(settings, metrics_port=settings.scoring_metrics_port, table_dir=settings.table_dir),
    )  # the scoring worker's own
    # The topic the worker under comparison reads (its chain input), else touchpoint events.
    topic = os.environ.get("BARE_INPUT_TOPIC", TOUCHPOINT_EVENTS)
    events = app.topic(topic, key_serializer="raw", value_serializer="raw")

    @app.agent(events, name="bare")
    async def bare(stream: faust.StreamT) -> None:
        async for batch in stream.take(settings.batch_max_events, within=TAKE_WITHIN_S):
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
