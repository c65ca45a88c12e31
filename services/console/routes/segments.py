"""Segments: combine layer, orientation, stage, band, activity and tags; see the live count and a
page of members. A filter form changes nothing, so it is a GET: a segment can be bookmarked."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from .. import views
from ..ops_client import ApiError, SignedOut
from ..pages import PageOf

router = APIRouter()
DIMENSIONS = {
    "layer": views.LAYERS,
    "orientation": views.ORIENTATIONS,
    "stage": views.STAGES,
    "band": views.BANDS,
    "activity": views.ACTIVITIES,
}
Many = Annotated[list[str] | None, Query()]


@router.get("/segments", include_in_schema=False)
async def segments(
    page: PageOf,
    layer: Many = None,
    orientation: Many = None,
    stage: Many = None,
    band: Many = None,
    activity: Many = None,
    tags_all: Annotated[str, Query(max_length=1000)] = "",
    tags_none: Annotated[str, Query(max_length=1000)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "0",
) -> HTMLResponse:
    chosen = {"layer": layer, "orientation": orientation, "stage": stage, "band": band, "activity": activity}
    # Only known values go on: the API would refuse the rest, and they cannot be ticked anyway.
    picked = {d: [x for x in (chosen[d] or []) if x in DIMENSIONS[d]] for d in DIMENSIONS}
    params: list[tuple[str, str]] = [(d, x) for d, values in picked.items() for x in values]
    params += [("tag", tag) for tag in views.split_tags(tags_all)]
    params += [("not_tag", tag) for tag in views.split_tags(tags_none)]
    result, error = None, None
    try:
        result = await page.apis.tagging.get(
            "/v1/segments/members", page.token, [*params, ("cursor", cursor), ("limit", "50")]
        )
    except SignedOut:
        raise
    except ApiError as failure:
        error = failure
    next_query = None
    if result and result.get("next_cursor"):
        keep = [(k, v) for k, v in page.request.query_params.multi_items() if k != "cursor"]
        next_query = [*keep, ("cursor", result["next_cursor"])]
    return page.render(
        "segments.html",
        nav="segments",
        dimensions=DIMENSIONS,
        picked=picked,
        tags_all=tags_all,
        tags_none=tags_none,
        result=result,
        api_error=error,
        next_query=next_query,
    )
