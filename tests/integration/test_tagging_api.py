"""The tagging worker and API end to end: events posted to ingest, profiles read over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from shared.topics import PROFILE_TAGS, SCORED_INPUTS, dead_letter_topic
from tests.conftest import OPS_TOKEN
from tests.factories import event, unique
from tests.harness import eventually
from tests.topic_reader import TopicReader

OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}


@pytest.fixture(scope="module")
def ops(tagging) -> httpx.Client:
    with httpx.Client(base_url=tagging.api_url, headers=OPS, timeout=10) as http:
        yield http


def post(client: httpx.Client, who: dict[str, str], event_type: str, **properties: Any) -> str:
    response = client.post("/v1/events", json=event(type=event_type, identities=who, properties=properties))
    assert response.status_code == 202, response.text
    return response.json()["results"][0]["customer_id"]


def profile_of(ops: httpx.Client, customer_id: str, check: Any, timeout: float = 30) -> dict[str, Any]:
    def profiled() -> dict[str, Any]:
        response = ops.get(f"/v1/customers/{customer_id}/profile")
        assert response.status_code == 200, response.text
        body = response.json()
        assert check(body), body
        return body

    return eventually(profiled, timeout=timeout, interval=0.1)


def count(ops: httpx.Client, **filters: Any) -> int:
    response = ops.get("/v1/segments/count", params=filters)
    assert response.status_code == 200, response.text
    return response.json()["count"]


def test_xpeng_wecom_flow_end_to_end(client, ops) -> None:
    """Added on WeCom, read rational content, clicked enough for scoring to find intent high."""
    who = {"wecom_external_userid": unique("wm")}
    customer = post(client, who, "wecom.friend_added")
    for n in range(5):
        post(client, who, "content.click", content_id=f"c-{n}", value_point="rational", topics=["tech"])
    post(client, who, "content.favorite", content_id="c-4", value_point="rational", topics=["tech"])
    body = profile_of(ops, customer, lambda b: b["layer"] == "intent")  # by the score on the chain
    assert body["orientation"] == "rational" and body["stage"] == "newcomer"  # 7 interactions, 1 deep
    assert "interest:tech" in body["tags"] and body["intent_pct"] >= 60
    assert set(body) >= {"customer_id", "layer", "orientation", "stage", "tags", "updated_at"}


def test_a_defeated_lead_is_recalled_and_every_change_is_published(client, ops, backends) -> None:
    who = {"unionid": unique("u")}
    customer = post(client, who, "lead.defeated", reason="bought_rival")
    profile_of(
        ops, customer, lambda b: b["layer"] == "defeated" and "defeat_reason:bought_rival" in b["tags"]
    )
    post(client, who, "test_drive.booked", vehicle_model="kaijie")
    body = profile_of(ops, customer, lambda b: b["layer"] == "intent")
    assert "recalled" in body["tags"]
    changes = TopicReader(backends.kafka_bootstrap_servers, PROFILE_TAGS, "customer_id")
    try:
        records = [r for _, r, _ in changes.wait_for([customer])[customer]]
        eventually(lambda: _assert_published(changes, customer, records), timeout=20)
    finally:
        changes.close()
    last = records[-1]
    assert (last["type"], last["schema_version"], last["previous_layer"], last["layer"]) == (
        "profile.tags_changed",
        1,
        "defeated",
        "intent",
    )
    assert "recalled" in last["tags_added"] and "defeat_reason:bought_rival" in last["tags_removed"]


def _assert_published(changes: TopicReader, customer: str, records: list[dict[str, Any]]) -> None:
    records[:] = [r for _, r, _ in changes.wait_for([customer])[customer]]
    assert records[-1]["layer"] == "intent", records


def test_segment_counts_and_the_ladder_follow_the_profiles(client, ops) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}"
    before = count(ops, layer="owner", tag=f"interest:{topic}")
    buyers = []
    for _ in range(2):
        who = {"app_user_id": unique("app")}
        for n in range(3):
            post(client, who, "content.view", content_id=f"c{n}", topics=[topic], value_point="emotional")
        buyers.append(post(client, who, "order.placed", vehicle_model="et5"))
    for buyer in buyers:
        profile_of(ops, buyer, lambda b: b["layer"] == "owner" and f"interest:{topic}" in b["tags"])
    assert before == 0
    assert count(ops, layer="owner", tag=f"interest:{topic}") == 2
    assert count(ops, layer="owner", orientation="emotional", tag=f"interest:{topic}") == 2
    assert count(ops, layer="prospect", tag=f"interest:{topic}") == 0
    ladder = ops.get("/v1/segments/ladder").json()
    assert ladder["cells"]["owner"]["emotional"] >= 2
    assert ladder["total"] == count(ops)
    tags = {row["tag"]: row["customers"] for row in ops.get("/v1/tags", params={"limit": 1000}).json()}
    assert tags[f"interest:{topic}"] == 2
    assert ops.get("/v1/segments/count", params={"layer": "buyer"}).status_code == 422


def test_tag_rules_are_managed_over_http_and_applied_without_a_restart(client, ops) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}"
    who = {"app_user_id": unique("app")}
    for n in range(3):
        customer = post(client, who, "live.watch", duration_s=60 + n, topics=[topic])
    profile_of(ops, customer, lambda b: f"interest:{topic}" in b["tags"])
    tag = f"fan-{topic}"
    rule = {"tag": tag, "tags_all": [f"interest:{topic}"], "layers": ["prospect"]}
    created = ops.post("/v1/tag-rules", json=rule)
    assert created.status_code == 201, created.text
    try:
        assert tag in [r["tag"] for r in created.json()["rules"]]
        assert ops.post("/v1/tag-rules", json=rule).status_code == 409
        # An existing profile gets the new tag without an input of its own: the worker re-derives.
        profile_of(ops, customer, lambda b: tag in b["tags"])
        # Changed: now only for intent leads, so the prospect loses it.
        changed = ops.put(f"/v1/tag-rules/{tag}", json=rule | {"layers": ["intent"]})
        assert changed.status_code == 200 and changed.json()["version"] > created.json()["version"]
        profile_of(ops, customer, lambda b: tag not in b["tags"])
        assert ops.get(f"/v1/tag-rules/{tag}").json()["layers"] == ["intent"]
    finally:
        assert ops.delete(f"/v1/tag-rules/{tag}").status_code == 204
    assert ops.delete(f"/v1/tag-rules/{tag}").status_code == 404
    assert ops.get(f"/v1/tag-rules/{tag}").status_code == 404


def test_invalid_rules_are_refused_with_reasons(ops) -> None:
    bad = ops.post("/v1/tag-rules", json={"tag": "x", "counts": [{"types": ["nope"], "at_least": 0}]})
    assert bad.status_code == 422
    problems = {(e["loc"][-1], e["msg"]) for e in bad.json()["detail"]}
    assert any("unknown event types" in msg for _, msg in problems)
    assert any(loc == "at_least" for loc, _ in problems)
    first = {"tag": f"a-{uuid.uuid4().hex[:6]}", "layers": ["owner"]}
    assert ops.post("/v1/tag-rules", json=first).status_code == 201
    try:
        cycle = ops.put(f"/v1/tag-rules/{first['tag']}", json=first | {"tags_all": ["b-cycle"]})
        assert cycle.status_code == 200
        loop = ops.post("/v1/tag-rules", json={"tag": "b-cycle", "tags_none": [first["tag"]]})
        assert loop.status_code == 422 and "cycle" in loop.text
        wrong = ops.put(f"/v1/tag-rules/{first['tag']}", json=first | {"tag": "other"})
        assert wrong.status_code == 422
    finally:
        ops.delete(f"/v1/tag-rules/{first['tag']}")


def test_a_merged_customers_profile_moves_to_the_survivor(client, ops) -> None:
    phone, device = "+86 139 0000 " + str(uuid.uuid4().int % 10_000).zfill(4), unique("d")
    older = post(client, {"phone": phone}, "content.share", content_id="c")
    newer = post(client, {"device_id": device}, "content.share", content_id="c")
    profile_of(ops, newer, lambda b: b["customer_id"] == newer)
    survivor = post(client, {"phone": phone, "device_id": device}, "content.view", content_id="c")
    assert survivor == older
    body = profile_of(ops, older, lambda b: "ripple" in b["tags"])  # two shares, one per customer
    assert ops.get(f"/v1/customers/{newer}/profile").json() == body


def test_unknown_customers_and_missing_tokens(tagging, ops) -> None:
    assert ops.get(f"/v1/customers/{unique('nobody')}/profile").status_code == 404
    assert httpx.get(f"{tagging.api_url}/v1/segments/count").status_code == 401
    assert httpx.get(f"{tagging.api_url}/healthz").json() == {"status": "ok"}


def test_a_scored_input_that_does_not_parse_goes_to_the_dead_letter_topic(tagging, backends) -> None:
    poison = f"not a scored input {uuid.uuid4()}".encode()
    producer = KafkaProducer(bootstrap_servers=backends.kafka_bootstrap_servers, acks="all")
    producer.send(SCORED_INPUTS, key=b"poison", value=poison)
    producer.flush()
    producer.close()
    dead = TopicReader(backends.kafka_bootstrap_servers, dead_letter_topic(SCORED_INPUTS), "value")
    try:
        [(_, letter, _), *_] = dead.wait_for([poison.decode()])[poison.decode()]
    finally:
        dead.close()
    assert letter["topic"] == SCORED_INPUTS and "json" in letter["error"].lower()


def test_the_worker_exposes_its_metrics(tagging, client) -> None:
    post(client, {"unionid": unique("u")}, "ad.click")

    def counted() -> str:
        text = httpx.get(f"{tagging.metrics_url}/metrics").text
        assert 'pd_events_processed_total{outcome="processed",service="tagging"}' in text
        assert 'pd_consumer_lag{partition="0",service="tagging",topic="scored.inputs.v1"}' in text
        return text

    assert "pd_event_processing_seconds_bucket" in eventually(counted)


def funnel(ops: httpx.Client) -> dict[str, int]:
    response = ops.get("/v1/funnel")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [row["step"] for row in body["steps"]] == ["friend_added", "lead", "test_drive", "order"]
    return {row["step"]: row["customers"] for row in body["steps"]} | {"total": body["total"]}


def members(ops: httpx.Client, limit: int, **filters: Any) -> list[dict[str, Any]]:
    """Every page of a segment."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**filters, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = ops.get("/v1/segments/members", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["members"]) <= limit
        found += page["members"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def test_funnel_steps_bands_and_segment_queries_follow_the_profiles(client, ops) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}"
    interest = f"interest:{topic}"
    before = funnel(ops)
    lead, driver, buyer = ({"app_user_id": unique("app")} for _ in range(3))
    post(client, lead, "wecom.friend_added")
    post(client, lead, "ad.lead_form")
    post(client, driver, "test_drive.booked", vehicle_model="g6")
    post(client, buyer, "order.placed", vehicle_model="et5")
    ids = {}
    for name, who in (("lead", lead), ("driver", driver), ("buyer", buyer)):
        for n in range(3):  # the topic scopes this test's queries to these three customers
            price = name == "driver"
            ids[name] = post(
                client, who, "content.view", content_id=f"c{n}", topics=[topic], price_related=price
            )
    profiles = {
        name: profile_of(ops, customer, lambda b: interest in b["tags"] and b["band"] is not None)
        for name, customer in ids.items()
    }
    assert profiles["lead"]["reached"] == ["friend_added", "lead"]
    assert profiles["driver"]["reached"] == ["lead", "test_drive"]  # a booking leaves contact details
    assert profiles["buyer"]["reached"] == ["lead", "order"]
    after = funnel(ops)
    for step in ("friend_added", "lead", "test_drive", "order"):
        assert after[step] >= before[step] + 1, (step, before, after)
    assert after["total"] >= before["total"] + 3

    # A test drive takes a customer to hot (docs/contract.md), an order even further; the rest
    # is read off the profiles, so that the queries, not scoring's calibration, are under test.
    assert profiles["driver"]["band"] == profiles["buyer"]["band"] == "hot"

    def having(**wanted: list[str]) -> int:
        return sum(1 for p in profiles.values() if all(p[k] in values for k, values in wanted.items()))

    assert count(ops, tag=interest) == 3
    assert count(ops, tag=interest, band="hot") == having(band=["hot"])
    assert count(ops, tag=interest, band=["low", "medium", "high"]) == 1
    assert count(ops, tag=interest, layer=["intent", "owner"]) == having(layer=["intent", "owner"]) >= 2
    both = {"layer": ["intent", "owner"], "band": ["hot"], "activity": ["active_7d"]}
    assert count(ops, tag=interest, **both) == having(**both) == 2
    assert count(ops, tag=interest, activity=["active_30d", "dormant"]) == 0
    assert count(ops, tag=interest, not_tag="price_sensitive") == 2
    assert count(ops, tag=[interest, "price_sensitive"]) == 1
    paged = members(ops, 2, tag=interest, band="hot")
    assert sorted(m["customer_id"] for m in paged) == sorted([ids["driver"], ids["buyer"]])
    assert {m["customer_id"]: m for m in paged}[ids["buyer"]]["layer"] == "owner"
    everyone = members(ops, 1, tag=interest)
    assert sorted(m["customer_id"] for m in everyone) == sorted(ids.values())
    assert ops.get("/v1/segments/members", params={"tag": interest, "limit": 500}).status_code == 422
    assert ops.get("/v1/segments/count", params={"band": "warm"}).status_code == 422
