"""The console's process: `create_app(settings)` wires sessions, templates, the ops API client and
the routes; `main()` runs it on CONSOLE_PORT (8005). `pd-console` / `python -m services.console.app`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request, Response, status
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CollectorRegistry, Histogram

from shared.http import operations_router, route_label, serve
from shared.logging import configure_logging
from shared.metrics import LATENCY_BUCKETS, process_registry
from shared.settings import load_settings
from shared.web_assets import assets_dir, vendor_router

from . import views
from .ops_client import ApiError, OpsApis, SignedOut
from .pages import TEMPLATES, Console, FormExpired, NotSignedIn, Page
from .routes import auth, campaigns, customers, dead_letters, dealers, overview, plan, rules, segments
from .session import SESSION_COOKIE, SessionCodec
from .settings import ConsoleSettings

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"

# Only this machine: our own scripts, styles and images; inline styles for the chart library's
# canvas layout. No inline script, nothing from another host.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def templates() -> Jinja2Templates:
    found = Jinja2Templates(directory=TEMPLATES)
    found.env.filters["china_time"] = views.china_time
    return found


def create_app(settings: ConsoleSettings, registry: CollectorRegistry | None = None) -> FastAPI:
    registry = registry if registry is not None else process_registry()
    if settings.console_session_secret is None:
        log.warning("CONSOLE_SESSION_SECRET is not set: sessions end when this process restarts")
    console = Console(
        settings=settings,
        codec=SessionCodec(settings.console_session_secret, int(settings.session_hours * 3600)),
        templates=templates(),
    )
    request_seconds = Histogram(
        "pd_console_request_seconds",
        "Console page latency, including the ops API calls behind it",
        ["route", "status"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        async with httpx.AsyncClient(timeout=settings.api_timeout_s, limits=limits) as http:
            console.apis = OpsApis.over(
                http,
                {
                    "ingest": settings.ingest_url,
                    "scoring": settings.scoring_url,
                    "tagging": settings.tagging_url,
                    "campaign": settings.campaign_url,
                },
            )
            yield

    app = FastAPI(
        title="Console",
        lifespan=lifespan,
        docs_url=None,  # the console is pages, not an API
        redoc_url=None,
        openapi_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.console = console

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        elapsed = time.perf_counter() - started
        request_seconds.labels(route_label(request), str(response.status_code)).observe(elapsed)
        # Server time, for the browser's devtools and for bench/console.py.
        response.headers["Server-Timing"] = f"app;dur={elapsed * 1000:.1f}"
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers["Cache-Control"] = "no-store"  # pages carry customer data
        return response

    @app.exception_handler(NotSignedIn)
    async def sign_in_first(_: Request, error: NotSignedIn) -> RedirectResponse:
        expired = "&expired=1" if error.expired else ""
        response = RedirectResponse(f"/login?next={quote(error.next_path, safe='')}{expired}", 303)
        if error.expired:
            response.delete_cookie(SESSION_COOKIE)
        return response

    @app.exception_handler(SignedOut)
    async def token_withdrawn(request: Request, _: SignedOut) -> RedirectResponse:
        return await sign_in_first(request, NotSignedIn(request.url.path, expired=True))

    def message_page(request: Request) -> Page:
        """A page for an error, with the navigation when the browser has a session."""
        return Page(request, console, console.codec.unseal(request.cookies.get(SESSION_COOKIE)))

    @app.exception_handler(FormExpired)
    async def form_expired(request: Request, _: FormExpired) -> Response:
        return message_page(request).render(
            "message.html", status.HTTP_403_FORBIDDEN, message_key="csrf.failed"
        )

    @app.exception_handler(ApiError)
    async def api_failed(request: Request, error: ApiError) -> Response:
        # A route that did not handle an API's failure itself: say which API, keep the session.
        log.warning("ops api call failed", extra={"service": error.service, "status": error.status})
        # A role that may not do this (403) is the user's answer; anything else is the API's fault.
        code = status.HTTP_403_FORBIDDEN if error.status == 403 else status.HTTP_502_BAD_GATEWAY
        return message_page(request).render("message.html", code, api_error=error)

    app.include_router(operations_router(registry, {}))
    app.include_router(vendor_router(assets_dir(settings.web_assets_dir)))
    app.mount("/assets/console", StaticFiles(directory=STATIC), name="console-assets")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:  # browsers ask for it on pages that do not name one
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    for module in (auth, overview, customers, segments, campaigns, rules, plan, dealers, dead_letters):
        app.include_router(module.router)
    return app


def main() -> None:
    settings = load_settings(ConsoleSettings, "console")
    configure_logging("console", settings.log_level)
    serve(create_app(settings), settings.http_host, settings.console_port)


if __name__ == "__main__":
    main()
