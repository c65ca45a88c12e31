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

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Response, status
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field

from shared.clock import clock_of, utc_now
from shared.http import require_role, serve
from shared.logging import configure_logging
from shared.metrics import process_registry
from shared.ops_api import ops_api
from shared.ops_roles import Role
from shared.redis import create_redis
from shared.versioned_hash import VersionConflict

from . import read_model
from .consent_view import CustomerConsent, read_consent
from .daily import DailyActions, china_date, read_daily_actions
from .dead_letter_routes import dead_letter_router
from .decide import HOLDOUT
from .definitions import Campaign
from .examples import example_campaigns
from .journey import PROGRAMME, PROGRAMME_CONTROL
from .lift import lift_of
from .read_model import ActionRecord
from .settings import CampaignSettings
from .store import CAMPAIGNS, load_campaigns

log = logging.getLogger(__name__)
# Changes need an operator (shared/ops_roles.py); reading needs any ops token.
OPERATOR = [Depends(require_role(Role.operator))]

CampaignId = Annotated[str, Path(min_length=1, max_length=64)]
CustomerId = Annotated[str, Path(min_length=1, max_length=256)]


class CampaignList(BaseModel):
    version: int = Field(description="goes up with every change; workers apply it within seconds")
    campaigns: list[Campaign]


class GroupStats(BaseModel):
    entered: int = Field(description="customers in the group (sent or deferred, or held out)")
    converted: int = Field(description="of them, customers with an attributed store visit or order")
    conversion_rate: float | None
    lift: float | None = Field(
        description="conversion rate minus the holdout group's, as a fraction; null for the holdout "
        "group itself, without a holdout group, or when either group has no customers"
    )
    lift_ci95: tuple[float, float] | None = Field(
        description="95% confidence interval [low, high] of `lift`: Newcombe's hybrid score interval "
        "(Wilson score interval per group; Newcombe 1998, method 10); null when `lift` is"
    )


class CampaignStats(BaseModel):
    campaign_id: str
    triggered: int = Field(
        description="decisions: every time the campaign fired for a customer in its audience"
    )
    sent: dict[str, int] = Field(description="actions sent per variant (`default` without variants)")
    deferred: int = Field(description="held for quiet hours (sent later, counted in `sent` then)")
    suppressed: dict[str, int] = Field(description="per reason")
    groups: dict[str, GroupStats] = Field(description="per variant and the holdout: compare rates for lift")


def by_prefix(figures: dict[str, int], prefix: str) -> dict[str, int]:
    return {name.removeprefix(prefix): n for name, n in figures.items() if name.startswith(prefix)}


def groups_of(figures: dict[str, int], baseline: str) -> dict[str, GroupStats]:
    """Each group's conversion, and its lift over the `baseline` group with the interval."""
    entered, converted = by_prefix(figures, "entered:"), by_prefix(figures, "converted:")

    def converted_in(group: str) -> int:
        # A survivor's conversion is counted under the survivor's id, which the group's entered
        # set may hold under the merged customer's: never more converted than entered.
        return min(converted.get(group, 0), entered.get(group, 0))

    def group_stats(group: str, n: int) -> GroupStats:
        found = None
        if group != baseline:
            found = lift_of(converted_in(group), n, converted_in(baseline), entered.get(baseline, 0))
        return GroupStats(
            entered=n,
            converted=converted.get(group, 0),
            conversion_rate=converted.get(group, 0) / n if n else None,
            lift=found.lift if found else None,
            lift_ci95=(found.low, found.high) if found else None,
        )

    return {group: group_stats(group, n) for group, n in sorted(entered.items())}


def stats_of(campaign_id: str, figures: dict[str, int]) -> CampaignStats:
    return CampaignStats(
        campaign_id=campaign_id,
        triggered=figures.get("triggered", 0),
        sent=by_prefix(figures, "sent:"),
        deferred=figures.get("deferred", 0),
        suppressed=by_prefix(figures, "suppressed:"),
        groups=groups_of(figures, HOLDOUT),
    )


class ProgrammeStats(BaseModel):
    global_control_pct: float = Field(description="the share of all customers no campaign markets to")
    groups: dict[str, GroupStats] = Field(
        description="`treated`: customers a campaign messaged; `control`: customers of the global "
        "control group a campaign would have messaged; `lift` of treated over control"
    )


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
        dependencies=OPERATOR,
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
        dependencies=OPERATOR,
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
        dependencies=OPERATOR,
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
        dependencies=OPERATOR,
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
