"""`GET /v1/audit` on the campaign API: who changed which campaign, tag rule, scoring plan, store
or consultant, and when, with the document after each change (shared/audit.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from shared.audit import AuditEntry, Kind, read_audit


class AuditTrail(BaseModel):
    entries: list[AuditEntry] = Field(description="newest first")
    next_before: str | None = Field(description="pass as `before` for the next page; null at the end")


def audit_router(redis: Redis) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/audit", response_model=AuditTrail, summary="Who changed what, newest first")
    async def get_audit(
        kind: Kind | None = None,
        item: Annotated[str | None, Query(max_length=256, description="an id; `plan` for the plan")] = None,
        holder: Annotated[str | None, Query(max_length=128, description="the ops token's holder")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        before: Annotated[str | None, Query(pattern=r"^\d+-\d+$", description="an entry_id")] = None,
    ) -> AuditTrail:
        """Every change to campaigns, tag rules, the scoring plan and the dealer roster, on every
        ops API; the trail keeps the latest 10,000 or so."""
        entries = await read_audit(redis, kind=kind, item=item, holder=holder, limit=limit, before=before)
        return AuditTrail(
            entries=entries, next_before=entries[-1].entry_id if len(entries) == limit else None
        )

    return router
