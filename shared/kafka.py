"""Kafka helpers: topic creation (kafka-python admin) and an acks=all asyncio producer.

Records that can never be written (docs/contract.md, "Bounds"). A broker refuses a record batch
over its limit (Apache Kafka: `message.max.bytes`, 1,048,588 bytes by default) or one it finds
invalid, and refuses it again on every retry: a worker that retried it would stop for good, and
again after every restart. So `BulkSender.send_all` tells such records apart from the rest and
returns them as `Refused`, with the reason, instead of raising: records over its own
`max_record_bytes` are not sent at all (the limit keeps a margin below the broker's), and a
batch the broker refuses with one of REFUSED_RECORD_ERRORS is sent again one record a batch to
find which of its records are refused. Every other error (broker away, timeouts, leaders
moving) raises as before: the caller retries the whole send, and nothing is given up on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import CorruptRecordException, MessageSizeTooLargeError, RecordListTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from shared.kafka_security import PLAINTEXT, KafkaSecurity
from shared.topics import BROKER_DEFAULTS, TopicPolicy, TopicSpec

log = logging.getLogger(__name__)


def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    policy: TopicPolicy = BROKER_DEFAULTS,
    security: KafkaSecurity = PLAINTEXT,
) -> list[str]:
    """Create the topics that do not exist yet, by `policy`; return the names created. A topic
    that exists is left as it is (an SRE's partitions, replication and configs are never
    lowered); one whose partition count is not the spec's is named in a warning, since topics
    read together must be partitioned alike (docs/runbooks/adding-partitions.md)."""
    specs = list(specs)
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000, **security.kafka_python()
    )
    try:
        existing = set(admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        _warn_of_other_partition_counts(admin, [spec for spec in specs if spec.name in existing])
        extra = {"min.insync.replicas": str(policy.min_insync_replicas)} if policy.min_insync_replicas else {}
        for spec in missing:
            configs = dict(spec.config) | extra
            topic = NewTopic(spec.name, spec.partitions, policy.replication_factor, topic_configs=configs)
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics([topic])
        return [spec.name for spec in missing]
    finally:
        admin.close()


def _warn_of_other_partition_counts(admin: KafkaAdminClient, specs: list[TopicSpec]) -> None:
    if not specs:
        return
    try:
        described = admin.describe_topics([spec.name for spec in specs])
        # kafka-python names a topic `topic` or `name` depending on the request version.
        counts = {str(t.get("topic") or t.get("name")): len(t.get("partitions") or []) for t in described}
    except Exception as error:  # a warning is not worth failing a start
        log.warning("could not describe topics to compare partition counts: %r", error)
        return
    for spec in specs:
        if counts.get(spec.name) not in (None, spec.partitions):
            log.warning(
                "topic %s has %s partitions, not the %s configured: left as it is",
                spec.name,
                counts[spec.name],
                spec.partitions,
            )


def create_producer(
    bootstrap_servers: str, request_timeout_s: float, security: KafkaSecurity = PLAINTEXT
) -> AIOKafkaProducer:
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
        **security.aiokafka(),
    )


class OutgoingRecord(NamedTuple):  # a tuple: made by the thousand a second
    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone
    partition: int | None = None  # None: by key, with the default partitioner (as ingest does)

    @property
    def size(self) -> int:
        """Key and value bytes: what a limit on a record's size is measured on."""
        return len(self.key or b"") + len(self.value or b"")


# Produce errors about the records themselves: sending them again is refused again.
REFUSED_RECORD_ERRORS: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
)


class Refused(NamedTuple):
    """A record that can never be written, and why."""

    record: OutgoingRecord
    reason: str


def over_limit(records: Iterable[OutgoingRecord], max_record_bytes: int) -> Refused | None:
    """The first record larger than `max_record_bytes`, if any."""
    for record in records:
        if record.size > max_record_bytes:
            return Refused(
                record,
                f"a {record.topic} record of {record.size} bytes is over the {max_record_bytes}-byte limit",
            )
    return None


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

    def __init__(
        self,
        bootstrap_servers: str,
        request_timeout_s: float = 30.0,
        max_record_bytes: int | None = None,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._security = security
        self._request_timeout_s = request_timeout_s
        self._max_record_bytes = max_record_bytes  # None: the broker alone says what is too large
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
                **self._security.aiokafka(),
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def send_all(
        self, records: Iterable[OutgoingRecord], *, last_alone: frozenset[str] = frozenset()
    ) -> list[Refused]:
        """Send `records` and wait for every ack; return those that can never be written (over
        `max_record_bytes`, not sent; or refused by the broker for what they are). Any other
        failure raises: call again (records sent before may then be written twice).

        `last_alone`: topics whose last record per partition is sent on its own, after the rest.
        Tansu (0.6) reports a partition's end offset as the start of its last record batch + 1,
        so a consumer that reads "to the end" (Faust restoring a table from its changelog) would
        stop inside a multi-record last batch and miss the records after its first. A last
        batch of one record keeps the reported end exact, on any broker.
        """
        refused: list[Refused] = []
        held: dict[tuple[str, int], OutgoingRecord] = {}
        bulk: list[OutgoingRecord] = []
        limit = self._max_record_bytes
        for record in records:
            if limit is not None and record.size > limit:
                refused.append(over_limit((record,), limit))  # type: ignore[arg-type]  # it is over
                continue
            if record.topic in last_alone and record.partition is not None:
                earlier = held.get((record.topic, record.partition))
                if earlier is not None:
                    bulk.append(earlier)
                held[(record.topic, record.partition)] = record
            else:
                bulk.append(record)
        refused += await self._send(bulk)
        refused += await self._send(list(held.values()))
        return refused

    async def _send(self, records: list[OutgoingRecord]) -> list[Refused]:
        if not records:
            return []
        producer = await self._started()
        futures = await send_batched(producer, records, self._partitions)
        failed = await _failures(futures)
        if not failed:
            return []
        suspects = [
            (record, future) for record, future in zip(records, futures, strict=True) if future in failed
        ]
        if len(suspects) == 1:  # a batch of its own (a record too large for a batch always is one)
            ((record, future),) = suspects
            return [Refused(record, _reason(failed[future]))]
        # Which records of the refused batches does the broker refuse? Each on its own. (They go
        # after the records sent since, so the order of a partition's records may change: only
        # here, and only around a record that can never be written.)
        alone = [
            (record, (await send_batched(producer, [record], self._partitions))[0]) for record, _ in suspects
        ]
        failed = await _failures([future for _, future in alone])
        return [Refused(record, _reason(failed[future])) for record, future in alone if future in failed]

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


async def _failures(futures: Sequence[asyncio.Future[object]]) -> dict[asyncio.Future[object], BaseException]:
    """Wait for every ack; the futures whose batch the broker refused for its records, with the
    error. Any other failure is raised (the first one): the caller retries the whole send."""
    distinct = list(dict.fromkeys(futures))  # records of one batch share its future
    outcomes = await asyncio.gather(*distinct, return_exceptions=True)
    failed = {f: o for f, o in zip(distinct, outcomes, strict=True) if isinstance(o, BaseException)}
    for error in failed.values():
        if not isinstance(error, REFUSED_RECORD_ERRORS):
            raise error
    return failed


def _reason(error: BaseException) -> str:
    return f"refused by the broker: {type(error).__name__}: {error}"[:500]
