"""Kafka helpers: topic creation (kafka-python admin) and an acks=all asyncio producer."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from shared.topics import TopicSpec

log = logging.getLogger(__name__)


def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    try:
        existing = set(admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        for spec in missing:
            topic = NewTopic(spec.name, spec.partitions, 1, topic_configs=dict(spec.config))
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics([topic])
        return [spec.name for spec in missing]
    finally:
        admin.close()


def create_producer(bootstrap_servers: str, request_timeout_s: float) -> AIOKafkaProducer:
    """A producer whose acknowledged sends are on every in-sync replica.

    Not idempotent: the local broker (Tansu) rejects aiokafka's InitProducerId. Duplicates a
    retry may write are harmless, as every consumer dedupes by `event_id`.
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        linger_ms=1,
        max_batch_size=256 * 1024,
        request_timeout_ms=int(request_timeout_s * 1000),
        retry_backoff_ms=100,
    )
