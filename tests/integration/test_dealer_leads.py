"""Hot leads and the dealer network, end to end: a campaign worker and API of their own (own
consumer group, own Redis database, flushed first) behind the session's ingest, scoring and
tagging. A lead for a full store waits in the pool and goes to a consultant added later; a
consultant made inactive hands their open lead on, as a new action, to a colleague."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.campaign_worker import campaign_env
from tests.conftest import OPS_TOKEN, Backends, RunningService, worker_and_api
from tests.factories import event, unique
from tests.harness import eventually, free_port

pytestmark = pytest.mark.integration
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}


@pytest.fixture(scope="module")
def lead_desk(backends: Backends, log_dir: Path, tagging: RunningService) -> Iterator[RunningService]:
    metrics_port, api_port = free_port(), free_port()
    redis_url = backends.redis_url.rsplit("/", 1)[0] + "/11"
    redis.Redis.from_url(redis_url).flushdb()
    env = campaign_env(backends.kafka_bootstrap_servers, redis_url, metrics_port)
    env |= {
        "CAMPAIGN_PORT": str(api_port),
        "OPS_TOKENS": OPS_TOKEN,
        "CAMPAIGN_APP_ID": "pd-campaign-leads",
        "CAMPAIGNS_POLL_INTERVAL_S": "0.2",
        "LEAD_POOL_INTERVAL_S": "0.2",
    }
    yield from worker_and_api("campaign", env, metrics_port, api_port, log_dir)


def post(client: httpx.Client, who: dict[str, str], event_type: str, **properties: Any) -> str:
    response = client.post("/v1/events", json=event(type=event_type, identities=who, properties=properties))
    assert response.status_code == 202, response.text
    return response.json()["results"][0]["customer_id"]


def test_a_waiting_lead_goes_to_a_consultant_added_and_an_inactive_consultants_lead_moves(
    client: httpx.Client, lead_desk: RunningService
) -> None:
    api = httpx.Client(base_url=lead_desk.api_url, headers=OPS, timeout=10)
    store = unique("store")
    first, second = f"{store}-a", f"{store}-b"
    assert api.put(
        f"/v1/dealers/stores/{store}", json={"id": store, "city": "wuhan", "brand": "demo"}
    ).is_success
    consultant = {"id": first, "store_id": store, "daily_capacity": 1}
    assert api.put(f"/v1/dealers/consultants/{first}", json=consultant).is_success
    trigger = f"custom.lead_{uuid.uuid4().hex[:8]}"
    campaign_id = unique("to-dealer")
    definition = {
        "id": campaign_id,
        "name": "hot lead to the customer's store",
        "trigger": {"on": "event", "value": trigger},
        "action": {"kind": "assign_dealer", "channel": "dealer", "sla_hours": 24},
    }
    assert api.post("/v1/campaigns", json=definition).status_code == 201
    version = api.get("/v1/campaigns").json()["version"]

    def in_force() -> None:
        text = httpx.get(f"{lead_desk.metrics_url}/metrics").text
        line = next(line for line in text.splitlines() if line.startswith("pd_campaigns_version "))
        assert float(line.split()[1]) >= version

    eventually(in_force, timeout=30)

    def lead_of(customer: str) -> dict[str, Any]:
        actions = [
            a for a in api.get(f"/v1/customers/{customer}/actions").json() if a["campaign_id"] == campaign_id
        ]
        assert actions, customer
        return actions[-1]

    taken = post(client, {"app_user_id": unique("u")}, trigger, dealer_id=store)
    assigned = eventually(lambda: lead_of(taken), timeout=60, interval=0.2)
    assert (assigned["outcome"], assigned["consultant_id"]) == ("sent", first)

    waiting = post(client, {"app_user_id": unique("u")}, trigger, dealer_id=store)
    pooled = eventually(lambda: lead_of(waiting), timeout=60, interval=0.2)
    assert (pooled["outcome"], pooled["reason"]) == ("deferred", "lead_pool")
    pool = api.get("/v1/leads", params={"state": "pool"}).json()
    assert [(x["customer_id"], x["store_id"]) for x in pool["leads"]] == [(waiting, store)]

    # A colleague joins the store: the waiting lead is theirs, under the action id it was decided with.
    colleague = {"id": second, "store_id": store, "daily_capacity": 2}
    assert api.put(f"/v1/dealers/consultants/{second}", json=colleague).is_success

    def released() -> dict[str, Any]:
        lead = lead_of(waiting)
        assert (lead["outcome"], lead["consultant_id"]) == ("sent", second), lead
        return lead

    assert eventually(released, timeout=30, interval=0.2)["action_id"] == pooled["action_id"]
    assert api.get("/v1/leads", params={"state": "pool"}).json()["leads"] == []

    # The first consultant leaves: their open lead is handed to the colleague as a new action.
    etag = api.get(f"/v1/dealers/consultants/{first}").headers["ETag"]
    leaving = api.put(
        f"/v1/dealers/consultants/{first}", json=consultant | {"active": False}, headers={"If-Match": etag}
    )
    assert leaving.is_success

    def moved() -> list[dict[str, Any]]:
        leads = api.get("/v1/leads", params={"state": "open", "consultant_id": second}).json()["leads"]
        assert {x["customer_id"] for x in leads} == {taken, waiting}, leads
        return leads

    leads = eventually(moved, timeout=30, interval=0.2)
    handed_on = next(x for x in leads if x["customer_id"] == taken)
    assert handed_on["action_id"] != assigned["action_id"]
    assert [(h["consultant_id"], h["reason"]) for h in handed_on["handovers"]] == [
        (first, "assigned"),
        (None, "consultant_inactive"),
        (second, "from_pool"),
    ]
    assert api.get("/v1/leads", params={"state": "open", "consultant_id": first}).json()["leads"] == []

    def announced() -> dict[str, Any]:
        actions = {a["action_id"]: a for a in api.get(f"/v1/customers/{taken}/actions").json()}
        assert handed_on["action_id"] in actions, actions
        return actions[handed_on["action_id"]]

    new_action = eventually(announced, timeout=10)
    assert (new_action["outcome"], new_action["consultant_id"]) == ("sent", second)
    figures = {
        f["consultant_id"]: f for f in api.get("/v1/leads/consultants", params={"store_id": store}).json()
    }
    assert (figures[first]["active"], figures[first]["open"], figures[first]["handovers"]) == (False, 0, 1)
    assert (figures[second]["open"], figures[second]["handovers"]) == (2, 2)

    def gauges() -> None:
        text = httpx.get(f"{lead_desk.metrics_url}/metrics").text
        assert 'pd_campaign_leads{state="pool"} 0.0' in text and 'pd_campaign_leads{state="open"} 2.0' in text

    eventually(gauges, timeout=10)
