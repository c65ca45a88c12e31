"""Funnel figures end to end, against the session's broker, Redis, ingest and workers (issue 17,
item 3): four customers of one dealer walk known paths; `GET /v1/funnels?by=dealer` counts each
milestone and pair and gives the paper's rates for them, and the tagging API's /metrics has the
rates as gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.tagging.funnel_figures import CHINA
from tests.conftest import OPS_TOKEN, RunningService
from tests.factories import event, unique
from tests.harness import eventually

pytestmark = pytest.mark.integration


def test_a_dealers_cohort_is_counted_milestone_by_milestone(
    client: httpx.Client, tagging: RunningService
) -> None:
    dealer = unique("d-funnel")
    at = datetime.now(UTC) - timedelta(minutes=1)

    def walk(*steps: tuple[str, dict]) -> None:
        who = {"wecom_external_userid": unique("wm")}
        for n, (kind, properties) in enumerate(steps):
            sent = event(
                type=kind,
                identities=who,
                properties=properties,
                occurred_at=(at + timedelta(seconds=n)).isoformat(),
            )
            assert client.post("/v1/events", json=sent).status_code == 202

    here = {"dealer_id": dealer}
    walk(("wecom.friend_added", here), ("order.placed", {"vehicle_model": "G6"}))
    walk(("wecom.friend_added", here), ("ad.lead_form", {}))
    walk(("wecom.friend_added", here))
    walk(
        ("ad.lead_form", here),
        ("lead.defeated", {"reason": "price"}),
        ("test_drive.booked", {"vehicle_model": "G6"}),  # hot again after the defeat: recalled
        ("order.placed", {"vehicle_model": "G6"}),
    )
    day = at.astimezone(CHINA).date()
    params = {"by": "dealer", "from": str(day - timedelta(days=1)), "to": str(day + timedelta(days=1))}
    ops = {"Authorization": f"Bearer {OPS_TOKEN}"}

    def counted() -> dict:
        report = httpx.get(f"{tagging.api_url}/v1/funnels", params=params, headers=ops).json()
        mine = [g for g in report["groups"] if g["value"] == dealer]
        assert mine, report
        expected = {"entered": 4, "friend_added": 3, "lead": 3, "store_visit": 0, "test_drive": 1, "order": 2}
        assert mine[0]["customers"] == expected | {"defeated": 1, "recalled": 1}, mine
        return mine[0]

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
