"""A customer's score, its forecast and latest events on the scoring API (`/v1/customers/...`),
read from the worker's read model and decayed to now with the plan in force."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from redis.asyncio import Redis

from . import read_model
from .latest_events import KEPT, LatestEventsView, newest
from .plan_store import load_plan
from .views import ForecastView, ScoreView, forecast, score_view

CustomerId = Annotated[str, Path(min_length=1, max_length=256)]


def customer_router(redis: Redis, clock: Callable[[], datetime]) -> APIRouter:
    router = APIRouter(tags=["scores"], responses={404: {"description": "unknown customer"}})

    async def known(customer_id: str) -> read_model.ScoreSnapshot:
        """The customer's snapshot (a merged-away customer's survivor's), or 404."""
        snapshot = await read_model.read_score(redis, customer_id)
        if snapshot is None or snapshot.score is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown customer")
        return snapshot

    @router.get(
        "/customers/{customer_id}/score",
        response_model=ScoreView,
        summary="A customer's score, decayed to now",
    )
    async def get_score(customer_id: CustomerId) -> ScoreView:
        """A merged-away customer answers with the survivor's score (and the survivor's id)."""
        snapshot = await known(customer_id)
        current = await load_plan(redis)
        return score_view(snapshot.score, snapshot.updated_at, current.plan, clock())

    @router.get(
        "/customers/{customer_id}/forecast",
        response_model=ForecastView,
        summary="Where decay alone takes a customer's intent",
    )
    async def get_forecast(
        customer_id: CustomerId,
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

    @router.get(
        "/customers/{customer_id}/events",
        response_model=LatestEventsView,
        summary="A customer's latest events and what each added",
    )
    async def get_latest_events(
        customer_id: CustomerId, limit: Annotated[int, Query(ge=1, le=KEPT)] = 20
    ) -> LatestEventsView:
        """Newest first by occurred_at; the scoring worker keeps the latest 50 per customer. A
        merged-away customer answers with the survivor's, which include theirs."""
        snapshot = await known(customer_id)
        survivor = snapshot.score.customer_id
        entries = await read_model.latest_events(redis, survivor)
        return LatestEventsView(customer_id=survivor, events=newest(entries, limit))

    return router
