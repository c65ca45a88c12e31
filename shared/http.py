"""What every HTTP process serves (/healthz, /readyz, /metrics), the ops-token check, and how
each one runs (`serve`)."""

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry

from shared.metrics import CONTENT_TYPE, render

ReadinessCheck = Callable[[], Awaitable[None]]
log = logging.getLogger(__name__)


def operations_router(
    registry: CollectorRegistry,
    checks: dict[str, ReadinessCheck],
    timeout_s: float = 2.0,
    before_metrics: Callable[[], Awaitable[None]] | None = None,
) -> APIRouter:
    """`before_metrics`: brings gauges computed from the read model up to date before a scrape."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="The process can reach its broker and Redis")
    async def readyz(response: Response) -> dict[str, object]:
        results = await asyncio.gather(*(_check(check, timeout_s) for check in checks.values()))
        report = dict(zip(checks, results, strict=True))
        ready = all(result == "ok" for result in results)
        response.status_code = status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "ready" if ready else "not_ready", "checks": report}

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        if before_metrics is not None:
            try:
                await asyncio.wait_for(before_metrics(), timeout_s)
            except Exception:  # the process's own metrics still matter when Redis does not answer
                log.warning("could not update read-model gauges before a scrape", exc_info=True)
        return Response(render(registry), media_type=CONTENT_TYPE)

    return router


async def _check(check: ReadinessCheck, timeout_s: float) -> str:
    try:
        await asyncio.wait_for(check(), timeout_s)
    except Exception as error:  # any failure means "not ready"; say which
        return f"failed: {type(error).__name__}: {error}"[:200]
    return "ok"


def require_ops_token(tokens: Iterable[str]) -> Callable[..., Awaitable[None]]:
    """A dependency answering 401 unless the request carries one of `tokens` as a bearer token."""
    allowed = tuple(tokens)
    bearer = HTTPBearer(auto_error=False, description="ops token")

    async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        given = credentials.credentials if credentials else ""
        # Compare against every token in constant time, so timing does not reveal a prefix.
        if not given or not any(secrets.compare_digest(given, token) for token in allowed):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or invalid ops token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run an HTTP process until SIGTERM, its logs in our JSON format."""
    uvicorn.run(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=10)
