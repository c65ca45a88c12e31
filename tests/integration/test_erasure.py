"""Erasure end to end, against the session's real broker, Redis, ingest and workers (issue 16):
after `DELETE /v1/customers/{id}`, the customer's phone hash, unionid and customer id (and those
of a customer merged into them) are in no Redis key or value but the erasure record, and in no
record produced after the erasure but tombstones; a late event and a retried old event for them
are dropped."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from services.ingest.identities import phone_identity
from shared.erasure import ERASED
from shared.topics import TOUCHPOINT_EVENTS
from tests.campaign_worker import campaigns_in_force
from tests.conftest import OPS_TOKEN, VIEWER_TOKEN, Backends, RunningService
from tests.factories import event, published, unique
from tests.harness import eventually
from tests.integration.test_campaign_end_to_end import _decided, nurture
from tests.integration.test_privacy import fresh_mobile
from tests.sweeps import end_offsets, naming, records_since, redis_facts_in_every_db, whole_ids

pytestmark = pytest.mark.integration

OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}


def post(client: httpx.Client, who: dict[str, str], event_type: str, **properties: Any) -> dict[str, Any]:
    posted = event(type=event_type, identities=who, properties=properties)
    answer = client.post("/v1/events", json=posted)
    assert answer.status_code == 202, answer.text
    return posted | {"customer_id": answer.json()["results"][0]["customer_id"]}


def test_an_erased_customer_leaves_nothing_but_the_erasure_record(
    client: httpx.Client,
    backends: Backends,
    scoring: RunningService,
    tagging: RunningService,
    campaign: RunningService,
) -> None:
    bootstrap = backends.kafka_bootstrap_servers
    with httpx.Client(base_url=campaign.api_url, headers=OPS, timeout=10) as ops:
        campaign_id = f"erasure-{uuid.uuid4().hex[:8]}"
        assert ops.post("/v1/campaigns", json=nurture(campaign_id)).status_code == 201
        eventually(
            lambda: campaigns_in_force(campaign.metrics_url, ops.get("/v1/campaigns").json()["version"]),
            timeout=20,
        )
        try:
            # A WeCom friend who reads enough to get a campaign's message, and a device of theirs
            # that was a customer of its own until their phone linked it (merged into them).
            digits, unionid, device = fresh_mobile(), unique("union"), unique("dev")
            wecom = {"wecom_external_userid": unique("wm"), "unionid": unionid}
            person = post(client, wecom, "wecom.friend_added")["customer_id"]
            post(
                client, wecom | {"phone": digits}, "consent.granted", channel="wecom_1v1", purpose="marketing"
            )
            merged = post(client, {"device_id": device}, "content.view", content_id="c-1")["customer_id"]
            first = post(client, {"device_id": device, "phone": digits}, "content.click", content_id="c-2")
            assert first["customer_id"] == person != merged
            for n in range(5):
                post(client, wecom, "content.click", content_id=f"c-{n}", value_point="rational")
            post(client, wecom, "content.favorite", content_id="c-4", value_point="rational")
            eventually(lambda: _decided(ops, person, campaign_id), timeout=60, interval=0.2)
            # Last: once campaign (the end of the chain) shows it, every worker is done with
            # everything before it for them (one partition), so whatever comes after the erasure
            # was made after it.
            post(client, wecom, "consent.granted", channel="sms")

            def all_taken() -> None:
                assert ops.get(f"/v1/customers/{person}/consent").json()["channels"]["sms"]["granted"]

            eventually(all_taken, timeout=60, interval=0.2)
        finally:
            ops.delete(f"/v1/campaigns/{campaign_id}")

        secrets = [person, merged, phone_identity(digits, "test-salt"), unionid]
        assert naming(redis_facts_in_every_db(backends.redis_url), secrets)

        consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        before = end_offsets(consumer)
        consumer.close()
        with httpx.Client(
            base_url=client.base_url, headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}
        ) as viewer:
            assert viewer.delete(f"/v1/customers/{person}").status_code == 403
        dropped_before = _dropped_inputs(scoring)
        started = time.monotonic()
        erased_at_ms = int(time.time() * 1000)  # producers' create time is this machine's clock
        answer = client.delete(f"/v1/customers/{merged}", headers=OPS)  # the merged id: the whole person
        assert answer.status_code == 200, answer.text
        record = answer.json()
        assert record["customer_id"] == person and set(record["customer_ids"]) == {person, merged}
        assert record["by"].startswith("ops-token-")  # a bare admin token
        assert client.delete(f"/v1/customers/{person}", headers=OPS).json() == record  # idempotent
        assert client.delete("/v1/customers/cus_999999999", headers=OPS).status_code == 404

        # Late: an event ingest resolved to them just before the erasure reaches the topic after
        # it; a touchpoint retries one of their old events.
        late_id = str(uuid.uuid4())
        late = published(
            late_id, person, "content.click", "wecom", first["occurred_at"], {"content_id": "c-9"}
        )
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        producer.send(TOUCHPOINT_EVENTS, key=person.encode(), value=orjson.dumps(late)).get(timeout=30)
        producer.close()
        retried = client.post("/v1/events", json={k: v for k, v in first.items() if k != "customer_id"})
        assert retried.status_code == 202 and retried.json()["results"][0] == {
            "event_id": first["event_id"],
            "customer_id": None,
            "duplicate": True,
        }

        def gone_everywhere() -> None:
            for service, path in (
                (scoring, f"/v1/customers/{person}/score"),
                (tagging, f"/v1/customers/{person}/profile"),
            ):
                assert httpx.get(service.api_url + path, headers=OPS).status_code == 404, path
            assert ops.get(f"/v1/customers/{person}/actions").json() == []
            found = naming(redis_facts_in_every_db(backends.redis_url), secrets)
            left = {fact for fact in found if fact[0] != ERASED.encode()}
            assert not left, sorted(left)[:3]
            assert _dropped_inputs(scoring) > dropped_before  # the late event came, and was dropped

        eventually(gone_everywhere, timeout=60, interval=0.5)
        took = time.monotonic() - started
        print(f"erased everywhere {took:.2f} s after the DELETE")

    records = records_since(bootstrap, before)
    tombstones = {(r.topic, r.key) for r in records if r.value is None}
    for topic in (TOUCHPOINT_EVENTS, "scored.inputs.v1", "tagged.inputs.v1"):
        assert (topic, person.encode()) in tombstones and (topic, merged.encode()) in tombstones, topic
    changelogs = {t for t, key in tombstones if key == person.encode() and t.endswith("-changelog")}
    assert len(changelogs) == 3, changelogs  # scoring's, tagging's and campaign's tables
    for r in records:
        if r.value is None or (r.topic == TOUCHPOINT_EVENTS and late_id.encode() in r.value):
            continue  # a tombstone, or the late event this test put there
        if r.timestamp < erased_at_ms:
            # Tansu reports a partition's end as the start of its last record batch + 1, so
            # `before` may fall inside a batch produced earlier: its create time tells.
            continue
        blob = (r.key or b"") + r.value
        assert not whole_ids(secrets).search(blob), (r.topic, blob[:300])


def _dropped_inputs(scoring: RunningService) -> float:
    text = httpx.get(f"{scoring.metrics_url}/metrics").text
    for line in text.splitlines():
        if line.startswith("pd_events_processed_total{") and 'outcome="dropped_erased"' in line:
            return float(line.split()[-1])
    return 0.0
