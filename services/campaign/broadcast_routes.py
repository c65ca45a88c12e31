"""`/v1/broadcasts` on the campaign API: campaigns with a `scheduled` trigger (broadcasts.py),
listed with their next occurrence and figures, and created with that trigger checked. Changing,
pausing and deleting one, and its full stats, are the campaign routes' (`/v1/campaigns/{id}`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from shared.http import OPERATOR_ONLY, Edit, edit_of

from .broadcasts import due_occurrence, is_broadcast
from .campaign_routes import create
from .definitions import Campaign
from .read_model import campaign_figures
from .store import load_campaigns

log = logging.getLogger(__name__)


class BroadcastView(BaseModel):
    broadcast: Campaign
    last_occurrence: datetime | None = Field(description="the latest time it was due (null: not yet)")
    figures: dict[str, int] = Field(description="as GET /v1/campaigns/{id}/stats counts them")


class BroadcastList(BaseModel):
    version: int
    broadcasts: list[BroadcastView]


def broadcast_router(redis: Redis, clock: Callable[[], datetime]) -> APIRouter:
    router = APIRouter(tags=["campaigns"])

    @router.get("/broadcasts", response_model=BroadcastList, summary="Every broadcast, with its figures")
    async def list_broadcasts() -> BroadcastList:
        version, campaigns = await load_campaigns(redis)
        now = clock()
        views = [
            BroadcastView(
                broadcast=c,
                last_occurrence=due_occurrence(c, now),
                figures=await campaign_figures(redis, c.id),
            )
            for c in campaigns
            if is_broadcast(c)
        ]
        return BroadcastList(version=version, broadcasts=views)

    @router.post(
        "/broadcasts",
        dependencies=OPERATOR_ONLY,
        response_model=Campaign,
        status_code=status.HTTP_201_CREATED,
        summary="Schedule a broadcast: a segment, what to send it, when (and how often)",
        responses={409: {"description": "the id exists"}, 422: {"description": "invalid, with reasons"}},
    )
    async def create_broadcast(
        broadcast: Campaign, edit: Annotated[Edit, Depends(edit_of)], response: Response
    ) -> Campaign:
        """A campaign whose trigger is `{"on": "scheduled", "value": "<ISO time with offset>",
        "every_days": n?}`: at that time every customer in the audience (the segment) is decided
        on as any trigger is — holdout, consent, caps, quiet hours. A recurring broadcast needs
        `reentry` `always` (or `after_days`) to reach a customer twice."""
        if not is_broadcast(broadcast):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [{"loc": ["body", "trigger", "on"], "msg": "a broadcast's trigger is `scheduled`"}],
            )
        return await create(redis, broadcast, edit, response)

    return router
