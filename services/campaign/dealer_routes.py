"""`/v1/dealers/...` and `/v1/leads` on the campaign API: the dealer network as data (stores and
their consultants, changed by admins, each change audited and guarded by If-Match), and the
leads handed to it: waiting in the pool, open, overdue; SLA misses and handovers per consultant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from shared.http import ADMIN_ONLY, Edit, edit_of
from shared.versioned_routes import apply_change, read_one

from . import desk
from .dealers import Consultant, Store
from .desk import LeadRecord
from .roster_store import CONSULTANTS, STORES, load_roster

log = logging.getLogger(__name__)

DealerPathId = Annotated[str, Path(min_length=1, max_length=64)]
Editing = Annotated[Edit, Depends(edit_of)]
_CHANGE_RESPONSES = {
    409: {"description": "If-Match named a version that moved on, or the store still has consultants"},
    422: {"description": "invalid, another id than the path's, or (consultant) an unknown store"},
}


class StoreList(BaseModel):
    version: int
    stores: list[Store]


class ConsultantList(BaseModel):
    version: int
    consultants: list[Consultant]


class LeadList(BaseModel):
    state: Literal["pool", "open", "overdue"]
    counts: dict[str, int] = Field(description="every lead waiting in the pool, open, and overdue")
    leads: list[LeadRecord]


class ConsultantFigures(BaseModel):
    consultant_id: str
    store_id: str | None = Field(description="null: no longer in the roster")
    active: bool
    open: int = Field(description="leads open with the consultant now")
    overdue: int = Field(description="of them, past their SLA")
    sla_misses: int = Field(description="leads taken from the consultant after a missed SLA, ever")
    handovers: int = Field(description="leads handed to the consultant, ever")


def dealer_router(redis: Redis, clock: Callable[[], datetime]) -> APIRouter:
    router = APIRouter()

    def same_id(given: str, path_id: str) -> None:
        if given != path_id:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [{"loc": ["body", "id"], "msg": f"must be {path_id!r}, the id in the path"}],
            )

    @router.get("/dealers/stores", response_model=StoreList, tags=["dealers"], summary="Every store")
    async def list_stores() -> StoreList:
        version, documents = await STORES.load(redis)
        stores = sorted((Store.model_validate_json(d) for d in documents), key=lambda s: s.id)
        return StoreList(version=version, stores=stores)

    @router.get(
        "/dealers/stores/{store_id}",
        response_model=Store,
        tags=["dealers"],
        summary="One store (its ETag for If-Match)",
        responses={404: {"description": "no such store"}},
    )
    async def get_store(store_id: DealerPathId, response: Response) -> Store:
        return Store.model_validate_json(await read_one(redis, STORES, "store", store_id, response))

    @router.put(
        "/dealers/stores/{store_id}",
        dependencies=ADMIN_ONLY,
        response_model=Store,
        tags=["dealers"],
        summary="Add or change a store",
        responses=_CHANGE_RESPONSES,
    )
    async def put_store(store_id: DealerPathId, store: Store, edit: Editing, response: Response) -> Store:
        same_id(store.id, store_id)
        document = store.model_dump_json()
        await apply_change(redis, STORES, "store", "put", store_id, document, edit, response, clock())
        log.info("store put", extra={"store": store_id, "by": edit.editor.holder})
        return store

    @router.delete(
        "/dealers/stores/{store_id}",
        dependencies=ADMIN_ONLY,
        status_code=status.HTTP_204_NO_CONTENT,
        tags=["dealers"],
        summary="Remove a store that has no consultants left",
        responses={404: {"description": "no such store"}, **_CHANGE_RESPONSES},
    )
    async def delete_store(store_id: DealerPathId, edit: Editing) -> Response:
        _, roster = await load_roster(redis)
        if staff := sorted(c.id for c in roster.consultants.values() if c.store_id == store_id):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"store {store_id!r} still has consultants ({', '.join(staff[:10])}): "
                "move or remove them first",
            )
        await apply_change(redis, STORES, "store", "delete", store_id, "", edit, at=clock())
        log.info("store deleted", extra={"store": store_id, "by": edit.editor.holder})
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get(
        "/dealers/consultants", response_model=ConsultantList, tags=["dealers"], summary="Every consultant"
    )
    async def list_consultants(
        store_id: Annotated[str | None, Query(max_length=64, description="only this store's")] = None,
    ) -> ConsultantList:
        version, documents = await CONSULTANTS.load(redis)
        consultants = [Consultant.model_validate_json(d) for d in documents]
        picked = sorted((c for c in consultants if store_id in (None, c.store_id)), key=lambda c: c.id)
        return ConsultantList(version=version, consultants=picked)

    @router.get(
        "/dealers/consultants/{consultant_id}",
        response_model=Consultant,
        tags=["dealers"],
        summary="One consultant (its ETag for If-Match)",
        responses={404: {"description": "no such consultant"}},
    )
    async def get_consultant(consultant_id: DealerPathId, response: Response) -> Consultant:
        return Consultant.model_validate_json(
            await read_one(redis, CONSULTANTS, "consultant", consultant_id, response)
        )

    @router.put(
        "/dealers/consultants/{consultant_id}",
        dependencies=ADMIN_ONLY,
        response_model=Consultant,
        tags=["dealers"],
        summary="Add or change a consultant (`active: false` hands their open leads to others)",
        responses=_CHANGE_RESPONSES,
    )
    async def put_consultant(
        consultant_id: DealerPathId, consultant: Consultant, edit: Editing, response: Response
    ) -> Consultant:
        """Running workers take the change up within seconds: a consultant added takes leads
        waiting in the pool; one made inactive gets no new leads and their open leads go to
        colleagues (of the same store first) as new hand-over actions."""
        same_id(consultant.id, consultant_id)
        if await STORES.get(redis, consultant.store_id) is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [{"loc": ["body", "store_id"], "msg": f"no store {consultant.store_id!r}: PUT it first"}],
            )
        document = consultant.model_dump_json()
        await apply_change(
            redis, CONSULTANTS, "consultant", "put", consultant_id, document, edit, response, clock()
        )
        log.info("consultant put", extra={"consultant": consultant_id, "active": consultant.active})
        return consultant

    @router.delete(
        "/dealers/consultants/{consultant_id}",
        dependencies=ADMIN_ONLY,
        status_code=status.HTTP_204_NO_CONTENT,
        tags=["dealers"],
        summary="Remove a consultant (their open leads go to others, as for an inactive one)",
        responses={404: {"description": "no such consultant"}, **_CHANGE_RESPONSES},
    )
    async def delete_consultant(consultant_id: DealerPathId, edit: Editing) -> Response:
        await apply_change(redis, CONSULTANTS, "consultant", "delete", consultant_id, "", edit, at=clock())
        log.info("consultant deleted", extra={"consultant": consultant_id, "by": edit.editor.holder})
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get("/leads", response_model=LeadList, tags=["leads"], summary="Hot leads handed to dealers")
    async def get_leads(
        state: Literal["pool", "open", "overdue"] = "open",
        store_id: Annotated[
            str | None, Query(max_length=64, description="the customer's or consultant's store")
        ] = None,
        consultant_id: Annotated[str | None, Query(max_length=64)] = None,
        model: Annotated[str | None, Query(max_length=128, description="the customer's car model")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> LeadList:
        """`pool`: waiting for a consultant with capacity, oldest first; `open`: with a consultant,
        most urgent first; `overdue`: open past the SLA (the worker hands them on)."""
        now = clock()
        leads = await desk.list_leads(
            redis,
            state,
            now,
            store_id=store_id,
            consultant_id=consultant_id,
            vehicle_model=model,
            limit=limit,
        )
        return LeadList(state=state, counts=await desk.lead_counts(redis, now), leads=leads)

    @router.get(
        "/leads/consultants",
        response_model=list[ConsultantFigures],
        tags=["leads"],
        summary="Per consultant: open and overdue leads, SLA misses, handovers",
    )
    async def get_consultant_figures(
        store_id: Annotated[str | None, Query(max_length=64)] = None,
    ) -> list[ConsultantFigures]:
        now = clock()
        _, roster = await load_roster(redis)
        misses, handed = await desk.sla_misses(redis), await desk.handovers(redis)
        ids = sorted({*roster.consultants, *misses, *handed})
        figures = []
        for consultant_id in ids:
            consultant = roster.consultants.get(consultant_id)
            home = consultant.store_id if consultant else None
            if store_id is not None and home != store_id:
                continue
            open_leads = await desk.list_leads(
                redis, "open", now, consultant_id=consultant_id, limit=desk.SCANNED
            )
            figures.append(
                ConsultantFigures(
                    consultant_id=consultant_id,
                    store_id=home,
                    active=bool(consultant and consultant.active),
                    open=len(open_leads),
                    overdue=sum(1 for lead in open_leads if lead.sla_due is not None and lead.sla_due < now),
                    sla_misses=misses.get(consultant_id, 0),
                    handovers=handed.get(consultant_id, 0),
                )
            )
        return figures

    return router
