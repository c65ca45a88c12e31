"""Roles on the ops APIs: a viewer reads and may change nothing, an operator changes campaigns
and tag rules but not the scoring plan (conftest names the session's viewer and operator)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import OPERATOR_TOKEN, VIEWER_TOKEN, RunningService

pytestmark = pytest.mark.integration


def as_holder(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def campaign_definition(campaign_id: str) -> dict[str, object]:
    return {
        "id": campaign_id,
        "name": "roles",
        "status": "paused",  # acts on nobody
        "trigger": {"on": "event", "value": "custom.roles_never_sent"},
        "action": {"kind": "send_content", "channel": "wecom_1v1", "content": {"default": "c-brand"}},
    }


def test_a_viewer_reads_but_gets_403_on_every_change(
    scoring: RunningService, tagging: RunningService, campaign: RunningService
) -> None:
    with (
        as_holder(scoring.api_url, VIEWER_TOKEN) as scores,
        as_holder(tagging.api_url, VIEWER_TOKEN) as tags,
        as_holder(campaign.api_url, VIEWER_TOKEN) as campaigns,
    ):
        plan = scores.get("/v1/scoring-plan")
        assert plan.status_code == 200
        assert scores.post("/v1/scoring-plan/check", json=plan.json()["plan"]).status_code == 200
        assert tags.get("/v1/tag-rules").status_code == 200
        assert campaigns.get("/v1/campaigns").status_code == 200
        refused = [
            scores.put("/v1/scoring-plan", json=plan.json()["plan"]),
            tags.post("/v1/tag-rules", json={"tag": "roles_rule", "layers": ["intent"]}),
            tags.delete("/v1/tag-rules/roles_rule"),
            campaigns.post("/v1/campaigns", json=campaign_definition(f"roles-{uuid.uuid4().hex[:6]}")),
            campaigns.post("/v1/campaigns/examples"),
            campaigns.post("/v1/dead-letters/replay", json={"ids": ["touchpoint.events.v1.dlq:0:0"]}),
            campaigns.put("/v1/dealers/stores/roles", json={"id": "roles", "city": "wuhan", "brand": "demo"}),
            campaigns.delete("/v1/dealers/consultants/roles-a"),
        ]
        for answer in refused:
            assert answer.status_code == 403, (answer.request.url, answer.text)
            assert "viewer" in answer.json()["detail"]
        assert scores.get("/v1/scoring-plan").json()["version"] == plan.json()["version"]


def test_an_operator_changes_campaigns_but_not_the_plan(
    scoring: RunningService, campaign: RunningService
) -> None:
    campaign_id = f"roles-{uuid.uuid4().hex[:6]}"
    with (
        as_holder(scoring.api_url, OPERATOR_TOKEN) as scores,
        as_holder(campaign.api_url, OPERATOR_TOKEN) as ops,
    ):
        assert ops.post("/v1/campaigns", json=campaign_definition(campaign_id)).status_code == 201
        assert ops.delete(f"/v1/campaigns/{campaign_id}").status_code == 204
        plan = scores.get("/v1/scoring-plan").json()
        answer = scores.put("/v1/scoring-plan", json=plan["plan"])
        assert answer.status_code == 403 and "admin" in answer.json()["detail"]
