"""Read topics from the beginning up to their current end, without a consumer group.

No group means no committed offsets and no rebalancing: the demo can read the same topics on
every run and leaves nothing behind on the broker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    key: bytes | None
    value: dict[str, Any] | None  # None when the value is not a JSON object


class TopicTail:
    def __init__(self, bootstrap_servers: str, topics: list[str]) -> None:
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
        )
        self._topics = topics
        self._assigned = False

    def __enter__(self) -> TopicTail:
        return self

    def __exit__(self, *_: object) -> None:
        self._consumer.close()

    def _assign(self, deadline: float) -> None:
        partitions: list[TopicPartition] = []
        for topic in self._topics:
            while (found := self._consumer.partitions_for_topic(topic)) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no metadata for topic {topic}")
                time.sleep(0.1)
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        self._consumer.assign(partitions)
        self._consumer.seek_to_beginning(*partitions)
        self._assigned = True

    def read_to_end(self, timeout_s: float = 20.0) -> list[Record]:
        """Records after those returned before, up to each partition's end offset as of now."""
        deadline = time.monotonic() + timeout_s
        if not self._assigned:
            self._assign(deadline)
        partitions = list(self._consumer.assignment())
        ends = self._consumer.end_offsets(partitions)
        records: list[Record] = []
        while any(self._consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {', '.join(self._topics)} to the end in {timeout_s:.0f}s")
            for tp, messages in self._consumer.poll(timeout_ms=200).items():
                records += [Record(tp.topic, tp.partition, m.key, _decode(m.value)) for m in messages]
        return records


def _decode(raw: bytes | None) -> dict[str, Any] | None:
    try:
        value = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
