"""Campaigns: the list with status, a form to create and edit (the API's validation errors at
their fields), the audience estimate before launch, pause and resume, and stats per variant with
conversion, lift over the holdout and its confidence interval."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .. import forms
from ..ops_client import ApiError, SignedOut, refusal_of
from ..pages import CheckedForm, Page, PageOf, posted_values

router = APIRouter()
CampaignId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


async def _estimate(page: Page, audience: dict[str, Any]) -> int | None:
    """Customers in the audience now (the tagging API's segment count); None if it cannot say."""
    try:
        answer = await page.apis.tagging.get(
            "/v1/segments/count", page.token, forms.audience_filters(audience)
        )
    except SignedOut:
        raise
    except ApiError:
        return None
    return int(answer["count"])


def _form_page(page: Page, editing: str | None, values: dict[str, Any], **extra: Any) -> HTMLResponse:
    status_code = 422 if extra.get("errors") else 200
    return page.render(
        "campaign_form.html",
        status_code,
        nav="campaigns",
        editing=editing,
        values=values,
        errors=extra.pop("errors", {}),
        trigger_kinds=forms.TRIGGER_KINDS,
        action_kinds=forms.ACTION_KINDS,
        channels=forms.CHANNELS,
        **extra,
    )


@router.get("/campaigns", include_in_schema=False)
async def campaign_list(page: PageOf) -> HTMLResponse:
    listing, programme = await asyncio.gather(
        page.apis.campaign.get("/v1/campaigns", page.token),
        page.apis.campaign.get("/v1/programme/stats", page.token),
    )
    campaigns = sorted(listing["campaigns"], key=lambda c: (c["status"] != "active", c["id"]))
    return page.render(
        "campaigns.html",
        nav="campaigns",
        campaigns=campaigns,
        version=listing["version"],
        programme=programme,
        # Messaged first, the control group last: it is what the others are compared with.
        programme_groups=[
            (name, page.t(f"campaigns.programme_{name}"), programme["groups"][name])
            for name in ("treated", "control")
            if name in programme["groups"]
        ],
    )


@router.post("/campaigns/examples", include_in_schema=False)
async def add_examples(page: PageOf, _: CheckedForm) -> Response:
    await page.apis.campaign.call("POST", "/v1/campaigns/examples", page.token)
    return RedirectResponse("/campaigns", 303)


@router.get("/campaigns/new", include_in_schema=False)
async def new_form(page: PageOf) -> HTMLResponse:
    return _form_page(page, None, forms.new_campaign_form())


async def _submit(page: Page, form: CheckedForm, editing: str | None) -> Response:
    posted = posted_values(form)
    # The version the edit form was opened on: sent as If-Match, so a change saved by someone
    # else in between is refused rather than overwritten; carried along when the form is shown back.
    version = (posted.get("_version", [""])[0] or None) if editing is not None else None
    definition, errors = forms.campaign_of(posted)
    values = forms.campaign_form(definition)
    for name in forms.CAMPAIGN_JSON:
        if name in posted:  # shown back as typed, even where it is not JSON yet
            values[name] = posted[name][0]
    if editing is not None:
        definition["id"] = editing
    if errors:
        return _form_page(page, editing, values, errors=errors, version=version)
    if posted.get("intent", [""])[0] == "estimate":
        estimate = await _estimate(page, definition.get("audience", {}))
        return _form_page(page, editing, values, estimate=estimate, estimated=True, version=version)
    method, path = ("POST", "/v1/campaigns") if editing is None else ("PUT", f"/v1/campaigns/{editing}")
    fields = (*forms.CAMPAIGN_FIELDS, *forms.CAMPAIGN_GROUPS)
    refused = await refusal_of(
        page.apis.campaign, method, path, page.token, definition, fields, "id", if_match=version
    )
    if refused:
        return _form_page(page, editing, values, errors=refused, version=version)
    return RedirectResponse(f"/campaigns/{definition['id']}?saved=1", 303)


@router.post("/campaigns/new", include_in_schema=False)
async def create(page: PageOf, form: CheckedForm) -> Response:
    return await _submit(page, form, None)


@router.get("/campaigns/{campaign_id}/edit", include_in_schema=False)
async def edit_form(page: PageOf, campaign_id: CampaignId) -> HTMLResponse:
    definition, version = await page.apis.campaign.read_versioned(f"/v1/campaigns/{campaign_id}", page.token)
    return _form_page(page, campaign_id, forms.campaign_form(definition), version=version)


@router.post("/campaigns/{campaign_id}/edit", include_in_schema=False)
async def edit(page: PageOf, form: CheckedForm, campaign_id: CampaignId) -> Response:
    return await _submit(page, form, campaign_id)


@router.post("/campaigns/{campaign_id}/status", include_in_schema=False)
async def set_status(page: PageOf, form: CheckedForm, campaign_id: CampaignId) -> Response:
    """Pause or resume: the definition as it is, with the new status."""
    wanted = str(form.get("status"))
    if wanted in ("active", "paused"):
        path = f"/v1/campaigns/{campaign_id}"
        definition, version = await page.apis.campaign.read_versioned(path, page.token)
        definition["status"] = wanted
        # Against the version just read: a change saved in between is not overwritten (409).
        await page.apis.campaign.call("PUT", path, page.token, json=definition, if_match=version)
    back = str(form.get("back") or "")
    return RedirectResponse("/campaigns" if back == "list" else f"/campaigns/{campaign_id}", 303)


@router.get("/campaigns/{campaign_id}", include_in_schema=False)
async def campaign_page(page: PageOf, campaign_id: CampaignId, saved: bool = False) -> HTMLResponse:
    definition, stats = await asyncio.gather(
        page.apis.campaign.get(f"/v1/campaigns/{campaign_id}", page.token),
        page.apis.campaign.get(f"/v1/campaigns/{campaign_id}/stats", page.token),
    )
    estimate = await _estimate(page, definition.get("audience", {}))
    groups = stats.get("groups", {})
    return page.render(
        "campaign.html",
        nav="campaigns",
        campaign=definition,
        stats=stats,
        # Variants first, the holdout last: it is what the others are compared with.
        groups=[
            (name, page.name("reason", name) if name == "holdout" else name, group)
            for name, group in sorted(groups.items(), key=lambda item: (item[0] == "holdout", item[0]))
        ],
        estimate=estimate,
        saved=saved,
    )
