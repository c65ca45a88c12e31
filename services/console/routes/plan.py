"""The scoring plan: view and edit it (validated by the scoring API, errors at their fields), and
see where the paper's calibration point (5 clicks + 1 favourite in a day, about 70%) lands under
the weights on the form before saving them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .. import forms
from ..ops_client import ApiError, SignedOut, refusal_of
from ..pages import CheckedForm, Page, PageOf, posted_values

router = APIRouter()


async def _check(page: Page, plan: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
    """(calibration, None) for a valid plan, (None, the API's 422 detail) for an invalid one."""
    try:
        return await page.apis.scoring.call("POST", "/v1/scoring-plan/check", page.token, json=plan), None
    except SignedOut:
        raise
    except ApiError as error:
        if error.status != 422:
            raise
        return None, error.detail


def _render(page: Page, version: int, values: dict[str, Any], **extra: Any) -> HTMLResponse:
    errors = extra.pop("errors", {})
    return page.render(
        "plan.html",
        422 if errors else 200,
        nav="plan",
        version=version,
        values=values,
        errors=errors,
        **extra,
    )


@router.get("/scoring-plan", include_in_schema=False)
async def plan_page(page: PageOf, saved: bool = False) -> HTMLResponse:
    current = await page.apis.scoring.get("/v1/scoring-plan", page.token)
    check, _ = await _check(page, current["plan"])
    return _render(page, current["version"], forms.plan_form(current["plan"]), check=check, saved=saved)


@router.post("/scoring-plan", include_in_schema=False)
async def plan_submit(page: PageOf, form: CheckedForm) -> Response:
    posted = posted_values(form)
    current = await page.apis.scoring.get("/v1/scoring-plan", page.token)
    shown = list(current["plan"].get("weights", {}))
    plan, errors = forms.plan_of(posted, shown)
    # The form shown back holds what was typed, valid or not.
    typed = (*forms.PLAN_SECTIONS, *forms.PLAN_SCALARS)
    values = forms.plan_form(current["plan"])
    values |= {k: v[0] for k, v in posted.items() if k in typed or k.startswith("bands.")}
    values["weights"] = {w: posted.get(f"weights.{w}", [""])[0] for w in shown} | {
        k: str(v) for k, v in plan["weights"].items() if k not in shown
    }
    fields = forms.plan_fields(values["weights"])
    if errors:
        return _render(page, current["version"], values, errors=errors)
    check, detail = await _check(page, plan)
    if detail is not None:
        return _render(page, current["version"], values, errors=forms.errors_at_fields(detail, fields))
    if posted.get("intent", [""])[0] == "preview":
        return _render(page, current["version"], values, check=check, previewed=True)
    # Against the version the form showed: a plan saved by someone else since is not overwritten.
    shown_version = posted.get("_version", [""])[0]
    refused = await refusal_of(
        page.apis.scoring,
        "PUT",
        "/v1/scoring-plan",
        page.token,
        plan,
        fields,
        "_form",
        if_match=f'"{shown_version}"' if shown_version.isdigit() else None,
    )
    if refused:
        return _render(page, current["version"], values, errors=refused)
    return RedirectResponse("/scoring-plan?saved=1", 303)
