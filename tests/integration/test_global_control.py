"""The programme's global control group: a share of all customers no campaign markets to, and
the programme's conversion measured against it.

A campaign worker and API of their own (own consumer group, own Redis database) run here with
GLOBAL_CONTROL_PCT=50, on the session's broker behind the session's scoring and tagging workers:
the session's campaign worker has no control group, and other tests' customers must not fall
into one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.campaign.targeting import in_global_control
from tests.campaign_worker import campaign_env
from tests.conftest import OPS_TOKEN, Backends, RunningService, worker_and_api
from tests.factories import event, unique
from tests.harness import eventually, free_port

pytestmark = pytest.mark.integration
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
CONTROL_PCT = 50


@pytest.fixture(scope="module")
def controlled_campaigns(
    backends: Backends, log_dir: Path, tagging: RunningService
) -> Iterator[RunningService]:
    metrics_port, api_port = free_port(), free_port()
    redis_url = backends.redis_url.rsplit("/", 1)[0] + "/9"
    env = campaign_env(backends.kafka_bootstrap_servers, redis_url, metrics_port)
    env |= {
        "CAMPAIGN_PORT": str(api_port),
        "OPS_TOKENS": OPS_TOKEN,
        "CAMPAIGN_APP_ID": "pd-campaign-global-control",
        "GLOBAL_CONTROL_PCT": str(CONTROL_PCT),
        "CAMPAIGNS_POLL_INTERVAL_S": "0.2",
    }
    yield from worker_and_api("campaign", env, metrics_port, api_port, log_dir)


def post(client: httpx.Client, who: dict[str, str], event_type: str, **properties: Any) -> str:
    response = client.post("/v1/events", json=event(type=event_type, identities=who, properties=properties))
    assert response.status_code == 202, response.text
    return response.json()["results"][0]["customer_id"]


def new_customer(client: httpx.Client, in_control: bool) -> tuple[dict[str, str], str]:
    """A customer (a WeCom friend: consent to 1v1 messages) in, or out of, the control group."""
    for _ in range(200):
        who = {"wecom_external_userid": unique("wm")}
        customer = post(client, who, "wecom.friend_added")
        if in_global_control(customer, CONTROL_PCT) == in_control:
            return who, customer
    raise AssertionError("no such customer in 200 tries")


def test_a_customer_in_the_global_control_group_receives_nothing_from_any_campaign(
    client: httpx.Client, controlled_campaigns: RunningService
) -> None:
    api = httpx.Client(base_url=controlled_campaigns.api_url, headers=OPS, timeout=10)
    trigger = f"custom.gc_{uuid.uuid4().hex[:8]}"
    ids = [f"gc-message-{uuid.uuid4().hex[:6]}", f"gc-group-{uuid.uuid4().hex[:6]}"]
    for campaign_id, channel in zip(ids, ("wecom_1v1", "wecom_group"), strict=True):
        definition = {
            "id": campaign_id,
            "name": "global control",
            "trigger": {"on": "event", "value": trigger},
            "action": {"kind": "send_content", "channel": channel, "content": {"default": "c-brand"}},
        }
        assert api.post("/v1/campaigns", json=definition).status_code == 201
    version = api.get("/v1/campaigns").json()["version"]

    def in_force() -> None:
        text = httpx.get(f"{controlled_campaigns.metrics_url}/metrics").text
        line = next(line for line in text.splitlines() if line.startswith("pd_campaigns_version "))
        assert float(line.split()[1]) >= version

    eventually(in_force, timeout=30)
    control_who, control = new_customer(client, in_control=True)
    treated_who, treated = new_customer(client, in_control=False)
    for who in (control_who, treated_who):
        post(client, who, trigger)

    def decided(customer: str) -> dict[str, dict[str, Any]]:
        history = {h["campaign_id"]: h for h in api.get(f"/v1/customers/{customer}/actions").json()}
        assert set(ids) <= set(history), history
        return history

    control_history = eventually(lambda: decided(control), timeout=60, interval=0.2)
    treated_history = eventually(lambda: decided(treated), timeout=60, interval=0.2)
    for campaign_id in ids:
        assert (control_history[campaign_id]["outcome"], control_history[campaign_id]["reason"]) == (
            "suppressed",
            "global_control",
        )
        assert treated_history[campaign_id]["outcome"] == "sent"

    # The programme against its control group: both customers visit a store.
    for who in (control_who, treated_who):
        post(client, who, "store.visit", dealer_id="d-1")

    def measured() -> dict[str, Any]:
        groups = api.get("/v1/programme/stats").json()["groups"]
        assert groups["control"]["converted"] == 1 and groups["treated"]["converted"] == 1, groups
        return groups

    groups = eventually(measured, timeout=60, interval=0.2)
    assert api.get("/v1/programme/stats").json()["global_control_pct"] == CONTROL_PCT
    assert groups["control"]["entered"] == 1 and groups["treated"]["entered"] == 1  # a Redis of its own
    assert groups["treated"]["lift"] is not None and groups["treated"]["lift_ci95"] is not None
    assert groups["control"]["lift"] is None
