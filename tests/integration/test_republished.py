"""An event published again long after the first time — after 100 other inputs of the same
customer, as ingest may when a client retries a request whose acknowledgement came too late —
counts once (shared/ledger.py: the ids of the customer's inputs of the last day are kept).

Records go on `touchpoint.events.v1` directly, as ingest writes them; a twin customer gets the
same 101 events without the copy, and both end with the same score."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from kafka import KafkaProducer

from shared.topics import TOUCHPOINT_EVENTS
from tests.conftest import OPS_TOKEN, Backends, RunningService
from tests.factories import published
from tests.harness import eventually

pytestmark = pytest.mark.integration


def test_a_copy_after_a_hundred_other_inputs_counts_once(backends: Backends, scoring: RunningService) -> None:
    run = uuid.uuid4().hex[:8]
    customer, twin = f"cus-republished-{run}", f"cus-republished-twin-{run}"
    base = datetime.now(UTC) - timedelta(hours=2)
    at = [(base + timedelta(seconds=n)).isoformat() for n in range(102)]

    def events(who: str) -> list[dict]:
        return [
            published(str(uuid.uuid4()), who, "content.click", "wecom", at[n], {"content_id": f"c-{n}"})
            for n in range(101)
        ]

    def last(who: str) -> dict:  # after everything else of the customer: once it is in, all is
        return published(str(uuid.uuid4()), who, "content.view", "wecom", at[101], {"content_id": "c-last"})

    mine, theirs = [*events(customer), last(customer)], [*events(twin), last(twin)]
    mine.insert(101, mine[0])  # the copy of the first, after the hundred others
    producer = KafkaProducer(bootstrap_servers=backends.kafka_bootstrap_servers, acks="all")
    try:
        for body in [*mine, *theirs]:
            producer.send(TOUCHPOINT_EVENTS, key=body["customer_id"].encode(), value=orjson.dumps(body))
        producer.flush(timeout=30)
    finally:
        producer.close()

    api = httpx.Client(base_url=scoring.api_url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}, timeout=10)

    def scored(who: str) -> dict:
        answer = api.get(f"/v1/customers/{who}/score")
        assert answer.status_code == 200
        body = answer.json()
        assert datetime.fromisoformat(body["last_interaction_at"]) == datetime.fromisoformat(at[101])
        return body

    eventually(lambda: (scored(customer), scored(twin)), timeout=60, interval=0.5)
    # Both took all their inputs; read at one moment, the copy added nothing.
    mine_now, twin_now = scored(customer), scored(twin)
    assert mine_now["intent_score"] == pytest.approx(twin_now["intent_score"])
    assert mine_now["points"] == twin_now["points"]
