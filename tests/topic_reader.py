"""Reads a topic from the beginning with a real consumer and indexes records by a JSON field."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from tests.harness import eventually


class TopicReader:
    def __init__(self, bootstrap_servers: str, topic: str, id_field: str) -> None:
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
        self._topic = topic
        self._id_field = id_field
        self._assigned: set[int] = set()
        self.records: dict[str, list[tuple[bytes | None, dict[str, Any], int]]] = defaultdict(list)
        # Every record read, per partition in offset order.
        self.partitions: dict[int, list[tuple[bytes | None, dict[str, Any]]]] = defaultdict(list)

    def _assign_new_partitions(self) -> None:
        partitions = self._consumer.partitions_for_topic(self._topic) or set()
        if partitions - self._assigned:
            self._assigned = set(partitions)
            tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            positions = {tp: self._consumer.position(tp) for tp in self._consumer.assignment()}
            self._consumer.assign(tps)
            for tp in tps:
                if tp in positions:
                    self._consumer.seek(tp, positions[tp])
                else:
                    self._consumer.seek_to_beginning(tp)

    def poll(self) -> None:
        self._assign_new_partitions()
        for tp, messages in self._consumer.poll(timeout_ms=200).items():
            for message in messages:
                if message.value is None:  # a tombstone: an erased customer (test_erasure.py)
                    continue
                try:
                    record = orjson.loads(message.value)
                except orjson.JSONDecodeError:  # poison another test put there, for a dead letter
                    continue
                if not isinstance(record, dict):
                    continue
                # A merge's records on touchpoint.events.v1 have no event_id: they go by merge_id.
                record_id = record.get(self._id_field, record.get("merge_id"))
                self.records[str(record_id)].append((message.key, record, tp.partition))
                self.partitions[tp.partition].append((message.key, record))

    def wait_for(
        self, ids: list[str], timeout: float = 20
    ) -> dict[str, list[tuple[bytes | None, dict, int]]]:
        """Poll until every id has been seen; return their records."""

        def all_seen() -> dict[str, list[tuple[bytes | None, dict, int]]]:
            self.poll()
            missing = [i for i in ids if i not in self.records]
            assert not missing, f"not on {self._topic} yet: {missing[:5]}"
            return {i: self.records[i] for i in ids}

        return eventually(all_seen, timeout=timeout, interval=0.01)

    def close(self) -> None:
        self._consumer.close()
