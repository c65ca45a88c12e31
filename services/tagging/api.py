"""Tagging HTTP API (port 8003): profiles, segments (counts and members), the funnel, the ladder
matrix and tag rules.

Stateless: every answer is read from the Redis read model the worker writes.
`python -m services.tagging.api`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Annotated

from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Response, status
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field, StringConstraints

from shared.clock import clock_of, utc_now
from shared.http import OPERATOR_ONLY, Edit, edit_of, serve
from shared.logging import configure_logging
from shared.metrics import process_registry
from shared.ops_api import ops_api
from shared.redis import create_redis
from shared.scores import Activity, Band
from shared.settings import load_settings
from shared.versioned_routes import apply_change, read_one

from . import read_model, segment_queries
from .content_routes import content_router
from .funnel import FunnelStep
from .funnel_routes import funnel_gauges, funnel_router
from .funnel_stats import funnel_total
from .paging import PageCursor
from .read_model import ProfileView
from .rule_store import RULES, load_rules
from .rules import Layer, Orientation, RuleSet, Stage, TagRule
from .segments import SegmentQuery
from .settings import TaggingSettings

log = logging.getLogger(__name__)

CustomerId = Annotated[str, Path(min_length=1, max_length=256)]
TagName = Annotated[str, Path(min_length=1, max_length=64)]
# A tag in a filter: bounded, like the number of them, since each names a set Redis combines.
FilterTag = Annotated[str, StringConstraints(min_length=1, max_length=256)]
MAX_FILTER_TAGS = 50


def segment_query(
    layer: Annotated[list[Layer] | None, Query(description="any of these (repeat)")] = None,
    orientation: Annotated[list[Orientation] | None, Query(description="any of these (repeat)")] = None,
    stage: Annotated[list[Stage] | None, Query(description="any of these (repeat)")] = None,
    band: Annotated[list[Band] | None, Query(description="any of these (repeat)")] = None,
    activity: Annotated[list[Activity] | None, Query(description="any of these (repeat)")] = None,
    tag: Annotated[
        list[FilterTag] | None, Query(max_length=MAX_FILTER_TAGS, description="every one of these (repeat)")
    ] = None,
    not_tag: Annotated[
        list[FilterTag] | None, Query(max_length=MAX_FILTER_TAGS, description="none of these (repeat)")
    ] = None,
) -> SegmentQuery:
    """The segment filters both segment endpoints take: OR within a dimension, AND across."""
    return SegmentQuery.of(
        layers=layer,
        orientations=orientation,
        stages=stage,
        bands=band,
        activities=activity,
        tags_all=tag,
        tags_none=not_tag,
    )


class SegmentCount(BaseModel):
    count: int


class SegmentMembers(BaseModel):
    count: int = Field(description="customers in the segment when paging began")
    members: list[ProfileView]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null after the last")


class FunnelCount(BaseModel):
    step: FunnelStep
    customers: int


class FunnelView(BaseModel):
    steps: list[FunnelCount] = Field(description="in funnel order")
    total: int = Field(description="all customers")


class LadderView(BaseModel):
    cells: dict[Layer, dict[Orientation, int]] = Field(description="customers per layer x orientation")
    total: int


class TagCount(BaseModel):
    tag: str
    customers: int


class RulesView(BaseModel):
    version: int = Field(description="goes up with every change; workers apply it within seconds")
    rules: list[TagRule] = Field(description="in evaluation order")


def create_app(
    settings: TaggingSettings,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """`clock` dates the shared segment results (segment_queries.py: one per query and window)."""
    registry = registry if registry is not None else process_registry()
    redis = create_redis(settings.redis_url)
    app, v1 = ops_api(
        before_metrics=funnel_gauges(partial(funnel_total, redis), registry, clock),
        service="tagging",
        title="Tagging",
        description="Customers' profiles (value-ladder layer, orientation, journey stage, tags), "
        "segment counts, the layer x orientation matrix, and the tag rules ops manage.",
        settings=settings,
        registry=registry,
        redis=redis,
    )

    @v1.get(
        "/customers/{customer_id}/profile",
        response_model=ProfileView,
        tags=["profiles"],
        summary="A customer's layer, orientation, stage and tags",
        responses={404: {"description": "unknown customer"}},
    )
    async def get_profile(customer_id: CustomerId) -> ProfileView:
        """A merged-away customer answers with the survivor's profile (and the survivor's id)."""
        profile = await read_model.read_profile(redis, customer_id)
        if profile is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown customer")
        return profile

    @v1.get("/segments/count", response_model=SegmentCount, tags=["segments"], summary="Count a segment")
    async def count_segment(query: Annotated[SegmentQuery, Depends(segment_query)]) -> SegmentCount:
        """Customers matching the filters: any of a dimension's values given, every `tag`, no
        `not_tag`; all customers without filters."""
        return SegmentCount(count=await segment_queries.count(redis, query, clock().timestamp()))

    @v1.get(
        "/segments/members",
        response_model=SegmentMembers,
        tags=["segments"],
        summary="The customers of a segment, a page at a time",
        responses={422: {"description": "invalid filters, or a cursor not given out for this query"}},
    )
    async def segment_members(
        query: Annotated[SegmentQuery, Depends(segment_query)],
        limit: Annotated[int, Query(ge=1, le=200, description="at most this many customers")] = 50,
        cursor: Annotated[
            str | None,
            Query(max_length=200, description="`next_cursor` of the previous page; absent or 0: the first"),
        ] = None,
    ) -> SegmentMembers:
        """The same filters as the count. Pass `next_cursor` back (with the same filters) for the
        next page. A large segment is read live: every customer in it throughout comes at least
        once, and a page may hold fewer than `limit` (even none) with a cursor to go on. Any
        other is read from a snapshot taken at the first page: every customer in it once."""

        def bad_cursor(error: ValueError) -> HTTPException:
            detail = [{"type": "value_error", "loc": ["query", "cursor"], "msg": str(error), "input": cursor}]
            return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)

        try:
            start = PageCursor.decode(cursor or "")
        except ValueError as error:
            raise bad_cursor(error) from None
        try:
            page = await segment_queries.members(redis, query, limit, start, clock().timestamp())
        except segment_queries.ForeignCursor as error:
            raise bad_cursor(error) from None
        following = page.next_cursor.encode() if page.next_cursor else None
        return SegmentMembers(count=page.count, members=page.members, next_cursor=following)

    @v1.get("/funnel", response_model=FunnelView, tags=["segments"], summary="The conversion funnel")
    async def get_funnel() -> FunnelView:
        """Customers who reached each step (a step is not implied by a later one), in funnel order."""
        steps, total = await segment_queries.funnel(redis)
        return FunnelView(steps=[FunnelCount(step=s, customers=n) for s, n in steps], total=total)

    @v1.get("/segments/ladder", response_model=LadderView, tags=["segments"], summary="Layer x orientation")
    async def get_ladder() -> LadderView:
        """The multi-layer matrix: customers per value-ladder layer and emotional orientation."""
        cells = await read_model.ladder(redis)
        return LadderView(cells=cells, total=sum(sum(row.values()) for row in cells.values()))

    @v1.get("/tags", response_model=list[TagCount], tags=["segments"], summary="The most common tags")
    async def get_tags(limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> list[TagCount]:
        counts = await read_model.tag_counts(redis)
        return [TagCount(tag=t, customers=n) for t, n in list(counts.items())[:limit]]

    @v1.get("/tag-rules", response_model=RulesView, tags=["tag rules"], summary="The tag rules in force")
    async def list_rules() -> RulesView:
        rules = await load_rules(redis)
        return RulesView(version=rules.version, rules=list(rules.rules))

    async def validated_change(tag: str, rule: TagRule | None) -> None:
        """422 if the rules after the change cannot be evaluated (a dependency cycle)."""
        current = await load_rules(redis)
        others = [r for r in current.rules if r.tag != tag]
        try:
            RuleSet.of(current.version + 1, [*others, *([rule] if rule else [])])
        except ValueError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [{"msg": str(error)}]) from None

    @v1.post(
        "/tag-rules",
        dependencies=OPERATOR_ONLY,
        response_model=RulesView,
        status_code=status.HTTP_201_CREATED,
        tags=["tag rules"],
        summary="Add a tag rule",
        responses={409: {"description": "a rule for this tag exists"}, 422: {"description": "invalid"}},
    )
    async def create_rule(rule: TagRule, edit: Annotated[Edit, Depends(edit_of)]) -> RulesView:
        """Running workers apply it within seconds, to every profile they hold."""
        await validated_change(rule.tag, rule)
        await apply_change(redis, RULES, "rule", "create", rule.tag, rule.model_dump_json(), edit)
        log.info("tag rule added", extra={"tag": rule.tag})
        return await list_rules()

    @v1.get(
        "/tag-rules/{tag}",
        response_model=TagRule,
        tags=["tag rules"],
        summary="One tag rule",
        responses={404: {"description": "no rule for this tag"}},
    )
    async def get_rule(tag: TagName, response: Response) -> TagRule:
        """The ETag is the rule's version: send it back as If-Match with a PUT or DELETE."""
        return TagRule.model_validate_json(await read_one(redis, RULES, "rule", tag, response))

    @v1.put(
        "/tag-rules/{tag}",
        dependencies=OPERATOR_ONLY,
        response_model=RulesView,
        tags=["tag rules"],
        summary="Add or replace a tag rule",
        responses={
            409: {"description": "If-Match named a version of the rule that moved on"},
            422: {"description": "invalid, or the body names another tag"},
        },
    )
    async def put_rule(
        tag: TagName, rule: Annotated[TagRule, Body()], edit: Annotated[Edit, Depends(edit_of)]
    ) -> RulesView:
        if rule.tag != tag:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [{"loc": ["body", "tag"], "msg": f"must be {tag!r}, the tag in the path"}],
            )
        await validated_change(tag, rule)
        await apply_change(redis, RULES, "rule", "put", tag, rule.model_dump_json(), edit)
        log.info("tag rule put", extra={"tag": tag, "by": edit.editor.holder})
        return await list_rules()

    @v1.delete(
        "/tag-rules/{tag}",
        dependencies=OPERATOR_ONLY,
        status_code=status.HTTP_204_NO_CONTENT,
        tags=["tag rules"],
        summary="Delete a tag rule",
        responses={
            404: {"description": "no rule for this tag"},
            409: {"description": "If-Match named a version of the rule that moved on"},
        },
    )
    async def delete_rule(tag: TagName, edit: Annotated[Edit, Depends(edit_of)]) -> Response:
        """Customers lose the tag as running workers apply the change."""
        await apply_change(redis, RULES, "rule", "delete", tag, "", edit)
        log.info("tag rule deleted", extra={"tag": tag})
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    v1.include_router(content_router(redis, clock))
    v1.include_router(funnel_router(redis, clock))
    app.include_router(v1)
    return app


def main() -> None:
    settings = load_settings(TaggingSettings, "tagging-api")
    configure_logging("tagging-api", settings.log_level)
    serve(create_app(settings, clock=clock_of(settings)), settings.http_host, settings.tagging_port)


if __name__ == "__main__":
    main()
