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

from fastapi import FastAPI, HTTPException, Path, Query, status
from prometheus_client import CollectorRegistry

from shared.clock import clock_of, utc_now
from shared.http import serve
from shared.logging import configure_logging
from shared.metrics import process_registry
from shared.ops_api import ops_api
from shared.redis import create_redis
from shared.settings import load_settings

from . import read_model
from .audit_routes import audit_router
from .broadcast_routes import broadcast_router
from .campaign_routes import campaign_router
from .consent_view import CustomerConsent, read_consent
from .daily import DailyActions, china_date, read_daily_actions
from .dead_letter_routes import dead_letter_router
from .dealer_routes import dealer_router
from .definitions import Campaign
from .journey import PROGRAMME, PROGRAMME_CONTROL
from .read_model import ActionRecord
from .settings import CampaignSettings
from .stats import CampaignStats, ProgrammeStats, groups_of, stats_of
from .store import CAMPAIGNS

log = logging.getLogger(__name__)

CampaignId = Annotated[str, Path(min_length=1, max_length=64)]
CustomerId = Annotated[str, Path(min_length=1, max_length=256)]


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

    v1.include_router(campaign_router(redis))
    v1.include_router(audit_router(redis))
    v1.include_router(dealer_router(redis, clock))
    v1.include_router(broadcast_router(redis, clock))

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
        defined = await CAMPAIGNS.get(redis, campaign_id)
        if not figures and defined is None:
            # 404 for an unknown campaign; zeros for a quiet one
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no campaign {campaign_id!r}")
        steps = (
            [s.name for s in Campaign.model_validate_json(defined[1]).steps] if defined is not None else []
        )
        return stats_of(campaign_id, figures, steps)

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

    v1.include_router(dead_letter_router(settings.kafka_bootstrap_servers, redis, settings.kafka_security))
    app.include_router(v1)
    return app


def main() -> None:
    settings = load_settings(CampaignSettings, "campaign-api")
    configure_logging("campaign-api", settings.log_level)
    serve(create_app(settings, clock=clock_of(settings)), settings.http_host, settings.campaign_port)


if __name__ == "__main__":
    main()
