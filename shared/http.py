"""What every HTTP process serves (/healthz, /readyz, /metrics), the ops-token check, and how
each one runs (`serve`)."""

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry

from shared.audit import Editor
from shared.metrics import CONTENT_TYPE, render
from shared.ops_roles import OpsIdentity, Role, ops_identities

ReadinessCheck = Callable[[], Awaitable[None]]
log = logging.getLogger(__name__)


class Degraded(Exception):
    """A dependency failing for less than its grace: reported, but the process stays ready."""


V1 = "/v1"  # the prefix of the services' ops APIs (ops_api.py)


def route_label(request: Request) -> str:
    """A request's route for metric labels: its template, not its path, so customer ids do not
    explode the label set. A route of a router included into `/v1` is the router's own (FastAPI
    keeps the original route), so its template lacks the prefix: it is put back, the label
    naming the path a caller uses."""
    template = getattr(request.scope.get("route"), "path", None)
    if template is None:
        return "unmatched"
    if request.url.path.startswith(V1 + "/") and not template.startswith(V1 + "/"):
        return V1 + template
    return template


def sustained_only(
    check: ReadinessCheck, grace_s: float, timeout_s: float = 1.5, clock: Callable[[], float] = time.monotonic
) -> ReadinessCheck:
    """`check`, failing readiness only once it has failed for `grace_s` with no success between:
    through a blip the process stays in its Service (its requests answer 503 with Retry-After, as
    designed, rather than connection errors from every replica at once); a sustained outage
    takes it out. Until its first success there is no grace: a process starting is not ready
    before it reached its dependency once."""
    failing_since: float | None = None
    succeeded = False

    async def tolerant() -> None:
        nonlocal failing_since, succeeded
        try:
            await asyncio.wait_for(check(), timeout_s)
        except Exception as error:
            if not succeeded:
                raise
            now = clock()
            failing_since = now if failing_since is None else failing_since
            if now - failing_since < grace_s:
                raise Degraded(
                    f"failing for {now - failing_since:.0f} s: {type(error).__name__}: {error}"
                ) from error
            raise
        failing_since, succeeded = None, True

    return tolerant


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
        ready = all(result == "ok" or result.startswith("degraded") for result in results)
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
    except Degraded as degraded:
        return f"degraded: {degraded}"[:200]
    except Exception as error:  # any failure means "not ready"; say which
        return f"failed: {type(error).__name__}: {error}"[:200]
    return "ok"


def require_ops_token(tokens: Iterable[str]) -> Callable[..., Awaitable[None]]:
    """A dependency answering 401 unless the request carries one of `tokens` (OPS_TOKENS
    entries, shared/ops_roles.py) as a bearer token; it keeps who it is in
    `request.state.ops_identity` for `require_role`."""
    identities = ops_identities(tokens)
    bearer = HTTPBearer(auto_error=False, description="ops token")

    async def check(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> None:
        given = (credentials.credentials if credentials else "").encode()
        # Compare against every token in constant time, so timing does not reveal a prefix.
        found = [i for i in identities if given and secrets.compare_digest(given, i.token.encode())]
        if not found:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or invalid ops token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.state.ops_identity = found[0]

    return check


def require_role(role: Role) -> Callable[..., Awaitable[None]]:
    """A dependency answering 403 unless the ops token's holder (checked before) has `role`."""

    async def check(request: Request) -> None:
        identity: OpsIdentity | None = getattr(request.state, "ops_identity", None)
        if identity is None or identity.role < role:
            held = identity.role.name if identity else "none"
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"needs the {role.name} role; this token is {held}"
            )

    return check


# Route dependencies: a change needs an operator; the plan and replays need an admin.
OPERATOR_ONLY = [Depends(require_role(Role.operator))]
ADMIN_ONLY = [Depends(require_role(Role.admin))]


@dataclass(frozen=True)
class Edit:
    """A change's who (for the audit trail) and the version it was made against (If-Match)."""

    editor: Editor
    if_match: int | None


async def edit_of(
    request: Request,
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description="the ETag of the version this change edits; 409 if it moved on since",
        ),
    ] = None,
) -> Edit:
    identity: OpsIdentity | None = getattr(request.state, "ops_identity", None)
    editor = Editor(identity.holder, identity.role.name) if identity else Editor("anonymous", "none")
    return Edit(editor, _version_of(if_match))


def _version_of(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isascii() or not tag.isdigit():
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, 'If-Match takes the ETag a GET of the item answered, e.g. "3"'
        )
    return int(tag)


def etag(version: int) -> str:
    return f'"{version}"'


def stale_version(what: str, current: int) -> HTTPException:
    """409 for a change made against a version that moved on (If-Match)."""
    return HTTPException(
        status.HTTP_409_CONFLICT,
        f"{what} changed since (now version {current}): read it again and re-apply the change",
        headers={"ETag": etag(current)} if current else None,
    )


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run an HTTP process until SIGTERM, its logs in our JSON format."""
    uvicorn.run(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=10)
