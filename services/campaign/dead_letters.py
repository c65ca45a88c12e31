"""Dead letters: what the workers could not take, read back from the `<topic>.dlq` topics, and
re-published to their topic once the cause is fixed.

A worker puts an input it cannot take on its topic's dead-letter topic with the reason
(shared/stream_worker.py, `DeadLetter`). Here they are listed (newest first), shown one by one,
and replayed: the input goes back on the topic it came from, with its key, as it was or as
corrected by the operator. A correction must keep the input's `event_id`: the workers dedupe by
it, so a replay never counts twice.

Plumbing over kafka-python (blocking; the API runs it in a thread). An id names a dead letter
by its place: `<dead-letter topic>:<partition>:<offset>`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pydantic import BaseModel, Field

from shared.dead_letters import DeadLetter
from shared.kafka_security import PLAINTEXT, KafkaSecurity
from shared.topics import MAIN_TOPICS, dead_letter_topic

DEAD_LETTER_TOPICS = tuple(dead_letter_topic(topic) for topic in MAIN_TOPICS)
READ_TIMEOUT_S = 10.0


class DeadLetterView(BaseModel):
    id: str = Field(description="`<dead-letter topic>:<partition>:<offset>`")
    topic: str = Field(description="where the input came from, and where a replay puts it")
    partition: int = Field(description="the input's partition on `topic`")
    offset: int = Field(description="the input's offset on `topic`")
    error: str = Field(description="why the worker could not take it")
    key: str | None
    value: str | None = Field(description="the input as it was read (UTF-8)")
    value_bytes: int | None = Field(
        default=None,
        description="the input's size when `value` is only its beginning (a dead letter is kept "
        "small); null: `value` is whole. Such a dead letter is replayed only corrected.",
    )
    at: datetime = Field(description="when it was dead-lettered")
    replayed_at: datetime | None = None


class UnknownDeadLetter(LookupError):
    pass


class BadCorrection(ValueError):
    pass


def parse_id(letter_id: str) -> tuple[str, int, int]:
    topic, _, rest = letter_id.rpartition(":")
    dlq_topic, _, partition = topic.rpartition(":")
    try:
        place = (dlq_topic, int(partition), int(rest))
    except ValueError:
        raise UnknownDeadLetter(letter_id) from None
    if dlq_topic not in DEAD_LETTER_TOPICS:
        raise UnknownDeadLetter(letter_id)
    return place


def _view(record: Any) -> DeadLetterView:
    letter = DeadLetter.decode(record.key, record.value)
    return DeadLetterView(
        id=f"{record.topic}:{record.partition}:{record.offset}",
        topic=letter.topic,
        partition=letter.partition,
        offset=letter.offset,
        error=letter.reason,
        key=letter.key.decode("utf-8", "replace") if letter.key is not None else None,
        value=letter.value.decode("utf-8", "replace") if letter.value is not None else None,
        value_bytes=letter.value_bytes,
        at=datetime.fromtimestamp(record.timestamp / 1000, UTC),
    )


def read_dead_letters(
    bootstrap_servers: str,
    topics: Sequence[str] = DEAD_LETTER_TOPICS,
    last: int = 100,
    security: KafkaSecurity = PLAINTEXT,
) -> list[DeadLetterView]:
    """The last `last` dead letters of each partition of `topics`, newest first."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, **security.kafka_python()
    )
    try:
        parts = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not parts:
            return []
        consumer.assign(parts)
        ends = consumer.end_offsets(parts)
        starts = consumer.beginning_offsets(parts)
        for part in parts:
            consumer.seek(part, max(starts[part], ends[part] - last))
        found: list[DeadLetterView] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(consumer.position(p) < ends[p] for p in parts) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                found += [_view(r) for r in records if r.offset < ends[TopicPartition(r.topic, r.partition)]]
        return sorted(found, key=lambda letter: (letter.at, letter.id), reverse=True)
    finally:
        consumer.close()


def read_dead_letter(
    bootstrap_servers: str, letter_id: str, security: KafkaSecurity = PLAINTEXT
) -> DeadLetterView:
    dlq_topic, partition, offset = parse_id(letter_id)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, **security.kafka_python()
    )
    try:
        part = TopicPartition(dlq_topic, partition)
        if partition not in (consumer.partitions_for_topic(dlq_topic) or ()):
            raise UnknownDeadLetter(letter_id)
        consumer.assign([part])
        if not consumer.beginning_offsets([part])[part] <= offset < consumer.end_offsets([part])[part]:
            raise UnknownDeadLetter(letter_id)
        consumer.seek(part, offset)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if record.offset == offset:
                        return _view(record)
        raise UnknownDeadLetter(letter_id)
    finally:
        consumer.close()


def corrected_value(letter: DeadLetterView, correction: Mapping[str, Any] | None) -> bytes:
    """The bytes a replay publishes: the input as it was, or the operator's correction of it,
    which must be a JSON object keeping the input's `event_id` (if it had one)."""
    if correction is None:
        if letter.value is None:
            raise BadCorrection("the dead letter has no value to replay: give a corrected one")
        if letter.value_bytes is not None:
            raise BadCorrection(
                f"the dead letter keeps only the beginning of the input's {letter.value_bytes} bytes: "
                "give a corrected one"
            )
        return letter.value.encode()
    try:
        original = orjson.loads(letter.value or "null")
    except orjson.JSONDecodeError:
        original = None
    kept = original.get("event_id") if isinstance(original, dict) else None
    if kept is not None and correction.get("event_id") != kept:
        raise BadCorrection(
            f"a correction keeps the input's event_id {kept!r}: "
            "the workers dedupe by it, so a replay is never counted twice"
        )
    return orjson.dumps(dict(correction))


def publish(
    bootstrap_servers: str,
    replays: Iterable[tuple[DeadLetterView, bytes]],
    security: KafkaSecurity = PLAINTEXT,
) -> list[tuple[str, int, int]]:
    """Each input back on its topic with its key; returns (id, partition, offset) per replay,
    once the broker acknowledged it."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5, **security.kafka_python()
    )
    try:
        pending = [
            (
                letter.id,
                producer.send(letter.topic, key=letter.key.encode() if letter.key else None, value=value),
            )
            for letter, value in replays
        ]
        placed = []
        for letter_id, future in pending:
            metadata = future.get(timeout=READ_TIMEOUT_S)
            placed.append((letter_id, metadata.partition, metadata.offset))
        return placed
    finally:
        producer.close()
