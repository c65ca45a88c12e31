"""Customer 360: find a customer by any identity, then everything the APIs know of them.

The search is a POST, so an identity (a phone above all) never lands in a URL, a browser's
history or an access log; ingest hashes a phone before it looks it up and keeps nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shared.events import IdentityType

from ..ops_client import ApiError, SignedOut, gather
from ..pages import CheckedForm, PageOf

router = APIRouter()
CUSTOMER_ID = "customer_id"
IDENTITY_TYPES = (CUSTOMER_ID, *(t.value for t in IdentityType))
CustomerId = Annotated[str, Path(min_length=1, max_length=256)]


@router.get("/customers", include_in_schema=False)
async def search_form(page: PageOf) -> HTMLResponse:
    return page.render("customer_search.html", nav="customers", types=IDENTITY_TYPES)


@router.post("/customers/find", include_in_schema=False)
async def find(
    page: PageOf,
    _: CheckedForm,
    identity_type: Annotated[str, Form()],
    value: Annotated[str, Form(max_length=256)],
) -> Response:
    value = value.strip()
    error_key = None
    if identity_type == CUSTOMER_ID and value:
        return RedirectResponse(f"/customers/{value}", 303)
    if identity_type not in IDENTITY_TYPES or not value:
        error_key = "customers.invalid"
    else:
        try:
            found = await page.apis.ingest.call(
                "POST", "/v1/identities/lookup", page.token, json={"type": identity_type, "value": value}
            )
            return RedirectResponse(f"/customers/{found['customer_id']}", 303)
        except SignedOut:
            raise
        except ApiError as error:
            if error.status == 404:
                error_key = "customers.not_found"
            elif error.status == 422:
                error_key = "customers.invalid"
            else:
                raise
    return page.render(
        "customer_search.html",
        404 if error_key == "customers.not_found" else 422,
        nav="customers",
        types=IDENTITY_TYPES,
        error_key=error_key,
        chosen_type=identity_type,
        # The value is shown back only when it is not a phone: a phone is never echoed.
        chosen_value="" if identity_type == IdentityType.phone.value else value,
    )


@router.get("/customers/{customer_id}", include_in_schema=False)
async def customer(page: PageOf, customer_id: CustomerId) -> HTMLResponse:
    apis, token = page.apis, page.token
    base = f"/v1/customers/{customer_id}"
    calls = {
        "score": apis.scoring.get(f"{base}/score", token),
        "forecast": apis.scoring.get(f"{base}/forecast", token, {"days": 28, "step_hours": 24}),
        "events": apis.scoring.get(f"{base}/events", token, {"limit": 20}),
        "profile": apis.tagging.get(f"{base}/profile", token),
        "actions": apis.campaign.get(f"{base}/actions", token),
        "consent": apis.campaign.get(f"{base}/consent", token),
    }
    answers = await gather(calls)
    # A part that failed shows as missing; a 404 just means that service has not seen them yet.
    found = {part: None if isinstance(a, ApiError) else a for part, a in answers.items()}
    unavailable = [a.service for a in answers.values() if isinstance(a, ApiError) and a.status != 404]
    known = found["score"] is not None or found["profile"] is not None
    actions = found["actions"] or []
    return page.render(
        "customer.html",
        200 if known else 404,
        nav="customers",
        customer_id=(found["score"] or found["profile"] or {}).get("customer_id", customer_id),
        asked_id=customer_id,
        known=known,
        unavailable=sorted(set(unavailable)),
        latest_actions=list(reversed(actions))[:50],  # newest first
        **found,
    )
