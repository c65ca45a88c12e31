"""Ingest HTTP API (port 8001): `create_app(settings)` builds and wires the whole service."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Path, Request, Security, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field, WithJsonSchema
from redis.exceptions import RedisError

from shared.events import (
    IdentityType,
    IngestedEvent,
    InvalidEvent,
    TouchpointEvent,
    event_rule_errors,
    validate_event,
)
from shared.http import operations_router, require_ops_token
from shared.metrics import process_registry
from shared.redis import create_redis
from shared.topics import IDENTITY_MERGES, TOUCHPOINT_EVENTS, contract_topics

from .api_keys import ApiKeys
from .body_limit import BodyLimit
from .broker import BrokerLink
from .identities import api_key_id, identity_key, phone_identity, protect_event
from .identity_store import IdentityStore
from .merge_relay import MergeRelay
from .metrics import IngestMetrics
from .pipeline import Acknowledged, BrokerUnavailable, IngestPipeline, Overloaded, PendingEvent
from .settings import IngestSettings


class EventResult(BaseModel):
    event_id: str
    customer_id: str
    duplicate: bool = Field(description="seen before: acknowledged, not processed again")


class IngestResponse(BaseModel):
    accepted: int
    results: list[EventResult]


class BatchResult(EventResult):
    index: int = Field(description="position of the event in the request")


class Rejection(BaseModel):
    index: int
    errors: list[dict[str, Any]]


class BatchResponse(BaseModel):
    accepted: int
    results: list[BatchResult]
    rejected: list[Rejection]


class BatchRequest(BaseModel):
    # Each event is validated on its own, so one bad event does not sink the batch.
    events: list[Annotated[Any, WithJsonSchema({"$ref": "#/components/schemas/TouchpointEvent"})]]


class IdentityLookup(BaseModel):
    customer_id: str
    identities: dict[str, list[str]]


class _Services:
    """What the lifespan wires up; the routes read it."""

    store: IdentityStore
    pipeline: IngestPipeline


def create_app(
    settings: IngestSettings,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    registry = registry if registry is not None else process_registry()
    metrics = IngestMetrics(registry)
    keys = ApiKeys(settings.ingest_api_keys)
    redis = create_redis(settings.redis_url)
    broker = BrokerLink(
        settings.kafka_bootstrap_servers,
        settings.produce_timeout_s,
        [
            t
            for t in contract_topics(settings.topic_partitions)
            if t.name in (TOUCHPOINT_EVENTS, IDENTITY_MERGES)
        ],
    )
    services = _Services()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store = IdentityStore(redis, settings.dedupe_ttl_s)
        relay = MergeRelay(store, lambda key, value: broker.send(IDENTITY_MERGES, key, value))
        services.store = store
        services.pipeline = IngestPipeline(
            store,
            lambda key, value: broker.send(TOUCHPOINT_EVENTS, key, value),
            relay.nudge,
            clock,
            produce_timeout_s=settings.produce_timeout_s,
            max_queued_events=settings.max_queued_events,
        )
        tasks = [asyncio.create_task(job) for job in (broker.connect(), services.pipeline.run(), relay.run())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await broker.close()
            await redis.aclose()

    app = FastAPI(
        title="Ingest",
        description="Touchpoints post interaction events here. A 202 means the event is on "
        f"`{TOUCHPOINT_EVENTS}`, keyed by the resolved customer.",
        version="1",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    async def redis_ready() -> None:
        await redis.ping()

    app.include_router(operations_router(registry, {"kafka": broker.check, "redis": redis_ready}))

    touchpoint_key = APIKeyHeader(name="X-Api-Key", auto_error=False, description="touchpoint key")

    def allowed_sources(key: str | None = Security(touchpoint_key)) -> frozenset[str]:
        sources = keys.sources_for(key)
        if sources is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown X-Api-Key")
        return sources

    def pending(event: TouchpointEvent, key: str, received_at: datetime) -> PendingEvent:
        """Protect PII and stamp the event; raises InvalidEvent for a bad phone."""
        identities, properties = protect_event(event, settings.phone_hash_salt, settings.default_phone_region)
        record = IngestedEvent.model_construct(
            **{**event.__dict__, "identities": identities, "properties": properties},
            customer_id="",
            received_at=received_at,
            api_key_id=api_key_id(key),
        )
        return PendingEvent(record, sorted(identity_key(k.value, v) for k, v in identities.items()))

    async def submit(events: list[PendingEvent]) -> list[Acknowledged]:
        try:
            acknowledged = await services.pipeline.submit(events)
        except (BrokerUnavailable, Overloaded, RedisError) as error:
            for p in events:
                metrics.count(p.event.source, p.event.type, "unavailable")
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"not accepted, retry: {error}",
                headers={"Retry-After": "1"},
            ) from error
        for p, ack in zip(events, acknowledged, strict=True):
            metrics.count(p.event.source, p.event.type, "duplicate" if ack.duplicate else "accepted")
        return acknowledged

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=IngestResponse,
        tags=["events"],
        responses={401: {}, 403: {}, 413: {}, 422: {}, 503: {}},
    )
    async def post_event(
        request: Request,
        event: Annotated[TouchpointEvent, Body()],
        sources: Annotated[frozenset[str], Depends(allowed_sources)],
    ) -> IngestResponse:
        """Accept one event."""
        started = time.perf_counter()
        if not keys.may_write(sources, event.source):
            metrics.count(event.source, event.type, "forbidden")
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this key may not write source {event.source!r}")
        try:
            if errors := event_rule_errors(event, clock()):
                raise InvalidEvent(errors)
            one = pending(event, request.headers["x-api-key"], clock())
        except InvalidEvent as invalid:
            metrics.count(event.source, event.type, "invalid")
            raise RequestValidationError(
                [{**e, "loc": ["body", *e["loc"]]} for e in invalid.errors]
            ) from None
        [ack] = await submit([one])
        metrics.request_seconds.labels("event").observe(time.perf_counter() - started)
        return IngestResponse(accepted=1, results=[EventResult(**ack.__dict__)])

    @app.post(
        "/v1/events/batch",
        status_code=202,
        response_model=BatchResponse,
        tags=["events"],
        responses={401: {}, 413: {}, 422: {"description": "every event was rejected"}, 503: {}},
    )
    async def post_batch(
        request: Request,
        batch: BatchRequest,
        sources: Annotated[frozenset[str], Depends(allowed_sources)],
    ) -> Any:
        """Accept up to 500 events; invalid or forbidden ones are listed in `rejected`."""
        started = time.perf_counter()
        if not 1 <= len(batch.events) <= settings.max_batch_events:
            raise RequestValidationError(
                [
                    {
                        "loc": ["body", "events"],
                        "type": "batch_size",
                        "msg": f"a batch holds 1 to {settings.max_batch_events} events,"
                        f" not {len(batch.events)}",
                    }
                ]
            )
        now = clock()
        key = request.headers["x-api-key"]
        accepted: list[tuple[int, PendingEvent]] = []
        rejected: list[Rejection] = []
        for index, raw in enumerate(batch.events):
            try:
                event = validate_event(raw, now)
                if not keys.may_write(sources, event.source):
                    metrics.count(event.source, event.type, "forbidden")
                    rejected.append(
                        Rejection(
                            index=index,
                            errors=[
                                {
                                    "loc": ["source"],
                                    "type": "forbidden_source",
                                    "msg": f"this key may not write source {event.source!r}",
                                }
                            ],
                        )
                    )
                    continue
                accepted.append((index, pending(event, key, now)))
            except InvalidEvent as invalid:
                fields = raw if isinstance(raw, dict) else {}
                metrics.count(fields.get("source"), fields.get("type"), "invalid")
                rejected.append(Rejection(index=index, errors=invalid.errors))
        acknowledged = await submit([p for _, p in accepted]) if accepted else []
        response = BatchResponse(
            accepted=len(acknowledged),
            results=[
                BatchResult(index=i, **ack.__dict__)
                for (i, _), ack in zip(accepted, acknowledged, strict=True)
            ],
            rejected=rejected,
        )
        metrics.request_seconds.labels("batch").observe(time.perf_counter() - started)
        if not accepted:
            return JSONResponse(response.model_dump(), status_code=422)
        return response

    @app.get(
        "/v1/identities/{identity_type}/{value}",
        response_model=IdentityLookup,
        tags=["identities"],
        dependencies=[Depends(require_ops_token(settings.ops_tokens))],
        responses={401: {}, 404: {}},
    )
    async def lookup_identity(
        identity_type: IdentityType, value: Annotated[str, Path(max_length=256)]
    ) -> IdentityLookup:
        """The customer an identifier belongs to (the survivor, after merges). A phone may be
        given raw (it is hashed here, never stored) or as its hash."""
        if identity_type is IdentityType.phone:
            try:
                value = phone_identity(value, settings.phone_hash_salt, settings.default_phone_region)
            except ValueError as error:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(error)) from None
        found = await services.store.lookup(identity_key(identity_type.value, value))
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no customer has this identifier")
        customer_id, identities = found
        return IdentityLookup(customer_id=customer_id, identities=identities)

    return app
