"""BulkSender against the real broker: everything acknowledged, and ends that consumers can trust."""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition

from shared.kafka import BulkSender, OutgoingRecord, ensure_topics
from shared.topics import TopicSpec
from tests.factories import unique


async def test_a_bulk_send_ends_each_partition_on_a_batch_of_one(backends) -> None:
    topic = unique("bulk")
    ensure_topics(backends.kafka_bootstrap_servers, [TopicSpec(topic, 2)])
    sender = BulkSender(backends.kafka_bootstrap_servers)
    records = [OutgoingRecord(topic, b"k%d" % n, b"v%d" % n, n % 2) for n in range(40)]
    try:
        await sender.send_all(records, last_alone=frozenset({topic}))
    finally:
        await sender.stop()

    consumer = KafkaConsumer(bootstrap_servers=backends.kafka_bootstrap_servers)
    try:
        partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        # The reported end is where a reader "to the end" stops: it must be the real end.
        assert consumer.end_offsets(partitions) == {tp: 20 for tp in partitions}
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        values: list[bytes] = []
        while batch := consumer.poll(timeout_ms=1000):
            values += [m.value for messages in batch.values() for m in messages]
    finally:
        consumer.close()
    assert sorted(values) == sorted(r.value for r in records)
