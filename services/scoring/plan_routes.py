"""The scoring plan on the scoring API (`/v1/scoring-plan`): read it, replace it (admins, with
If-Match against a concurrent change), and check where a candidate puts the paper's reference
customers."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from redis.asyncio import Redis

from shared.http import ADMIN_ONLY, Edit, edit_of, etag, stale_version
from shared.versioned_hash import StaleVersion

from .calibration import PlanCheck, check_plan
from .plan import ScoringPlan
from .plan_store import VersionedPlan, load_plan, save_plan

log = logging.getLogger(__name__)


def plan_router(redis: Redis) -> APIRouter:
    router = APIRouter(tags=["plan"])

    @router.get("/scoring-plan", response_model=VersionedPlan, summary="The scoring plan in force")
    async def get_plan(response: Response) -> VersionedPlan:
        """Version 0 is the default plan from the repository. The ETag is the version: send it
        back as If-Match with a PUT, so that a concurrent change is not overwritten."""
        plan = await load_plan(redis)
        response.headers["ETag"] = etag(plan.version)
        return plan

    @router.put(
        "/scoring-plan",
        dependencies=ADMIN_ONLY,
        response_model=VersionedPlan,
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

    @router.post(
        "/scoring-plan/check",
        response_model=PlanCheck,
        summary="Where a candidate plan puts the paper's reference customers",
        responses={422: {"description": "the plan is invalid, exactly as PUT would refuse it"}},
    )
    async def check_candidate_plan(plan: ScoringPlan) -> PlanCheck:
        """A new customer with 5 content.click and 1 content.favorite within a day (the paper's
        calibration: 70 +- 5 under the default plan) and one with a single test_drive.booked
        (hot under the default plan), scored under `plan`. Saves nothing."""
        return check_plan(plan)

    return router
