"""`/v1/contents` on the tagging API: the content catalogue (shared/contents.py), registered and
changed by operators (each change audited, guarded by If-Match), with each content's figures
(content_stats.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from pydantic import BaseModel
from redis.asyncio import Redis

from shared.contents import CONTENTS, Content
from shared.http import OPERATOR_ONLY, Edit, edit_of
from shared.versioned_routes import apply_change, read_one

from .content_stats import ContentFigures, figures_of

log = logging.getLogger(__name__)

ContentPathId = Annotated[str, Path(min_length=1, max_length=128)]


class ContentView(BaseModel):
    content: Content
    figures: ContentFigures


class ContentList(BaseModel):
    version: int
    contents: list[ContentView]


def content_router(redis: Redis, clock: Callable[[], datetime]) -> APIRouter:
    router = APIRouter(tags=["contents"])

    @router.get("/contents", response_model=ContentList, summary="The catalogue, with each content's figures")
    async def list_contents() -> ContentList:
        version, documents = await CONTENTS.load(redis)
        contents = sorted((Content.model_validate_json(d) for d in documents), key=lambda c: c.content_id)
        figures = await figures_of(redis, [c.content_id for c in contents])
        views = [ContentView(content=c, figures=f) for c, f in zip(contents, figures, strict=True)]
        return ContentList(version=version, contents=views)

    @router.get(
        "/contents/{content_id}",
        response_model=ContentView,
        summary="One content and its figures (its ETag for If-Match)",
        responses={404: {"description": "not in the catalogue"}},
    )
    async def get_content(content_id: ContentPathId, response: Response) -> ContentView:
        content = Content.model_validate_json(
            await read_one(redis, CONTENTS, "content", content_id, response)
        )
        (figures,) = await figures_of(redis, [content_id])
        return ContentView(content=content, figures=figures)

    @router.put(
        "/contents/{content_id}",
        dependencies=OPERATOR_ONLY,
        response_model=Content,
        summary="Register or change a content",
        responses={
            409: {"description": "If-Match named a version that moved on"},
            422: {"description": "invalid, or another id than the path's"},
        },
    )
    async def put_content(
        content_id: ContentPathId,
        content: Content,
        edit: Annotated[Edit, Depends(edit_of)],
        response: Response,
    ) -> Content:
        """Events naming this `content_id` from then on take its value point, topics, car model
        and price flag where they do not say them (ingest reloads the catalogue within
        `CONTENTS_POLL_INTERVAL_S`, 1 s by default)."""
        if content.content_id != content_id:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [{"loc": ["body", "content_id"], "msg": f"must be {content_id!r}, the id in the path"}],
            )
        document = content.model_dump_json()
        await apply_change(redis, CONTENTS, "content", "put", content_id, document, edit, response, clock())
        log.info("content put", extra={"content": content_id, "by": edit.editor.holder})
        return content

    return router
