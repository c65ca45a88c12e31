"""Funnel figures end to end, against the session's broker, Redis, ingest and workers (issue 17,
item 3): four customers of one dealer walk known paths; `GET /v1/funnels?by=dealer` counts each
milestone and pair and gives the paper's rates for them, and the tagging API's /metrics has the
rates as gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.tagging.funnel_figures import CHINA
from tests.campaign_worker import campaigns_in_force
from tests.conftest import OPS_TOKEN, RunningService
from tests.factories import event, unique
from tests.harness import eventually

pytestmark = pytest.mark.integration
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
ORDER = {"vehicle_model": "G6"}


def walk_from(client: httpx.Client, at: datetime, *steps: tuple[str, dict]) -> None:
    """A new customer's events, a second apart from `at`."""
    who = {"wecom_external_userid": unique("wm")}
    for n, (kind, properties) in enumerate(steps):
        occurred_at = (at + timedelta(seconds=n)).isoformat()
        sent = event(type=kind, identities=who, properties=properties, occurred_at=occurred_at)
        assert client.post("/v1/events", json=sent).status_code == 202


def funnel_group(tagging: RunningService, params: dict[str, str], value: str) -> dict:
    """The group `value` of `GET /v1/funnels` (an AssertionError while it is not there)."""
    report = httpx.get(f"{tagging.api_url}/v1/funnels", params=params, headers=OPS).json()
    mine = [g for g in report["groups"] if g["value"] == value]
    assert mine, report
    return mine[0]


def test_a_dealers_cohort_is_counted_milestone_by_milestone(
    client: httpx.Client, tagging: RunningService
) -> None:
    dealer = unique("d-funnel")
    at = datetime.now(UTC) - timedelta(minutes=1)

    def walk(*steps: tuple[str, dict]) -> None:
        walk_from(client, at, *steps)

    here = {"dealer_id": dealer}
    walk(("wecom.friend_added", here), ("order.placed", ORDER))
    walk(("wecom.friend_added", here), ("ad.lead_form", {}))
    walk(("wecom.friend_added", here))
    walk(
        ("ad.lead_form", here),
        ("lead.defeated", {"reason": "price"}),
        ("test_drive.booked", ORDER),  # hot again after the defeat: recalled
        ("order.placed", ORDER),
    )
    day = at.astimezone(CHINA).date()
    params = {"by": "dealer", "from": str(day - timedelta(days=1)), "to": str(day + timedelta(days=1))}
    ops = {"Authorization": f"Bearer {OPS_TOKEN}"}

    def counted() -> dict:
        mine = funnel_group(tagging, params, dealer)
        expected = {"entered": 4, "friend_added": 3, "lead": 3, "store_visit": 0, "test_drive": 1, "order": 2}
        assert mine["customers"] == expected | {"defeated": 1, "recalled": 1}, mine
        return mine

    group = eventually(counted, timeout=60, interval=0.3)
    assert group["rates"] == {
        "lead_capture": 75.0,
        "store_visit": 0.0,
        "friend_to_deal": 33.33,
        "lead_to_deal": 66.67,
        "recall": 100.0,
        "recall_to_order": 100.0,
    }
    assert (
        httpx.get(
            f"{tagging.api_url}/v1/funnels", params={"from": "2026-01-02", "to": "2026-01-01"}, headers=ops
        ).status_code
        == 422
    )
    metrics = httpx.get(f"{tagging.api_url}/metrics").text
    assert 'pd_funnel_rate_percent{rate="friend_to_deal"}' in metrics


def test_a_campaigns_cohort_is_counted_from_the_day_it_acted(
    client: httpx.Client, tagging: RunningService, campaign: RunningService
) -> None:
    """`by=campaign`: the customers a campaign acted for, with the milestones they held then and
    those they reach after; customers it never acted for are not in its group."""
    campaign_id = unique("funnel").lower()
    trigger = f"custom.{campaign_id}"
    ops = {"Authorization": f"Bearer {OPS_TOKEN}"}
    definition = {
        "id": campaign_id,
        "name": campaign_id,
        "trigger": {"on": "event", "value": trigger},
        "action": {"kind": "grant_points", "channel": "membership", "points": 10},
    }
    with httpx.Client(base_url=campaign.api_url, headers=ops, timeout=10) as campaigns:
        assert campaigns.post("/v1/campaigns", json=definition).status_code == 201
        version = campaigns.get("/v1/campaigns").json()["version"]
    eventually(lambda: campaigns_in_force(campaign.metrics_url, version), timeout=20, interval=0.2)
    at = datetime.now(UTC) - timedelta(minutes=1)

    def walk(*kinds: str) -> None:
        walk_from(client, at, *((kind, ORDER if kind == "order.placed" else {}) for kind in kinds))

    walk("wecom.friend_added", "ad.lead_form", trigger, "order.placed")  # a lead before, an order after
    walk("wecom.friend_added", trigger)
    walk(trigger)
    walk("wecom.friend_added", "order.placed")  # never acted for: not in the campaign's group
    day = at.astimezone(CHINA).date()
    params = {"by": "campaign", "from": str(day - timedelta(days=1)), "to": str(day + timedelta(days=1))}

    def counted() -> dict:
        # Each customer's inputs reach the counts on their own: wait for every one, not the order alone.
        mine = funnel_group(tagging, params, campaign_id)
        assert mine["customers"] == {
            "entered": 3,
            "friend_added": 2,
            "lead": 1,
            "store_visit": 0,
            "test_drive": 0,
            "order": 1,
            "defeated": 0,
            "recalled": 0,
        }, mine
        return mine

    group = eventually(counted, timeout=60, interval=0.3)
    assert (group["rates"]["lead_capture"], group["rates"]["friend_to_deal"]) == (33.33, 50.0)
    assert group["rates"]["lead_to_deal"] == 100.0
