"""Dealers: the page comes with the dealer API (issue 15). Until then it says so, rather than the
navigation hiding that it is planned."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from ..pages import PageOf

router = APIRouter()


@router.get("/dealers", include_in_schema=False)
async def dealers(page: PageOf) -> HTMLResponse:
    return page.render("pending.html", nav="dealers", title_key="dealers.title")
