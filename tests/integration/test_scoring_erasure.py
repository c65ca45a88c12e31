"""PIPL erasure from the scoring read model (services/scoring/erasure.py), against the real Redis
on a DB of its own: customers are written by the worker's own batch step and write path, one is
erased, and then nothing in the DB names them or the customers merged into them, everything else
is as it was, and the lead matrix lost exactly them, from their cell."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from services.scoring import read_model
from services.scoring.batch import BatchOutcome, Delivery
from services.scoring.erasure import MAX_ATTEMPTS, erase_customers
from services.scoring.inputs import ScoringEvent
from services.scoring.intent import Activity, Band
from services.scoring.lead_matrix import lead_matrix, scan
from services.scoring.matrix_cells import MatrixBounds
from services.scoring.plan import default_plan
from services.scoring.ranking import rank_key
from services.scoring.views import activity_at, band_of_key
from shared.identity import IdentityJoined, IdentityMerged
from tests.factories import unique
from tests.scoring_worker import InProcessScorer
from tests.sweeps import naming, redis_facts

pytestmark = pytest.mark.integration
ERASURE_DB = 12  # apart from DB 0 (ingest, the workers) and the other tests' own (4-7, 9-11)
PLAN = default_plan()
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)
OFFSETS = itertools.count()


@pytest.fixture
async def redis(backends: Any) -> AsyncIterator[Redis]:
    client = Redis.from_url(f"{backends.redis_url.rsplit('/', 1)[0]}/{ERASURE_DB}")
    await client.flushdb()
    yield client
    await client.aclose()


class Worker(InProcessScorer):
    """The in-process scorer, and a merge as ingest and the handovers topic would bring it."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis, PLAN, T0)

    async def merge(self, merged: str, survivor: str, *, taken_in: bool = True) -> None:
        """`merged` merged away into `survivor`; `taken_in`: the survivor took their state (and
        latest events) in, else the handover is still on its way."""
        merge = IdentityMerged(
            merge_id=unique("m"),
            merged_customer_id=merged,
            survivor_customer_id=survivor,
            identities={"phone": ["h"]},
            merged_at=T0,
        )
        (handover,) = (await self.take([Delivery("touchpoint.events.v1/0", next(OFFSETS), merge)])).handovers
        if taken_in:
            joined = IdentityJoined(
                merge_id=merge.merge_id, customer_id=survivor, merged_customer_id=merged, joined_at=T0
            )
            await self.take(
                [
                    Delivery("touchpoint.events.v1/0", next(OFFSETS), joined),
                    Delivery("pd-scoring-handovers/0", next(OFFSETS), handover),
                ]
            )


def event(customer_id: str, type_: str, at: datetime, **fields: Any) -> Delivery:
    scored = ScoringEvent(
        event_id=unique("e"),
        customer_id=customer_id,
        type=type_,
        source="wecom",
        occurred_at=at,
        received_at=at,
        **fields,
    )
    return Delivery("touchpoint.events.v1/0", next(OFFSETS), scored)


def hot_lead(customer_id: str) -> list[Delivery]:
    return [
        event(customer_id, "test_drive.booked", T0 - timedelta(hours=1), vehicle_model="G6"),
        event(customer_id, "content.click", T0 - timedelta(hours=2), content_id="c-spec-001"),
    ]


async def cell_of(redis: Redis, customer_id: str) -> tuple[Band, Activity]:
    key = await redis.zscore(read_model.RANK, customer_id)
    assert key is not None, customer_id
    return band_of_key(key, PLAN, T0), activity_at(
        await redis.zscore(read_model.LAST_INTERACTION, customer_id), PLAN, T0
    )


async def counted_matrix(redis: Redis) -> dict[Band, dict[Activity, int]]:
    """The matrix from the counts the worker keeps, which must be the one counted afresh."""
    cells, counted = await lead_matrix(redis, PLAN, T0)
    assert counted and cells == await scan(redis, MatrixBounds.at(PLAN, T0))
    return cells


def uncounted(facts: set[Any]) -> set[Any]:
    """The facts less the matrix's counts, which an erasure changes (counted_matrix checks them)."""
    return {fact for fact in facts if fact[0] != read_model.CELLS.encode()}


async def test_an_erased_customer_leaves_no_trace_and_everyone_else_stays(redis: Redis) -> None:
    worker = Worker(redis)
    erased, kept, cold = unique("cus"), unique("cus"), unique("cus")
    brought, on_the_way, kept_alias = unique("cus"), unique("cus"), unique("cus")
    await worker.take(
        [
            *hot_lead(erased),
            *hot_lead(kept),  # the same cell as the erased customer
            event(cold, "content.click", T0 - 20 * DAY),
            *(event(c, "content.view", T0 - DAY) for c in (brought, on_the_way, kept_alias)),
        ]
    )
    await worker.merge(brought, erased)  # their events are the erased customer's now
    await worker.merge(on_the_way, erased, taken_in=False)  # their events still wait for them
    await worker.merge(kept_alias, kept)
    # The erased customer is everywhere scoring writes a customer: what the erasure must undo.
    assert await redis.zscore(read_model.RANK, erased) is not None
    assert await redis.zscore(read_model.LAST_INTERACTION, erased) is not None
    assert await redis.zscore(read_model.DUE, erased) is not None
    assert await redis.zcard(read_model.events_key(erased)) == 3
    assert await redis.smembers(read_model.merged_away_key(erased)) == {brought.encode(), on_the_way.encode()}
    assert await redis.exists(read_model.events_key(on_the_way))
    assert (await read_model.read_score(redis, brought)).score.customer_id == erased

    before = await redis_facts(redis)
    matrix_before = await counted_matrix(redis)
    band, activity = await cell_of(redis, erased)
    assert await cell_of(redis, kept) == (band, activity)

    await erase_customers(redis, [erased])

    after = await redis_facts(redis)
    gone = (erased, brought, on_the_way)  # one person: merged into the erased customer
    assert naming(after, gone) == set()
    assert uncounted(after) == uncounted(before) - naming(before, gone)  # nothing else moved
    expected = {b: dict(row) for b, row in matrix_before.items()}
    expected[band][activity] -= 1
    assert await counted_matrix(redis) == expected
    assert await redis.zcard(read_model.RANK) == await redis.zcard(read_model.LAST_INTERACTION) == 2
    for customer_id in gone:
        assert await read_model.read_score(redis, customer_id) is None
    assert (await read_model.read_score(redis, kept_alias)).score.customer_id == kept

    # Again, for a merged-away customer alone, and for nobody known: nothing left to remove.
    await erase_customers(redis, [erased])
    await erase_customers(redis, [on_the_way, unique("cus")])
    await erase_customers(redis, [])
    assert await redis_facts(redis) == after


async def test_a_merged_away_customer_is_erased_alone_and_their_survivor_stays(redis: Redis) -> None:
    worker = Worker(redis)
    survivor, erased, other = unique("cus"), unique("cus"), unique("cus")
    await worker.take([*hot_lead(survivor), *(event(c, "content.view", T0 - DAY) for c in (erased, other))])
    await worker.merge(erased, survivor)
    await worker.merge(other, survivor)
    # The survivor keeps the events the erased customer brought: theirs now, naming nobody.
    assert await redis.zcard(read_model.events_key(survivor)) == 4
    before = await redis_facts(redis)
    matrix_before = await counted_matrix(redis)
    assert naming(before, [erased])

    await erase_customers(redis, [erased])

    after = await redis_facts(redis)
    assert naming(after, [erased]) == set()
    assert uncounted(after) == uncounted(before) - naming(before, [erased])
    assert await redis.smembers(read_model.merged_away_key(survivor)) == {other.encode()}
    assert await counted_matrix(redis) == matrix_before  # they were counted as the survivor
    assert await read_model.read_score(redis, erased) is None
    assert (await read_model.read_score(redis, other)).score.customer_id == survivor


class MeanwhileRedis(Redis):
    """A client whose transactions run `meanwhile` once, after their reads under WATCH and right
    before EXEC: another client's write lands between an erasure's reads and its removal."""

    meanwhile: Callable[[], Awaitable[object]] | None = None

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _MeanwhilePipeline(self, transaction, shard_hint)


class _MeanwhilePipeline(Pipeline):
    def __init__(self, client: MeanwhileRedis, transaction: bool, shard_hint: str | None) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, transaction, shard_hint)
        self._client = client

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        meanwhile = self._client.meanwhile
        if meanwhile is not None and self.watching:
            self._client.meanwhile = None
            await meanwhile()
        return await super().execute(raise_on_error)


@pytest.fixture
async def meanwhile_redis(redis: Redis, backends: Any) -> AsyncIterator[MeanwhileRedis]:
    client = MeanwhileRedis.from_url(f"{backends.redis_url.rsplit('/', 1)[0]}/{ERASURE_DB}")
    assert isinstance(client, MeanwhileRedis)
    yield client
    await client.aclose()


async def test_a_merge_into_the_customer_during_their_erasure_goes_with_them(
    redis: Redis, meanwhile_redis: MeanwhileRedis
) -> None:
    worker = Worker(redis)
    erased, late = unique("cus"), unique("cus")
    await worker.take([*hot_lead(erased), event(late, "content.view", T0 - DAY)])
    meanwhile_redis.meanwhile = lambda: worker.merge(late, erased, taken_in=False)

    await erase_customers(meanwhile_redis, [erased])

    assert meanwhile_redis.meanwhile is None  # it did land mid-erasure
    after = await redis_facts(redis)
    assert naming(after, [erased, late]) == set()
    assert await redis.zcard(read_model.RANK) == 0


async def test_other_customers_written_during_an_erasure_are_untouched(
    redis: Redis, meanwhile_redis: MeanwhileRedis
) -> None:
    worker = Worker(redis)
    erased, also_erased, kept, newcomer = (unique("cus") for _ in range(4))
    await worker.take([*hot_lead(erased), event(also_erased, "content.view", T0 - DAY), *hot_lead(kept)])
    written: list[BatchOutcome] = []

    async def others_scored() -> None:
        more = [event(kept, "quote.requested", T0 - timedelta(minutes=5)), *hot_lead(newcomer)]
        written.append(await worker.take(more))

    meanwhile_redis.meanwhile = others_scored

    await erase_customers(meanwhile_redis, [erased, also_erased])

    assert meanwhile_redis.meanwhile is None
    after = await redis_facts(redis)
    assert naming(after, [erased, also_erased]) == set()
    (outcome,) = written
    for customer_id in (kept, newcomer):
        score = outcome.records[customer_id].score
        assert await redis.zscore(read_model.RANK, customer_id) == rank_key(score, PLAN)
        assert (await read_model.read_score(redis, customer_id)).score == score
        assert await redis.zscore(read_model.DUE, customer_id) == outcome.due[customer_id].timestamp()
    assert await redis.zcard(read_model.events_key(kept)) == 3
    assert await redis.zcard(read_model.events_key(newcomer)) == 2
    assert await redis.zcard(read_model.RANK) == await redis.zcard(read_model.LAST_INTERACTION) == 2


async def test_an_erasure_whose_customer_never_stops_changing_gives_up_whole(
    redis: Redis, meanwhile_redis: MeanwhileRedis
) -> None:
    worker = Worker(redis)
    erased = unique("cus")
    await worker.take(hot_lead(erased))

    async def scored_again() -> None:
        await worker.take([event(erased, "content.click", T0 - DAY, content_id=unique("c"))])
        meanwhile_redis.meanwhile = scored_again  # and again, before every attempt

    meanwhile_redis.meanwhile = scored_again

    with pytest.raises(WatchError):  # a RedisError: the worker's `retrying` tries again later
        await erase_customers(meanwhile_redis, [erased])

    # Every attempt was undone whole: the customer is where each write put them, events and all.
    assert await redis.zcard(read_model.events_key(erased)) == 2 + MAX_ATTEMPTS  # the lead's 2
    assert (await read_model.read_score(redis, erased)).score == worker.rows[erased].score
    for sorted_set in (read_model.RANK, read_model.LAST_INTERACTION, read_model.DUE):
        assert await redis.zscore(sorted_set, erased) is not None
