"""The content catalogue end to end, against the session's broker, Redis, ingest and workers:
a content registered on the tagging API gives events that name only its id their value point,
topics, car model and price flag (as published), the profile follows from them, and the
content's reach, clicks and conversions are counted (issue 17, item 4)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import OPERATOR_TOKEN, VIEWER_TOKEN, RunningIngest, RunningService
from tests.factories import event, unique
from tests.harness import eventually
from tests.topic_reader import TopicReader

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def gauge(metrics_url: str, name: str) -> float:
    text = httpx.get(f"{metrics_url}/metrics").text
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(f"{name} ")))


def test_events_naming_a_registered_content_take_its_attributes_and_count_for_it(
    client: httpx.Client, ingest: RunningIngest, tagging: RunningService, events_topic: TopicReader
) -> None:
    content_id = f"c-catalogue-{uuid.uuid4().hex[:8]}"
    content: dict[str, Any] = {
        "content_id": content_id,
        "title": "G6 续航实测",
        "value_point": "rational",
        "topics": ["range", "tech"],
        "vehicle_model": "G6",
        "price_related": True,
    }
    with httpx.Client(base_url=f"{tagging.api_url}/v1", headers=bearer(OPERATOR_TOKEN), timeout=10) as ops:
        assert (
            ops.put(f"/contents/{content_id}", json=content, headers=bearer(VIEWER_TOKEN)).status_code == 403
        )
        assert ops.put(f"/contents/{content_id}", json=content | {"content_id": "c-other"}).status_code == 422
        assert (
            ops.put(f"/contents/{content_id}", json=content | {"value_point": "logical"}).status_code == 422
        )
        put = ops.put(f"/contents/{content_id}", json=content)
        assert put.status_code == 200, put.text
        stale = ops.put(f"/contents/{content_id}", json=content, headers={"If-Match": '"999"'})
        assert stale.status_code == 409
        version = ops.get("/contents").json()["version"]
        eventually(lambda: _at_least(gauge(ingest.url, "pd_ingest_contents_version"), version))

        who = {"wecom_external_userid": unique("wm")}
        posted = [
            event(type="content.click", identities=who, properties={"content_id": content_id})
            for _ in range(3)
        ]
        posted.append(
            event(type="order.placed", identities=who, properties={"vehicle_model": "G6", "amount": 150000})
        )
        customer = ""
        for one in posted:
            answer = client.post("/v1/events", json=one)
            assert answer.status_code == 202, answer.text
            customer = answer.json()["results"][0]["customer_id"]

        published = events_topic.wait_for([p["event_id"] for p in posted[:3]], timeout=30)
        for records in published.values():
            properties = records[0][1]["properties"]
            assert properties == {
                "content_id": content_id,
                "value_point": "rational",
                "topics": ["range", "tech"],
                "vehicle_model": "G6",
                "price_related": True,
            }

        def profiled() -> None:
            profile = ops.get(f"/customers/{customer}/profile").json()
            assert profile.get("orientation") == "rational", profile
            assert "price_sensitive" in profile["tags"], profile

        eventually(profiled, timeout=60, interval=0.2)

        def counted() -> None:
            view = ops.get(f"/contents/{content_id}").json()
            assert view["figures"] == {"reach": 1, "clicks": 3, "conversions": 1}, view

        eventually(counted, timeout=60, interval=0.2)
        listed = ops.get("/contents").json()["contents"]
        assert [c["content"] for c in listed if c["content"]["content_id"] == content_id] == [
            content | {"schema_version": 1}
        ]


def _at_least(value: float, wanted: float) -> None:
    assert value >= wanted, (value, wanted)
