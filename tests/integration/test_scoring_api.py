"""The scoring API (docs/contract.md "Scoring"), in-process against the real Redis on a DB of its own."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from services.scoring import matrix_routes, read_model, views
from services.scoring.api import create_app
from services.scoring.batch import CustomerRecord, Delivery
from services.scoring.calibration import check_plan
from services.scoring.inputs import ScoringEvent
from services.scoring.intent import Activity, Band, CustomerScore, apply_event, intent_pct
from services.scoring.matrix_cells import plan_fingerprint
from services.scoring.plan import ScoringPlan, default_plan
from services.scoring.plan_store import PLAN_KEY
from services.scoring.ranking import band_key_range, rank_key
from services.scoring.settings import ScoringSettings
from services.scoring.views import active_since
from shared.identity import IdentityJoined, IdentityMerged
from tests.factories import unique
from tests.harness import free_port
from tests.scoring_worker import InProcessScorer
from tests.sweeps import redis_facts

TOKEN = "scoring-test-token"
OPS = {"Authorization": f"Bearer {TOKEN}"}
PLAN = default_plan()
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)
SCORING_DB = 5  # apart from DB 0, which ingest and the other tests share


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Api:
    http: httpx.AsyncClient
    redis: Redis
    clock: Clock
    registry: CollectorRegistry


@asynccontextmanager
async def running(redis_url: str, clock: Clock) -> AsyncIterator[Api]:
    registry = CollectorRegistry()
    settings = ScoringSettings(redis_url=redis_url, ops_tokens=("other-token", TOKEN))
    app = create_app(settings, registry, clock)
    redis = Redis.from_url(redis_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scoring") as http,
    ):
        yield Api(http, redis, clock, registry)
    await redis.aclose()


@pytest.fixture
def scoring_redis_url(backends) -> str:
    url, replaced = re.subn(r"/0$", f"/{SCORING_DB}", backends.redis_url)
    assert replaced == 1, backends.redis_url
    return url


@pytest.fixture
async def scoring(scoring_redis_url: str) -> AsyncIterator[Api]:
    async with running(scoring_redis_url, Clock(T0)) as running_api:
        await running_api.redis.flushdb()
        yield running_api


def event(customer_id: str, type_: str, at: datetime, **fields: Any) -> ScoringEvent:
    return ScoringEvent(
        event_id=unique("e"),
        customer_id=customer_id,
        type=type_,
        source=fields.pop("source", "wecom"),
        occurred_at=at,
        received_at=at,
        **fields,
    )


def customer(customer_id: str, *events: tuple[str, datetime]) -> CustomerScore:
    state = CustomerScore(customer_id=customer_id)
    for type_, at in events:
        state = apply_event(state, event(customer_id, type_, at), PLAN)
    return state


async def seed(redis: Redis, *states: CustomerScore, merged: dict[str, str] | None = None) -> None:
    records = [CustomerRecord(score=s) for s in states]
    records += [
        CustomerRecord(score=CustomerScore(customer_id=gone), merged_into=survivor)
        for gone, survivor in (merged or {}).items()
    ]
    await read_model.write_records(redis, records, PLAN, T0)


def plan_json(**changes: Any) -> dict[str, Any]:
    return json.loads(PLAN.model_dump_json()) | changes


async def test_every_v1_route_needs_an_ops_token(scoring: Api) -> None:
    await seed(scoring.redis, customer("c1", ("content.click", T0)))
    routes = [
        ("GET", "/v1/customers/c1/score", None),
        ("GET", "/v1/customers/c1/forecast", None),
        ("GET", "/v1/customers/c1/events", None),
        ("GET", "/v1/matrix", None),
        ("GET", "/v1/leads", None),
        ("GET", "/v1/scoring-plan", None),
        ("PUT", "/v1/scoring-plan", plan_json(half_life_days=7.0)),
        ("POST", "/v1/scoring-plan/check", plan_json(half_life_days=7.0)),
    ]
    for method, path, body in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = await scoring.http.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
        other = await scoring.http.request(
            method, path, json=body, headers={"Authorization": "Bearer other-token"}
        )
        assert other.status_code == 200, (method, path)
    # A refused PUT changed nothing (the accepted one, with the other token, is version 1).
    assert (await scoring.http.get("/v1/scoring-plan", headers=OPS)).json()["version"] == 1


async def test_a_score_is_decayed_to_now(scoring: Api) -> None:
    state = customer("c1", ("test_drive.booked", T0), ("content.share", T0 - DAY))
    state = apply_event(state, event("c1", "config.build", T0 - DAY, vehicle_model="G6"), PLAN)
    await seed(scoring.redis, state)

    body = (await scoring.http.get("/v1/customers/c1/score", headers=OPS)).json()
    assert set(body) == {
        "customer_id",
        "intent_score",
        "intent_pct",
        "band",
        "activity",
        "model_interest",
        "points",
        "growth",
        "level",
        "benefits",
        "last_interaction_at",
        "updated_at",
    }
    assert (body["customer_id"], body["band"], body["activity"]) == ("c1", "hot", "active_7d")
    assert body["intent_pct"] == pytest.approx(intent_pct(state.intent_score, PLAN), abs=0.01)
    assert (body["points"], body["growth"], body["level"]) == (5, 5, "member")
    assert set(body["model_interest"]) == {"G6"}
    assert datetime.fromisoformat(body["last_interaction_at"]) == T0
    assert datetime.fromisoformat(body["updated_at"]) == T0

    scoring.clock.now = T0 + 14 * DAY  # one half-life, nothing new
    later = (await scoring.http.get("/v1/customers/c1/score", headers=OPS)).json()
    assert later["intent_score"] == pytest.approx(body["intent_score"] / 2, rel=1e-3)
    assert (later["band"], later["activity"]) == ("high", "active_30d")
    assert later["model_interest"]["G6"] < body["model_interest"]["G6"]
    assert (later["points"], later["growth"]) == (5, 5)


async def test_an_unknown_customer_is_404(scoring: Api) -> None:
    response = await scoring.http.get("/v1/customers/nobody/score", headers=OPS)
    assert (response.status_code, response.json()) == (404, {"detail": "unknown customer"})


async def test_a_merged_customer_answers_with_the_survivor(scoring: Api) -> None:
    survivor = customer("survivor", ("store.visit", T0))
    await seed(scoring.redis, survivor, merged={"gone": "survivor"})
    direct = (await scoring.http.get("/v1/customers/survivor/score", headers=OPS)).json()
    via_merged = await scoring.http.get("/v1/customers/gone/score", headers=OPS)
    assert via_merged.status_code == 200
    assert via_merged.json() == direct and direct["customer_id"] == "survivor"


def cells_with_counts(body: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(band, activity): n for band, row in body["cells"].items() for activity, n in row.items() if n}


async def test_the_matrix_counts_customers_per_cell(scoring: Api) -> None:
    await seed(
        scoring.redis,
        customer("hot-a", ("test_drive.booked", T0)),
        customer("hot-b", ("order.placed", T0 - DAY)),
        customer(
            "high", *[(t, T0 - 10 * DAY) for t in ("quote.requested", "config.build", "test_drive.completed")]
        ),
        customer(
            "medium", *[(t, T0 - 40 * DAY) for t in ("test_drive.booked", "test_drive.booked", "store.visit")]
        ),
        customer("low", ("content.view", T0)),
        customer("defeated", ("lead.defeated", T0 - 3 * DAY)),  # zero score, but it was them
        CustomerScore(customer_id="untouched"),  # only non-interactions so far
        merged={"gone": "hot-a"},  # merged away: not a customer of its own any more
    )
    response = await scoring.http.get("/v1/matrix", headers=OPS)
    assert response.status_code == 200
    body = response.json()
    assert (body["bands"], body["activities"]) == (
        ["low", "medium", "high", "hot"],
        ["active_7d", "active_30d", "dormant"],
    )
    assert (datetime.fromisoformat(body["as_of"]), body["plan_version"], body["total"]) == (T0, 0, 7)
    assert cells_with_counts(body) == {
        ("hot", "active_7d"): 2,
        ("high", "active_30d"): 1,
        ("medium", "dormant"): 1,
        ("low", "active_7d"): 2,
        ("low", "dormant"): 1,
    }
    assert sum(n for row in body["cells"].values() for n in row.values()) == body["total"]

    scoring.clock.now = T0 + 10 * DAY  # decay moves people down and out of active_7d
    later = cells_with_counts((await scoring.http.get("/v1/matrix", headers=OPS)).json())
    assert later == {
        ("high", "active_30d"): 3,  # both hot ones cooled to high, "high" stayed
        ("medium", "dormant"): 1,
        ("low", "active_30d"): 2,
        ("low", "dormant"): 1,
    }


async def seed_leads(scoring: Api) -> list[str]:
    """Six customers, highest intent first."""
    states = [
        customer("a", ("order.placed", T0), ("test_drive.booked", T0)),  # hot (99 %), active_7d
        # hot (95 %), active_30d
        customer(
            "b", *[(t, T0 - 10 * DAY) for t in ("test_drive.booked", "test_drive.booked", "store.visit")]
        ),
        customer("c", ("test_drive.booked", T0 - DAY)),  # high (84 %), active_7d
        customer("d", ("quote.requested", T0 - 2 * DAY)),  # medium, active_7d
        customer("e", ("test_drive.booked", T0 - 45 * DAY)),  # low (19 %), dormant
        customer("f", ("content.view", T0)),  # low (6 %), active_7d
    ]
    await seed(scoring.redis, *states)
    return [s.customer_id for s in states]


async def leads(scoring: Api, **params: Any) -> list[dict[str, Any]]:
    response = await scoring.http.get("/v1/leads", params=params, headers=OPS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["band"], body["activity"]) == (params.get("band"), params.get("activity"))
    return body["leads"]


async def test_leads_are_highest_intent_first_and_filtered_by_cell(scoring: Api) -> None:
    order = await seed_leads(scoring)
    everyone = await leads(scoring)
    assert [lead["customer_id"] for lead in everyone] == order
    pcts = [lead["intent_pct"] for lead in everyone]
    assert pcts == sorted(pcts, reverse=True)
    assert [lead["band"] for lead in everyone] == ["hot", "hot", "high", "medium", "low", "low"]

    assert [x["customer_id"] for x in await leads(scoring, band="hot")] == ["a", "b"]
    assert [x["customer_id"] for x in await leads(scoring, band="low")] == ["e", "f"]
    assert [x["customer_id"] for x in await leads(scoring, activity="active_7d")] == ["a", "c", "d", "f"]
    assert [x["customer_id"] for x in await leads(scoring, band="hot", activity="active_30d")] == ["b"]
    assert [x["customer_id"] for x in await leads(scoring, band="low", activity="dormant")] == ["e"]
    assert await leads(scoring, band="medium", activity="dormant") == []
    assert [x["customer_id"] for x in await leads(scoring, limit=2)] == ["a", "b"]
    assert all(
        x["band"] == "hot" and set(x) >= {"intent_pct", "activity"} for x in await leads(scoring, band="hot")
    )


async def test_leads_page_through_the_ranking_until_the_limit(scoring: Api, monkeypatch) -> None:
    monkeypatch.setattr(matrix_routes, "LEADS_PAGE", 2)  # so six customers take several pages
    await seed_leads(scoring)
    assert [x["customer_id"] for x in await leads(scoring, activity="active_7d", limit=3)] == ["a", "c", "d"]
    assert [x["customer_id"] for x in await leads(scoring, activity="active_7d")] == ["a", "c", "d", "f"]
    assert [x["customer_id"] for x in await leads(scoring, activity="dormant")] == ["e"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"band": "warm"}, "band"),
        ({"activity": "sleeping"}, "activity"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
    ],
)
async def test_bad_lead_queries_are_422(scoring: Api, params: dict[str, Any], field: str) -> None:
    response = await scoring.http.get("/v1/leads", params=params, headers=OPS)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["query", field]]


async def test_the_plan_is_the_default_until_replaced(scoring: Api) -> None:
    response = await scoring.http.get("/v1/scoring-plan", headers=OPS)
    assert response.status_code == 200
    body = response.json()
    assert (body["version"], body["updated_at"]) == (0, None)
    assert ScoringPlan.model_validate(body["plan"]) == PLAN


async def test_a_valid_plan_takes_a_new_version_and_applies_at_once(scoring: Api) -> None:
    await seed(scoring.redis, customer("c1", ("test_drive.booked", T0)))
    scoring.clock.now = T0 + 7 * DAY
    before = (await scoring.http.get("/v1/customers/c1/score", headers=OPS)).json()

    replaced = plan_json(half_life_days=7.0, bands={"medium": 20.0, "high": 50.0, "hot": 90.0})
    put = await scoring.http.put("/v1/scoring-plan", json=replaced, headers=OPS)
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 1 and put.json()["plan"] == replaced  # GET's shape round-trips
    got = (await scoring.http.get("/v1/scoring-plan", headers=OPS)).json()
    assert got == put.json()

    # The next read decays with the new half-life: 45 booked a week ago is 22.5 now, not 31.8.
    after = (await scoring.http.get("/v1/customers/c1/score", headers=OPS)).json()
    assert before["intent_score"] == pytest.approx(45 / 2**0.5, rel=1e-3)
    assert after["intent_score"] == pytest.approx(22.5, rel=1e-3)
    assert (await scoring.http.get("/v1/matrix", headers=OPS)).json()["plan_version"] == 1

    again = await scoring.http.put("/v1/scoring-plan", json=plan_json(), headers=OPS)
    assert again.json()["version"] == 2


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"bands": {"medium": 60.0, "high": 30.0, "hot": 85.0}}, "bands"),
        ({"weights": {"content.click": 4.0, "content.teleport": 9.0}}, "weights"),
        ({"half_life_days": 0}, "half_life_days"),
        ({"levels": {"member": 10, "gold": 5}}, "levels"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_an_invalid_plan_is_422_naming_the_field_and_changes_nothing(
    scoring: Api, changes: dict[str, Any], field: str
) -> None:
    response = await scoring.http.put("/v1/scoring-plan", json=plan_json(**changes), headers=OPS)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [error["loc"] for error in detail] == [["body", field]]
    assert detail[0]["msg"] and detail[0]["type"]
    assert await scoring.redis.get(PLAN_KEY) is None
    assert (await scoring.http.get("/v1/scoring-plan", headers=OPS)).json()["version"] == 0


async def test_a_plan_no_one_could_reach_hot_with_is_refused(scoring: Api) -> None:
    put = await scoring.http.put(
        "/v1/scoring-plan", json=plan_json(bands={"medium": 30.0, "high": 60.0, "hot": 100.0}), headers=OPS
    )
    assert put.status_code == 422
    assert [error["loc"] for error in put.json()["detail"]] == [["body", "bands"]]


async def test_ready_and_metrics(scoring: Api) -> None:
    ready = await scoring.http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "checks": {"redis": "ok"}})
    assert (await scoring.http.get("/healthz")).status_code == 200
    await scoring.http.get("/v1/customers/nobody/score", headers=OPS)
    metrics = await scoring.http.get("/metrics")
    assert metrics.status_code == 200
    # Labelled by route template and status, so customer ids do not become series.
    assert (
        'pd_scoring_api_request_seconds_count{route="/v1/customers/{customer_id}/score",status="404"} 1.0'
        in metrics.text
    )


async def test_redis_down_is_503_not_500(backends) -> None:
    async with running(f"redis://127.0.0.1:{free_port()}/0", Clock(T0)) as down:
        for path in (
            "/v1/customers/c1/score",
            "/v1/customers/c1/forecast",
            "/v1/customers/c1/events",
            "/v1/matrix",
            "/v1/leads",
            "/v1/scoring-plan",
        ):
            response = await down.http.get(path, headers=OPS)
            assert response.status_code == 503, path
            assert response.json()["detail"].startswith("read model unavailable, retry")
            assert response.headers["retry-after"] == "1"
        put = await down.http.put("/v1/scoring-plan", json=plan_json(), headers=OPS)
        assert put.status_code == 503
        assert (await down.http.get("/readyz")).status_code == 503


async def test_the_docs_describe_every_route_with_bearer_auth(scoring: Api) -> None:
    spec = (await scoring.http.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    v1 = {
        (path, method): op
        for path, ops in spec["paths"].items()
        if path.startswith("/v1")
        for method, op in ops.items()
    }
    assert set(v1) == {
        ("/v1/customers/{customer_id}/score", "get"),
        ("/v1/customers/{customer_id}/forecast", "get"),
        ("/v1/customers/{customer_id}/events", "get"),
        ("/v1/scoring-plan/check", "post"),
        ("/v1/matrix", "get"),
        ("/v1/leads", "get"),
        ("/v1/scoring-plan", "get"),
        ("/v1/scoring-plan", "put"),
    }
    assert all(op["summary"] and op["security"] == [{"HTTPBearer": []}] for op in v1.values())
    assert (await scoring.http.get("/docs")).status_code == 200


async def test_metrics_carry_the_lead_concentration_matrix(scoring: Api) -> None:
    await seed(scoring.redis, customer("m1", ("test_drive.booked", T0)), customer("m2", ("ad.click", T0)))
    scoring.clock.now = T0 + DAY / 24  # an hour later: the booking is still hot
    text = (await scoring.http.get("/metrics")).text
    cells: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("pd_lead_matrix_customers{"):
            labels = dict(pair.split("=") for pair in line.split("{", 1)[1].split("}", 1)[0].split(","))
            cells[labels["band"].strip('"'), labels["activity"].strip('"')] = float(line.rsplit(" ", 1)[1])
    assert cells[("hot", "active_7d")] >= 1, cells
    assert cells[("low", "active_7d")] >= 1, cells
    assert len(cells) == 12
    matrix = (await scoring.http.get("/v1/matrix", headers=OPS)).json()
    assert sum(cells.values()) == matrix["total"]


async def test_metrics_answer_when_redis_does_not(backends) -> None:
    async with running(f"redis://127.0.0.1:{free_port()}/0", Clock(T0)) as down:
        metrics = await down.http.get("/metrics")
        assert metrics.status_code == 200 and "pd_scoring_api_request_seconds" in metrics.text


async def test_a_forecast_decays_the_score_from_now_with_the_plan_in_force(scoring: Api) -> None:
    await seed(scoring.redis, customer("c1", ("test_drive.booked", T0)), merged={"gone": "c1"})
    response = await scoring.http.get("/v1/customers/c1/forecast?days=20&step_hours=24", headers=OPS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (set(body), body["customer_id"], body["plan_version"]) == (
        {"customer_id", "plan_version", "points"},
        "c1",
        0,
    )
    points = body["points"]
    assert [datetime.fromisoformat(p["at"]) for p in points] == [T0 + n * DAY for n in range(21)]
    score = (await scoring.http.get("/v1/customers/c1/score", headers=OPS)).json()
    assert (points[0]["intent_pct"], points[0]["band"]) == (score["intent_pct"], score["band"])
    assert [p["band"] for p in points] == ["hot"] + ["high"] * 15 + ["medium"] * 5
    # A merged-away customer answers with the survivor, as the score does.
    assert (await scoring.http.get("/v1/customers/gone/forecast?days=20", headers=OPS)).json() == body
    assert len((await scoring.http.get("/v1/customers/c1/forecast", headers=OPS)).json()["points"]) == 29

    put = await scoring.http.put("/v1/scoring-plan", json=plan_json(half_life_days=7.0), headers=OPS)
    assert put.status_code == 200
    faster = (await scoring.http.get("/v1/customers/c1/forecast?days=7&step_hours=168", headers=OPS)).json()
    assert faster["plan_version"] == 1
    week, later = (intent_score_of(p["intent_pct"]) for p in faster["points"])
    assert later == pytest.approx(week / 2, rel=1e-3)


def intent_score_of(pct: float) -> float:
    return -PLAN.pct_scale * math.log(1 - pct / 100)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("days=0", "days"),
        ("days=91", "days"),
        ("step_hours=0", "step_hours"),
        ("step_hours=169", "step_hours"),
    ],
)
async def test_a_forecast_out_of_range_is_422(scoring: Api, query: str, field: str) -> None:
    await seed(scoring.redis, customer("c1", ("content.click", T0)))
    response = await scoring.http.get(f"/v1/customers/c1/forecast?{query}", headers=OPS)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["query", field]]


async def test_an_unknown_customer_has_no_forecast_and_no_events(scoring: Api) -> None:
    for path in ("/v1/customers/nobody/forecast", "/v1/customers/nobody/events"):
        response = await scoring.http.get(path, headers=OPS)
        assert (response.status_code, response.json()) == (404, {"detail": "unknown customer"}), path


async def test_a_plan_check_scores_the_papers_customers_and_saves_nothing(scoring: Api) -> None:
    response = await scoring.http.post("/v1/scoring-plan/check", json=plan_json(), headers=OPS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == check_plan(PLAN).model_dump(mode="json")
    assert 65 <= body["calibration"]["intent_pct"] <= 75 and body["calibration"]["band"] == "high"
    assert body["test_drive"] == {"intent_pct": pytest.approx(85.5, abs=0.1), "band": "hot"}
    slower = await scoring.http.post("/v1/scoring-plan/check", json=plan_json(pct_scale=46.6), headers=OPS)
    assert (slower.json()["calibration"]["band"], slower.json()["test_drive"]["band"]) == ("medium", "high")
    assert await scoring.redis.get(PLAN_KEY) is None
    assert (await scoring.http.get("/v1/scoring-plan", headers=OPS)).json()["version"] == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"bands": {"medium": 60.0, "high": 30.0, "hot": 85.0}},
        {"bands": {"medium": 30.0, "high": 60.0, "hot": 100.0}},
        {"weights": {"content.click": 4.0, "content.teleport": 9.0}},
        {"half_life_days": 0},
        {"surprise": 1},
    ],
)
async def test_a_plan_check_refuses_what_put_refuses_in_the_same_words(
    scoring: Api, changes: dict[str, Any]
) -> None:
    check = await scoring.http.post("/v1/scoring-plan/check", json=plan_json(**changes), headers=OPS)
    put = await scoring.http.put("/v1/scoring-plan", json=plan_json(**changes), headers=OPS)
    assert (check.status_code, put.status_code) == (422, 422)
    assert check.json() == put.json()


async def test_a_plan_check_needs_no_redis(backends) -> None:
    async with running(f"redis://127.0.0.1:{free_port()}/0", Clock(T0)) as down:
        response = await down.http.post("/v1/scoring-plan/check", json=plan_json(), headers=OPS)
        assert response.status_code == 200


class Worker(InProcessScorer):
    """The in-process scorer (tests/scoring_worker.py) at this file's plan and time."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis, PLAN, T0)


def on_the_wire(one: ScoringEvent, **properties: Any) -> Delivery:
    """A delivery of the event as ingest publishes it, identities and properties too."""
    body = {
        **one.model_dump(mode="json", exclude={"content_id", "vehicle_model"}),
        "identities": {"phone": "hashed-phone", "unionid": "o6_private"},
        "properties": properties,
    }
    raw = orjson.dumps(body)
    return Delivery("touchpoint.events.v1/0", next(OFFSETS), ScoringEvent.model_validate_json(raw), raw)


OFFSETS = itertools.count()


async def events_of(scoring: Api, customer_id: str, **params: Any) -> dict[str, Any]:
    response = await scoring.http.get(f"/v1/customers/{customer_id}/events", params=params, headers=OPS)
    assert response.status_code == 200, response.text
    return response.json()


async def test_latest_events_come_newest_first_with_what_each_added(scoring: Api) -> None:
    worker = Worker(scoring.redis)
    booked = event("c1", "test_drive.booked", T0)
    shared = event("c1", "content.share", T0 - DAY + timedelta(microseconds=123_457), source="ad")
    clicked = event("c1", "content.click", T0 - 2 * DAY)
    await worker.take(
        [
            on_the_wire(booked, vehicle_model="G6", note="call 13900001234"),
            on_the_wire(clicked, content_id="c-spec-001", topics=["tech"]),
            on_the_wire(shared, content_id="c-owner-story"),
        ]
    )
    body = await events_of(scoring, "c1")
    assert body["customer_id"] == "c1"
    assert body["events"] == [
        {
            "event_id": booked.event_id,
            "type": "test_drive.booked",
            "source": "wecom",
            "occurred_at": T0.isoformat().replace("+00:00", "Z"),
            "intent_added": 45.0,
            "points_added": None,
            "content_id": None,
            "vehicle_model": "G6",
        },
        {
            "event_id": shared.event_id,
            "type": "content.share",
            "source": "ad",
            "occurred_at": shared.occurred_at.isoformat().replace("+00:00", "Z"),
            "intent_added": 4.8,  # 6 x 0.8 for paid traffic
            "points_added": 5,
            "content_id": "c-owner-story",
            "vehicle_model": None,
        },
        {
            "event_id": clicked.event_id,
            "type": "content.click",
            "source": "wecom",
            "occurred_at": (T0 - 2 * DAY).isoformat().replace("+00:00", "Z"),
            "intent_added": 4.0,
            "points_added": None,
            "content_id": "c-spec-001",
            "vehicle_model": None,
        },
    ]
    assert [e["event_id"] for e in (await events_of(scoring, "c1", limit=2))["events"]] == [
        booked.event_id,
        shared.event_id,
    ]
    # Ordered by when each occurred, to the microsecond: the score is the exact epoch.
    stored = await scoring.redis.zrange(read_model.events_key("c1"), 0, -1, withscores=True)
    assert sorted(score for _, score in stored) == [
        e.occurred_at.timestamp() for e in (clicked, shared, booked)
    ]
    # Only the fields above reach Redis: no identity, no free property.
    for fact in await redis_facts(scoring.redis):
        assert not any(b"13900001234" in m or b"hashed-phone" in m or b"o6_private" in m for m in fact)


async def test_latest_events_keep_the_newest_50_and_a_replay_adds_none(scoring: Api) -> None:
    clicks = [event("c1", "content.click", T0 - n * timedelta(hours=1)) for n in range(60)]
    deliveries = [on_the_wire(c, content_id=f"c-{n}") for n, c in enumerate(clicks)]
    first = Worker(scoring.redis)
    for start in range(0, 60, 25):
        await first.take(deliveries[start : start + 25])
    assert await scoring.redis.zcard(read_model.events_key("c1")) == 50
    newest = [e["event_id"] for e in (await events_of(scoring, "c1", limit=50))["events"]]
    assert newest == [c.event_id for c in clicks[:50]]
    # The changelog was lost after Redis was written: a restarted worker scores everything again
    # on fresh rows, cut into other batches. Nothing doubles, nothing older comes back.
    restarted = Worker(scoring.redis)
    await restarted.take(deliveries[:7])
    await restarted.take(deliveries[7:])
    assert await scoring.redis.zcard(read_model.events_key("c1")) == 50
    assert [e["event_id"] for e in (await events_of(scoring, "c1", limit=50))["events"]] == newest
    assert (await scoring.http.get("/v1/customers/c1/events?limit=51", headers=OPS)).status_code == 422


async def test_a_merged_customers_latest_events_are_the_survivors(scoring: Api) -> None:
    worker = Worker(scoring.redis)
    older, newer = event("old", "config.build", T0 - DAY), event("new", "quote.requested", T0 - DAY / 2)
    await worker.take([on_the_wire(older, vehicle_model="id4"), on_the_wire(newer, vehicle_model="id4")])
    merge = IdentityMerged(
        merge_id=unique("m"),
        merged_customer_id="new",
        survivor_customer_id="old",
        identities={"phone": ["h"]},
        merged_at=T0,
    )
    joined = IdentityJoined(
        merge_id=merge.merge_id, customer_id="old", merged_customer_id="new", joined_at=T0
    )
    handovers = (await worker.take([Delivery("touchpoint.events.v1/0", next(OFFSETS), merge)])).handovers
    # Until the survivor takes the merged customer in, their events stay theirs.
    assert (await events_of(scoring, "new"))["customer_id"] == "old"
    assert await scoring.redis.zcard(read_model.events_key("new")) == 1
    linking = event("old", "content.view", T0)
    await worker.take(
        [
            Delivery("touchpoint.events.v1/0", next(OFFSETS), joined),
            on_the_wire(linking, content_id="c"),
            Delivery("pd-scoring-handovers/0", 0, handovers[0]),
        ]
    )
    expected = [linking.event_id, newer.event_id, older.event_id]
    for asked in ("old", "new"):
        body = await events_of(scoring, asked)
        assert (body["customer_id"], [e["event_id"] for e in body["events"]]) == ("old", expected)
    assert not await scoring.redis.exists(read_model.events_key("new"))
    # The handover again (a replay): the union is a no-op.
    await Worker(scoring.redis).take([Delivery("pd-scoring-handovers/0", 0, handovers[0])])
    assert [e["event_id"] for e in (await events_of(scoring, "old"))["events"]] == expected


async def test_a_customer_without_events_has_an_empty_list(scoring: Api) -> None:
    await seed(scoring.redis, CustomerScore(customer_id="quiet"))
    assert await events_of(scoring, "quiet") == {"customer_id": "quiet", "events": []}


def random_customer(n: int, rng: random.Random) -> CustomerScore:
    at = T0 - timedelta(seconds=rng.uniform(0, 90 * 86_400))
    interacted = rng.random() > 0.1
    return CustomerScore(
        customer_id=f"r{n}",
        intent_score=0.0 if rng.random() < 0.05 else rng.uniform(0.1, 200.0),
        score_at=at,
        last_interaction_at=at - rng.uniform(0, 1) * DAY if interacted else None,
    )


def last_interaction_s(state: CustomerScore) -> float | None:
    return state.last_interaction_at.timestamp() if state.last_interaction_at else None


async def test_the_matrix_counted_in_redis_is_views_matrix(scoring: Api) -> None:
    """Random customers (some never interacting, some at zero) written as the worker writes
    them, plus customers exactly on every band and activity edge, at moments where different
    bands and activities are the largest (the script lists all but the largest of each, and the
    smaller side into its table): under the default plan, one whose windows are not whole days
    (where `now - days` is not exact) and one whose 30-day window is the shorter; and on a read
    model from before `last_interaction` held the customers who never interacted."""
    rng = random.Random(3)
    states = [random_customer(n, rng) for n in range(3000)]
    await read_model.write_records(scoring.redis, [CustomerRecord(score=s) for s in states], PLAN, T0)
    odd = plan_json(activity={"active_7d_days": 6.9281, "active_30d_days": 29.70913})
    upside_down = plan_json(activity={"active_7d_days": 20.5, "active_30d_days": 9.25})
    largest: set[tuple[Band, Activity]] = set()
    table_sides: set[str] = set()
    for plan_body, from_before in ((odd, False), (upside_down, False), (plan_json(), False), (odd, True)):
        put = await scoring.http.put("/v1/scoring-plan", json=plan_body, headers=OPS)
        assert put.status_code == 200
        plan = ScoringPlan.model_validate(plan_body)
        if from_before:
            never = [s.customer_id for s in states if s.last_interaction_at is None]
            assert await scoring.redis.zrem(read_model.LAST_INTERACTION, *never) == len(never) > 0
        # The half-life stays, so the worker's rank keys hold under every plan.
        rows = {s.customer_id: (rank_key(s, plan), last_interaction_s(s)) for s in states}
        for now in (T0 - 60 * DAY, T0 - 3 * DAY, T0, T0 + timedelta(days=9, seconds=7.25), T0 + 400 * DAY):
            edges = edge_customers(plan, now)
            await scoring.redis.zadd(read_model.RANK, {c: key for c, (key, _) in edges.items()})
            await scoring.redis.zadd(read_model.LAST_INTERACTION, {c: last for c, (_, last) in edges.items()})
            expected = views.matrix(rows | edges, plan, now)
            scoring.clock.now = now
            body = (await scoring.http.get("/v1/matrix", headers=OPS)).json()
            cells = {b.value: {a.value: n for a, n in row.items()} for b, row in expected.items()}
            assert (body["cells"], body["total"]) == (cells, len(rows | edges)), (plan, from_before, now)
            largest.add(largest_cell(expected))
            if not from_before:  # where dormant is never listed, the sides are not as below
                table_sides.add(smaller_side(expected))
            await scoring.redis.zrem(read_model.RANK, *edges)
            await scoring.redis.zrem(read_model.LAST_INTERACTION, *edges)
    assert {band for band, _ in largest} >= {Band.low, Band.hot}, largest
    assert {activity for _, activity in largest} >= {Activity.active_7d, Activity.dormant}, largest
    assert table_sides == {"bands", "activities"}


def largest_cell(cells: dict[Band, dict[Activity, int]]) -> tuple[Band, Activity]:
    band = max(Band, key=lambda b: sum(cells[b].values()))
    return band, max(Activity, key=lambda a: sum(cells[b][a] for b in Band))


def smaller_side(cells: dict[Band, dict[Activity, int]]) -> str:
    """Which side the script lists into its table: the smaller, each less its largest group."""
    bands = [sum(cells[b].values()) for b in Band]
    activities = [sum(cells[b][a] for b in Band) for a in Activity]
    return "bands" if sum(bands) - max(bands) <= sum(activities) - max(activities) else "activities"


def edge_customers(plan: ScoringPlan, now: datetime) -> dict[str, tuple[float, float]]:
    """A customer on each band floor and each activity window's first moment at `now`, and one
    an ulp below each (a floor's own key is in the band, the ulp below is not)."""
    floors = [band_key_range(band, plan, now)[0] for band in (Band.medium, Band.high, Band.hot)]
    windows = [
        active_since(days, now) for days in (plan.activity.active_7d_days, plan.activity.active_30d_days)
    ]
    last = now.timestamp()
    edges: dict[str, tuple[float, float]] = {}
    for n, floor in enumerate(floors):
        edges[f"band-edge-{n}"] = (floor, last)
        edges[f"band-below-{n}"] = (math.nextafter(floor, -math.inf), last)
    for n, since in enumerate(windows):
        edges[f"window-edge-{n}"] = (floors[2], since)
        edges[f"window-before-{n}"] = (floors[2], math.nextafter(since, -math.inf))
    return edges


async def matrix_read(scoring: Api, now: datetime) -> tuple[dict[str, dict[str, int]], str]:
    """/v1/matrix at `now`, and how the API read it (pd_lead_matrix_reads_total)."""

    def reads() -> dict[str, float]:
        return {
            how: scoring.registry.get_sample_value("pd_lead_matrix_reads_total", {"how": how}) or 0.0
            for how in ("counted", "scanned")
        }

    scoring.clock.now = now
    before = reads()
    body = (await scoring.http.get("/v1/matrix", headers=OPS)).json()
    (how,) = [how for how, n in reads().items() if n == before[how] + 1]
    return body["cells"], how


def expected_cells(
    states: dict[str, CustomerScore], plan: ScoringPlan, now: datetime
) -> dict[str, dict[str, int]]:
    rows = {c: (rank_key(s, plan), last_interaction_s(s)) for c, s in states.items()}
    return {b.value: {a.value: n for a, n in row.items()} for b, row in views.matrix(rows, plan, now).items()}


async def test_the_matrix_kept_as_counts_is_views_matrix_as_time_passes(scoring: Api) -> None:
    """The counts the worker keeps (matrix_cells.py), corrected at read time for whom time alone
    moved, are views.matrix at every moment after the writes: as customers change, merge away,
    are written again (a replay), go untouched for days or are ticked; under a new plan once the
    worker rewrote the cells. Where they cannot answer, the matrix is scanned, as exactly."""
    rng = random.Random(11)
    states = {s.customer_id: s for s in (random_customer(n, rng) for n in range(2000))}
    records = [CustomerRecord(score=s) for s in states.values()]
    await read_model.write_records(scoring.redis, records, PLAN, T0)
    assert await matrix_read(scoring, T0) == (expected_cells(states, PLAN, T0), "counted")
    counts = await scoring.redis.hgetall(read_model.CELLS)
    await read_model.write_records(scoring.redis, records, PLAN, T0)  # a replay moves nobody
    assert await scoring.redis.hgetall(read_model.CELLS) == counts

    # Two hours on: some customers act, some merge away.
    t1 = T0 + timedelta(hours=2)
    acting, merging = rng.sample(sorted(states), 300), rng.sample(sorted(states), 60)
    changed = {c: apply_event(states[c], event(c, "test_drive.booked", t1), PLAN) for c in acting}
    states |= changed
    gone = [c for c in merging if c not in changed]
    for c in gone:
        del states[c]
    merged = [CustomerRecord(score=CustomerScore(customer_id=c), merged_into="elsewhere") for c in gone]
    await read_model.write_records(scoring.redis, [*map(CustomerRecord, changed.values()), *merged], PLAN, t1)
    assert await matrix_read(scoring, t1) == (expected_cells(states, PLAN, t1), "counted")

    # Untouched for days: those time alone moved are counted where they are now.
    for later in (t1 + 3 * DAY, t1 + timedelta(days=9, seconds=7.25), t1 + 45 * DAY, t1 + 400 * DAY):
        assert await matrix_read(scoring, later) == (expected_cells(states, PLAN, later), "counted"), later
    # The worker ticks those due and writes them again: the same matrix.
    t2 = t1 + 10 * DAY
    due = [m.decode() for m in await scoring.redis.zrangebyscore(read_model.DUE, "-inf", t2.timestamp())]
    assert len(due) > 100
    await read_model.write_records(scoring.redis, [CustomerRecord(score=states[c]) for c in due], PLAN, t2)
    assert await scoring.redis.zcount(read_model.DUE, "-inf", t2.timestamp()) == 0
    assert await matrix_read(scoring, t2) == (expected_cells(states, PLAN, t2), "counted")

    # Customers on every edge, whose cells were written long ago and are due: counted at now.
    edges = edge_customers(PLAN, t2)
    await scoring.redis.zadd(read_model.RANK, {c: key for c, (key, _) in edges.items()})
    await scoring.redis.zadd(read_model.LAST_INTERACTION, {c: last for c, (_, last) in edges.items()})
    await scoring.redis.zadd(read_model.DUE, dict.fromkeys(edges, t2.timestamp()))
    written_long_ago = f"{plan_fingerprint(PLAN)}:00"  # low, active_7d: where they were
    await scoring.redis.hset(read_model.CELL, mapping=dict.fromkeys(edges, written_long_ago))
    await scoring.redis.hincrby(read_model.CELLS, written_long_ago, len(edges))
    rows = {c: (rank_key(s, PLAN), last_interaction_s(s)) for c, s in states.items()}
    with_edges = views.matrix(rows | edges, PLAN, t2)
    cells, how = await matrix_read(scoring, t2)
    assert (cells, how) == (
        {b.value: {a.value: n for a, n in r.items()} for b, r in with_edges.items()},
        "counted",
    )
    for key in (read_model.RANK, read_model.LAST_INTERACTION, read_model.DUE):
        await scoring.redis.zrem(key, *edges)
    pipe = scoring.redis.pipeline()
    read_model.queue_cell_removal(pipe, edges)
    await pipe.execute()

    # Earlier than the cells were written: scanned.
    assert await matrix_read(scoring, t1) == (expected_cells(states, PLAN, t1), "scanned")
    # A new plan: scanned until the worker rewrote the cells under it, counted after.
    odd = ScoringPlan.model_validate(
        plan_json(bands={"medium": 20, "high": 50, "hot": 80}, activity={"active_7d_days": 6.5})
    )
    assert (
        await scoring.http.put("/v1/scoring-plan", json=odd.model_dump(mode="json"), headers=OPS)
    ).is_success
    assert await matrix_read(scoring, t2) == (expected_cells(states, odd, t2), "scanned")
    assert await read_model.rewrite_matrix(scoring.redis, list(states.values()), odd, t2) == len(states)
    assert await matrix_read(scoring, t2) == (expected_cells(states, odd, t2), "counted")
    later = t2 + 20 * DAY
    assert await matrix_read(scoring, later) == (expected_cells(states, odd, later), "counted")
    # The old plan's cells are gone: the counts hold the customers once.
    counts = await scoring.redis.hgetall(read_model.CELLS)
    assert sum(int(n) for field, n in counts.items() if field != b"as_of") == len(states)
