"""The WeCom sender's process: `create_app(settings)` wires the consumer of
`campaign.actions.v1`, the Sender (sender.py), WeCom's client and the operations endpoints."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError

from shared.http import operations_router
from shared.kafka import BulkSender, OutgoingRecord
from shared.metrics import process_registry
from shared.redis import create_redis
from shared.topics import CAMPAIGN_ACTIONS

from .client import WeComClient
from .sender import Sender, replayable
from .settings import WeComSenderSettings

log = logging.getLogger(__name__)


def create_app(
    settings: WeComSenderSettings,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    registry = registry if registry is not None else process_registry()
    actions = Counter(
        "pd_wecom_sender_actions",
        "WeCom actions by outcome: delivered, failed (campaign.failed, and a dead letter for "
        "WeCom's refusals), duplicate (claimed before: not sent twice), undecodable",
        ["outcome"],
        registry=registry,
    )
    redis = create_redis(settings.redis_url)
    consumer: AIOKafkaConsumer | None = None

    async def consume() -> None:
        nonlocal consumer
        http = httpx.AsyncClient(
            base_url=str(settings.wecom_api_base_url), timeout=settings.wecom_request_timeout_s
        )
        client = WeComClient(
            http, settings.wecom_corp_id, settings.wecom_corp_secret, settings.wecom_requests_per_second
        )
        sender = Sender(
            redis,
            client,
            settings.wecom_content_url,
            settings.wecom_group_chats,
            clock,
            settings.wecom_max_attempts,
            settings.wecom_retry_wait_s,
            lambda outcome: actions.labels(outcome).inc(),
        )
        outputs = BulkSender(settings.kafka_bootstrap_servers, security=settings.kafka_security)
        consumer = AIOKafkaConsumer(
            CAMPAIGN_ACTIONS,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.wecom_sender_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **settings.kafka_security.aiokafka(),
        )
        while True:
            try:
                await consumer.start()
                break
            except KafkaError as error:
                log.warning("broker not reachable yet: %r", error)
                await asyncio.sleep(1)
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=100)
                # Actions one at a time, in order; their results on the broker together, before
                # the offset is committed (one produce a fetch, not one an action). A stop in
                # between loses no result: each action's claim gives it again (sender.py).
                results: list[OutgoingRecord] = []
                for messages in batch.values():
                    for message in messages:
                        records = await _handled(sender, message)
                        results += (OutgoingRecord(*r) for r in records)
                        if not all(replayable(r) for r in records):  # a dead letter: out now
                            await _publish(outputs, results)
                            results = []
                await _publish(outputs, results)
                if batch:
                    await consumer.commit()
        finally:
            await consumer.stop()
            await http.aclose()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(consume())
        task.add_done_callback(_stop_when_done)
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await redis.aclose()

    async def kafka_ready() -> None:
        if consumer is None or not consumer.assignment():
            raise RuntimeError("not consuming campaign.actions.v1 yet")

    app = FastAPI(title="WeCom sender", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(operations_router(registry, {"kafka": kafka_ready, "redis": redis.ping}))
    return app


def _stop_when_done(task: asyncio.Task[None]) -> None:
    """The consumer stopped by itself (a bug, not a cancel): the process stops too, to be restarted."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("the consumer stopped: %r", task.exception())
        os.kill(os.getpid(), signal.SIGTERM)


async def _publish(outputs: BulkSender, records: list[OutgoingRecord]) -> None:
    if records and (refused := await outputs.send_all(records)):
        log.error("results the broker refuses: %s", [r.reason for r in refused])


async def _handled(sender: Sender, message: ConsumerRecord) -> list[tuple[str, bytes | None, bytes]]:
    """The sender's outputs for a message; while Redis is out, the same message again, later."""
    while True:
        try:
            return await sender.handle(message.key, message.value, message.partition, message.offset)
        except (RedisError, OSError) as error:
            log.warning("Redis unavailable, retrying the action: %r", error)
            await asyncio.sleep(1)
