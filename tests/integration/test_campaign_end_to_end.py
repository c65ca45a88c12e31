"""End to end over the real broker: touchpoint events in at ingest, the right action out on
campaign.actions.v1 with the content for the customer's orientation (issue 5, item 5)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.campaign.daily import china_date
from shared.topics import CAMPAIGN_ACTIONS
from tests.campaign_worker import campaigns_in_force
from tests.conftest import OPS_TOKEN
from tests.factories import event, unique
from tests.harness import eventually
from tests.topic_reader import TopicReader

OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}


@pytest.fixture(scope="module")
def ops(campaign) -> httpx.Client:
    with httpx.Client(base_url=campaign.api_url, headers=OPS, timeout=10) as http:
        yield http


@pytest.fixture(scope="module")
def actions_topic(backends):
    reader = TopicReader(backends.kafka_bootstrap_servers, CAMPAIGN_ACTIONS, "customer_id")
    yield reader
    reader.close()


def post(client: httpx.Client, who: dict[str, str], event_type: str, **properties: Any) -> str:
    response = client.post("/v1/events", json=event(type=event_type, identities=who, properties=properties))
    assert response.status_code == 202, response.text
    return response.json()["results"][0]["customer_id"]


def nurture(campaign_id: str, **changes: Any) -> dict[str, Any]:
    """docs/contract.md's minimal definition."""
    return {
        "id": campaign_id,
        "name": "high intent nurture",
        "status": "active",
        "trigger": {"on": "band_entered", "value": "high"},
        "audience": {"layers": ["prospect", "intent"], "orientations": [], "tags_all": [], "tags_none": []},
        "action": {
            "kind": "send_content",
            "channel": "wecom_1v1",
            "content": {"rational": "c-spec-compare", "emotional": "c-owner-story", "default": "c-brand"},
        },
        "holdout_pct": 0,
        "frequency_cap": {"per_customer_per_day": 1},
        "reentry": False,
    } | changes


def test_a_high_intent_wecom_friend_gets_the_content_for_their_orientation(
    client, ops, actions_topic, campaign
) -> None:
    campaign_id = f"nurture-{uuid.uuid4().hex[:8]}"
    created = ops.post("/v1/campaigns", json=nurture(campaign_id))
    assert created.status_code == 201, created.text
    version = ops.get("/v1/campaigns").json()["version"]
    eventually(lambda: campaigns_in_force(campaign.metrics_url, version), timeout=20)
    try:
        sent: dict[str, str] = {}
        for orientation in ("rational", "emotional"):
            who = {"wecom_external_userid": unique("wm")}
            customer = post(client, who, "wecom.friend_added")
            for n in range(5):
                post(client, who, "content.click", content_id=f"c-{n}", value_point=orientation)
            post(client, who, "content.favorite", content_id="c-4", value_point=orientation)
            sent[customer] = orientation
        for customer in sent:
            eventually(lambda c=customer: _decided(ops, c, campaign_id), timeout=60, interval=0.2)
        records = actions_topic.wait_for(list(sent), timeout=30)
        for customer, orientation in sent.items():
            mine = [r for _, r, _ in records[customer] if r["campaign_id"] == campaign_id]
            assert len(mine) == 1, mine
            action = mine[0]
            assert {
                "action_id",
                "campaign_id",
                "customer_id",
                "kind",
                "channel",
                "content_id",
                "variant",
                "at",
            } <= set(action)
            assert (action["kind"], action["channel"]) == ("send_content", "wecom_1v1")
            expected = {"rational": "c-spec-compare", "emotional": "c-owner-story"}[orientation]
            # The profile comes with the score along the chain: by the time the score is high,
            # the orientation (3 value-point interactions) is known. Only the expected content.
            assert action["content_id"] == expected, action
        stats = ops.get(f"/v1/campaigns/{campaign_id}/stats").json()
        assert stats["sent"]["default"] == 2 and stats["triggered"] == 2
        history = ops.get(f"/v1/customers/{next(iter(sent))}/actions").json()
        assert [h["outcome"] for h in history if h["campaign_id"] == campaign_id] == ["sent"]
        assert _sent_per_day(ops, list(sent), campaign_id) == 2
    finally:
        ops.delete(f"/v1/campaigns/{campaign_id}")


def _sent_per_day(ops: httpx.Client, customers: list[str], campaign_id: str) -> int:
    """The campaign's `sent` on each China day its actions for these customers were decided,
    summed (two days, should the test run across midnight in China)."""
    days = {
        china_date(datetime.fromisoformat(h["at"]))
        for customer in customers
        for h in ops.get(f"/v1/customers/{customer}/actions").json()
        if h["campaign_id"] == campaign_id
    }
    figures = [ops.get("/v1/actions/daily", params={"date": str(day)}).json() for day in days]
    return sum(f["campaigns"][campaign_id]["sent"] for f in figures)


def _decided(ops: httpx.Client, customer: str, campaign_id: str) -> None:
    history = ops.get(f"/v1/customers/{customer}/actions").json()
    assert [h for h in history if h["campaign_id"] == campaign_id], (customer, history)


def test_without_consent_the_action_is_suppressed_and_recorded(client, ops, campaign) -> None:
    campaign_id = f"nurture-{uuid.uuid4().hex[:8]}"
    assert ops.post("/v1/campaigns", json=nurture(campaign_id)).status_code == 201
    version = ops.get("/v1/campaigns").json()["version"]
    eventually(lambda: campaigns_in_force(campaign.metrics_url, version), timeout=20)
    try:
        customer = post(client, {"unionid": unique("u")}, "test_drive.booked", vehicle_model="id4")  # hot
        who = {"unionid": unique("u")}
        for n in range(5):
            customer = post(client, who, "content.click", content_id=f"c-{n}")
        post(client, who, "content.favorite", content_id="c-4")

        def suppressed() -> dict[str, Any]:
            history = ops.get(f"/v1/customers/{customer}/actions").json()
            mine = [h for h in history if h["campaign_id"] == campaign_id]
            assert mine, history
            return mine[0]

        record = eventually(suppressed, timeout=60, interval=0.2)
        assert (record["outcome"], record["reason"]) == ("suppressed", "no_consent")
        stats = ops.get(f"/v1/campaigns/{campaign_id}/stats").json()
        assert stats["suppressed"] == {"no_consent": 1}
        day = china_date(datetime.fromisoformat(record["at"]))
        daily = ops.get("/v1/actions/daily", params={"date": str(day)}).json()["campaigns"][campaign_id]
        assert daily == {"sent": 0, "deferred": 0, "suppressed": 1, "suppressed_by_reason": {"no_consent": 1}}
    finally:
        ops.delete(f"/v1/campaigns/{campaign_id}")


def test_consent_changes_are_read_back_per_channel(client, ops, campaign) -> None:
    who = {"wecom_external_userid": unique("wm")}
    friended_at = datetime.now(UTC) - timedelta(minutes=4)
    added = event(
        type="wecom.friend_added", identities=who, properties={}, occurred_at=friended_at.isoformat()
    )
    response = client.post("/v1/events", json=added)
    assert response.status_code == 202, response.text
    customer = response.json()["results"][0]["customer_id"]

    def consent() -> dict[str, tuple[bool, datetime | None]]:
        channels = ops.get(f"/v1/customers/{customer}/consent").json()["channels"]
        return {
            name: (c["granted"], datetime.fromisoformat(c["at"]) if c["at"] else None)
            for name, c in channels.items()
        }

    def friends() -> None:
        assert consent()["wecom_1v1"] == (True, friended_at)

    eventually(friends, timeout=60, interval=0.2)
    assert consent()["wecom_group"] == (True, friended_at)
    assert consent()["sms"] == (False, None)

    revoked_at, granted_at = friended_at + timedelta(minutes=1), friended_at + timedelta(minutes=2)
    words = [
        ("consent.revoked", "wecom_group", revoked_at),
        # Older than the revocation, arriving after it: changes nothing (the latest word wins).
        ("consent.granted", "wecom_group", friended_at + timedelta(seconds=30)),
        # Last: once it shows, the customer's words before it were taken too (one partition).
        ("consent.granted", "sms", granted_at),
    ]
    for kind, channel, at in words:
        said = event(type=kind, identities=who, properties={"channel": channel}, occurred_at=at.isoformat())
        assert client.post("/v1/events", json=said).status_code == 202

    def changed() -> None:
        assert consent()["sms"] == (True, granted_at)

    eventually(changed, timeout=60, interval=0.2)
    assert consent()["wecom_group"] == (False, revoked_at)
    assert consent()["wecom_1v1"] == (True, friended_at)
    unknown = ops.get(f"/v1/customers/{unique('cus')}/consent").json()["channels"]
    assert {c["granted"] for c in unknown.values()} == {False}


def test_campaign_crud_and_validation(ops) -> None:
    campaign_id = f"crud-{uuid.uuid4().hex[:8]}"
    bad = ops.post(
        "/v1/campaigns", json=nurture(campaign_id, holdout_pct=150, trigger={"on": "x", "value": "y"})
    )
    assert bad.status_code == 422
    fields = {tuple(e["loc"][1:3]) for e in bad.json()["detail"]}
    assert ("holdout_pct",) in {f[:1] for f in fields} and ("trigger", "on") in fields
    assert ops.post("/v1/campaigns", json=nurture(campaign_id)).status_code == 201
    assert ops.post("/v1/campaigns", json=nurture(campaign_id)).status_code == 409
    paused = ops.put(f"/v1/campaigns/{campaign_id}", json=nurture(campaign_id, status="paused"))
    assert paused.status_code == 200 and ops.get(f"/v1/campaigns/{campaign_id}").json()["status"] == "paused"
    assert ops.put(f"/v1/campaigns/{campaign_id}", json=nurture("other")).status_code == 422
    assert campaign_id in [c["id"] for c in ops.get("/v1/campaigns").json()["campaigns"]]
    assert ops.get(f"/v1/campaigns/{campaign_id}/stats").json()["triggered"] == 0
    assert ops.delete(f"/v1/campaigns/{campaign_id}").status_code == 204
    assert ops.get(f"/v1/campaigns/{campaign_id}").status_code == 404
    assert ops.get(f"/v1/campaigns/{campaign_id}/stats").status_code == 404
    assert ops.delete(f"/v1/campaigns/{campaign_id}").status_code == 404


def test_the_worker_exposes_the_contracts_metrics(client, ops, campaign) -> None:
    """Values only a processed event produces: an event in, an action out, each counted."""
    campaign_id = f"metrics-{uuid.uuid4().hex[:8]}"
    definition = nurture(campaign_id, trigger={"on": "event", "value": "community.post"})
    assert ops.post("/v1/campaigns", json=definition).status_code == 201
    try:
        before = _samples(campaign.metrics_url)

        def counted() -> dict[str, float]:
            after = _samples(campaign.metrics_url)
            grew = {name for name in after if after[name] > before.get(name, 0.0)}
            assert {
                'pd_events_processed_total{outcome="processed",service="campaign"}',
                "pd_event_to_action_seconds_count",
                f'pd_campaign_actions_total{{campaign="{campaign_id}",kind="send_content",outcome="sent"}}',
            } <= grew, sorted(grew)
            return after

        who = {"wecom_external_userid": unique("wm")}
        post(client, who, "wecom.friend_added")
        post(client, who, "community.post")
        after = eventually(counted, timeout=30)
        # Every action emitted was timed, from a real received_at (seconds, not hours).
        grown = after["pd_event_to_action_seconds_count"] - before.get("pd_event_to_action_seconds_count", 0)
        seconds = after["pd_event_to_action_seconds_sum"] - before.get("pd_event_to_action_seconds_sum", 0)
        assert grown >= 1 and 0 < seconds / grown < 60
    finally:
        ops.delete(f"/v1/campaigns/{campaign_id}")


def _samples(metrics_url: str) -> dict[str, float]:
    """Every sample of the worker's /metrics, by its name and labels as written."""
    samples: dict[str, float] = {}
    for line in httpx.get(f"{metrics_url}/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_two_campaigns_on_one_channel_and_day_give_one_message(client, ops, campaign) -> None:
    """The session's campaign worker caps WeCom 1v1 at one marketing message a day (conftest)."""
    tag = uuid.uuid4().hex[:8]
    ids = [f"cap-a-{tag}", f"cap-b-{tag}"]
    for campaign_id in ids:
        trigger = {"on": "event", "value": f"custom.{campaign_id.replace('-', '_')}"}
        definition = nurture(
            campaign_id, trigger=trigger, audience={}, frequency_cap={"per_customer_per_day": 5}
        )
        assert ops.post("/v1/campaigns", json=definition).status_code == 201
    version = ops.get("/v1/campaigns").json()["version"]
    eventually(lambda: campaigns_in_force(campaign.metrics_url, version), timeout=20)
    try:
        who = {"wecom_external_userid": unique("wm")}
        customer = post(client, who, "wecom.friend_added")
        post(client, who, f"custom.cap_a_{tag}")
        eventually(lambda: _decided(ops, customer, ids[0]), timeout=60, interval=0.2)
        post(client, who, f"custom.cap_b_{tag}")
        eventually(lambda: _decided(ops, customer, ids[1]), timeout=60, interval=0.2)
        history = {h["campaign_id"]: h for h in ops.get(f"/v1/customers/{customer}/actions").json()}
        assert (history[ids[0]]["outcome"], history[ids[0]]["reason"]) == ("sent", None)
        assert (history[ids[1]]["outcome"], history[ids[1]]["reason"]) == ("suppressed", "channel_cap")
    finally:
        for campaign_id in ids:
            ops.delete(f"/v1/campaigns/{campaign_id}")
