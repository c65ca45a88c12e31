"""Kafka helpers: topic creation (kafka-python admin) and an acks=all asyncio producer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
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
        linger_ms=0,  # records come as whole record batches (send_batched): nothing to wait for
        max_batch_size=256 * 1024,
        request_timeout_ms=int(request_timeout_s * 1000),
        retry_backoff_ms=100,
    )


class OutgoingRecord(NamedTuple):  # a tuple: made by the thousand a second
    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None  # None: by key, with the default partitioner (as ingest does)


class KeyPartitions:
    """The default partitioner's partition per key, remembered.

    aiokafka's murmur2 is pure Python (about 2 µs a key) and the same customers recur, so a
    bounded cache of the answer is cheap. The answer is the one `producer.send` would give.
    """

    def __init__(self, max_keys_per_topic: int = 200_000) -> None:
        self._partitioner = DefaultPartitioner()
        self._max_keys = max_keys_per_topic
        self._known: dict[str, tuple[list[int], dict[bytes, int]]] = {}

    def of_topic(self, topic: str, partitions: list[int]) -> Callable[[bytes], int]:
        """Key -> partition for `topic`, whose partitions (sorted) the producer's metadata has."""
        known = self._known.get(topic)
        if known is None or known[0] != partitions:  # partitions added: every answer changes
            known = self._known[topic] = (partitions, {})
        cache = known[1]
        if len(cache) >= self._max_keys:
            cache.clear()

        def partition_of(key: bytes) -> int:
            partition = cache.get(key)
            if partition is None:
                partition = cache[key] = self._partitioner(key, partitions, None)
            return partition

        return partition_of


async def send_batched(
    producer: AIOKafkaProducer, records: Sequence[OutgoingRecord], partitions: KeyPartitions
) -> list[asyncio.Future[object]]:
    """Queue `records` as one record batch per topic-partition, in order; one future per record.

    A record's future is its batch's: it resolves when the broker acknowledged the batch. Built
    by hand because `producer.send` costs about 10 µs of CPU a record (a future, a partitioner
    call and accumulator bookkeeping each), a batch builder about 3 µs.
    """
    builders: dict[tuple[str, int], BatchBuilder] = {}
    members: dict[tuple[str, int], list[int]] = {}
    futures: list[asyncio.Future[object] | None] = [None] * len(records)
    partitioners: dict[str, Callable[[bytes], int]] = {}

    async def submit(topic_partition: tuple[str, int]) -> None:
        topic, partition = topic_partition
        future = await producer.send_batch(builders.pop(topic_partition), topic, partition=partition)
        for index in members.pop(topic_partition):
            futures[index] = future

    for index, record in enumerate(records):
        partition = record.partition
        if partition is None:
            partition_of = partitioners.get(record.topic)
            if partition_of is None:  # waits only while the producer has no metadata for the topic
                known = sorted(await producer.partitions_for(record.topic))
                partition_of = partitioners[record.topic] = partitions.of_topic(record.topic, known)
            partition = partition_of(record.key or b"")
        topic_partition = (record.topic, partition)
        builder = builders.get(topic_partition)
        if builder is not None and builder.append(key=record.key, value=record.value, timestamp=None) is None:
            await submit(topic_partition)  # full: send it, start the next batch with this record
            builder = None
        if builder is None:
            builder = builders[topic_partition] = producer.create_batch()
            builder.append(key=record.key, value=record.value, timestamp=None)  # a first one always fits
        members.setdefault(topic_partition, []).append(index)
    for topic_partition in list(builders):
        await submit(topic_partition)
    return futures  # type: ignore[return-value]  # every index was given its batch's future


class BulkSender:
    """Sends a worker's outputs for one batch together and waits until the broker has them all.

    Records go to the producer as one record batch per partition (`send_batched`), where
    sending them one at a time (as Faust's own buffer does) costs a batch and often a request
    per record.
    """

    def __init__(self, bootstrap_servers: str, request_timeout_s: float = 30.0) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._request_timeout_s = request_timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._partitions = KeyPartitions()

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
        await asyncio.gather(*set(await send_batched(producer, records, self._partitions)))

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
