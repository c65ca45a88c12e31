"""Bounds everywhere (docs/contract.md, "Bounds"), against the session's broker, Redis, ingest and
workers: one customer's oversized or hostile input is refused or dead-lettered on its own, and
never stalls or bloats the platform.

- Ingest: an event nested 400 levels deep gets its own 422; the rest of its batch is accepted.
- Scoring: inputs no ingest would publish, put on `touchpoint.events.v1` directly as the crash
  tests do — the issue's 500 KB event with 3,800 topics, and an event within every bound whose
  record along the chain would be over the 1,000,000-byte limit — land on the dead-letter topic
  with their reason, and the next customer's event, on the same partition after them, is
  scored and tagged.
- Tagging: events with 1,500 topics each (small enough to pass scoring unchecked) leave a
  profile with at most 20 topics' interest tags.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from kafka import KafkaProducer

from services.campaign.dead_letters import DeadLetterView, read_dead_letters
from shared.events import MAX_TOPICS
from shared.stream_worker import WorkerSettings
from shared.topics import TOUCHPOINT_EVENTS, dead_letter_topic
from tests.conftest import OPS_TOKEN, Backends, RunningService
from tests.factories import event, published
from tests.harness import eventually
from tests.topic_reader import TopicReader

pytestmark = pytest.mark.integration
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
MAX_RECORD_BYTES = WorkerSettings.model_fields["max_record_bytes"].default  # the session's workers'


def nested(levels: int) -> Any:
    value: Any = 1
    for level in range(levels):
        value = {"a": value} if level % 2 else [value]
    return value


def test_an_event_nested_400_levels_deep_gets_its_own_422_and_the_rest_of_its_batch_is_accepted(
    client: httpx.Client, events_topic: TopicReader
) -> None:
    good, other = event(), event()
    deep = event(type="custom.deep_form", properties={"form": nested(400)})
    response = client.post("/v1/events/batch", json={"events": [good, deep, other]})
    assert response.status_code == 202, response.text
    body = response.json()
    assert [(r["index"], r["event_id"]) for r in body["results"]] == [
        (0, good["event_id"]),
        (2, other["event_id"]),
    ]
    (rejected,) = body["rejected"]
    assert rejected["index"] == 1
    assert [(e["loc"][:2], e["type"]) for e in rejected["errors"]] == [(["properties", "form"], "too_deep")]
    events_topic.wait_for([good["event_id"], other["event_id"]])

    alone = client.post("/v1/events", json=deep)
    assert alone.status_code == 422
    assert [e["type"] for e in alone.json()["detail"]] == ["too_deep"]
    events_topic.poll()
    assert deep["event_id"] not in events_topic.records


def on_partition_of(key: str, prefix: str, partitions: list[int]) -> str:
    """A customer id starting with `prefix` whose events go to the partition `key`'s go to."""
    partitioner = DefaultPartitioner()
    target = partitioner(key.encode(), partitions, partitions)
    for n in range(1000):
        candidate = f"{prefix}-{n}"
        if partitioner(candidate.encode(), partitions, partitions) == target:
            return candidate
    raise AssertionError("no such customer id")


def dead_letter_of(bootstrap: str, event_id: str) -> DeadLetterView:
    """The dead letter of the event on touchpoint.events.v1's dead-letter topic."""
    letters = read_dead_letters(bootstrap, [dead_letter_topic(TOUCHPOINT_EVENTS)], last=500)
    # A dead letter keeps the beginning of the input: the event id is near the start.
    mine = [letter for letter in letters if letter.value and f'"event_id":"{event_id}"' in letter.value]
    assert mine, f"{event_id} not dead-lettered yet"
    return mine[0]


def test_oversized_inputs_land_on_the_dead_letter_topic_and_the_next_customer_is_processed(
    backends: Backends, scoring: RunningService, tagging: RunningService
) -> None:
    run = uuid.uuid4().hex[:8]
    at = datetime.now(UTC).isoformat()
    producer = KafkaProducer(
        bootstrap_servers=backends.kafka_bootstrap_servers, acks="all", max_request_size=2 * 1024 * 1024
    )
    try:
        partitions = sorted(producer.partitions_for(TOUCHPOINT_EVENTS))
        many_topics, too_large = f"cus-bounds-{run}-topics", f"cus-bounds-{run}-large"
        next_one = on_partition_of(too_large, f"cus-bounds-{run}-next", partitions)
        # The event: a content.view with 3,800 distinct topics, about 500 KB.
        topics = [f"topic-{n:04}-{'x' * 120}" for n in range(3_800)]
        flood = published(
            str(uuid.uuid4()), many_topics, "content.view", "wecom", at, {"content_id": "c", "topics": topics}
        )
        # Within every bound of ingest (100 strings of 4 KiB a list), but about 1,005,000 bytes:
        # scoring's record of it on scored.inputs.v1 would be over the limit.
        lines = {f"lines_{k}": ["x" * 4096] * (100 if k < 2 else 45) for k in range(3)}
        large = published(str(uuid.uuid4()), too_large, "custom.bounds_test", "app", at, lines)
        fine = published(str(uuid.uuid4()), next_one, "content.view", "wecom", at, {"content_id": "c-ok"})
        values = {
            event_id: orjson.dumps(body)
            for event_id, body in ((e["event_id"], e) for e in (flood, large, fine))
        }
        assert len(values[flood["event_id"]]) > 500_000 and len(values[large["event_id"]]) > MAX_RECORD_BYTES
        for body in (flood, large, fine):
            producer.send(TOUCHPOINT_EVENTS, key=body["customer_id"].encode(), value=values[body["event_id"]])
        producer.flush(timeout=30)
    finally:
        producer.close()

    bootstrap = backends.kafka_bootstrap_servers
    letter = eventually(lambda: dead_letter_of(bootstrap, flood["event_id"]), timeout=60, interval=0.5)
    assert (letter.topic, letter.key) == (TOUCHPOINT_EVENTS, many_topics)
    assert (
        letter.error
        == f"ValueError: outside ingest's bounds: properties.topics: at most {MAX_TOPICS} topics (too_long)"
    )
    assert letter.value_bytes == len(values[flood["event_id"]])  # kept small: only its beginning

    letter = eventually(lambda: dead_letter_of(bootstrap, large["event_id"]), timeout=60, interval=0.5)
    assert (letter.topic, letter.key) == (TOUCHPOINT_EVENTS, too_large)
    assert letter.error.startswith("scoring: a scored.inputs.v1 record of ")
    assert letter.error.endswith(f"bytes is over the {MAX_RECORD_BYTES}-byte limit")
    assert letter.value_bytes == len(values[large["event_id"]])

    # The worker went on: the next customer's event, after the large one on its partition, is
    # scored, and tagged downstream; the customers of the dead letters were never applied.
    scoring_api = httpx.Client(base_url=scoring.api_url, headers=OPS, timeout=10)
    tagging_api = httpx.Client(base_url=tagging.api_url, headers=OPS, timeout=10)

    def processed() -> None:
        assert scoring_api.get(f"/v1/customers/{next_one}/score").status_code == 200
        assert tagging_api.get(f"/v1/customers/{next_one}/profile").status_code == 200

    eventually(processed, timeout=60, interval=0.5)
    for customer in (many_topics, too_large):
        assert scoring_api.get(f"/v1/customers/{customer}/score").status_code == 404


def test_thousands_of_topics_leave_a_profile_with_at_most_so_many_interests(
    backends: Backends, tagging: RunningService
) -> None:
    customer = f"cus-bounds-{uuid.uuid4().hex[:8]}-interests"
    at = datetime.now(UTC).isoformat()
    topics = [f"t{n:04}" for n in range(1_500)]  # about 12 KB: below what scoring checks in full
    flood = [
        published(
            str(uuid.uuid4()), customer, "content.view", "wecom", at, {"content_id": "c", "topics": topics}
        )
        for _ in range(3)
    ]
    producer = KafkaProducer(bootstrap_servers=backends.kafka_bootstrap_servers, acks="all")
    try:
        for body in flood:
            producer.send(TOUCHPOINT_EVENTS, key=customer.encode(), value=orjson.dumps(body))
        producer.flush(timeout=30)
    finally:
        producer.close()
    tagging_api = httpx.Client(base_url=tagging.api_url, headers=OPS, timeout=10)

    def interests() -> list[str]:
        response = tagging_api.get(f"/v1/customers/{customer}/profile")
        assert response.status_code == 200
        tags = [tag for tag in response.json()["tags"] if tag.startswith("interest:")]
        assert tags, "not all three events tagged yet"
        return tags

    tags = eventually(interests, timeout=60, interval=0.5)
    # Each event counts as many topics as ingest would take, the first ones: the same 20 three times.
    assert sorted(tags) == [f"interest:t{n:04}" for n in range(MAX_TOPICS)]
