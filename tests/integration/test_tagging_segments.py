"""Segment counts, members and the funnel over HTTP, against a real Redis holding a known
population (written through the read model as the worker writes it): every answer must equal a
direct reading of the filter over that population."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from services.tagging import read_model, segment_queries, segments
from services.tagging.api import create_app
from services.tagging.batch import ProfileRecord
from services.tagging.erasure import erase_customers
from services.tagging.funnel import FUNNEL
from services.tagging.profile import Profile
from services.tagging.rules import Layer, Orientation, Stage
from services.tagging.settings import TaggingSettings
from shared.scores import Activity, Band

TOKEN = "tagging-segments-token"
FIXED_CLOCK = datetime(2026, 12, 1, 10, 0, 7, tzinfo=UTC)  # well inside a 15-second window
SEGMENTS_DB = 7  # apart from DB 0 (ingest, the workers), 5 (scoring API tests), 6 (campaign views)
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
TAGS = ("ripple", "price_sensitive", "interest:tech", "recalled")
CUSTOMERS = 400


@dataclass
class Api:
    http: httpx.AsyncClient
    redis: Redis
    population: dict[str, Profile]

    async def count(self, **filters: Any) -> int:
        response = await self.http.get("/v1/segments/count", params=filters)
        assert response.status_code == 200, response.text
        return response.json()["count"]

    async def walk(self, limit: int, cursor: str | None = None, **filters: Any) -> tuple[list[str], set[int]]:
        """The segment's pages from `cursor` on: the customer ids in the order they came, and
        the counts the pages gave."""
        ids: list[str] = []
        counts: set[int] = set()
        for _ in range(CUSTOMERS + 1):
            params = {**filters, "limit": limit, **({"cursor": cursor} if cursor else {})}
            response = await self.http.get("/v1/segments/members", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["members"]) <= limit
            ids += [member["customer_id"] for member in page["members"]]
            counts.add(page["count"])
            cursor = page["next_cursor"]
            if cursor is None:
                return ids, counts
        raise AssertionError("the pages never ended")


def scored_customer(n: int, rng: random.Random) -> Profile:
    return Profile(
        customer_id=f"cus-{n:04d}",
        layer=rng.choice(list(Layer)),
        orientation=rng.choice(list(Orientation)),
        stage=rng.choice(list(Stage)),
        band=rng.choice([None, *Band]),
        activity=rng.choice([None, *Activity]),
        intent_pct=rng.uniform(0, 100),
        reached=tuple(step for step in FUNNEL if rng.random() < 0.4),
        tags=tuple(sorted(tag for tag in TAGS if rng.random() < 0.3)),
    )


@pytest.fixture
async def api(backends) -> AsyncIterator[Api]:
    url, replaced = re.subn(r"/0$", f"/{SEGMENTS_DB}", backends.redis_url)
    assert replaced == 1, backends.redis_url
    # A fixed clock: the stored results' window does not turn between two requests of a test.
    settings = TaggingSettings(redis_url=url, ops_tokens=(TOKEN,))
    app = create_app(settings, CollectorRegistry(), clock=lambda: FIXED_CLOCK)
    redis = Redis.from_url(url)
    await redis.flushdb()
    rng = random.Random(11)
    population = {p.customer_id: p for p in (scored_customer(n, rng) for n in range(CUSTOMERS))}
    await read_model.write_records(redis, {c: ProfileRecord(p) for c, p in population.items()}, NOW)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://tagging", headers=headers
        ) as http,
    ):
        yield Api(http, redis, population)
    await redis.aclose()


def named(population: dict[str, Profile], filters: dict[str, Any]) -> set[str]:
    """The customers a filter names, read directly."""

    def values(name: str) -> set[str]:
        given = filters.get(name, [])
        return set(given if isinstance(given, list) else [given])

    def held(name: str, value: object) -> bool:
        wanted = values(name)
        return not wanted or (value is not None and str(value) in wanted)

    return {
        p.customer_id
        for p in population.values()
        if held("layer", p.layer)
        and held("orientation", p.orientation)
        and held("stage", p.stage)
        and held("band", p.band)
        and held("activity", p.activity)
        and values("tag") <= set(p.tags)
        and not values("not_tag") & set(p.tags)
    }


QUERIES: list[dict[str, Any]] = [
    {},
    {"layer": "owner"},
    {"layer": "intent", "orientation": "rational", "tag": "ripple"},  # as before: one SINTERCARD
    {"band": ["high", "hot"]},
    {"band": ["high", "hot"], "layer": ["prospect", "intent", "owner"]},
    {"activity": ["active_7d", "active_30d"], "stage": ["newcomer", "active_fan"], "not_tag": "ripple"},
    {"not_tag": ["ripple", "recalled"]},
    {"tag": "interest:tech", "not_tag": "interest:tech"},
    {"tag": ["ripple", "price_sensitive"], "band": "low", "orientation": ["rational", "emotional"]},
    # More terms than a count adds up: counted from a stored result.
    {"band": list(Band), "activity": list(Activity), "not_tag": ["ripple", "recalled", "interest:tech"]},
]


@pytest.mark.parametrize("filters", QUERIES)
async def test_a_count_is_the_number_of_customers_the_filters_name(api: Api, filters: dict[str, Any]) -> None:
    assert await api.count(**filters) == len(named(api.population, filters))


@pytest.mark.parametrize("filters", QUERIES)
@pytest.mark.parametrize("live_from", [segments.LIVE_PAGING_FROM, 1], ids=["stored", "live if common"])
async def test_the_pages_of_a_segment_hold_each_of_its_customers_once(
    api: Api, filters: dict[str, Any], live_from: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This population is small: with the threshold at 1, every segment common enough in the set
    # it would be read from is paged live, the others stored, as large ones are.
    monkeypatch.setattr(segments, "LIVE_PAGING_FROM", live_from)
    expected = named(api.population, filters)
    ids, counts = await api.walk(7, **filters)
    assert sorted(ids) == sorted(expected)
    assert counts == {len(expected)}


async def test_members_are_profiles_as_the_profile_endpoint_answers_them(api: Api) -> None:
    response = await api.http.get("/v1/segments/members", params={"band": "hot", "limit": 3})
    page = response.json()
    assert len(page["members"]) == 3 and page["next_cursor"]
    for member in page["members"]:
        alone = await api.http.get(f"/v1/customers/{member['customer_id']}/profile")
        assert alone.json() == member
        assert member["band"] == "hot"
        assert member["reached"] == [str(s) for s in api.population[member["customer_id"]].reached]


async def test_pages_come_from_a_snapshot_while_counts_follow_the_customers(api: Api) -> None:
    filters = {"layer": ["owner", "intent"], "not_tag": "ripple"}
    before = named(api.population, filters)
    first = (await api.http.get("/v1/segments/members", params={**filters, "limit": 5})).json()
    # A customer leaves the segment between two pages.
    leaver = next(c for c in sorted(before) if c not in {m["customer_id"] for m in first["members"]})
    moved = replace(api.population[leaver], tags=("ripple",))
    await read_model.write_records(api.redis, {leaver: ProfileRecord(moved)}, NOW)
    assert await api.count(**filters) == len(before) - 1
    ids = [m["customer_id"] for m in first["members"]]
    cursor = first["next_cursor"]
    while cursor:
        page = (
            await api.http.get("/v1/segments/members", params={**filters, "limit": 5, "cursor": cursor})
        ).json()
        assert page["count"] == len(before)
        ids += [m["customer_id"] for m in page["members"]]
        cursor = page["next_cursor"]
    assert sorted(ids) == sorted(before)


async def test_first_pages_share_one_stored_result_that_expires(api: Api) -> None:
    filters = {"band": ["low", "medium"], "tag": "price_sensitive"}
    for limit in (2, 9):
        response = await api.http.get("/v1/segments/members", params={**filters, "limit": limit})
        assert response.status_code == 200
    stored = [key async for key in api.redis.scan_iter(match=f"{read_model.PREFIX}query:*")]
    assert len(stored) == 1, stored  # one result, no scratch sets left behind
    assert 0 < await api.redis.ttl(stored[0]) <= segment_queries.RESULT_TTL_S
    assert await api.redis.scard(stored[0]) == len(named(api.population, filters))
    # Erasing a customer reaches the stored result too (found by name, not by a scan).
    erased = sorted(named(api.population, filters))[0]
    await erase_customers(api.redis, [erased])
    assert not await api.redis.sismember(stored[0], erased)
    assert await api.redis.scard(stored[0]) == len(named(api.population, filters)) - 1


@pytest.mark.parametrize(
    "filters",
    [{"stage": "newcomer"}, {"band": ["low", "medium", "high"], "not_tag": "recalled"}],
    ids=["one set", "filtered"],
)
async def test_a_large_segment_is_paged_live_and_every_customer_staying_comes(
    api: Api, filters: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segments, "LIVE_PAGING_FROM", 20)
    staying = named(api.population, filters)
    assert len(staying) >= 20
    first = (await api.http.get("/v1/segments/members", params={**filters, "limit": 10})).json()
    assert first["next_cursor"] and first["count"] == len(staying)
    # Customers join and leave while the segment is paged: SCAN's guarantee covers the others.
    leaver = sorted(staying)[-1]
    moved = replace(api.population[leaver], stage=Stage.die_hard_fan, tags=("recalled",))
    newcomer = Profile(customer_id="cus-new", stage=Stage.newcomer, band="low", activity="dormant")
    changes = {leaver: ProfileRecord(moved), "cus-new": ProfileRecord(newcomer)}
    await read_model.write_records(api.redis, changes, NOW)
    staying.discard(leaver)
    ids, counts = await api.walk(10, first["next_cursor"], **filters)
    assert staying <= {m["customer_id"] for m in first["members"]} | set(ids)
    assert counts == {first["count"]}  # the segment's size when paging began
    assert not [key async for key in api.redis.scan_iter(match=f"{read_model.PREFIX}query:*")]


async def test_the_funnel_counts_each_step_in_order(api: Api) -> None:
    body = (await api.http.get("/v1/funnel")).json()
    assert [row["step"] for row in body["steps"]] == [str(step) for step in FUNNEL]
    for row in body["steps"]:
        assert row["customers"] == sum(1 for p in api.population.values() if row["step"] in p.reached)
    assert body["total"] == CUSTOMERS


@pytest.mark.parametrize(
    "params",
    [
        {"band": "lukewarm"},
        {"activity": "active_1d"},
        {"layer": ["owner", "buyer"]},
        {"limit": 0},
        {"limit": 201},
        {"cursor": "not-a-cursor"},
        {"tag": ""},
    ],
)
async def test_invalid_filters_are_refused_with_422(api: Api, params: dict[str, Any]) -> None:
    response = await api.http.get("/v1/segments/members", params=params)
    assert response.status_code == 422, response.text
    if "limit" not in params and "cursor" not in params:
        assert (await api.http.get("/v1/segments/count", params=params)).status_code == 422


async def test_a_cursor_of_another_query_is_refused(api: Api) -> None:
    page = (await api.http.get("/v1/segments/members", params={"band": "low", "limit": 2})).json()
    other = await api.http.get("/v1/segments/members", params={"band": "high", "cursor": page["next_cursor"]})
    assert other.status_code == 422 and "another query" in other.text
    start = await api.http.get("/v1/segments/members", params={"band": "high", "cursor": "0", "limit": 1})
    assert start.status_code == 200 and start.json()["count"] == len(named(api.population, {"band": "high"}))
