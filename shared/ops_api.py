"""The frame every ops API shares (scoring, tagging, campaign): a FastAPI app reading Redis,
with request metrics, health, readiness and Prometheus pages, a 503 for a Redis outage, and a
`/v1` router behind the ops token. The service adds its routes to the router, then includes it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.http import V1, operations_router, require_ops_token, route_label
from shared.metrics import LATENCY_BUCKETS
from shared.settings import ServiceSettings
from shared.web_assets import assets_dir, self_hosted_docs


def ops_api(
    *,
    service: str,
    title: str,
    description: str,
    settings: ServiceSettings,
    registry: CollectorRegistry,
    redis: Redis,
    before_metrics: Callable[[], Awaitable[None]] | None = None,
) -> tuple[FastAPI, APIRouter]:
    """The app and its `/v1` router; the app closes `redis` when it stops."""
    request_seconds = Histogram(
        f"pd_{service}_api_request_seconds",
        f"{title} API request latency",
        ["route", "status"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await redis.aclose()

    app = FastAPI(
        title=title,
        description=description,
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served from our own copy of Swagger UI below, not a CDN
        redoc_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},  # we export Prometheus
    )

    @app.exception_handler(RedisError)
    async def redis_unavailable(_: Request, error: RedisError) -> JSONResponse:
        # Everything here is a Redis read or write: an outage is the caller's cue to retry.
        return JSONResponse(
            {"detail": f"read model unavailable, retry: {type(error).__name__}: {error}"[:300]},
            status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "1"},
        )

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        request_seconds.labels(route_label(request), str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response

    self_hosted_docs(app, assets_dir(settings.web_assets_dir))

    async def redis_ready() -> None:
        await redis.ping()

    app.include_router(operations_router(registry, {"redis": redis_ready}, before_metrics=before_metrics))
    v1 = APIRouter(
        prefix=V1,
        dependencies=[Depends(require_ops_token(settings.ops_tokens))],
        responses={401: {"description": "missing or invalid ops token"}, 503: {"description": "Redis down"}},
    )
    return app, v1
