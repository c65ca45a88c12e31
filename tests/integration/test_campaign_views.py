"""The campaign API's views for ops against a real Redis, on a DB of its own: consents read back
as the worker writes them, each campaign's actions per China day surviving a replayed batch, and
lift over the holdout from the figures the worker writes."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from services.campaign.api import create_app
from services.campaign.consent import Consent
from services.campaign.daily import day_key, expires_at
from services.campaign.journey import Conversion
from services.campaign.read_model import ActionRecord, write_batch
from services.campaign.settings import CampaignSettings
from services.campaign.targeting import CHINA

TOKEN = "campaign-views-token"
OPS = {"Authorization": f"Bearer {TOKEN}"}
VIEWS_DB = 6  # apart from DB 0 (ingest, the workers) and 5 (the scoring API's tests)
# 10:00 today in China (02:00 UTC the same date): a fixed date would, 35 days on, write day keys
# whose expiry has passed.
NOW = datetime.combine(datetime.now(CHINA).date(), time(2, 0), UTC)
TODAY, TOMORROW = NOW.date().isoformat(), (NOW.date() + timedelta(days=1)).isoformat()


def zulu(moment: datetime) -> str:
    """A UTC time as the API writes it."""
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class Api:
    http: httpx.AsyncClient
    redis: Redis


@pytest.fixture
async def api(backends) -> AsyncIterator[Api]:
    url, replaced = re.subn(r"/0$", f"/{VIEWS_DB}", backends.redis_url)
    assert replaced == 1, backends.redis_url
    app = create_app(CampaignSettings(redis_url=url, ops_tokens=(TOKEN,)), CollectorRegistry(), lambda: NOW)
    redis = Redis.from_url(url)
    await redis.flushdb()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://campaign", headers=OPS
        ) as http,
    ):
        yield Api(http, redis)
    await redis.aclose()


def action(
    campaign_id: str, outcome: str, reason: str | None = None, at: datetime = NOW, variant: str | None = None
) -> ActionRecord:
    return ActionRecord(
        action_id=str(uuid.uuid4()),
        campaign_id=campaign_id,
        customer_id=f"cus_{uuid.uuid4().hex[:8]}",
        kind="send_content",
        channel="wecom_1v1",
        content_id=None if reason == "holdout" else "c-1",
        variant="holdout" if reason == "holdout" else variant,
        outcome=outcome,
        reason=reason,
        at=at,
    )


async def test_a_replayed_batch_leaves_the_days_figures_as_they_were(api: Api) -> None:
    late = NOW + timedelta(hours=13, minutes=59)  # 23:59 in China, still Dec 1
    batch = [
        action("nurture", "sent"),
        action("nurture", "sent", at=late),
        action("nurture", "deferred", "quiet_hours", at=late),
        action("nurture", "suppressed", "holdout"),
        action("nurture", "suppressed", "no_consent"),
        action("recall", "suppressed", "frequency_cap"),
        action("nurture", "sent", at=NOW + timedelta(hours=14)),  # midnight: Dec 2 in China
    ]
    await write_batch(api.redis, batch, [], {}, {})
    first = (await api.http.get("/v1/actions/daily")).json()  # today, in China, by the API's clock
    assert first == {
        "date": TODAY,
        "campaigns": {
            "nurture": {
                "sent": 2,
                "deferred": 1,
                "suppressed": 2,
                "suppressed_by_reason": {"holdout": 1, "no_consent": 1},
            },
            "recall": {
                "sent": 0,
                "deferred": 0,
                "suppressed": 1,
                "suppressed_by_reason": {"frequency_cap": 1},
            },
        },
    }
    stats = (await api.http.get("/v1/campaigns/nurture/stats")).json()

    # The worker died before acking: the batch is decided again, later the same day, with the
    # same action ids (derived from campaign, customer and trigger), and written again.
    replayed = [r.model_copy(update={"at": min(r.at + timedelta(hours=1), late)}) for r in batch[:-1]]
    await write_batch(api.redis, [*replayed, batch[-1]], [], {}, {})
    assert (await api.http.get("/v1/actions/daily", params={"date": TODAY})).json() == first
    assert (await api.http.get("/v1/campaigns/nurture/stats")).json() == stats
    next_day = (await api.http.get("/v1/actions/daily", params={"date": TOMORROW})).json()
    assert next_day["campaigns"] == {
        "nurture": {"sent": 1, "deferred": 0, "suppressed": 0, "suppressed_by_reason": {}}
    }
    # Every key of a day goes together, 35 days after the day.
    for key in (day_key(NOW.date()), day_key(NOW.date(), "nurture:sent")):
        assert await api.redis.expiretime(key) == expires_at(NOW.date())


async def test_a_day_without_actions_and_a_bad_date(api: Api) -> None:
    quiet = await api.http.get("/v1/actions/daily", params={"date": "2026-01-01"})
    assert quiet.json() == {"date": "2026-01-01", "campaigns": {}}
    assert (await api.http.get("/v1/actions/daily", params={"date": "01/12/2026"})).status_code == 422
    assert (
        await api.http.get("/v1/actions/daily", headers={"Authorization": "Bearer nope"})
    ).status_code == 401


async def test_consents_read_back_as_the_worker_writes_them_when_they_change(api: Api) -> None:
    granted_at = NOW - timedelta(days=1)
    friend = {"wecom_1v1": Consent(True, granted_at), "wecom_group": Consent(True, granted_at)}
    await write_batch(api.redis, [], [], {}, {"cus_1": friend})
    body = (await api.http.get("/v1/customers/cus_1/consent")).json()
    assert body["customer_id"] == "cus_1"
    assert body["channels"]["wecom_1v1"] == {"granted": True, "at": zulu(granted_at)}
    assert body["channels"]["sms"] == {"granted": False, "at": None}

    revoked = friend | {"wecom_group": Consent(False, NOW)}
    await write_batch(api.redis, [], [], {}, {"cus_1": revoked})
    channels = (await api.http.get("/v1/customers/cus_1/consent")).json()["channels"]
    assert channels["wecom_group"] == {"granted": False, "at": zulu(NOW)}
    assert channels["wecom_1v1"]["granted"] is True

    never_seen = (await api.http.get("/v1/customers/cus_never_seen/consent")).json()
    assert never_seen["customer_id"] == "cus_never_seen"
    assert {c["granted"] for c in never_seen["channels"].values()} == {False}
    assert (
        await api.http.get("/v1/customers/cus_1/consent", headers={"Authorization": ""})
    ).status_code == 401


async def test_stats_show_each_variants_lift_over_the_holdout(api: Api) -> None:
    sent = [action("ab", "sent", variant="a") for _ in range(4)]
    held = [action("ab", "suppressed", "holdout") for _ in range(4)]
    converted = [Conversion("ab", r.customer_id, "a", "store.visit", NOW) for r in sent[:3]]
    converted.append(Conversion("ab", held[0].customer_id, "holdout", "order.placed", NOW))
    await write_batch(api.redis, [*sent, *held], converted, {}, {})
    groups = (await api.http.get("/v1/campaigns/ab/stats")).json()["groups"]
    assert groups["a"]["lift"] == pytest.approx(0.5)  # 3/4 - 1/4
    low, high = groups["a"]["lift_ci95"]
    assert -0.2 < low < 0 < 0.5 < high < 1  # four customers a group: wide, not even sure of a lift
    assert groups["holdout"]["lift"] is None and groups["holdout"]["lift_ci95"] is None
