"""The overview: the lead concentration matrix, value ladder x orientation, the funnel, events
per minute by source and today's actions. The page draws what the server fetched; console.js
then refreshes it from `/api/overview` every `refresh_s` seconds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse

from .. import views
from ..ops_client import ApiError, gather
from ..pages import Page, PageOf

router = APIRouter()


async def overview_data(page: Page) -> dict[str, Any]:
    """Every panel's figures; a panel whose API failed is `{"unavailable": service}`."""
    apis, token, name = page.apis, page.token, page.name
    calls = {
        "matrix": apis.scoring.get("/v1/matrix", token),
        "ladder": apis.tagging.get("/v1/segments/ladder", token),
        "funnel": apis.tagging.get("/v1/funnel", token),
        "events": apis.ingest.get("/v1/stats/events", token, {"minutes": 60}),
        "actions": apis.campaign.get("/v1/actions/daily", token),
    }
    answers = await gather(calls)
    shapers = {
        "matrix": lambda a: views.heatmap(a, name),
        "ladder": lambda a: views.ladder(a, name),
        "funnel": lambda a: {"steps": views.funnel(a, name)},
        "events": views.events_per_minute,
        "actions": lambda a: views.actions_today(a, name),
    }
    panels: dict[str, Any] = {}
    for panel, answer in answers.items():
        failed = isinstance(answer, ApiError)
        panels[panel] = {"unavailable": answer.service} if failed else shapers[panel](answer)
    return panels


@router.get("/", include_in_schema=False)
async def overview(page: PageOf) -> HTMLResponse:
    return page.render("overview.html", nav="overview", panels=await overview_data(page))


@router.get("/api/overview", include_in_schema=False)
async def overview_json(page: PageOf) -> JSONResponse:
    return JSONResponse(await overview_data(page), headers={"Cache-Control": "no-store"})
