"""Tag rules: the rules in force, and a form to add, change or delete one (validated by the
tagging API, its errors shown at their fields)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .. import forms, views
from ..ops_client import refusal_of
from ..pages import CheckedForm, Page, PageOf, posted_values

router = APIRouter()
Tag = Annotated[str, Path(min_length=1, max_length=64)]
CHOICES = {"layers": views.LAYERS, "orientations": views.ORIENTATIONS, "stages": views.STAGES}


def _form_page(
    page: Page, editing: str | None, values: dict[str, Any], errors: Any = None, version: str | None = None
) -> HTMLResponse:
    return page.render(
        "rule_form.html",
        422 if errors else 200,
        nav="rules",
        editing=editing,
        values=values,
        errors=errors or {},
        choices=CHOICES,
        version=version,
    )


@router.get("/tag-rules", include_in_schema=False)
async def rule_list(page: PageOf, deleted: bool = False) -> HTMLResponse:
    rules = await page.apis.tagging.get("/v1/tag-rules", page.token)
    return page.render(
        "rules.html", nav="rules", rules=rules["rules"], version=rules["version"], deleted=deleted
    )


@router.get("/tag-rules/new", include_in_schema=False)
async def new_form(page: PageOf) -> HTMLResponse:
    return _form_page(page, None, forms.rule_form({}))


@router.get("/tag-rules/{tag}/edit", include_in_schema=False)
async def edit_form(page: PageOf, tag: Tag) -> HTMLResponse:
    rule, version = await page.apis.tagging.read_versioned(f"/v1/tag-rules/{tag}", page.token)
    return _form_page(page, tag, forms.rule_form(rule), version=version)


async def _submit(page: Page, form: CheckedForm, editing: str | None) -> Response:
    posted = posted_values(form)
    version = (posted.get("_version", [""])[0] or None) if editing is not None else None  # If-Match
    rule, errors = forms.rule_of(posted)
    if editing is not None:
        rule["tag"] = editing
    values = forms.rule_form(rule) | {"counts": posted.get("counts", [""])[0]}
    if errors:
        return _form_page(page, editing, values, errors, version)
    method, path = ("POST", "/v1/tag-rules") if editing is None else ("PUT", f"/v1/tag-rules/{editing}")
    refused = await refusal_of(
        page.apis.tagging, method, path, page.token, rule, forms.RULE_FIELDS, "tag", if_match=version
    )
    if refused:
        return _form_page(page, editing, values, refused, version)
    return RedirectResponse("/tag-rules", 303)


@router.post("/tag-rules/new", include_in_schema=False)
async def create(page: PageOf, form: CheckedForm) -> Response:
    return await _submit(page, form, None)


@router.post("/tag-rules/{tag}/edit", include_in_schema=False)
async def edit(page: PageOf, form: CheckedForm, tag: Tag) -> Response:
    return await _submit(page, form, tag)


@router.post("/tag-rules/{tag}/delete", include_in_schema=False)
async def delete(page: PageOf, _: CheckedForm, tag: Tag) -> Response:
    await page.apis.tagging.call("DELETE", f"/v1/tag-rules/{tag}", page.token)
    return RedirectResponse("/tag-rules?deleted=1", 303)
