"""The bare reference endpoint bench/ingest.py measures next to ingest.

FastAPI + aiokafka and nothing else: no auth, validation, dedupe, identity resolution or PII
hashing. It parses the JSON body, produces it (a batch: one record per event) with acks=all and
no idempotence, and answers 202 once the broker acknowledged. The producer is tuned like
ingest's (linger 1 ms, 256 KiB batches), so ingest/bare measures what ingest does beyond
producing; on a shared machine that ratio is far steadier than either absolute rate.

Run by the bench as `uvicorn --factory bench.bare_endpoint:app_from_env` with
BENCH_BARE_BOOTSTRAP, BENCH_BARE_TOPIC and BENCH_BARE_PARTITIONS.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request, Response

from shared.kafka import ensure_topics
from shared.topics import TopicSpec

JSON = "application/json"


def create_app(bootstrap: str, topic: str, partitions: int) -> FastAPI:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=1,
        max_batch_size=256 * 1024,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Its own topic: these records are not contract events and must not reach the workers.
        await asyncio.to_thread(ensure_topics, bootstrap, [TopicSpec(topic, partitions)])
        await producer.start()
        try:
            yield
        finally:
            await producer.stop()

    app = FastAPI(lifespan=lifespan, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/events")
    async def post_event(request: Request) -> Response:
        body = await request.body()
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            return Response(b'{"detail":"not JSON"}', status_code=400, media_type=JSON)
        await (await producer.send(topic, value=body))
        return Response(b'{"accepted":1}', status_code=202, media_type=JSON)

    @app.post("/v1/events/batch")
    async def post_batch(request: Request) -> Response:
        try:
            events = orjson.loads(await request.body())["events"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return Response(b'{"detail":"expected {\\"events\\": [...]}"}', status_code=400, media_type=JSON)
        acks = [await producer.send(topic, value=orjson.dumps(event)) for event in events]
        await asyncio.gather(*acks)
        return Response(orjson.dumps({"accepted": len(events)}), status_code=202, media_type=JSON)

    return app


def app_from_env() -> FastAPI:
    return create_app(
        os.environ.get("BENCH_BARE_BOOTSTRAP", "127.0.0.1:9092"),
        os.environ.get("BENCH_BARE_TOPIC", "bench.bare.v1"),
        int(os.environ.get("BENCH_BARE_PARTITIONS", "3")),
    )
