"""Points as currency end to end, against the session's broker, Redis, ingest and workers
(issue 17, item 6): a campaign's grant_points action is credited to the customer's points once,
also when its points.granted record comes again (what the campaign worker's replay after a crash
publishes); a redemption spends them, never below zero; the level's benefits show with the score."""

from __future__ import annotations

import uuid

import httpx
import orjson
import pytest
from kafka import KafkaProducer

from shared.topics import TOUCHPOINT_EVENTS
from tests.campaign_worker import campaigns_in_force
from tests.conftest import OPS_TOKEN, Backends, RunningService
from tests.factories import event, unique
from tests.harness import eventually
from tests.integration.test_campaign_end_to_end import nurture
from tests.topic_reader import TopicReader

pytestmark = pytest.mark.integration

OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}


def test_a_grant_is_credited_once_and_redemptions_spend_it(
    client: httpx.Client,
    backends: Backends,
    scoring: RunningService,
    campaign: RunningService,
    events_topic: TopicReader,
) -> None:
    campaign_id = f"survey-reward-{uuid.uuid4().hex[:8]}"
    reward = nurture(
        campaign_id,
        name="survey reward",
        trigger={"on": "event", "value": "survey.answered"},
        audience={"layers": [], "orientations": [], "tags_all": [], "tags_none": []},
        action={"kind": "grant_points", "channel": "membership", "points": 200},
    )
    with httpx.Client(base_url=campaign.api_url, headers=OPS, timeout=10) as ops:
        assert ops.post("/v1/campaigns", json=reward).status_code == 201, reward
        eventually(
            lambda: campaigns_in_force(campaign.metrics_url, ops.get("/v1/campaigns").json()["version"]),
            timeout=20,
        )
        try:
            who = {"wecom_external_userid": unique("wm")}
            answered = client.post(
                "/v1/events", json=event(type="survey.answered", identities=who, properties={})
            )
            assert answered.status_code == 202, answered.text
            customer = answered.json()["results"][0]["customer_id"]
            earned = 10  # the default plan's points for survey.answered

            def points() -> int:
                answer = httpx.get(f"{scoring.api_url}/v1/customers/{customer}/score", headers=OPS)
                assert answer.status_code == 200, answer.text
                return int(answer.json()["points"])

            def credited(expected: int) -> None:
                assert points() == expected

            eventually(lambda: credited(earned + 200), timeout=60, interval=0.2)
            grant = _granted(events_topic, customer)
            assert grant["source"] == "campaign" and grant["properties"]["points"] == 200
            history = ops.get(f"/v1/customers/{customer}/actions").json()
            assert [h["action_id"] for h in history if h["campaign_id"] == campaign_id] == [grant["event_id"]]
        finally:
            ops.delete(f"/v1/campaigns/{campaign_id}")

    # The same record again, as a replay after a crash publishes it: credited once. The share
    # after it, on the same partition, shows that scoring has read it by then.
    producer = KafkaProducer(bootstrap_servers=backends.kafka_bootstrap_servers)
    producer.send(TOUCHPOINT_EVENTS, key=customer.encode(), value=orjson.dumps(grant)).get(timeout=30)
    producer.close()
    share = event(type="content.share", identities=who, properties={"content_id": "c-1"})
    assert client.post("/v1/events", json=share).status_code == 202
    eventually(lambda: credited(earned + 200 + 5), timeout=60, interval=0.2)

    redeem = event(type="points.redeemed", source="mall", identities=who, properties={"points": 1000})
    assert client.post("/v1/events", json=redeem).status_code == 202
    eventually(lambda: credited(0), timeout=60, interval=0.2)
    score = httpx.get(f"{scoring.api_url}/v1/customers/{customer}/score", headers=OPS).json()
    assert score["level"] == "member" and score["benefits"] == ["积分商城兑换"]


def _granted(events_topic: TopicReader, customer: str) -> dict:
    def found() -> dict:
        events_topic.poll()
        grants = [
            record
            for records in events_topic.records.values()
            for _, record, _ in records
            if record.get("type") == "points.granted" and record.get("customer_id") == customer
        ]
        assert len(grants) == 1, grants
        return grants[0]

    return eventually(found, timeout=30)
