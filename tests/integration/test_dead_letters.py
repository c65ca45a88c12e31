"""Dead letters end to end: an input the scoring worker cannot take lands on the dead-letter
topic, is listed with its error by the campaign API and by `pd-dlq`, is replayed corrected, and
is counted once however often it is replayed."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from kafka import KafkaProducer

from shared.topics import TOUCHPOINT_EVENTS
from tests.conftest import OPS_TOKEN, Backends, RunningService
from tests.harness import eventually

pytestmark = pytest.mark.integration
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}


def processed(metrics_url: str, outcome: str) -> float:
    text = httpx.get(f"{metrics_url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("pd_events_processed_total{") and f'outcome="{outcome}"' in line
    )


def poisoned_event(customer_id: str) -> dict[str, Any]:
    """An input as ingest would publish it, but with a time nobody can read."""
    return {
        "event_id": str(uuid.uuid4()),
        "customer_id": customer_id,
        "type": "content.click",
        "source": "wecom",
        "occurred_at": "yesterday at noon",
        "received_at": datetime.now(UTC).isoformat(),
        "identities": {},
        "properties": {"content_id": "c-replayed"},
        "schema_version": 1,
    }


def test_a_poisoned_input_is_listed_replayed_after_the_fix_and_counted_once(
    client: httpx.Client, backends: Backends, scoring: RunningService, campaign: RunningService
) -> None:
    accepted = client.post(
        "/v1/events",
        json={
            "event_id": str(uuid.uuid4()),
            "type": "content.view",
            "source": "wecom",
            "occurred_at": datetime.now(UTC).isoformat(),
            "identities": {"unionid": f"u-dlq-{uuid.uuid4().hex[:8]}"},
            "properties": {"content_id": "c-first"},
        },
    )
    customer = accepted.json()["results"][0]["customer_id"]
    poison = poisoned_event(customer)
    producer = KafkaProducer(bootstrap_servers=backends.kafka_bootstrap_servers, acks="all")
    producer.send(TOUCHPOINT_EVENTS, key=customer.encode(), value=orjson.dumps(poison)).get(timeout=10)
    producer.close()
    api = httpx.Client(base_url=campaign.api_url, headers=OPS, timeout=30)
    scoring_api = httpx.Client(base_url=scoring.api_url, headers=OPS, timeout=10)

    def listed() -> dict[str, Any]:
        letters = api.get("/v1/dead-letters", params={"topic": TOUCHPOINT_EVENTS}).json()["dead_letters"]
        mine = [letter for letter in letters if poison["event_id"] in (letter["value"] or "")]
        assert mine, "not dead-lettered yet"
        return mine[0]

    letter = eventually(listed, timeout=30, interval=0.5)
    assert letter["topic"] == TOUCHPOINT_EVENTS and "occurred_at" in letter["error"]
    assert letter["replayed_at"] is None
    assert api.get(f"/v1/dead-letters/{letter['id']}").json()["error"] == letter["error"]
    assert api.get("/v1/dead-letters/touchpoint.events.v1.dlq:0:999999").status_code == 404
    assert (
        api.get("/v1/dead-letters").status_code == 200 and api.get("/v1/dead-letters").json()["dead_letters"]
    )

    # The CLI lists and shows it too.
    cli = [sys.executable, "-m", "services.campaign.dlq_cli", "--api", campaign.api_url, "--token", OPS_TOKEN]
    listing = subprocess.run([*cli, "list", "--topic", TOUCHPOINT_EVENTS], capture_output=True, text=True)
    assert listing.returncode == 0 and letter["id"] in listing.stdout
    shown = subprocess.run([*cli, "show", letter["id"]], capture_output=True, text=True)
    assert shown.returncode == 0 and orjson.loads(shown.stdout)["error"] == letter["error"]

    # A correction must keep the event_id: a new one would be counted as another event.
    fixed = poison | {"occurred_at": datetime.now(UTC).isoformat()}
    renamed = api.post(
        "/v1/dead-letters/replay",
        json={"ids": [letter["id"]], "corrections": {letter["id"]: fixed | {"event_id": str(uuid.uuid4())}}},
    ).json()
    assert renamed["replayed"] == [] and "event_id" in renamed["refused"][0]["reason"]

    duplicates_before = processed(scoring.metrics_url, "duplicate")
    replay = {"ids": [letter["id"]], "corrections": {letter["id"]: fixed}}
    report = api.post("/v1/dead-letters/replay", json=replay).json()
    assert [r["id"] for r in report["replayed"]] == [letter["id"]] and report["refused"] == []
    assert report["replayed"][0]["topic"] == TOUCHPOINT_EVENTS

    def scored() -> list[dict[str, Any]]:
        events = scoring_api.get(f"/v1/customers/{customer}/events").json()["events"]
        ids = [event["event_id"] for event in events]
        assert poison["event_id"] in ids, ids
        return events

    eventually(scored, timeout=30)
    # Replayed again (twice by mistake, say): the worker recognises the event and counts nothing.
    assert api.post("/v1/dead-letters/replay", json=replay).json()["replayed"]

    def dropped_as_duplicate() -> None:
        assert processed(scoring.metrics_url, "duplicate") > duplicates_before

    eventually(dropped_as_duplicate, timeout=30)
    events = scored()
    assert [e["event_id"] for e in events].count(poison["event_id"]) == 1
    assert listed()["replayed_at"] is not None
