"""Named changes: every change to a campaign, tag rule, the scoring plan or the dealer roster is
in the audit trail with who made it; a change carrying a stale If-Match gets 409 and changes
nothing (conftest names the session's viewer, li.wei, and operator, wang.fang)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import OPERATOR_TOKEN, OPS_TOKEN, VIEWER_TOKEN, RunningService

pytestmark = pytest.mark.integration


def as_holder(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def paused_campaign(campaign_id: str, name: str) -> dict[str, object]:
    return {
        "id": campaign_id,
        "name": name,
        "status": "paused",  # acts on nobody
        "trigger": {"on": "event", "value": "custom.audit_never_sent"},
        "action": {"kind": "send_content", "channel": "wecom_1v1", "content": {"default": "c-brand"}},
    }


def test_a_stale_if_match_gets_409_and_the_audit_lists_who_changed_what(campaign: RunningService) -> None:
    campaign_id = f"audit-{uuid.uuid4().hex[:8]}"
    with (
        as_holder(campaign.api_url, OPERATOR_TOKEN) as ops,
        as_holder(campaign.api_url, VIEWER_TOKEN) as viewer,
    ):
        created = ops.post("/v1/campaigns", json=paused_campaign(campaign_id, "first"))
        assert created.status_code == 201 and created.headers["ETag"] == '"1"'
        read = ops.get(f"/v1/campaigns/{campaign_id}")
        assert read.headers["ETag"] == '"1"'
        edited = ops.put(
            f"/v1/campaigns/{campaign_id}",
            json=paused_campaign(campaign_id, "second"),
            headers={"If-Match": '"1"'},
        )
        assert edited.status_code == 200 and edited.headers["ETag"] == '"2"'
        # Someone who read version 1 too, and saves after: refused, and nothing changes.
        late = ops.put(
            f"/v1/campaigns/{campaign_id}",
            json=paused_campaign(campaign_id, "lost"),
            headers={"If-Match": '"1"'},
        )
        assert late.status_code == 409 and "version 2" in late.json()["detail"]
        assert ops.get(f"/v1/campaigns/{campaign_id}").json()["name"] == "second"
        assert ops.delete(f"/v1/campaigns/{campaign_id}", headers={"If-Match": '"1"'}).status_code == 409
        assert ops.put(f"/v1/campaigns/{campaign_id}", headers={"If-Match": "one"}, json={}).status_code in (
            400,
            422,
        )
        assert ops.delete(f"/v1/campaigns/{campaign_id}", headers={"If-Match": '"2"'}).status_code == 204

        trail = viewer.get("/v1/audit", params={"item": campaign_id}).json()["entries"]
        assert [(e["change"], e["version"], e["holder"], e["role"]) for e in trail] == [
            ("delete", 3, "wang.fang", "operator"),
            ("update", 2, "wang.fang", "operator"),
            ("create", 1, "wang.fang", "operator"),
        ]
        assert trail[1]["document"]["name"] == "second" and trail[0]["document"] is None
        assert {e["kind"] for e in trail} == {"campaign"}
        mine = viewer.get("/v1/audit", params={"holder": "wang.fang", "kind": "campaign", "limit": 2}).json()
        assert len(mine["entries"]) == 2 and mine["next_before"] == mine["entries"][-1]["entry_id"]
        older = viewer.get("/v1/audit", params={"holder": "wang.fang", "before": mine["next_before"]}).json()
        assert older["entries"][0]["entry_id"] < mine["next_before"]  # stream ids of one format order as text


def test_plan_rule_and_roster_changes_are_audited_and_guarded_too(
    scoring: RunningService, tagging: RunningService, campaign: RunningService
) -> None:
    tag = f"audit_{uuid.uuid4().hex[:8]}"
    store_id = f"audit-store-{uuid.uuid4().hex[:6]}"
    with (
        as_holder(scoring.api_url, OPS_TOKEN) as scores,
        as_holder(tagging.api_url, OPERATOR_TOKEN) as tags,
        as_holder(campaign.api_url, OPS_TOKEN) as admin,
        as_holder(campaign.api_url, OPERATOR_TOKEN) as ops,
    ):
        plan = scores.get("/v1/scoring-plan")
        version = plan.json()["version"]
        assert plan.headers["ETag"] == f'"{version}"'
        same = plan.json()["plan"]  # the plan put back as it is: the session's scores stay as they are
        stale = scores.put("/v1/scoring-plan", json=same, headers={"If-Match": f'"{version + 5}"'})
        assert stale.status_code == 409
        saved = scores.put("/v1/scoring-plan", json=same, headers={"If-Match": f'"{version}"'})
        assert saved.status_code == 200 and saved.json()["version"] == version + 1

        rule = {"tag": tag, "layers": ["intent"]}
        assert tags.put(f"/v1/tag-rules/{tag}", json=rule).status_code == 200
        etag = tags.get(f"/v1/tag-rules/{tag}").headers["ETag"]
        assert (
            tags.put(
                f"/v1/tag-rules/{tag}", json=rule | {"layers": ["owner"]}, headers={"If-Match": etag}
            ).status_code
            == 200
        )
        assert tags.delete(f"/v1/tag-rules/{tag}", headers={"If-Match": etag}).status_code == 409
        assert tags.delete(f"/v1/tag-rules/{tag}").status_code == 204

        store = {"id": store_id, "city": "wuhan", "brand": "demo"}
        assert ops.put(f"/v1/dealers/stores/{store_id}", json=store).status_code == 403  # the roster: admins
        assert admin.put(f"/v1/dealers/stores/{store_id}", json=store).status_code == 200
        assert admin.delete(f"/v1/dealers/stores/{store_id}").status_code == 204

        trail = admin.get("/v1/audit", params={"limit": 50}).json()["entries"]
        seen = [(e["kind"], e["item"], e["change"], e["holder"]) for e in trail]
        assert ("scoring_plan", "plan", "update", "ops-token-1") in seen
        assert [s for s in seen if s[1] == tag] == [
            ("tag_rule", tag, "delete", "wang.fang"),
            ("tag_rule", tag, "update", "wang.fang"),
            ("tag_rule", tag, "create", "wang.fang"),
        ]
        assert [s for s in seen if s[1] == store_id] == [
            ("store", store_id, "delete", "ops-token-1"),
            ("store", store_id, "create", "ops-token-1"),
        ]
