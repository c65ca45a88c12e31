"""Kafka helpers: topic creation (kafka-python admin) and an acks=all asyncio producer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None  # None: by key, with the default partitioner (as ingest does)


class BulkSender:
    """Sends a worker's outputs for one batch together and waits until the broker has them all.

    Records are handed to the producer back to back, so its accumulator packs them into one
    record batch per partition, where sending them one at a time (as Faust's own buffer does)
    costs a batch and often a request per record.
    """

    def __init__(self, bootstrap_servers: str, request_timeout_s: float = 30.0) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._request_timeout_s = request_timeout_s
        self._producer: AIOKafkaProducer | None = None

    async def _started(self) -> AIOKafkaProducer:
        # Built on first use: aiokafka binds to the running event loop.
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap_servers,
                acks="all",
                linger_ms=0,
                max_batch_size=1024 * 1024,
                request_timeout_ms=int(self._request_timeout_s * 1000),
                retry_backoff_ms=100,
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def send_all(
        self, records: Iterable[OutgoingRecord], *, last_alone: frozenset[str] = frozenset()
    ) -> None:
        """Send `records` and wait for every ack.

        `last_alone`: topics whose last record per partition is sent on its own, after the rest.
        Tansu (0.6) reports a partition's end offset as the start of its last record batch + 1,
        so a consumer that reads "to the end" (Faust restoring a table from its changelog) would
        stop inside a multi-record last batch and miss the records after its first. A last
        batch of one record keeps the reported end exact, on any broker.
        """
        held: dict[tuple[str, int], OutgoingRecord] = {}
        bulk: list[OutgoingRecord] = []
        for record in records:
            if record.topic in last_alone and record.partition is not None:
                earlier = held.get((record.topic, record.partition))
                if earlier is not None:
                    bulk.append(earlier)
                held[(record.topic, record.partition)] = record
            else:
                bulk.append(record)
        await self._send(bulk)
        await self._send(list(held.values()))

    async def _send(self, records: list[OutgoingRecord]) -> None:
        if not records:
            return
        producer = await self._started()
        pending = [await producer.send(r.topic, r.value, key=r.key, partition=r.partition) for r in records]
        await asyncio.gather(*pending)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
