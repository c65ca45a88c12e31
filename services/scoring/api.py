"""Scoring HTTP API (port 8002): scores and their forecast, latest events, the lead concentration
matrix, leads and the scoring plan.

Stateless: every answer is read from the Redis read model the worker writes and decayed to now
with the plan in force, so nothing here goes stale between events. `python -m services.scoring.api`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Response, status
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, Field

from shared.clock import clock_of, utc_now
from shared.http import ADMIN_ONLY, Edit, edit_of, etag, serve, stale_version
from shared.logging import configure_logging
from shared.metrics import process_registry
from shared.ops_api import ops_api
from shared.redis import create_redis
from shared.settings import load_settings
from shared.versioned_hash import StaleVersion

from . import read_model
from .calibration import PlanCheck, check_plan
from .intent import Activity, Band
from .latest_events import KEPT, LatestEventsView, newest
from .lead_matrix import lead_matrix
from .plan import ScoringPlan
from .plan_store import VersionedPlan, load_plan, save_plan
from .ranking import band_key_range
from .settings import ScoringSettings
from .views import ForecastView, ScoreView, activity_at, forecast, score_view

log = logging.getLogger(__name__)

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


def create_app(
    settings: ScoringSettings,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    registry = registry if registry is not None else process_registry()
    redis = create_redis(settings.redis_url)
    matrix_customers = Gauge(
        "pd_lead_matrix_customers",
        "The lead concentration matrix: customers per band and activity, as of the scrape",
        ["band", "activity"],
        registry=registry,
    )

    matrix_reads = Counter(
        "pd_lead_matrix_reads_total",
        "Reads of the lead concentration matrix, by how: from the counts the worker keeps "
        "(counted) or counting every customer (scanned: just after a plan change, until the "
        "worker has rewritten the cells)",
        ["how"],
        registry=registry,
    )

    async def matrix_at(plan: ScoringPlan, now: datetime) -> dict[Band, dict[Activity, int]]:
        cells, counted = await lead_matrix(redis, plan, now)
        matrix_reads.labels("counted" if counted else "scanned").inc()
        return cells

    async def update_matrix() -> None:
        current = await load_plan(redis)
        cells = await matrix_at(current.plan, clock())
        for band, row in cells.items():
            for activity, count in row.items():
                matrix_customers.labels(band.value, activity.value).set(count)

    app, v1 = ops_api(
        service="scoring",
        title="Scoring",
        description="Customers' intent scores, decayed to the moment of the request, and where "
        "decay alone takes them; their latest events; the lead concentration matrix (band x "
        "activity), the leads in a cell; and the scoring plan, with a check of a candidate plan.",
        settings=settings,
        registry=registry,
        redis=redis,
        before_metrics=update_matrix,
    )

    async def known(customer_id: str) -> read_model.ScoreSnapshot:
        """The customer's snapshot (a merged-away customer's survivor's), or 404."""
        snapshot = await read_model.read_score(redis, customer_id)
        if snapshot is None or snapshot.score is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown customer")
        return snapshot

    @v1.get(
        "/customers/{customer_id}/score",
        response_model=ScoreView,
        tags=["scores"],
        summary="A customer's score, decayed to now",
        responses={404: {"description": "unknown customer"}},
    )
    async def get_score(customer_id: Annotated[str, Path(min_length=1, max_length=256)]) -> ScoreView:
        """A merged-away customer answers with the survivor's score (and the survivor's id)."""
        snapshot = await known(customer_id)
        current = await load_plan(redis)
        return score_view(snapshot.score, snapshot.updated_at, current.plan, clock())

    @v1.get(
        "/customers/{customer_id}/forecast",
        response_model=ForecastView,
        tags=["scores"],
        summary="Where decay alone takes a customer's intent",
        responses={404: {"description": "unknown customer"}},
    )
    async def get_forecast(
        customer_id: Annotated[str, Path(min_length=1, max_length=256)],
        days: Annotated[int, Query(ge=1, le=90)] = 28,
        step_hours: Annotated[int, Query(ge=1, le=168)] = 24,
    ) -> ForecastView:
        """intent_pct and band at now, now + step_hours, ... up to now + days, with the plan in
        force and no new events. A merged-away customer answers with the survivor's."""
        snapshot = await known(customer_id)
        current = await load_plan(redis)
        return ForecastView(
            customer_id=snapshot.score.customer_id,
            plan_version=current.version,
            points=forecast(snapshot.score, current.plan, clock(), days, step_hours),
        )

    @v1.get(
        "/customers/{customer_id}/events",
        response_model=LatestEventsView,
        tags=["scores"],
        summary="A customer's latest events and what each added",
        responses={404: {"description": "unknown customer"}},
    )
    async def get_latest_events(
        customer_id: Annotated[str, Path(min_length=1, max_length=256)],
        limit: Annotated[int, Query(ge=1, le=KEPT)] = 20,
    ) -> LatestEventsView:
        """Newest first by occurred_at; the scoring worker keeps the latest 50 per customer. A
        merged-away customer answers with the survivor's, which include theirs."""
        snapshot = await known(customer_id)
        survivor = snapshot.score.customer_id
        entries = await read_model.latest_events(redis, survivor)
        return LatestEventsView(customer_id=survivor, events=newest(entries, limit))

    @v1.get("/matrix", response_model=MatrixView, tags=["leads"], summary="The lead concentration matrix")
    async def get_matrix() -> MatrixView:
        """Customers per (band x activity) cell, as of now with the plan in force."""
        now = clock()
        current = await load_plan(redis)
        cells = await matrix_at(current.plan, now)
        total = sum(n for row in cells.values() for n in row.values())
        return MatrixView(as_of=now, plan_version=current.version, cells=cells, total=total)

    @v1.get("/leads", response_model=LeadsView, tags=["leads"], summary="The customers in a matrix cell")
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

    @v1.get("/scoring-plan", response_model=VersionedPlan, tags=["plan"], summary="The scoring plan in force")
    async def get_plan(response: Response) -> VersionedPlan:
        """Version 0 is the default plan from the repository. The ETag is the version: send it
        back as If-Match with a PUT, so that a concurrent change is not overwritten."""
        plan = await load_plan(redis)
        response.headers["ETag"] = etag(plan.version)
        return plan

    @v1.put(
        "/scoring-plan",
        dependencies=ADMIN_ONLY,
        response_model=VersionedPlan,
        tags=["plan"],
        summary="Replace the scoring plan",
        responses={
            409: {"description": "If-Match named a version that is no longer in force"},
            422: {"description": "the plan is invalid; `detail` names each field and why"},
        },
    )
    async def put_plan(
        plan: ScoringPlan, edit: Annotated[Edit, Depends(edit_of)], response: Response
    ) -> VersionedPlan:
        """Takes a new version; running workers apply it without a restart. Scores are decayed
        and banded with it from the next read on. Kept in the audit trail (`GET /v1/audit`)."""
        try:
            saved = await save_plan(redis, plan, edit.editor, edit.if_match)
        except StaleVersion as stale:
            raise stale_version("the scoring plan", stale.current) from None
        log.info("scoring plan replaced", extra={"plan_version": saved.version, "by": edit.editor.holder})
        response.headers["ETag"] = etag(saved.version)
        return saved

    @v1.post(
        "/scoring-plan/check",
        response_model=PlanCheck,
        tags=["plan"],
        summary="Where a candidate plan puts the paper's reference customers",
        responses={422: {"description": "the plan is invalid, exactly as PUT would refuse it"}},
    )
    async def check_candidate_plan(plan: ScoringPlan) -> PlanCheck:
        """A new customer with 5 content.click and 1 content.favorite within a day (the paper's
        calibration: 70 +- 5 under the default plan) and one with a single test_drive.booked
        (hot under the default plan), scored under `plan`. Saves nothing."""
        return check_plan(plan)

    app.include_router(v1)
    return app


def main() -> None:
    settings = load_settings(ScoringSettings, "scoring-api")
    configure_logging("scoring-api", settings.log_level)
    serve(create_app(settings, clock=clock_of(settings)), settings.http_host, settings.scoring_port)


if __name__ == "__main__":
    main()
