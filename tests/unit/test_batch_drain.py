"""What shared/batch_drain.py (through shared/faust_runtime.py) changes in a Faust app, checked
without a broker."""

from __future__ import annotations

import asyncio

import faust

from shared.batch_drain import consume_in_batches
from shared.faust_runtime import BatchDrainConsumer


def test_the_worker_consumer_takes_its_batches_and_fetches_without_faust_s_long_wait() -> None:
    async def build() -> tuple[faust.App, object]:
        app = faust.App("batch-drain-unit", broker="kafka://127.0.0.1:1", store="memory://")
        topic = app.topic("in.a", "in.b", key_serializer="raw", value_serializer="raw")

        async def handle(messages: object) -> None: ...

        consume_in_batches(app, topic, handle, max_batch=500, fetch_max_wait_s=0.05)
        consumer = app.consumer
        # Built, never started: no connection is made.
        return app, consumer._new_consumer_thread()._create_worker_consumer(app.transport)

    app, kafka_consumer = asyncio.run(build())
    consumer = app.consumer
    assert isinstance(consumer, BatchDrainConsumer)
    assert consumer.input_topics == frozenset({"in.a", "in.b"}) and consumer.max_batch == 500
    assert kafka_consumer._fetch_max_wait_ms == 50  # Faust's own is 1,500
