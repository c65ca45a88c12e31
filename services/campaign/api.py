"""Campaign HTTP API (port 8004): campaign CRUD, a customer's actions and consents, campaign
stats with lift, each campaign's actions per day.

Stateless: definitions and figures live in Redis, written by this API and the worker.
`python -m services.campaign.api`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import FastAPI, HTTPException, Path, Query, Response, status
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field

from shared.clock import clock_of, utc_now
from shared.http import OPERATOR_ONLY, serve
from shared.logging import configure_logging
from shared.metrics import process_registry
from shared.ops_api import ops_api
from shared.redis import create_redis
from shared.versioned_hash import VersionConflict

from . import read_model
from .consent_view import CustomerConsent, read_consent
from .daily import DailyActions, china_date, read_daily_actions
from .dead_letter_routes import dead_letter_router
from .definitions import Campaign
from .examples import example_campaigns
from .journey import PROGRAMME, PROGRAMME_CONTROL
from .read_model import ActionRecord
from .settings import CampaignSettings
from .stats import CampaignStats, ProgrammeStats, groups_of, stats_of
from .store import CAMPAIGNS, load_campaigns

log = logging.getLogger(__name__)

CampaignId = Annotated[str, Path(min_length=1, max_length=64)]
CustomerId = Annotated[str, Path(min_length=1, max_length=256)]


class CampaignList(BaseModel):
    version: int = Field(description="goes up with every change; workers apply it within seconds")
    campaigns: list[Campaign]


def create_app(
    settings: CampaignSettings,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
) -> FastAPI:
    registry = registry if registry is not None else process_registry()
    redis = create_redis(settings.redis_url)
    app, v1 = ops_api(
        service="campaign",
        title="Campaign",
        description="Campaigns that react to score and tag changes with the content meant for each "
        "customer's layer and orientation; every action and suppression per customer; stats with "
        "conversions per variant and for the holdout.",
        settings=settings,
        registry=registry,
        redis=redis,
    )

    async def find(campaign_id: str) -> Campaign:
        _, campaigns = await load_campaigns(redis)
        for campaign in campaigns:
            if campaign.id == campaign_id:
                return campaign
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no campaign {campaign_id!r}")

    @v1.get("/campaigns", response_model=CampaignList, tags=["campaigns"], summary="Every campaign")
    async def list_campaigns() -> CampaignList:
        version, campaigns = await load_campaigns(redis)
        return CampaignList(version=version, campaigns=campaigns)

    @v1.post(
        "/campaigns",
        dependencies=OPERATOR_ONLY,
        response_model=Campaign,
        status_code=status.HTTP_201_CREATED,
        tags=["campaigns"],
        summary="Create a campaign",
        responses={409: {"description": "the id exists"}, 422: {"description": "invalid, with reasons"}},
    )
    async def create_campaign(campaign: Campaign) -> Campaign:
        """Running workers take it up within seconds."""
        try:
            await CAMPAIGNS.change(redis, "create", campaign.id, campaign.model_dump_json())
        except VersionConflict:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"campaign {campaign.id!r} exists: PUT to change it"
            ) from None
        log.info("campaign created", extra={"campaign": campaign.id})
        return campaign

    @v1.post(
        "/campaigns/examples",
        dependencies=OPERATOR_ONLY,
        response_model=CampaignList,
        tags=["campaigns"],
        summary="Add the example campaigns (the paper's flows) that are not there yet",
    )
    async def add_examples() -> CampaignList:
        for campaign in example_campaigns():
            try:
                await CAMPAIGNS.change(redis, "create", campaign.id, campaign.model_dump_json())
            except VersionConflict:
                continue
        return await list_campaigns()

    @v1.get(
        "/campaigns/{campaign_id}",
        response_model=Campaign,
        tags=["campaigns"],
        summary="One campaign",
        responses={404: {"description": "no such campaign"}},
    )
    async def get_campaign(campaign_id: CampaignId) -> Campaign:
        return await find(campaign_id)

    @v1.put(
        "/campaigns/{campaign_id}",
        dependencies=OPERATOR_ONLY,
        response_model=Campaign,
        tags=["campaigns"],
        summary="Change a campaign (pause and resume with `status`)",
        responses={404: {"description": "no such campaign"}, 422: {"description": "invalid, or another id"}},
    )
    async def put_campaign(campaign_id: CampaignId, campaign: Campaign) -> Campaign:
        if campaign.id != campaign_id:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [{"loc": ["body", "id"], "msg": f"must be {campaign_id!r}, the id in the path"}],
            )
        try:
            await CAMPAIGNS.change(redis, "replace", campaign_id, campaign.model_dump_json())
        except VersionConflict:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no campaign {campaign_id!r}") from None
        log.info("campaign changed", extra={"campaign": campaign_id, "status": campaign.status})
        return campaign

    @v1.delete(
        "/campaigns/{campaign_id}",
        dependencies=OPERATOR_ONLY,
        status_code=status.HTTP_204_NO_CONTENT,
        tags=["campaigns"],
        summary="Delete a campaign (its figures stay readable)",
        responses={404: {"description": "no such campaign"}},
    )
    async def delete_campaign(campaign_id: CampaignId) -> Response:
        try:
            await CAMPAIGNS.change(redis, "delete", campaign_id)
        except VersionConflict:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no campaign {campaign_id!r}") from None
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @v1.get(
        "/programme/stats",
        response_model=ProgrammeStats,
        tags=["campaigns"],
        summary="The programme as a whole against the global control group",
    )
    async def get_programme_stats() -> ProgrammeStats:
        """Conversions (store visits, orders) within the attribution window of the customer's
        latest marketing decision, whichever campaign made it."""
        figures = await read_model.campaign_figures(redis, PROGRAMME)
        return ProgrammeStats(
            global_control_pct=settings.global_control_pct,
            groups=groups_of(figures, PROGRAMME_CONTROL),
        )

    @v1.get(
        "/campaigns/{campaign_id}/stats",
        response_model=CampaignStats,
        tags=["campaigns"],
        summary="Triggered, sent, suppressed by reason, conversions per variant and holdout",
    )
    async def get_stats(campaign_id: CampaignId) -> CampaignStats:
        figures = await read_model.campaign_figures(redis, campaign_id)
        if not figures:
            await find(campaign_id)  # 404 for an unknown campaign; zeros for a quiet one
        return stats_of(campaign_id, figures)

    @v1.get(
        "/customers/{customer_id}/actions",
        response_model=list[ActionRecord],
        tags=["customers"],
        summary="Every action and suppression for a customer, oldest first",
    )
    async def get_actions(customer_id: CustomerId) -> list[ActionRecord]:
        return await read_model.customer_actions(redis, customer_id)

    @v1.get(
        "/customers/{customer_id}/consent",
        response_model=CustomerConsent,
        tags=["customers"],
        summary="The customer's consent per messaging channel, as the campaign worker applies it",
    )
    async def get_consent(customer_id: CustomerId) -> CustomerConsent:
        """Every messaging channel; one the customer never named (or a customer the worker never
        saw) is not granted."""
        return await read_consent(redis, customer_id)

    @v1.get(
        "/actions/daily",
        response_model=DailyActions,
        tags=["campaigns"],
        summary="Each campaign's actions on one China day: sent, deferred, suppressed by reason",
    )
    async def get_daily_actions(
        day: Annotated[
            dt.date | None, Query(alias="date", description="YYYY-MM-DD, China time; default today")
        ] = None,
    ) -> DailyActions:
        return await read_daily_actions(redis, day or china_date(clock()))

    v1.include_router(dead_letter_router(settings.kafka_bootstrap_servers, redis))
    app.include_router(v1)
    return app


def main() -> None:
    settings = CampaignSettings()
    configure_logging("campaign-api", settings.log_level)
    serve(create_app(settings, clock=clock_of(settings)), settings.http_host, settings.campaign_port)


if __name__ == "__main__":
    main()
