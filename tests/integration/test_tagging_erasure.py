"""PIPL erasure from the tagging read model against a real Redis: customers written through the
worker's write path (read_model.write_records) are erased, and afterwards no key name or value
anywhere in Redis holds their id, the others are untouched and every figure counts exactly the
customers left. A database of its own, so that "anywhere" and the figures are exact."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from services.tagging import read_model, segment_queries
from services.tagging.batch import ProfileRecord
from services.tagging.erasure import ERASURE_CHUNK, erase_customers
from services.tagging.funnel import FunnelStep
from services.tagging.profile import Profile
from services.tagging.rules import Layer, Orientation, Stage
from services.tagging.segments import SegmentQuery
from tests.conftest import Backends
from tests.factories import unique
from tests.sweeps import Fact, naming, redis_facts

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture
async def redis(backends: Backends) -> AsyncIterator[Redis]:
    url, replaced = re.subn(r"/0$", "/12", backends.redis_url)
    assert replaced == 1, backends.redis_url
    client = Redis.from_url(url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


def held_by(facts: set[Fact], key: str) -> set[Fact]:
    """What the key holds."""
    return {fact for fact in facts if fact[0] == key.encode()}


def keys_of(facts: set[Fact]) -> set[bytes]:
    """Every key the facts are of."""
    return {fact[0] for fact in facts}


def sets_holding(facts: set[Fact], customer_id: str) -> set[str]:
    """The sets the customer is a member of."""
    return {
        key.decode() for key, kind, *member in facts if kind == b"set" and member == [customer_id.encode()]
    }


def customer(
    customer_id: str, *, tags: tuple[str, ...], reached: tuple[FunnelStep, ...], band: str | None = "hot"
) -> ProfileRecord:
    return ProfileRecord(
        Profile(
            customer_id=customer_id,
            layer=Layer.intent,
            orientation=Orientation.rational,
            stage=Stage.active_fan,
            tags=tags,
            intent_pct=72.0,
            band=band,
            activity="active_7d",
            reached=reached,
        )
    )


async def figures(redis: Redis) -> dict[str, object]:
    """What the API answers from the read model: ladder, tag counts, funnel, a few counts."""
    steps, total = await segment_queries.funnel(redis)
    counts = {
        "everyone": SegmentQuery.of(),
        "hot intent": SegmentQuery.of(layers=[Layer.intent], bands=["hot"]),
        "not ripple": SegmentQuery.of(tags_none=["ripple"]),
        "intent or owner, not low": SegmentQuery.of(
            layers=[Layer.intent, Layer.owner], bands=["medium", "high", "hot"]
        ),
    }
    return {
        "ladder": await read_model.ladder(redis),
        "tags": await read_model.tag_counts(redis),
        "funnel": ({str(step): n for step, n in steps}, total),
        **{name: await segment_queries.count(redis, query) for name, query in counts.items()},
    }


def ladder_of(cells: dict[tuple[Layer, Orientation], int]) -> dict[str, dict[str, int]]:
    return {layer: {o: cells.get((layer, o), 0) for o in Orientation} for layer in Layer}


async def test_an_erased_customer_leaves_no_trace_and_the_figures_lose_exactly_them(redis: Redis) -> None:
    erased, kept = unique("cus"), unique("cus")
    merged_into_erased, merged_into_kept = unique("cus"), unique("cus")
    # Two customers in the same cells, so that every figure would show a wrong decrement.
    await read_model.write_records(
        redis,
        {
            erased: customer(
                erased,
                tags=("defeat_reason:bought_rival", "interest:tech", "ripple"),
                reached=(FunnelStep.friend_added, FunnelStep.lead, FunnelStep.test_drive),
            ),
            kept: customer(
                kept, tags=("interest:tech", "price_sensitive"), reached=(FunnelStep.friend_added,)
            ),
            merged_into_erased: customer(merged_into_erased, tags=("price_sensitive",), reached=()),
            merged_into_kept: customer(merged_into_kept, tags=("ripple",), reached=()),
        },
        NOW,
    )
    # Merged away later, as the worker writes a merge: their snapshots name the survivor.
    merges = {
        merged_into_erased: replace(customer(merged_into_erased, tags=(), reached=()), merged_into=erased),
        merged_into_kept: replace(customer(merged_into_kept, tags=(), reached=()), merged_into=kept),
    }
    await read_model.write_records(redis, merges, NOW)
    before = await redis_facts(redis)
    assert naming(before, [erased])  # the check below can see them
    assert naming(before, [merged_into_erased])
    assert await figures(redis) == {
        "ladder": ladder_of({(Layer.intent, Orientation.rational): 2}),
        "tags": {"interest:tech": 2, "defeat_reason:bought_rival": 1, "price_sensitive": 1, "ripple": 1},
        "funnel": ({"friend_added": 2, "lead": 1, "test_drive": 1, "order": 0}, 2),
        "everyone": 2,
        "hot intent": 2,
        "not ripple": 1,
        "intent or owner, not low": 2,
    }

    await erase_customers(redis, [erased])

    after = await redis_facts(redis)
    assert naming(after, [erased]) == set()
    assert naming(after, [merged_into_erased]) == set()  # the same person: their pointer named them
    assert await read_model.read_profile(redis, erased) is None
    assert await read_model.read_profile(redis, merged_into_erased) is None
    # The others are exactly as they were: their snapshots, their sets, their merge.
    for other in (kept, merged_into_kept):
        snapshot = held_by(before, read_model.profile_key(other))
        assert snapshot and held_by(after, read_model.profile_key(other)) == snapshot
        assert sets_holding(after, other) == sets_holding(before, other)
    assert sets_holding(after, merged_into_kept) == {read_model.merged_away_key(kept)}
    assert (await read_model.read_profile(redis, merged_into_kept)).customer_id == kept
    # Tags only the erased customer had are no tag names any more; the others' stay.
    tag_names = {t.decode() for t in await redis.smembers(read_model.TAG_NAMES)}
    assert tag_names == {"interest:tech", "price_sensitive"}
    assert await figures(redis) == {
        "ladder": ladder_of({(Layer.intent, Orientation.rational): 1}),
        "tags": {"interest:tech": 1, "price_sensitive": 1},
        "funnel": ({"friend_added": 1, "lead": 0, "test_drive": 0, "order": 0}, 1),
        "everyone": 1,
        "hot intent": 1,
        "not ripple": 1,
        "intent or owner, not low": 1,
    }

    # Again, with an id nobody ever had: nothing changes.
    await erase_customers(redis, [erased, merged_into_erased, unique("cus")])
    assert await redis_facts(redis) == after


async def test_erasing_a_merged_away_customer_leaves_their_survivor(redis: Redis) -> None:
    survivor, merged = unique("cus"), unique("cus")
    await read_model.write_records(
        redis,
        {
            survivor: customer(survivor, tags=("ripple",), reached=(FunnelStep.lead,)),
            merged: replace(customer(merged, tags=(), reached=()), merged_into=survivor),
        },
        NOW,
    )
    before = await redis_facts(redis)
    assert sets_holding(before, merged) == {read_model.merged_away_key(survivor)}

    await erase_customers(redis, [merged])

    after = await redis_facts(redis)
    assert naming(after, [merged]) == set()
    # Their survivor's `merged_away` had them alone: it is gone, and nothing else of the survivor.
    assert keys_of(before) - keys_of(after) == {
        read_model.profile_key(merged).encode(),
        read_model.merged_away_key(survivor).encode(),
    }
    assert after == {fact for fact in before if fact[0] in keys_of(after)}
    assert (await read_model.read_profile(redis, survivor)).tags == ["ripple"]


async def test_a_profile_missing_still_leaves_every_fixed_set(redis: Redis) -> None:
    # The snapshot is gone but the customer is still in sets (say, a write cut short): the sets
    # of the fixed dimensions do not depend on the profile.
    lost = unique("cus")
    await read_model.write_records(redis, {lost: customer(lost, tags=(), reached=(FunnelStep.order,))}, NOW)
    await redis.delete(read_model.profile_key(lost))
    assert sets_holding(await redis_facts(redis), lost)

    await erase_customers(redis, [lost])

    assert naming(await redis_facts(redis), [lost]) == set()


async def test_many_customers_at_once_beside_a_worker_writing_others(redis: Redis) -> None:
    # More than one script call's worth, erased while other customers are written (the client's
    # pool gives each its own connection): each script is atomic, so the figures end counting
    # exactly the customers left, whatever the interleaving.
    erased = [unique("cus") for _ in range(ERASURE_CHUNK + 30)]
    others = [unique("cus") for _ in range(60)]
    tags = ("ripple", "interest:design")
    await read_model.write_records(
        redis, {c: customer(c, tags=tags, reached=(FunnelStep.lead,)) for c in erased + others[:30]}, NOW
    )

    async def write_others() -> None:
        for n in range(30, 60, 5):
            batch = {
                c: customer(c, tags=tags, reached=(FunnelStep.lead,), band="low") for c in others[n : n + 5]
            }
            await read_model.write_records(redis, batch, NOW)

    await asyncio.gather(erase_customers(redis, erased), write_others())

    assert naming(await redis_facts(redis), erased) == set()
    assert await figures(redis) == {
        "ladder": ladder_of({(Layer.intent, Orientation.rational): 60}),
        "tags": {"interest:design": 60, "ripple": 60},
        "funnel": ({"friend_added": 0, "lead": 60, "test_drive": 0, "order": 0}, 60),
        "everyone": 60,
        "hot intent": 30,
        "not ripple": 0,
        "intent or owner, not low": 30,
    }
