"""The floor for a Python worker on this broker (issue 20's first reference): an aiokafka consumer
taking whole fetches with `getmany` and decoding each record's JSON, nothing else — no state, no
outputs, no commits, no Faust. A worker's events per CPU-second over the floor's is the share of
the cheapest possible Python consumer it reaches.

Same settings as the bare Faust worker (the scoring worker's environment: broker, app id as the
consumer group, metrics port; BARE_INPUT_TOPIC for another input); /metrics and /readyz as every
worker's, so bench/worker_bench.py measures it like one. Run as `python -m bench.getmany_floor`.
"""

from __future__ import annotations

import asyncio
import os
import time

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from services.scoring.settings import ScoringSettings
from shared.metrics import CONTENT_TYPE, render
from shared.topics import TOUCHPOINT_EVENTS
from shared.worker_metrics import WorkerMetrics

SERVICE = "floor"


async def consume(settings: ScoringSettings, topic: str, metrics: WorkerMetrics) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.scoring_app_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **settings.kafka_security.aiokafka(),
    )
    await consumer.start()
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=100, max_records=settings.batch_max_events)
            for records in fetched.values():
                began = time.perf_counter()
                for record in records:
                    orjson.loads(record.value)  # the decoding every worker must at least do
                metrics.count({"processed": len(records)})
                metrics.batch_seconds.labels(SERVICE).observe(time.perf_counter() - began)
    finally:
        await consumer.stop()


async def serve(settings: ScoringSettings) -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(SERVICE, registry)

    async def metrics_page(_: web.Request) -> web.Response:
        return web.Response(body=render(registry), content_type=CONTENT_TYPE.split(";")[0])

    async def readyz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics_page), web.get("/readyz", readyz)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.scoring_metrics_port).start()
    try:
        await consume(settings, os.environ.get("BARE_INPUT_TOPIC", TOUCHPOINT_EVENTS), metrics)
    finally:
        await runner.cleanup()


def main() -> None:
    asyncio.run(serve(ScoringSettings()))


if __name__ == "__main__":
    main()
