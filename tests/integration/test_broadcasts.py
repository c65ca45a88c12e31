"""A broadcast end to end, against the session's broker, Redis, ingest and workers (issue 17,
item 1): scheduled for a segment (customers most interested in one car model), it reaches
exactly the consenting, non-holdout members once; the others are recorded as suppressed with
why, and customers outside the segment get nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
import redis

from services.campaign.definitions import Campaign
from services.campaign.read_model import BROADCASTS_SENT
from services.campaign.targeting import in_holdout
from tests.campaign_worker import campaigns_in_force
from tests.conftest import OPS_TOKEN, Backends, RunningService
from tests.factories import event, unique
from tests.harness import eventually

pytestmark = pytest.mark.integration

OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}


def test_a_broadcast_reaches_the_consenting_non_holdout_members_of_its_segment_once(
    client: httpx.Client, backends: Backends, campaign: RunningService
) -> None:
    model = f"bc-{uuid.uuid4().hex[:8]}"
    customers: dict[str, bool] = {}  # customer -> a WeCom friend (consent on wecom_1v1)
    for n in range(20):  # enough that every case comes up (a 30% holdout of 20 misses none but 1 in 1,000)
        who = {"wecom_external_userid": unique("wm")}
        friend = n % 2 == 0
        kinds = [*(["wecom.friend_added"] if friend else []), "config.build"]
        answer = None
        for kind in kinds:
            answer = client.post(
                "/v1/events", json=event(type=kind, identities=who, properties={"vehicle_model": model})
            )
            assert answer.status_code == 202, answer.text
        assert answer is not None
        customer = answer.json()["results"][0]["customer_id"]
        customers[customer] = friend
        # Last, as a sentinel: once campaign shows it, it has taken the events before it.
        sentinel = event(type="consent.granted", identities=who, properties={"channel": "sms"})
        assert client.post("/v1/events", json=sentinel).status_code == 202
    outsider = {"wecom_external_userid": unique("wm")}
    for kind in ("wecom.friend_added", "config.build"):
        sent = event(type=kind, identities=outsider, properties={"vehicle_model": "another-model"})
        assert client.post("/v1/events", json=sent).status_code == 202

    with httpx.Client(base_url=campaign.api_url, headers=OPS, timeout=10) as ops:

        def views_taken() -> None:
            for customer in customers:
                consent = ops.get(f"/v1/customers/{customer}/consent").json()["channels"]
                assert consent["sms"]["granted"], customer

        eventually(views_taken, timeout=60, interval=0.3)
        broadcast = {
            "id": f"bc-{uuid.uuid4().hex[:8]}",
            "name": "G6 winter test drive invitation",
            "trigger": {"on": "scheduled", "value": datetime.now(UTC).isoformat()},
            "audience": {"models": [model]},
            "action": {"kind": "send_content", "channel": "wecom_1v1", "content": {"default": "c-winter"}},
            "holdout_pct": 30,
            "respect_quiet_hours": False,
        }
        assert (
            ops.post(
                "/v1/broadcasts", json=broadcast | {"trigger": {"on": "event", "value": "ad.click"}}
            ).status_code
            == 422
        )
        created = ops.post("/v1/broadcasts", json=broadcast)
        assert created.status_code == 201, created.text
        eventually(
            lambda: campaigns_in_force(campaign.metrics_url, ops.get("/v1/campaigns").json()["version"]),
            timeout=20,
        )
        try:
            definition = Campaign.model_validate(broadcast)
            expected = {
                c: "holdout" if in_holdout(definition, c) else ("sent" if friend else "no_consent")
                for c, friend in customers.items()
            }
            assert {"holdout", "sent", "no_consent"} <= set(expected.values()), (
                "the ids do not cover every case"
            )

            def decided() -> dict[str, list[str]]:
                seen: dict[str, list[str]] = {}
                for customer in customers:
                    history = ops.get(f"/v1/customers/{customer}/actions").json()
                    mine = [h for h in history if h["campaign_id"] == broadcast["id"]]
                    seen[customer] = [h["reason"] or h["outcome"] for h in mine]
                    assert seen[customer], customer
                return seen

            seen = eventually(decided, timeout=60, interval=0.3)
            # Once: one decision each, and the occurrence marked sent, so the timer sends it no more.
            assert seen == {c: [why] for c, why in expected.items()}
            with redis.Redis.from_url(backends.redis_url) as store:
                assert any(
                    f.decode().startswith(f"broadcast:{broadcast['id']}:")
                    for f in store.hkeys(BROADCASTS_SENT)
                )
            listed = ops.get("/v1/broadcasts").json()["broadcasts"]
            mine = next(b for b in listed if b["broadcast"]["id"] == broadcast["id"])
            assert mine["last_occurrence"] is not None
        finally:
            ops.delete(f"/v1/campaigns/{broadcast['id']}")
