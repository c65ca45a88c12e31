"""Dealers and dead letters: their pages come with their APIs (issue 15). Until then the pages
say so, rather than the navigation hiding that they are planned."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from ..pages import PageOf

router = APIRouter()


@router.get("/dealers", include_in_schema=False)
async def dealers(page: PageOf) -> HTMLResponse:
    return page.render("pending.html", nav="dealers", title_key="dealers.title")


@router.get("/dead-letters", include_in_schema=False)
async def dead_letters(page: PageOf) -> HTMLResponse:
    return page.render("pending.html", nav="dead_letters", title_key="dead_letters.title")
