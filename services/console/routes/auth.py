"""Signing in and out, and the language switch.

Sign-in checks the token against an ops API (the APIs own the list of tokens), then keeps it in the
encrypted session cookie: HttpOnly (no script can read it), SameSite=Strict (no other site can
send it). The sign-in form has its own CSRF token in a short-lived cookie, since there is no
session yet to hold one.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from ..i18n import LANGUAGES
from ..ops_client import ApiError, SignedOut
from ..pages import CheckedForm, Page, console_of, local_path
from ..session import LANG_COOKIE, LOGIN_COOKIE, SESSION_COOKIE, same_token

router = APIRouter()
LOGIN_FORM_MAX_AGE_S = 3600


def _login_page(request: Request, error_key: str | None = None, status_code: int = 200) -> Response:
    page = Page(request, console_of(request), None)
    nonce = secrets.token_urlsafe(32)
    response = page.render(
        "login.html",
        status_code,
        login_csrf=nonce,
        next_path=local_path(request.query_params.get("next")),
        error_key=error_key or ("login.expired" if request.query_params.get("expired") else None),
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_FORM_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=console_of(request).settings.cookie_secure,
    )
    return response


@router.get("/login", include_in_schema=False)
async def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login", include_in_schema=False)
async def login(
    request: Request,
    token: Annotated[str, Form(max_length=512)],
    csrf: Annotated[str, Form(max_length=128)],
    next_path: Annotated[str, Form(alias="next", max_length=2048)] = "/",
) -> Response:
    console = console_of(request)
    if not same_token(request.cookies.get(LOGIN_COOKIE), csrf):
        return _login_page(request, "csrf.failed", 403)
    token = token.strip()
    try:
        # The cheapest call behind the ops token: it answers 401 for a token the APIs refuse.
        assert console.apis is not None
        await console.apis.scoring.get("/v1/scoring-plan", token)
    except SignedOut:
        return _login_page(request, "login.refused", 401)
    except ApiError:
        return _login_page(request, "login.unreachable", 503)
    response = RedirectResponse(local_path(next_path), 303)
    response.set_cookie(
        SESSION_COOKIE,
        console.codec.seal(console.codec.open(token)),
        max_age=console.codec.max_age_s,
        httponly=True,
        samesite="strict",
        secure=console.settings.cookie_secure,
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout", include_in_schema=False)
async def logout(_: CheckedForm) -> Response:
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/lang", include_in_schema=False)
async def switch_language(
    to: str = "zh-CN", next_path: Annotated[str, Query(alias="next", max_length=2048)] = "/"
) -> Response:
    """A preference, not an action on data: a link is enough."""
    response = RedirectResponse(local_path(next_path), 303)
    if to in LANGUAGES:
        response.set_cookie(LANG_COOKIE, to, max_age=365 * 86400, samesite="lax", httponly=True)
    return response
