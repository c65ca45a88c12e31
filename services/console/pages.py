"""What every console route shares: the signed-in session, the CSRF check, and rendering a page
in the user's language. Routes get these as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from .i18n import negotiate, translator, value_namer
from .ops_client import OpsApis
from .session import LANG_COOKIE, SESSION_COOKIE, Session, SessionCodec, same_token
from .settings import ConsoleSettings

TEMPLATES = Path(__file__).parent / "templates"


class NotSignedIn(Exception):
    """No valid session: the handler sends the browser to the sign-in page, then back to `next`."""

    def __init__(self, next_path: str, expired: bool = False) -> None:
        super().__init__(next_path)
        self.next_path = next_path
        self.expired = expired


class FormExpired(Exception):
    """A form came back without this session's CSRF token (forged, or from an older session)."""


@dataclass
class Console:
    """The app's parts, on `app.state.console`; `apis` is set when the app starts."""

    settings: ConsoleSettings
    codec: SessionCodec
    templates: Jinja2Templates
    apis: OpsApis | None = None


def console_of(request: Request) -> Console:
    return request.app.state.console


def current_session(request: Request) -> Session:
    session = console_of(request).codec.unseal(request.cookies.get(SESSION_COOKIE))
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NotSignedIn(target, expired=SESSION_COOKIE in request.cookies)
    return session


SignedIn = Annotated[Session, Depends(current_session)]


def language_of(request: Request) -> str:
    return negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


@dataclass
class Page:
    """Renders templates for one request, in its language, with the session's CSRF token."""

    request: Request
    console: Console
    session: Session | None

    @property
    def apis(self) -> OpsApis:
        assert self.console.apis is not None, "the app has not started"
        return self.console.apis

    @property
    def token(self) -> str:
        assert self.session is not None
        return self.session.token

    @property
    def language(self) -> str:
        return language_of(self.request)

    @property
    def t(self) -> Callable[[str], str]:
        """The console's words, in the page's language."""
        return translator(self.language)

    @property
    def name(self) -> Callable[[str, str | None], str]:
        """Domain values in words, in the page's language."""
        return value_namer(self.language)

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        language = self.language
        here = self.request.url.path + (f"?{self.request.url.query}" if self.request.url.query else "")
        return self.console.templates.TemplateResponse(
            self.request,
            template,
            {
                "t": translator(language),
                "v": value_namer(language),
                "lang": language,
                "other_lang": "en" if language == "zh-CN" else "zh-CN",
                "here": quote(here, safe=""),
                "csrf": self.session.csrf if self.session else "",
                "signed_in": self.session is not None,
                "refresh_s": self.console.settings.refresh_s,
                **context,
            },
            status_code=status_code,
        )


def signed_in_page(request: Request, session: SignedIn) -> Page:
    return Page(request, console_of(request), session)


PageOf = Annotated[Page, Depends(signed_in_page)]


async def checked_form(request: Request, session: SignedIn) -> FormData:
    """The posted form, once its CSRF token is this session's."""
    form = await request.form()
    given = form.get("csrf")
    if not isinstance(given, str) or not same_token(given, session.csrf):
        raise FormExpired
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def posted_values(form: FormData) -> dict[str, list[str]]:
    """Every field of a posted form with all its values (checkboxes post one per ticked box)."""
    return {key: [str(value) for value in form.getlist(key)] for key in form}


def local_path(target: str | None, fallback: str = "/") -> str:
    """`target` if it is a path on this site, else `fallback`: no open redirects via `next`."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return fallback
