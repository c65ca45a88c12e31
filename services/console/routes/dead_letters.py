"""Dead letters: what the workers could not take, with why, and replaying chosen ones to their
topic as they were (a corrected input goes through `pd-dlq replay --correct` or the API)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shared.topics import MAIN_TOPICS

from ..pages import CheckedForm, PageOf

router = APIRouter()
TOPICS = MAIN_TOPICS  # each has its `<topic>.dlq`


@router.get("/dead-letters", include_in_schema=False)
async def dead_letters(
    page: PageOf,
    topic: Annotated[str, Query(max_length=100)] = "",
    replayed: int | None = None,
    refused: int | None = None,
) -> HTMLResponse:
    params = {"last": 100} | ({"topic": topic} if topic in TOPICS else {})
    listing = await page.apis.campaign.get("/v1/dead-letters", page.token, params)
    return page.render(
        "dead_letters.html",
        nav="dead_letters",
        letters=listing["dead_letters"],
        topics=TOPICS,
        topic=topic if topic in TOPICS else "",
        replayed=replayed,
        refused=refused,
    )


@router.post("/dead-letters/replay", include_in_schema=False)
async def replay(page: PageOf, form: CheckedForm) -> Response:
    ids = [str(value) for value in form.getlist("id")][:500]
    if not ids:
        return RedirectResponse("/dead-letters", 303)
    report = await page.apis.campaign.call("POST", "/v1/dead-letters/replay", page.token, json={"ids": ids})
    return RedirectResponse(
        f"/dead-letters?replayed={len(report['replayed'])}&refused={len(report['refused'])}", 303
    )
