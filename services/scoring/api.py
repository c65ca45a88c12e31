"""Scoring HTTP API (port 8002): scores and their forecast, latest events, the lead concentration
matrix, leads and the scoring plan.

Stateless: every answer is read from the Redis read model the worker writes and decayed to now
with the plan in force, so nothing here goes stale between events. `python -m services.scoring.api`.
Routes by what they serve: customer_routes.py, matrix_routes.py, plan_routes.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from shared.clock import clock_of, utc_now
from shared.http import serve
from shared.logging import configure_logging
from shared.metrics import process_registry
from shared.ops_api import ops_api
from shared.redis import create_redis
from shared.settings import load_settings

from .customer_routes import customer_router
from .matrix_routes import MatrixReader, matrix_router
from .plan_routes import plan_router
from .settings import ScoringSettings


def create_app(
    settings: ScoringSettings,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    registry = registry if registry is not None else process_registry()
    redis = create_redis(settings.redis_url)
    matrix = MatrixReader(redis, registry, clock)
    app, v1 = ops_api(
        service="scoring",
        title="Scoring",
        description="Customers' intent scores, decayed to the moment of the request, and where "
        "decay alone takes them; their latest events; the lead concentration matrix (band x "
        "activity), the leads in a cell; and the scoring plan, with a check of a candidate plan.",
        settings=settings,
        registry=registry,
        redis=redis,
        before_metrics=matrix.update_gauges,
    )
    v1.include_router(customer_router(redis, clock))
    v1.include_router(matrix_router(redis, matrix, clock))
    v1.include_router(plan_router(redis))
    app.include_router(v1)
    return app


def main() -> None:
    settings = load_settings(ScoringSettings, "scoring-api")
    configure_logging("scoring-api", settings.log_level)
    serve(create_app(settings, clock=clock_of(settings)), settings.http_host, settings.scoring_port)


if __name__ == "__main__":
    main()
