"""The scoring worker end to end: events posted to ingest, read back from the scoring API."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import redis
from kafka import KafkaProducer
from redis.asyncio import Redis as AsyncRedis

from services.scoring import read_model
from services.scoring.lead_matrix import scan
from services.scoring.matrix_cells import MatrixBounds
from services.scoring.plan import Bands, default_plan
from shared.topics import INTENT_SCORES, TOUCHPOINT_EVENTS, dead_letter_topic
from tests.conftest import OPS_TOKEN
from tests.factories import event, published, unique
from tests.harness import eventually
from tests.topic_reader import TopicReader

OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}


@pytest.fixture(scope="module")
def ops(scoring) -> httpx.Client:
    with httpx.Client(base_url=scoring.api_url, headers=OPS, timeout=10) as http:
        yield http


def post(client: httpx.Client, identities: dict[str, str], event_type: str, **properties: Any) -> str:
    response = client.post(
        "/v1/events", json=event(type=event_type, identities=identities, properties=properties)
    )
    assert response.status_code == 202, response.text
    return response.json()["results"][0]["customer_id"]


def score_of(ops: httpx.Client, customer_id: str, check: Any, timeout: float = 30) -> dict[str, Any]:
    def scored() -> dict[str, Any]:
        response = ops.get(f"/v1/customers/{customer_id}/score")
        assert response.status_code == 200, response.text
        body = response.json()
        assert check(body), body
        return body

    return eventually(scored, timeout=timeout, interval=0.1)


def test_the_papers_calibration_holds_end_to_end(client, ops) -> None:
    who = {"wecom_external_userid": unique("wm")}
    for n in range(5):
        customer = post(client, who, "content.click", content_id=f"c-{n}")
    post(client, who, "content.favorite", content_id="c-4")
    body = score_of(ops, customer, lambda b: b["points"] == 0 and b["intent_pct"] > 60)
    assert 65 <= body["intent_pct"] <= 75 and body["band"] == "high"
    assert body["activity"] == "active_7d"


def test_a_booking_makes_a_hot_lead_and_publishes_the_change(client, ops, backends) -> None:
    who = {"unionid": unique("u")}
    customer = post(client, who, "test_drive.booked", vehicle_model="id6")
    body = score_of(ops, customer, lambda b: b["band"] == "hot")
    assert body["model_interest"]["id6"] >= 85
    scores = TopicReader(backends.kafka_bootstrap_servers, INTENT_SCORES, "customer_id")
    try:
        [(key, record, _), *_] = scores.wait_for([customer])[customer]
    finally:
        scores.close()
    assert key == customer.encode()
    assert (record["band"], record["type"], record["schema_version"]) == ("hot", "intent.score_changed", 1)
    leads = ops.get("/v1/leads", params={"band": "hot", "activity": "active_7d", "limit": 1000}).json()
    assert customer in [lead["customer_id"] for lead in leads["leads"]]
    matrix = ops.get("/v1/matrix").json()
    assert matrix["cells"]["hot"]["active_7d"] >= 1


def test_a_merged_customers_score_moves_to_the_survivor(client, ops) -> None:
    phone, device = "+86 139 0000 " + str(uuid.uuid4().int % 10_000).zfill(4), unique("d")
    older = post(client, {"phone": phone}, "config.build", vehicle_model="id4")
    newer = post(client, {"device_id": device}, "quote.requested", vehicle_model="id4")
    score_of(ops, newer, lambda b: b["intent_score"] > 0)
    survivor = post(client, {"phone": phone, "device_id": device}, "content.view", content_id="c")
    assert survivor == older
    expected = 12.0 + 20.0 + 1.5  # config.build + quote.requested + content.view, barely decayed
    body = score_of(ops, older, lambda b: b["intent_score"] > expected - 0.1)
    assert body["intent_score"] == pytest.approx(expected, abs=0.1)
    assert ops.get(f"/v1/customers/{newer}/score").json()["customer_id"] == older


def test_a_message_that_does_not_parse_goes_to_the_dead_letter_topic(client, ops, backends) -> None:
    poison = f"not an event {uuid.uuid4()}".encode()
    producer = KafkaProducer(bootstrap_servers=backends.kafka_bootstrap_servers, acks="all")
    producer.send(TOUCHPOINT_EVENTS, key=b"poison", value=poison)
    producer.flush()
    producer.close()
    dead = TopicReader(backends.kafka_bootstrap_servers, dead_letter_topic(TOUCHPOINT_EVENTS), "value")
    try:
        [(_, letter, _), *_] = dead.wait_for([poison.decode()])[poison.decode()]
    finally:
        dead.close()
    assert letter["topic"] == TOUCHPOINT_EVENTS and "json" in letter["error"].lower()
    # ... and the worker carries on.
    customer = post(client, {"unionid": unique("u")}, "content.click", content_id="c")
    score_of(ops, customer, lambda b: b["intent_score"] > 0)


def test_a_new_plan_applies_without_a_restart(client, ops) -> None:
    plan = ops.get("/v1/scoring-plan").json()
    weights = plan["plan"]["weights"] | {"custom.poll_vote": 30.0}
    put = ops.put("/v1/scoring-plan", json=plan["plan"] | {"weights": weights})
    assert put.status_code == 200 and put.json()["version"] == plan["version"] + 1
    try:
        # The worker polls the plan; keep posting until an event scored under the new one.
        who = {"unionid": unique("u")}

        def voted() -> None:
            customer = post(client, who, "custom.poll_vote")
            body = ops.get(f"/v1/customers/{customer}/score").json()
            assert body.get("intent_score", 0) >= 30, body

        eventually(voted, timeout=30, interval=0.3)
    finally:
        assert ops.put("/v1/scoring-plan", json=plan["plan"]).status_code == 200


def test_the_worker_exposes_its_metrics(scoring) -> None:
    def counted() -> str:
        text = httpx.get(f"{scoring.metrics_url}/metrics").text
        assert 'pd_events_processed_total{outcome="processed",service="scoring"}' in text
        assert 'pd_consumer_lag{partition="0",service="scoring",topic="touchpoint.events.v1"}' in text
        return text

    text = eventually(counted)
    assert "pd_event_processing_seconds_bucket" in text
    assert httpx.get(f"{scoring.metrics_url}/healthz").json() == {"status": "ok"}


def _metric(text: str, line_start: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def test_a_burst_is_taken_in_batches_not_message_by_message(client, scoring) -> None:
    def counters() -> tuple[float, float]:
        text = httpx.get(f"{scoring.metrics_url}/metrics").text
        processed = _metric(text, 'pd_events_processed_total{outcome="processed",service="scoring"}')
        return processed, _metric(text, 'pd_worker_batch_seconds_count{service="scoring"}')

    processed_before, batches_before = counters()
    burst = [event(identities={"unionid": unique("burst")}) for _ in range(300)]
    for start in range(0, len(burst), 100):
        response = client.post("/v1/events/batch", json={"events": burst[start : start + 100]})
        assert response.status_code == 202, response.text

    def taken() -> tuple[float, float]:
        processed, batches = counters()
        assert processed - processed_before >= len(burst)
        return processed, batches

    _, batches_after = eventually(taken, timeout=30, interval=0.2)
    # Fetched records reach the handler together (shared/batch_drain.py), not one by one.
    assert batches_after - batches_before <= len(burst) / 10


def latest_events(ops: httpx.Client, customer_id: str, check: Any, timeout: float = 30) -> dict[str, Any]:
    def written() -> dict[str, Any]:
        response = ops.get(f"/v1/customers/{customer_id}/events", params={"limit": 50})
        assert response.status_code == 200, response.text
        body = response.json()
        assert check(body), body
        return body

    return eventually(written, timeout=timeout, interval=0.1)


def test_the_worker_writes_each_event_once_with_no_identity_or_free_property(
    client, ops, backends, scoring
) -> None:
    phone = "13900" + str(uuid.uuid4().int % 1_000_000).zfill(6)
    who = {"phone": phone, "unionid": unique("u")}
    customer = post(client, who, "content.click", content_id="c-spec-001", note=f"call {phone}")
    post(client, who, "custom.callback_requested", callback_number=phone)
    body = latest_events(ops, customer, lambda b: len(b["events"]) == 2)
    custom, click = body["events"]
    assert (click["type"], click["content_id"], click["intent_added"]) == ("content.click", "c-spec-001", 4.0)
    assert (custom["type"], custom["intent_added"]) == ("custom.callback_requested", None)

    # A favourite published twice, as a producer's retry does: the same event at two offsets.
    duplicates_before = processed(scoring, "duplicate")
    at = datetime.now(UTC).isoformat()
    favourite = published(str(uuid.uuid4()), customer, "content.favorite", "app", at, {"content_id": "c-4"})
    producer = KafkaProducer(bootstrap_servers=backends.kafka_bootstrap_servers, acks="all")
    for _ in range(2):
        producer.send(TOUCHPOINT_EVENTS, key=customer.encode(), value=orjson.dumps(favourite))
    producer.flush()
    producer.close()

    def retry_taken() -> None:
        assert processed(scoring, "duplicate") > duplicates_before

    eventually(retry_taken, timeout=30, interval=0.1)
    body = latest_events(ops, customer, lambda b: b["events"][0]["type"] == "content.favorite")
    assert [e["type"] for e in body["events"]] == [
        "content.favorite",
        "custom.callback_requested",
        "content.click",
    ]
    assert (body["events"][0]["event_id"], body["events"][0]["intent_added"]) == (favourite["event_id"], 8.0)
    with redis.Redis.from_url(backends.redis_url) as store:
        stored = store.zrange(read_model.events_key(customer), 0, -1)
    assert len(stored) == 3
    private = {"identities", "properties", "note", "callback_number"}
    for entry in stored:  # neither the identities nor the free properties, the phone in them least
        assert phone.encode() not in entry and not private & set(orjson.loads(entry))


def processed(scoring, outcome: str) -> float:
    text = httpx.get(f"{scoring.metrics_url}/metrics").text
    return _metric(text, f'pd_events_processed_total{{outcome="{outcome}",service="scoring"}}')


def test_a_merged_customers_latest_events_move_to_the_survivor(client, ops) -> None:
    phone, device = "+86 139 0001 " + str(uuid.uuid4().int % 10_000).zfill(4), unique("d")
    older = post(client, {"phone": phone}, "config.build", vehicle_model="id4")
    newer = post(client, {"device_id": device}, "quote.requested", vehicle_model="id4")
    latest_events(ops, newer, lambda b: len(b["events"]) == 1)
    assert post(client, {"phone": phone, "device_id": device}, "content.view", content_id="c") == older
    body = latest_events(ops, newer, lambda b: len(b["events"]) == 3)
    assert body["customer_id"] == older
    assert [e["type"] for e in body["events"]] == ["content.view", "quote.requested", "config.build"]
    assert ops.get(f"/v1/customers/{older}/events").json() == body


def matrix_reads(ops: httpx.Client) -> dict[str, float]:
    reads = {"counted": 0.0, "scanned": 0.0}
    for line in ops.get("/metrics").text.splitlines():
        for how in reads:
            if line.startswith(f'pd_lead_matrix_reads_total{{how="{how}"}}'):
                reads[how] = float(line.split()[1])
    return reads


def read_matrix(ops: httpx.Client) -> tuple[dict[str, Any], set[str]]:
    """/v1/matrix, and how the API read it since the last scrape (which reads it too): from the
    worker's counts, by a scan, or both."""
    before = matrix_reads(ops)
    body = ops.get("/v1/matrix").json()
    after = matrix_reads(ops)
    return body, {how for how in after if after[how] > before[how]}


def test_a_plan_moving_the_bands_has_the_worker_rewrite_every_cell(client, ops, backends) -> None:
    """The matrix is read from the counts the worker keeps; after a plan moving the bands it is
    scanned until the worker rewrote its customers' cells, then counted again, the same."""
    customer = post(client, {"unionid": unique("u")}, "test_drive.booked", vehicle_model="id6")
    score_of(ops, customer, lambda b: b["band"] == "hot")
    before, how = read_matrix(ops)
    assert how == {"counted"}
    plan = ops.get("/v1/scoring-plan").json()
    bands = {"medium": 10.0, "high": 20.0, "hot": 99.0}  # the booking is high under these
    assert ops.put("/v1/scoring-plan", json=plan["plan"] | {"bands": bands}).status_code == 200
    try:

        def rewritten() -> dict[str, Any]:
            body, how = read_matrix(ops)
            assert how == {"counted"}, body
            return body

        body = eventually(rewritten, timeout=30, interval=0.2)
        hot = sum(body["cells"]["hot"].values())
        assert hot < sum(before["cells"]["hot"].values()) and body["cells"]["high"]["active_7d"] >= 1
        assert score_of(ops, customer, lambda b: True)["band"] == "high"
        scanned = asyncio.run(scan_matrix(backends.redis_url, bands, datetime.fromisoformat(body["as_of"])))
        assert body["cells"] == scanned
    finally:
        assert ops.put("/v1/scoring-plan", json=plan["plan"]).status_code == 200


async def scan_matrix(redis_url: str, bands: dict[str, float], at: datetime) -> dict[str, dict[str, int]]:
    """The matrix counted afresh from the ranks, at the moment the API answered for."""
    plan = default_plan().model_copy(update={"bands": Bands(**bands)})
    client = AsyncRedis.from_url(redis_url)
    try:
        cells = await scan(client, MatrixBounds.at(plan, at))
    finally:
        await client.aclose()
    return {b.value: {a.value: n for a, n in row.items()} for b, row in cells.items()}
