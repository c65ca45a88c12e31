"""Ingest HTTP API (port 8001): `create_app(settings)` builds and wires the whole service."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from shared.contents import Catalogue, with_catalogue
from shared.events import (
    IdentityType,
    InvalidEvent,
    TouchpointEvent,
    validate_event,
    validate_events,
)
from shared.http import ADMIN_ONLY, Edit, edit_of, operations_router, require_ops_token, sustained_only
from shared.metrics import process_registry
from shared.redis import create_redis
from shared.topics import IDENTITY_MERGES, TOUCHPOINT_EVENTS, contract_topics, dead_letter_topic
from shared.web_assets import assets_dir, self_hosted_docs

from .api_keys import ApiKeys, Scope
from .broker import BrokerLink
from .catalogue import keep_catalogue
from .erasure import Eraser
from .erasure_routes import erasure_router
from .event_counts import MAX_MINUTES, EventsPerMinute, events_per_minute
from .identities import api_key_id, identity_key, phone_identity, protect_event, scrub_text
from .identity_store import IdentityConflict, IdentityLimits, IdentityStore, UnbindRefused
from .merge_relay import JoinRelay, MergeRelay
from .metrics import IngestMetrics
from .pipeline import Acknowledged, BrokerUnavailable, IngestPipeline, Overloaded, PendingEvent
from .settings import IngestSettings
from .wecom_routes import wecom_router

log = logging.getLogger(__name__)


class EventResult(BaseModel):
    event_id: str
    customer_id: str | None = Field(description="null unless the key may see customers (`sees_customers`)")
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


# The batch body, for the docs only: each event is parsed and validated on its own, so that one
# bad event does not sink the batch.
BATCH_SCHEMA = {
    "type": "object",
    "required": ["events"],
    "properties": {
        "events": {
            "type": "array",
            "minItems": 1,
            "maxItems": 500,
            "items": {"$ref": "#/components/schemas/TouchpointEvent"},
        }
    },
}


class IdentityQuery(BaseModel):
    type: IdentityType
    value: str = Field(min_length=1, max_length=256)


class UnbindRequest(BaseModel):
    identities: list[IdentityQuery] = Field(min_length=1, max_length=50)


class Unbound(BaseModel):
    customer_id: str = Field(description="the new customer the identifiers now belong to")
    unbound_from: str


class IdentityLookup(BaseModel):
    customer_id: str
    identities: dict[str, list[str]]


@dataclass(frozen=True)
class Caller:
    """An authenticated touchpoint: what its key may write, and the key's fingerprint."""

    scope: Scope
    key_id: str

    def refusal(self, event: TouchpointEvent) -> dict[str, Any] | None:
        """Why this key may not write the event (a field-level error), or None."""
        scope = self.scope
        if not scope.may_write_source(event.source):
            return {
                "loc": ["source"],
                "type": "forbidden_source",
                "msg": f"this key may not write source {event.source!r}",
            }
        if not scope.may_write_type(event.type):
            return {
                "loc": ["type"],
                "type": "forbidden_type",
                "msg": f"this key may not write {event.type!r} events",
            }
        if forbidden := scope.forbidden_identities([kind.value for kind in event.identities]):
            return {
                "loc": ["identities", forbidden[0]],
                "type": "forbidden_identity",
                "msg": f"this key may not send {', '.join(forbidden)} identities",
            }
        return None

    def result(self, ack: Acknowledged) -> dict[str, Any]:
        """What the key is told of an accepted event: the customer only if it may see customers."""
        return {
            "event_id": ack.event_id,
            "customer_id": (ack.customer_id or None) if self.scope.sees_customers else None,  # "": erased
            "duplicate": ack.duplicate,
        }


def _json_body(body: bytes) -> Any:
    # Bodies are parsed here with orjson rather than by FastAPI: cheaper per event, and a batch
    # must validate each event on its own.
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestValidationError(
            [{"loc": ["body"], "msg": f"invalid JSON: {error}", "type": "json_invalid"}]
        ) from None


def _json_request_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "security": [{"TouchpointKey": []}],
    }


def _document_envelope(app: FastAPI) -> None:
    """Put TouchpointEvent (and what it refers to) and the touchpoint key in the OpenAPI spec."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()  # also caches it as app.openapi_schema
            envelope = TouchpointEvent.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(envelope.pop("$defs", {}))
            schemas["TouchpointEvent"] = envelope
            spec["components"].setdefault("securitySchemes", {})["TouchpointKey"] = {
                "type": "apiKey",
                "in": "header",
                "name": "X-Api-Key",
                "description": "touchpoint key",
            }
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _batch_events(body: bytes, max_events: int) -> list[Any]:
    """The `events` of a batch body; 422 for anything else."""
    batch = _json_body(body)
    events = batch.get("events") if isinstance(batch, dict) else None
    if not isinstance(events, list):
        raise RequestValidationError(
            [
                {
                    "loc": ["body", "events"],
                    "msg": "a batch is an object with a list of events",
                    "type": "missing",
                }
            ]
        )
    if not 1 <= len(events) <= max_events:
        raise RequestValidationError(
            [
                {
                    "loc": ["body", "events"],
                    "type": "batch_size",
                    "msg": f"a batch holds 1 to {max_events} events, not {len(events)}",
                }
            ]
        )
    return events


def _oversized(events: list[Any], validated: list[Any], max_event_bytes: int) -> set[int]:
    """Indexes of the valid events whose JSON is larger than `max_event_bytes` (an invalid one may
    not even serialise, e.g. nested deeper than orjson writes: it is rejected already)."""
    return {
        index
        for index, (raw, event) in enumerate(zip(events, validated, strict=True))
        if not isinstance(event, InvalidEvent) and len(orjson.dumps(raw)) > max_event_bytes
    }


class _Services:
    """What the lifespan wires up; the routes read it."""

    store: IdentityStore
    pipeline: IngestPipeline
    eraser: Eraser


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
            if t.name in (TOUCHPOINT_EVENTS, IDENTITY_MERGES, dead_letter_topic(IDENTITY_MERGES))
        ],
        settings.topic_policy,
        settings.kafka_security,
    )
    services = _Services()
    catalogue = Catalogue()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        limits = IdentityLimits(
            per_type={kind.value: n for kind, n in settings.identity_limits.items()},
            default=settings.identity_limit_default,
            merges_per_day=settings.merges_per_customer_per_day,
        )
        store = IdentityStore(
            redis,
            settings.dedupe_ttl_s,
            limits,
            on_conflict=lambda reason: metrics.identity_conflicts.labels(reason).inc(),
        )
        relay = MergeRelay(
            store,
            lambda key, value: broker.send(IDENTITY_MERGES, key, value),
            # A merge the broker can never take is skipped and kept there, with why.
            dead_letter=lambda key, value: broker.send(dead_letter_topic(IDENTITY_MERGES), key, value),
        )

        def send_events(records: list[tuple[bytes, bytes]]) -> Awaitable[list[asyncio.Future[object]]]:
            return broker.send_keyed(TOUCHPOINT_EVENTS, records)

        services.store = store
        services.pipeline = IngestPipeline(
            store,
            send_events,
            relay.nudge,
            clock,
            produce_timeout_s=settings.produce_timeout_s,
            max_queued_events=settings.max_queued_events,
            on_count_failed=metrics.count_failures.inc,
        )
        joins = JoinRelay(store, send_events, clock, settings.join_grace_s)
        services.eraser = Eraser(
            redis, lambda keys: broker.send_keyed(TOUCHPOINT_EVENTS, [(key, None) for key in keys])
        )
        jobs = (
            keep_catalogue(catalogue, redis, settings.contents_poll_interval_s, metrics.contents_version.set),
            broker.connect(),
            services.pipeline.run(),
            relay.run(),
            joins.run(),
            services.eraser.run_pending(),
        )
        tasks = [asyncio.create_task(job) for job in jobs]
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
        docs_url=None,  # served from our own copy of Swagger UI below, not a CDN
        redoc_url=None,
        max_body_size=settings.max_body_bytes,  # 413 before anything parses, declared or chunked
        telemetry={"tracing": False, "metrics": False, "logs": False},  # we export Prometheus
    )
    _document_envelope(app)
    self_hosted_docs(app, assets_dir(settings.web_assets_dir))

    async def redis_ready() -> None:
        await redis.ping()

    grace = settings.readiness_grace_s
    app.include_router(
        operations_router(
            registry,
            {"kafka": sustained_only(broker.check, grace), "redis": sustained_only(redis_ready, grace)},
        )
    )

    def authenticate(request: Request) -> Caller:
        # Called in the handler rather than as a FastAPI dependency: solving dependencies was a
        # tenth of a single post's CPU. /docs learns of the header from _json_request_body.
        key = request.headers.get("x-api-key")
        scope = keys.scope_for(key)
        if scope is None or key is None:  # also when the header is missing
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown X-Api-Key")
        return Caller(scope, api_key_id(key))

    # Hashing a phone makes it longer (up to `phone:` and 64 hex digits for 11 digits): an event
    # sent under the size limit may be over it as published. Measured again only when the body
    # was large enough for that to matter.
    measured_above = settings.max_event_bytes // 8

    def pending(event: TouchpointEvent, key_id: str, received_at: str, body_bytes: int) -> PendingEvent:
        """Protect PII and stamp the event; raises InvalidEvent for a bad phone, or for an event
        over the size limit once its phones are hashed."""
        # An IngestedEvent but for customer_id: the validated fields as they are, which orjson
        # writes as model_dump_json would (UUID, datetime, enum values) at a third of the cost.
        record: dict[str, Any] = event.__dict__.copy()
        event_id = record["event_id"] = str(event.event_id)
        salt, region = settings.phone_hash_salt, settings.default_phone_region
        identities, record["properties"] = protect_event(
            {kind.value: value for kind, value in event.identities.items()},
            with_catalogue(event.properties, catalogue.contents),
            salt,
            region,
            event.type,
        )
        record["identities"] = identities
        record["received_at"] = received_at
        record["api_key_id"] = key_id
        if body_bytes > measured_above and len(orjson.dumps(record)) > settings.max_event_bytes:
            message = f"over {settings.max_event_bytes} bytes once its phone numbers are hashed"
            raise InvalidEvent([{"loc": [], "type": "too_large", "msg": message}])
        identity_keys = sorted(identity_key(kind, value) for kind, value in identities.items())
        return PendingEvent(event_id, record, identity_keys)

    async def submit(events: list[PendingEvent]) -> list[Acknowledged]:
        try:
            acknowledged = await services.pipeline.submit(events)
        except (BrokerUnavailable, Overloaded, RedisError) as error:
            metrics.count_all([(p.record["source"], p.record["type"], "unavailable") for p in events])
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"not accepted, retry: {error}",
                headers={"Retry-After": "1"},
            ) from error
        metrics.count_all(
            [
                (p.record["source"], p.record["type"], "duplicate" if ack.duplicate else "accepted")
                for p, ack in zip(events, acknowledged, strict=True)
            ]
        )
        return acknowledged

    def accepted_json(results: list[dict[str, Any]], status_code: int = 202, **extra: Any) -> Response:
        # Serialised here with orjson: a response model would validate every result again.
        body = {"accepted": len(results), "results": results, **extra}
        return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=IngestResponse,
        tags=["events"],
        responses={401: {}, 403: {}, 413: {}, 422: {}, 503: {}},
        openapi_extra=_json_request_body({"$ref": "#/components/schemas/TouchpointEvent"}),
    )
    async def post_event(request: Request) -> Response:
        """Accept one event."""
        started = time.perf_counter()
        caller = authenticate(request)
        now = clock()
        body = await request.body()
        if len(body) > settings.max_event_bytes:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE, f"an event holds at most {settings.max_event_bytes} bytes"
            )
        raw = _json_body(body)
        try:
            event = validate_event(raw, now)
        except InvalidEvent as invalid:
            fields = raw if isinstance(raw, dict) else {}
            metrics.count_all([(fields.get("source"), fields.get("type"), "invalid")])
            raise RequestValidationError(
                [{**e, "loc": ["body", *e["loc"]]} for e in invalid.errors]
            ) from None
        if (refused := caller.refusal(event)) is not None:
            metrics.count_all([(event.source, event.type, "forbidden")])
            raise HTTPException(status.HTTP_403_FORBIDDEN, [refused])
        try:
            one = pending(event, caller.key_id, now.isoformat(), len(body))
        except InvalidEvent as invalid:
            metrics.count_all([(event.source, event.type, "invalid")])
            raise RequestValidationError(
                [{**e, "loc": ["body", *e["loc"]]} for e in invalid.errors]
            ) from None
        [ack] = await submit([one])
        metrics.request_seconds.labels("event").observe(time.perf_counter() - started)
        return accepted_json([caller.result(ack)])

    @app.post(
        "/v1/events/batch",
        status_code=202,
        response_model=BatchResponse,
        tags=["events"],
        responses={401: {}, 413: {}, 422: {"description": "every event was rejected"}, 503: {}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": BATCH_SCHEMA}},
            }
        },
    )
    async def post_batch(request: Request) -> Response:
        """Accept up to 500 events; invalid or forbidden ones are listed in `rejected`."""
        started = time.perf_counter()
        caller = authenticate(request)
        body = await request.body()
        events = _batch_events(body, settings.max_batch_events)
        now = clock()
        received_at = now.isoformat()
        validated = validate_events(events, now)
        if len(body) > settings.max_event_bytes:  # only then can one event be over the limit
            for index in _oversized(events, validated, settings.max_event_bytes):
                too_large = {"loc": [], "type": "too_large", "msg": f"over {settings.max_event_bytes} bytes"}
                validated[index] = InvalidEvent([too_large])
        accepted: list[tuple[int, PendingEvent]] = []
        rejected: list[dict[str, Any]] = []
        outcomes: list[tuple[object, object, str]] = []
        for index, (raw, event) in enumerate(zip(events, validated, strict=True)):
            if isinstance(event, InvalidEvent):
                fields = raw if isinstance(raw, dict) else {}
                outcomes.append((fields.get("source"), fields.get("type"), "invalid"))
                rejected.append({"index": index, "errors": event.errors})
            elif (refused := caller.refusal(event)) is not None:
                outcomes.append((event.source, event.type, "forbidden"))
                rejected.append({"index": index, "errors": [refused]})
            else:
                try:
                    accepted.append((index, pending(event, caller.key_id, received_at, len(body))))
                except InvalidEvent as invalid:  # a phone that is no phone
                    outcomes.append((event.source, event.type, "invalid"))
                    rejected.append({"index": index, "errors": invalid.errors})
        metrics.count_all(outcomes)
        acknowledged = await submit([p for _, p in accepted]) if accepted else []
        results = [
            {"index": i, **caller.result(ack)} for (i, _), ack in zip(accepted, acknowledged, strict=True)
        ]
        metrics.request_seconds.labels("batch").observe(time.perf_counter() - started)
        return accepted_json(results, 202 if accepted else 422, rejected=rejected)

    async def accept_callback_events(raw_events: list[dict[str, Any]], key_id: str) -> None:
        """Events a verified WeCom callback makes, accepted as posted ones."""
        now = clock()
        try:
            accepted = [pending(validate_event(raw, now), key_id, now.isoformat(), 0) for raw in raw_events]
        except InvalidEvent as invalid:
            metrics.count_all([(raw.get("source"), raw.get("type"), "invalid") for raw in raw_events])
            raise HTTPException(status.HTTP_400_BAD_REQUEST, invalid.errors) from None
        await submit(accepted)

    app.include_router(
        wecom_router(
            [corp.keys() for corp in settings.wecom_callbacks],
            redis,
            clock,
            accept_callback_events,
            settings.wecom_replay_window_s,
            registry,
        )
    )

    ops_only = [Depends(require_ops_token(settings.ops_tokens))]

    @app.get(
        "/v1/identities/{identity_type}/{value}",
        response_model=IdentityLookup,
        tags=["identities"],
        dependencies=ops_only,
        responses={401: {}, 404: {}},
    )
    async def lookup_identity(
        identity_type: IdentityType, value: Annotated[str, Path(max_length=256)]
    ) -> IdentityLookup:
        """The customer an identifier belongs to (the survivor, after merges). A phone may be
        given raw (it is hashed here, never stored) or as its hash. Prefer the POST form for a
        raw phone: a path ends up in access logs and proxies' logs."""
        return await owner_of(identity_type, value)

    @app.post(
        "/v1/identities/lookup",
        response_model=IdentityLookup,
        tags=["identities"],
        dependencies=ops_only,
        responses={401: {}, 404: {}, 422: {}},
    )
    async def lookup_identity_in_body(query: IdentityQuery) -> IdentityLookup:
        """The same lookup with the identifier in the body, where no log keeps it (the console's
        customer search uses this)."""
        return await owner_of(query.type, query.value)

    async def owner_of(identity_type: IdentityType, value: str) -> IdentityLookup:
        """One key read in the identity store: a lookup never scans."""
        if identity_type is IdentityType.phone:
            try:
                value = phone_identity(value, settings.phone_hash_salt, settings.default_phone_region)
            except ValueError as error:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(error)) from None
        else:  # stored as ingest stores it: a phone given as another identifier is its hash
            value = scrub_text(value, settings.phone_hash_salt, settings.default_phone_region)
        found = await services.store.lookup(identity_key(identity_type.value, value))
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no customer has this identifier")
        customer_id, identities = found
        return IdentityLookup(customer_id=customer_id, identities=identities)

    @app.get(
        "/v1/identity-conflicts",
        response_model=list[IdentityConflict],
        tags=["identities"],
        dependencies=ops_only,
        responses={401: {}},
    )
    async def get_identity_conflicts(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[IdentityConflict]:
        """Events accepted without (all) the links they named, newest first, for review: an
        identifier shared by strangers (one device, a mistyped phone) shows up here instead of
        merging them. The latest 10,000 are kept."""
        return await services.store.conflicts(limit)

    @app.post(
        "/v1/customers/{customer_id}/unbind",
        response_model=Unbound,
        tags=["identities"],
        dependencies=[*ops_only, *ADMIN_ONLY],
        responses={401: {}, 403: {}, 404: {}, 409: {}, 422: {}},
    )
    async def unbind(
        customer_id: Annotated[str, Path(min_length=1, max_length=64)],
        request: UnbindRequest,
        edit: Annotated[Edit, Depends(edit_of)],
    ) -> Unbound:
        """Take identifiers away from a customer: together they form one new customer, and
        their future events go to it. Undoes a wrong merge (unbind what the other person
        brought; `GET /v1/identities/...` shows a customer's identifiers) or frees a shared
        identifier. What was already folded into the customer's scores and tags stays with
        them (docs/ingest.md, "Unbinding")."""
        keys = []
        for given in request.identities:
            value = given.value
            try:
                if given.type is IdentityType.phone:
                    value = phone_identity(value, settings.phone_hash_salt, settings.default_phone_region)
                else:
                    value = scrub_text(value, settings.phone_hash_salt, settings.default_phone_region)
            except ValueError as error:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(error)) from None
            keys.append(identity_key(given.type.value, value))
        try:
            new_customer = await services.store.unbind(
                customer_id, sorted(set(keys)), clock(), edit.editor.holder
            )
        except UnbindRefused as refused:
            raise HTTPException(refused.status, refused.reason) from None
        log.info(
            "identifiers unbound",
            extra={"customer": customer_id, "into": new_customer, "by": edit.editor.holder},
        )
        return Unbound(customer_id=new_customer, unbound_from=customer_id)

    app.include_router(erasure_router(lambda: services.eraser, clock, [*ops_only, *ADMIN_ONLY]))

    @app.get(
        "/v1/stats/events",
        response_model=EventsPerMinute,
        tags=["stats"],
        dependencies=ops_only,
        responses={401: {}, 503: {"description": "Redis down"}},
    )
    async def get_events_per_minute(
        minutes: Annotated[int, Query(ge=1, le=MAX_MINUTES, description="how many minutes back")] = 60,
    ) -> Response:
        """Accepted events (duplicates not counted) per minute and source, oldest first, every
        minute of the window present, the current one last."""
        try:
            counts = await events_per_minute(redis, clock(), minutes)
        except RedisError as error:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"counts unavailable, retry: {error!r}"[:300],
                headers={"Retry-After": "1"},
            ) from error
        # Serialised by the model itself: FastAPI would validate a day's 1,440 minutes again and
        # write them with the standard json module, doubling the time of the request.
        return Response(counts.model_dump_json(), media_type="application/json")

    return app
