"""`GET /v1/funnels` on the tagging API: the paper's funnel figures by cohort, by acquisition
source, by campaign or by dealer (shared/funnels.py, funnel_stats.py), and the same rates as
Prometheus gauges over the last 30 days."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from prometheus_client import CollectorRegistry, Gauge
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from shared.funnels import RATES, By

from .funnel_figures import CHINA
from .funnel_stats import MAX_DAYS, FunnelGroup, funnel_groups, funnel_total

METRIC_DAYS = 30


class FunnelReport(BaseModel):
    by: By
    from_day: date = Field(alias="from", description="first cohort day (China), inclusive")
    to_day: date = Field(alias="to", description="last cohort day (China), inclusive")
    total: FunnelGroup = Field(description="every customer of the cohorts")
    groups: list[FunnelGroup]


def funnel_router(redis: Redis, clock: Callable[[], datetime]) -> APIRouter:
    router = APIRouter(tags=["segments"])

    @router.get(
        "/funnels",
        response_model=FunnelReport,
        response_model_by_alias=True,
        summary="Funnel figures by cohort: lead capture, store visits, friend → deal, lead → deal, recall",
        responses={422: {"description": "a period of more than 366 days, or `to` before `from`"}},
    )
    async def get_funnels(
        by: Annotated[
            By, Query(description="group customers by acquisition source, by campaign or by dealer")
        ] = "source",
        from_day: Annotated[
            date | None, Query(alias="from", description="default: 30 days before `to`")
        ] = None,
        to_day: Annotated[date | None, Query(alias="to", description="default: today (China)")] = None,
    ) -> FunnelReport:
        """Customers are counted in the cohort of the China day they first showed up, under the
        source of that first event, or the dealer their events named last; by campaign, in the
        cohort of the day a campaign first acted for them (its holdout aside), under that
        campaign, `entered` being those it acted for (`total` is every customer, by the day they
        first showed up, whichever `by`). `customers`: of them,
        who reached each milestone by now; `both`: who reached both milestones of a pair;
        `rates` in percent (lead_capture 留资率 = entered>lead / entered, store_visit 到店率 =
        lead>store_visit / lead, friend_to_deal, lead_to_deal, recall, recall_to_order)."""
        end = to_day or clock().astimezone(CHINA).date()
        start = from_day or end - timedelta(days=METRIC_DAYS - 1)
        if end < start or (end - start).days >= MAX_DAYS:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"a period of 1 to {MAX_DAYS} days, `from` not after `to`",
            )
        total, groups = await funnel_groups(redis, by, start, end)
        return FunnelReport.model_validate(
            {"by": by, "from": start, "to": end, "total": total, "groups": groups}
        )

    return router


def funnel_gauges(
    redis: Redis, registry: CollectorRegistry, clock: Callable[[], datetime]
) -> Callable[[], Awaitable[None]]:
    """`pd_funnel_rate_percent{rate}`: the paper's rates over the last 30 days' cohorts, refreshed
    at each scrape (one pipelined read, no scan)."""
    rate = Gauge(
        "pd_funnel_rate_percent",
        "Funnel rates of the last 30 days' cohorts, in percent (lead_capture, store_visit, "
        "friend_to_deal, lead_to_deal, recall, recall_to_order)",
        ["rate"],
        registry=registry,
    )

    async def refresh() -> None:
        end = clock().astimezone(CHINA).date()
        # All customers alone: each group's counts would cost the scrape as much again.
        total = await funnel_total(redis, end - timedelta(days=METRIC_DAYS - 1), end)
        for name, _, _ in RATES:
            value = total.rates.get(name)
            rate.labels(name).set(value if value is not None else float("nan"))

    return refresh
