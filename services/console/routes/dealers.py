"""Dealers: the network (stores and their consultants) with each consultant's open and overdue
leads, SLA misses and hand-overs; the leads waiting in the pool, open or overdue; an admin may
make a consultant inactive (their open leads go to colleagues) or active again. The network
itself is loaded with `pd-roster load` (docs/dealers.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..ops_client import gather
from ..pages import CheckedForm, PageOf

router = APIRouter()
ConsultantId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
LeadState = Literal["pool", "open", "overdue"]


@router.get("/dealers", include_in_schema=False)
async def dealers(page: PageOf, state: LeadState = "pool", changed: str = "") -> HTMLResponse:
    campaign = page.apis.campaign
    answers = await gather(
        {
            "stores": campaign.get("/v1/dealers/stores", page.token),
            "consultants": campaign.get("/v1/dealers/consultants", page.token),
            "figures": campaign.get("/v1/leads/consultants", page.token),
            "leads": campaign.get("/v1/leads", page.token, {"state": state, "limit": 100}),
        }
    )
    unavailable = any(isinstance(answer, Exception) for answer in answers.values())
    stores = [] if unavailable else answers["stores"]["stores"]
    figures = {} if unavailable else {f["consultant_id"]: f for f in answers["figures"]}
    staff = [] if unavailable else answers["consultants"]["consultants"]
    teams = [
        (store, [(c, figures.get(c["id"], {})) for c in staff if c["store_id"] == store["id"]])
        for store in stores
    ]
    leads = None if unavailable else answers["leads"]
    return page.render(
        "dealers.html",
        nav="dealers",
        unavailable=unavailable,
        teams=teams,
        leads=leads,
        state=state,
        states=("pool", "open", "overdue"),
        changed=changed,
    )


@router.post("/dealers/consultants/{consultant_id}/active", include_in_schema=False)
async def set_active(page: PageOf, form: CheckedForm, consultant_id: ConsultantId) -> Response:
    """Against the version just read: a change saved in between is not overwritten (409)."""
    wanted = str(form.get("active")) == "true"
    path = f"/v1/dealers/consultants/{consultant_id}"
    consultant, version = await page.apis.campaign.read_versioned(path, page.token)
    consultant["active"] = wanted
    await page.apis.campaign.call("PUT", path, page.token, json=consultant, if_match=version)
    return RedirectResponse(f"/dealers?changed={consultant_id}", 303)
