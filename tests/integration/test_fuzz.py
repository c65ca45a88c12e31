"""Fuzzing ingest, against the session's real ingest, broker, Redis and workers.

- Schemathesis generates requests from ingest's own OpenAPI document (every operation, with the
  touchpoint key and the ops token): none may get a 5xx.
- Hypothesis generates event bodies — every type and source, any identities, properties nested,
  unicode, huge and odd numbers, phones in places — and posts them: whatever ingest accepts, no
  worker may then fail on (nothing of theirs on any dead-letter topic once the workers settled).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, TopicPartition

from services.ingest.api import create_app
from services.ingest.settings import IngestSettings
from shared.events import EVENT_TYPES, IdentityType, Source
from stack.summary import wait_until_settled
from tests.conftest import OPS_TOKEN, TOUCHPOINT_KEY, Backends, RunningIngest, RunningService
from tests.harness import eventually

pytestmark = pytest.mark.integration

# The document alone: building the app opens no connection (its lifespan would).
SCHEMA = schemathesis.openapi.from_dict(create_app(IngestSettings()).openapi())
HEADERS = {"X-Api-Key": TOUCHPOINT_KEY, "Authorization": f"Bearer {OPS_TOKEN}"}
ACCEPTED: list[str] = []  # event ids ingest accepted from the Hypothesis bodies


@SCHEMA.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_built_from_ingests_own_schema_gets_a_5xx(case: Any, ingest: RunningIngest) -> None:
    response = case.call(base_url=ingest.url, headers=HEADERS, timeout=10)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])


# JSON has no NaN or infinity: a touchpoint cannot send them (httpx refuses to, too).
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
# Phones of a range no other test uses (166…), spelt in several ways: a fuzzed event must not link
# another test's customer through a shared number.
phones = st.tuples(
    st.integers(0, 9999), st.integers(0, 9999), st.sampled_from(["{}{}", "+86 {} {}", "0086-{}-{}"])
).map(lambda parts: parts[2].format(f"166{parts[0]:04}", f"{parts[1]:04}"))
identity_value = st.text(min_size=1, max_size=30) | phones | st.uuids().map(str)


@st.composite
def event_bodies(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(sorted(EVENT_TYPES))
        | st.from_regex(r"custom\.[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True)
    )
    properties = draw(st.dictionaries(st.text(max_size=12), json_value, max_size=5))
    for required in EVENT_TYPES.get(kind, ()):  # mostly well-formed, so that most are accepted
        properties.setdefault(required, draw(st.text(min_size=1, max_size=20) | st.floats(0, 1e6) | phones))
    if kind.startswith("consent."):
        properties["channel"] = draw(st.sampled_from(["wecom_1v1", "sms", "all", "wecom", "nowhere"]))
    if draw(st.booleans()):
        properties["topics"] = draw(st.lists(st.text(min_size=1, max_size=20), max_size=6))
    if draw(st.booleans()):
        properties["value_point"] = draw(st.sampled_from(["rational", "emotional", "neither"]))
    identities = draw(
        st.dictionaries(
            st.sampled_from([t.value for t in IdentityType]), identity_value, min_size=1, max_size=3
        )
    )
    minutes = draw(st.integers(0, 60 * 24 * 30))
    return {
        "event_id": str(uuid.uuid4()),
        "type": kind,
        "source": draw(st.sampled_from([s.value for s in Source])),
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat(),
        "identities": identities,
        "properties": properties,
        "schema_version": 1,
    }


@given(st.lists(event_bodies(), min_size=1, max_size=10))
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_random_event_bodies_get_an_answer_and_never_a_5xx(
    client: httpx.Client, batch: list[dict[str, Any]]
) -> None:
    response = client.post("/v1/events/batch", json={"events": batch})
    assert response.status_code in (202, 422), response.text[:500]
    body = response.json()
    accepted = body.get("results", [])
    assert len(accepted) + len(body.get("rejected", [])) == len(batch)
    ACCEPTED.extend(result["event_id"] for result in accepted)


def dead_lettered(bootstrap: str) -> bytes:
    """Everything on every dead-letter topic, as one blob to search."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(t, p)
            for t in consumer.topics()
            if t.endswith(".dlq")
            for p in consumer.partitions_for_topic(t) or ()
        ]
        if not partitions:
            return b""
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        chunks: list[bytes] = []

        def read_all() -> None:
            for messages in consumer.poll(timeout_ms=500).values():
                chunks.extend(m.value or b"" for m in messages)
            assert all(consumer.position(tp) >= ends[tp] for tp in partitions)

        eventually(read_all, timeout=60, interval=0)
        return b"\n".join(chunks)
    finally:
        consumer.close()


def test_no_worker_failed_on_an_event_ingest_accepted(
    backends: Backends, scoring: RunningService, tagging: RunningService, campaign: RunningService
) -> None:
    assert ACCEPTED, "the fuzz test above accepted nothing: it ran first, in this module"
    workers = [f"{service.metrics_url}/metrics" for service in (scoring, tagging, campaign)]
    assert wait_until_settled(workers) == 0.0
    letters = dead_lettered(backends.kafka_bootstrap_servers)
    failed = [event_id for event_id in ACCEPTED if event_id.encode() in letters]
    assert not failed, f"{len(failed)} accepted events dead-lettered by a worker, e.g. {failed[0]}"
