"""The lead concentration matrix and the leads in its cells on the scoring API (`/v1/matrix`,
`/v1/leads`), and the matrix as Prometheus gauges, refreshed on every scrape."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from . import read_model
from .intent import Activity, Band
from .lead_matrix import lead_matrix
from .plan import ScoringPlan
from .plan_store import load_plan
from .ranking import band_key_range
from .views import ScoreView, activity_at, score_view

# Rank entries fetched per round trip while filtering leads by activity.
LEADS_PAGE = 500


class MatrixView(BaseModel):
    as_of: datetime
    plan_version: int
    bands: list[Band] = list(Band)
    activities: list[Activity] = list(Activity)
    cells: dict[Band, dict[Activity, int]] = Field(description="customers per band x activity")
    total: int


class LeadsView(BaseModel):
    band: Band | None
    activity: Activity | None
    leads: list[ScoreView] = Field(description="highest intent first")


class MatrixReader:
    """Reads the matrix, counting how (from the worker's counts or a scan), and sets its gauges."""

    def __init__(self, redis: Redis, registry: CollectorRegistry, clock: Callable[[], datetime]) -> None:
        self._redis = redis
        self._clock = clock
        self._customers = Gauge(
            "pd_lead_matrix_customers",
            "The lead concentration matrix: customers per band and activity, as of the scrape",
            ["band", "activity"],
            registry=registry,
        )
        self._reads = Counter(
            "pd_lead_matrix_reads_total",
            "Reads of the lead concentration matrix, by how: from the counts the worker keeps "
            "(counted) or counting every customer (scanned: just after a plan change, until the "
            "worker has rewritten the cells)",
            ["how"],
            registry=registry,
        )

    async def cells(self, plan: ScoringPlan, now: datetime) -> dict[Band, dict[Activity, int]]:
        cells, counted = await lead_matrix(self._redis, plan, now)
        self._reads.labels("counted" if counted else "scanned").inc()
        return cells

    async def update_gauges(self) -> None:
        current = await load_plan(self._redis)
        cells = await self.cells(current.plan, self._clock())
        for band, row in cells.items():
            for activity, count in row.items():
                self._customers.labels(band.value, activity.value).set(count)


def matrix_router(redis: Redis, matrix: MatrixReader, clock: Callable[[], datetime]) -> APIRouter:
    router = APIRouter(tags=["leads"])

    @router.get("/matrix", response_model=MatrixView, summary="The lead concentration matrix")
    async def get_matrix() -> MatrixView:
        """Customers per (band x activity) cell, as of now with the plan in force."""
        now = clock()
        current = await load_plan(redis)
        cells = await matrix.cells(current.plan, now)
        total = sum(n for row in cells.values() for n in row.values())
        return MatrixView(as_of=now, plan_version=current.version, cells=cells, total=total)

    @router.get("/leads", response_model=LeadsView, summary="The customers in a matrix cell")
    async def get_leads(
        band: Band | None = None,
        activity: Activity | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> LeadsView:
        """Highest intent first. Leave `band` or `activity` out for all bands or all activities."""
        now = clock()
        plan = (await load_plan(redis)).plan
        low, high = band_key_range(band, plan, now) if band else (-math.inf, math.inf)
        picked: list[str] = []
        offset = 0
        while len(picked) < limit:
            ranks = await read_model.ranked(redis, low, high, offset, LEADS_PAGE)
            page = [customer for customer, _ in ranks]
            if activity is not None and page:
                lasts = await read_model.last_interactions(redis, page)
                page = [
                    c for c, last in zip(page, lasts, strict=True) if activity_at(last, plan, now) is activity
                ]
            picked.extend(page[: limit - len(picked)])
            if len(ranks) < LEADS_PAGE:
                break
            offset += LEADS_PAGE
        snapshots = await read_model.read_scores(redis, picked)
        # A customer merged away between the two reads has no score of its own: leave it out.
        leads = [score_view(s.score, s.updated_at, plan, now) for s in snapshots if s.score is not None]
        return LeadsView(band=band, activity=activity, leads=leads)

    return router
