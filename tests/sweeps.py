"""Whole sweeps for tests that must see everything: every Redis key with each element it holds,
whatever its type, and every Kafka record from some offsets to the end."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis as sync_redis
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from redis.asyncio import Redis

from tests.harness import eventually

Fact = tuple[bytes, ...]  # (key, type, then the element: field and value, member and score, ...)


@dataclass(frozen=True)
class _Type:
    read: Callable[[Any, bytes], Any]  # the whole key, on a sync or an async client
    elements: Callable[[Any], Iterable[tuple[bytes, ...]]]  # what it read, one tuple an element


_TYPES = {
    "string": _Type(lambda r, key: r.get(key), lambda value: [] if value is None else [(value,)]),
    "hash": _Type(lambda r, key: r.hgetall(key), lambda fields: fields.items()),
    "set": _Type(lambda r, key: r.smembers(key), lambda members: [(m,) for m in members]),
    "zset": _Type(
        lambda r, key: r.zrange(key, 0, -1, withscores=True),
        lambda scored: [(m, repr(score).encode()) for m, score in scored],
    ),
    "list": _Type(
        lambda r, key: r.lrange(key, 0, -1),
        lambda items: [(str(i).encode(), item) for i, item in enumerate(items)],
    ),
    "stream": _Type(
        lambda r, key: r.xrange(key),
        lambda entries: [(entry_id, f, v) for entry_id, fields in entries for f, v in fields.items()],
    ),
}


def _type(key: bytes, kind: str) -> _Type:
    if kind not in _TYPES:
        raise AssertionError(f"{key!r} is a {kind}, which the tests cannot read")
    return _TYPES[kind]


def _facts(key: bytes, kind: str, held: Any) -> set[Fact]:
    facts = {(key, kind.encode(), *element) for element in _type(key, kind).elements(held)}
    return facts or {(key, kind.encode())}  # an empty stream, or a key gone since its TYPE


async def redis_facts(redis: Redis) -> set[Fact]:
    """Every key of the database with each of its elements, whatever its type: (key, type, ...)."""
    facts: set[Fact] = set()
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        if kind != "none":  # else gone since the scan
            held: Awaitable[Any] = _type(key, kind).read(redis, key)
            facts |= _facts(key, kind, await held)
    return facts


def redis_facts_in_every_db(redis_url: str) -> set[Fact]:
    """`redis_facts` of every database (0-15) of the server at `redis_url`, together."""
    facts: set[Fact] = set()
    base = redis_url.rsplit("/", 1)[0]
    for db in range(16):
        with sync_redis.Redis.from_url(f"{base}/{db}") as client:
            for key in client.scan_iter(count=1000):
                kind = client.type(key).decode()
                if kind != "none":
                    facts |= _facts(key, kind, _type(key, kind).read(client, key))
    return facts


def whole_ids(ids: Iterable[str]) -> re.Pattern[bytes]:
    """Any of these ids as a whole: `cus_5` is not found in `cus_51`."""
    either = b"|".join(re.escape(i.encode()) for i in ids)
    return re.compile(rb"(?<![0-9A-Za-z_])(?:" + either + rb")(?![0-9A-Za-z_])")


def naming(facts: Iterable[Fact], ids: Iterable[str]) -> set[Fact]:
    """The facts with any of these ids (whole) in their key, a field, a member or a value."""
    pattern = whole_ids(ids)
    return {fact for fact in facts if any(pattern.search(part) for part in fact)}


def end_offsets(consumer: KafkaConsumer) -> dict[TopicPartition, int]:
    """The end offset of every partition of every topic of the broker."""
    partitions = [
        TopicPartition(topic, p)
        for topic in consumer.topics()
        for p in consumer.partitions_for_topic(topic) or ()
    ]
    return consumer.end_offsets(partitions)


def records_since(bootstrap: str, since: dict[TopicPartition, int]) -> list[ConsumerRecord]:
    """Every record of the broker from the offsets `since` to the end (partitions not in `since`:
    from their beginning; `{}` for everything)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        ends = end_offsets(consumer)
        consumer.assign(list(ends))
        consumer.seek_to_beginning()
        for tp, offset in since.items():
            if tp in ends:  # else its topic is gone
                consumer.seek(tp, offset)
        found: list[ConsumerRecord] = []

        def read_to_the_end() -> None:
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                found.extend(records)
            left = [tp for tp in ends if consumer.position(tp) < ends[tp]]
            assert not left, f"{len(left)} partitions not read to the end yet"

        eventually(read_to_the_end, timeout=120, interval=0)
        return found
    finally:
        consumer.close()
